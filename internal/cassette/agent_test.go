package cassette_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
)

// agentYAML is a streaming tool-calling agent: the model asks for two
// tools at once, the tools node fetches them over HTTP, the model answers.
const agentYAML = `lgx: 1
name: agent
secrets: [LLM_KEY]
providers:
  default: {kind: %s, model: test-model, base_url: "${{ env.LLM_URL }}", api_key: "${{ secrets.LLM_KEY }}"}
state:
  question: {type: string, required: true}
  messages: {type: messages, default: []}
  answer:   {type: string}
tools:
  service_status:
    description: Status of a service.
    parameters: {type: object, properties: {service: {type: string}}, required: [service]}
    node:
      type: http_fetch
      with: {url: "${{ env.STATUS_URL }}/status/${{ args.service }}"}
    output: ${{ result.body }}
nodes:
  ask:
    type: set
    output:
      messages: {role: user, content: "${{ state.question }}"}
  model:
    type: llm_call
    with:
      messages: ${{ state.messages }}
      tools: [service_status]
    output:
      messages: ${{ result.message }}
      answer: ${{ result.content }}
  act:
    type: tools
    with: {calls: "${{ last(state.messages).tool_calls }}"}
    output:
      messages: ${{ result.messages }}
edges:
  - {from: START, to: ask}
  - {from: ask, to: model}
  - from: model
    when: [{if: "len(last(state.messages).tool_calls ?? []) > 0", to: act}]
    else: END
  - {from: act, to: model}
`

// tokenLog keeps the token events of a run, in order per path.
type tokenLog struct {
	mu     sync.Mutex
	tokens map[string]string
}

func (l *tokenLog) Emit(e runner.Event) {
	if e.Event != runner.EventToken {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens[e.Path] += e.Token
}

// TestStreamingAgentReplays records a streaming tool-calling agent against
// the OpenAI and Anthropic test servers, closes them, and replays: the same
// final state byte for byte, the same token events.
func TestStreamingAgentReplays(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) {
			llm, err := llmtest.Start(llmtest.Script{Respond: func(r llmtest.Request) llmtest.Reply {
				if !r.LastIsToolResult() {
					return llmtest.Reply{Text: "Let me check. ", ToolCalls: []llmtest.ToolCall{
						{ID: "call_1", Name: "service_status", Arguments: `{"service": "payments"}`},
						{ID: "call_2", Name: "service_status", Arguments: `{"service": "search"}`},
					}}
				}
				return llmtest.Reply{Text: "Both services answered: payments is degraded, search is up."}
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer llm.Close()
			status := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				svc := strings.TrimPrefix(r.URL.Path, "/status/")
				state := map[string]string{"payments": "degraded"}[svc]
				if state == "" {
					state = "up"
				}
				fmt.Fprintf(w, "%s: %s", svc, state)
			}))
			defer status.Close()

			llmURL := llm.OpenAIURL()
			if kind == "anthropic" {
				llmURL = llm.AnthropicURL()
			}
			w, ds := spec.Load("agent.yaml", fmt.Appendf(nil, agentYAML, kind))
			if ds = append(ds, spec.Validate(w)...); ds.HasErrors() {
				t.Fatal(ds.Errors())
			}
			g, err := runner.Compile(w)
			if err != nil {
				t.Fatal(err)
			}
			const key = "sk-ant-test-0123456789"
			environ := []string{"LLM_URL=" + llmURL, "LLM_KEY=" + key, "STATUS_URL=" + status.URL}
			path := filepath.Join(t.TempDir(), "agent.cassette.yaml")
			run := func(mode cassette.Mode) (string, map[string]string) {
				t.Helper()
				c, err := cassette.Open(path, mode, cassette.Secrets(w, environ))
				if err != nil {
					t.Fatal(err)
				}
				log := &tokenLog{tokens: map[string]string{}}
				res, err := runner.Run(context.Background(), g, runner.Options{
					Inputs: map[string]any{"question": "Are payments and search up?"}, Environ: environ, Sink: log,
					HTTPClient: c.Wrap(nodes.NewHTTPClient("test")),
				})
				if err != nil {
					t.Fatalf("run: %v", err)
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				state, _ := json.Marshal(res.State)
				// Byte for byte: message ids come from invocation paths.
				return string(state), log.tokens
			}
			recState, recTokens := run(cassette.Record)
			file, _ := os.ReadFile(path)
			if strings.Contains(string(file), key) {
				t.Fatalf("the cassette holds the key")
			}
			if !strings.Contains(recState, "payments is degraded") || !strings.Contains(recState, "search: up") {
				t.Fatalf("recorded run did not call the tools: %s", recState)
			}
			llm.Close()
			status.Close()

			playState, playTokens := run(cassette.Replay)
			if playState != recState {
				t.Errorf("replayed state differs:\nrecorded %s\nreplayed %s", recState, playState)
			}
			if fmt.Sprint(playTokens) != fmt.Sprint(recTokens) || len(recTokens) != 2 {
				t.Errorf("token events differ:\nrecorded %q\nreplayed %q", recTokens, playTokens)
			}
		})
	}
}
