package runner

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/store"
	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/nodes"
)

// fetchFixture is a for_each of GETs, two at a time, and nodes that may
// follow it; the tests give its edges.
const fetchFixture = `
lgx: 1
name: t
config: {concurrency: 2}
state:
  urls: {type: list}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  get:
    type: http_fetch
    for_each: ${{ state.urls }}
    with: {url: "${{ item }}"}
    output: {n: 1}
  after: {type: set, output: {n: 1}}
  fails: {type: probe, with: {fail: input}}
  more: {type: probe, with: {value: 1}}
  one:
    type: http_fetch
    for_each: ${{ state.urls }}
    concurrency: 1
    with: {url: "${{ item }}"}
    output: {n: 1}
edges:
`

// TestRunClosesItsHTTPConnections: a run that builds its own client leaves
// no keep-alive connection (and so no transport goroutine) behind, while
// the server that served it is still up: whether the requests were its
// last step's (the connections close while its end is recorded) or not,
// with a store or without, completed or failed after them.
func TestRunClosesItsHTTPConnections(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer ts.Close()
	urls := make([]any, 8)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/%d", ts.URL, i)
	}
	for _, tc := range []struct {
		name, edges string
		store       bool
		n           int
		failed      bool
	}{
		{"last step, no store", "  - {from: START, to: get}\n", false, 8, false},
		{"last step, SQLite", "  - {from: START, to: get}\n", true, 8, false},
		{"a step after, SQLite", "  - {from: START, to: get}\n  - {from: get, to: after}\n", true, 9, false},
		{"failing after, SQLite", "  - {from: START, to: get}\n  - {from: get, to: fails}\n", true, 8, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			var st store.Store
			if tc.store {
				s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
				if err != nil {
					t.Fatal(err)
				}
				st = s
			}
			res, err := runYAML(t, fetchFixture+tc.edges, map[string]any{"urls": urls}, func(o *Options) { o.Store = st })
			if (err != nil) != tc.failed || res.State["n"] != tc.n {
				t.Fatalf("run: %v, n = %v", err, res.State["n"])
			}
			if st != nil {
				st.(*store.SQLite).Close() // its own goroutines end with it
			}
			goleak.VerifyNone(t, ignore)
		})
	}
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

// slowCloser is a transport whose CloseIdleConnections takes until
// release is closed.
type slowCloser struct {
	http.RoundTripper
	started, release chan struct{}
	done             atomic.Bool
}

func (s *slowCloser) CloseIdleConnections() {
	close(s.started)
	<-s.release
	s.done.Store(true)
}

// TestClosingHTTPWhileTheEndIsRecorded: the run's connections, closed on
// another goroutine once its last step is over, are closed when the run
// returns (closeHTTP waits for that goroutine), and a client the caller
// gave is left alone.
func TestClosingHTTPWhileTheEndIsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := &slowCloser{started: make(chan struct{}), release: make(chan struct{})}
		r := &run{http: &http.Client{Transport: sc}}
		r.ownHTTP.Store(r.http) // built by the run
		r.startClosingHTTP()
		<-sc.started // closing while the loop goes on
		go func() {
			time.Sleep(time.Millisecond)
			close(sc.release)
		}()
		r.closeHTTP()
		if !sc.done.Load() {
			t.Error("closeHTTP returned before the connections were closed")
		}
	})
	sc := &slowCloser{started: make(chan struct{}), release: make(chan struct{})}
	c := &http.Client{Transport: sc}
	r := &run{http: c, opts: Options{HTTPClient: c}}
	r.startClosingHTTP()
	r.closeHTTP()
	select {
	case <-sc.started:
		t.Error("the caller's client was closed")
	default:
	}
}

// TestLastStepClosesConnectionsEarly: once every invocation of the run's
// last step has started, connections that come back are closed while the
// last ones still run; a step that other steps follow keeps them, and so
// does a last step with a node that may send more requests once its first
// is answered (any type without nodes.Capabilities.OneRequest, pure or
// instant: here the probe), or whose invocations may wait for a cap
// after they were taken.
func TestLastStepClosesConnectionsEarly(t *testing.T) {
	for _, tc := range []struct {
		name, edges string
		early       bool
		slowLast    bool // "slow" is the last item, not the second
	}{
		{"last step", "  - {from: START, to: get}\n", true, false},
		{"a step follows", "  - {from: START, to: get}\n  - {from: get, to: after}\n", false, false},
		{"a node that may send more", "  - {from: START, to: [get, more]}\n", false, false},
		// One at a time: "slow" last, taken while "d" waits for the cap.
		{"a node cap below the workers", "  - {from: START, to: one}\n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan struct{}, 64)
			var sawClose atomic.Bool
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/slow") {
					// The last invocation waits for a connection to
					// close, or gives up.
					select {
					case <-closed:
						sawClose.Store(true)
					case <-time.After(300 * time.Millisecond):
					}
				}
				_, _ = io.WriteString(w, "ok")
			}))
			ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					select {
					case closed <- struct{}{}:
					default:
					}
				}
			}
			ts.Start()
			defer ts.Close()
			// Two workers: one takes "slow" at once, the other the rest,
			// then finds none left.
			urls := []any{ts.URL + "/a", ts.URL + "/slow", ts.URL + "/c", ts.URL + "/d"}
			if tc.slowLast {
				urls = []any{ts.URL + "/a", ts.URL + "/c", ts.URL + "/d", ts.URL + "/slow"}
			}
			res, err := runYAML(t, fetchFixture+tc.edges, map[string]any{"urls": urls})
			if err != nil || res.Status != store.StatusCompleted {
				t.Fatalf("run: %v, %v", err, res.Status)
			}
			if sawClose.Load() != tc.early {
				t.Errorf("a connection closed while the step's last invocation ran = %v, want %v", sawClose.Load(), tc.early)
			}
		})
	}
}
