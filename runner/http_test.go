package runner

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/nodes"
)

// TestRunClosesItsHTTPConnections: a run that builds its own client leaves
// no keep-alive connection (and so no transport goroutine) behind, while
// the server that served it is still up.
func TestRunClosesItsHTTPConnections(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer ts.Close()
	ignore := goleak.IgnoreCurrent()
	urls := make([]any, 8)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/%d", ts.URL, i)
	}
	res, err := runYAML(t, `
lgx: 1
name: t
state:
  urls: {type: list}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  get:
    type: http_fetch
    for_each: ${{ state.urls }}
    with: {url: "${{ item }}"}
    output: {n: 1}
edges:
  - {from: START, to: get}
`, map[string]any{"urls": urls})
	if err != nil || res.State["n"] != 8 {
		t.Fatalf("run: %v, n = %v", err, res.State["n"])
	}
	goleak.VerifyNone(t, ignore)
}

// TestResultFields: a node's output decides which result fields the type
// is asked to build (nodes.Invocation.ResultFields).
func TestResultFields(t *testing.T) {
	tests := []struct {
		name   string
		output string
		want   []string // nil: every field
	}{
		{"member access", `{n: "${{ result.status }}"}`, []string{"status"}},
		{"several, index syntax, optional chaining, interpolation",
			`{n: "${{ result.status }}", s: "${{ result.headers['X'] }} ${{ result[\"body\"] }} ${{ result?.json?.a }}"}`,
			[]string{"body", "headers", "json", "status"}},
		{"bare key shorthand needs all", `s`, nil},
		{"whole result in a call needs all", `{n: "${{ len(result) }}"}`, nil},
		{"whole result beside a field needs all", `{s: "${{ [result.status, result][1] }}"}`, nil},
		{"computed field needs all", `{s: "${{ result[\"bo\" + \"dy\"] }}"}`, nil},
		{"literal output reads nothing", `{n: 1}`, []string{}},
		{"no output reads nothing", ``, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := ""
			if tt.output != "" {
				out = "\n    output: " + tt.output
			}
			g := compileYAML(t, `
lgx: 1
name: t
state:
  n: {type: any}
  s: {type: any}
nodes:
  get:
    type: http_fetch
    with: {url: "http://127.0.0.1:1/"}`+out+`
edges:
  - {from: START, to: get}
`)
			got := g.nodes[0].resultFields
			if tt.want == nil {
				if got != nil {
					t.Fatalf("ResultFields = %v, want nil (all)", got)
				}
				return
			}
			if got == nil || len(got) != len(tt.want) {
				t.Fatalf("ResultFields = %v, want %v", got, tt.want)
			}
			for _, f := range tt.want {
				if !got[f] {
					t.Errorf("ResultFields = %v, missing %q", got, f)
				}
			}
		})
	}
}

// TestResultFieldsEndToEnd: fields read by name are built and correct.
func TestResultFieldsEndToEnd(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Id", "42")
		_, _ = io.WriteString(w, `{"n": 7}`)
	}))
	defer ts.Close()
	res, err := runYAML(t, `
lgx: 1
name: t
state:
  url: {type: string}
  id: {type: string}
  n: {type: integer}
  status: {type: integer}
nodes:
  get:
    type: http_fetch
    with: {url: "${{ state.url }}"}
    output:
      id: ${{ result.headers["X-Id"] }}
      n: ${{ result.json.n }}
      status: ${{ result.status }}
edges:
  - {from: START, to: get}
`, map[string]any{"url": ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	if res.State["id"] != "42" || res.State["n"] != 7 || res.State["status"] != 200 {
		t.Errorf("state = %v, want id 42, n 7, status 200", res.State)
	}
}

// TestHTTPNodeTimeout: a node's timeout ends a request that hangs, as a
// timeout (retryable as such), not a cancellation, on every attempt.
func TestHTTPNodeTimeout(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer ts.Close()
	defer close(release)
	_, err := runYAML(t, `
lgx: 1
name: t
state:
  url: {type: string}
  status: {type: integer}
nodes:
  get:
    type: http_fetch
    timeout: 50ms
    retry: {attempts: 2, backoff: 1ms, on: [timeout]}
    with: {url: "${{ state.url }}"}
    output: {status: "${{ result.status }}"}
edges:
  - {from: START, to: get}
`, map[string]any{"url": ts.URL})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Kind != nodes.KindTimeout {
		t.Fatalf("err = %v, want a timeout of node get", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "timed out") || strings.Contains(msg, "cancelled") {
		t.Errorf("message %q: want a timeout, not a cancellation", msg)
	}
}

// TestLLMNodeTimeout: a node timeout ends a model call that streams too
// slowly, for both providers, as a timeout.
func TestLLMNodeTimeout(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.New(t)
			srv.SetResponder(func(llmtest.Request) llmtest.Reply {
				return llmtest.Reply{Text: "too late", Delay: 2 * time.Second}
			})
			url := srv.OpenAIURL()
			if kind == "anthropic" {
				url = srv.AnthropicURL()
			}
			_, err := runYAML(t, `
lgx: 1
name: t
providers:
  default: {kind: `+kind+`, model: m, base_url: "`+url+`", api_key: k}
state:
  answer: {type: string}
nodes:
  ask:
    type: llm_call
    timeout: 100ms
    retry: {attempts: 1}
    with: {prompt: hi}
    output: {answer: "${{ result.content }}"}
edges:
  - {from: START, to: ask}
`, nil)
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Kind != nodes.KindTimeout {
				t.Fatalf("err = %v, want a timeout of node ask", err)
			}
			if msg := err.Error(); strings.Contains(msg, "cancelled") || !strings.Contains(msg, "timed out") {
				t.Errorf("message %q: want a timeout, not a cancellation", msg)
			}
		})
	}
}
