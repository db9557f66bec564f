package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/store"
)

// TestRetryToolOutputInAgentLoop: in a tool-calling agent (llm_call →
// tools → llm_call), a tool whose own output fails until the third
// request is retried within the call, so the model's next turn reads the
// tool's result, not an error; without `on: [expr]` the model is answered
// with the output's error after one request. Both wire protocols.
func TestRetryToolOutputInAgentLoop(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		for _, tt := range []struct {
			name    string
			on      string
			calls   int64
			content string // what the model's second turn reads as the tool's result
		}{
			{name: "retried", on: ", on: [expr]", calls: 3, content: "3"},
			{name: "not named", on: "", calls: 1, content: "error: tool count: output: "},
		} {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				ts, hits := countingServer(t)
				llm := llmtest.New(t)
				llm.SetResponder(func(r llmtest.Request) llmtest.Reply {
					if !r.LastIsToolResult() {
						return llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "count", Arguments: "{}"}}}
					}
					return llmtest.Reply{Text: "done"}
				})
				base := llm.OpenAIURL()
				if kind == "anthropic" {
					base = llm.AnthropicURL()
				}
				g := compileYAML(t, fmt.Sprintf(`
lgx: 1
name: agent
providers:
  default: {kind: %s, model: m, base_url: "%s", api_key: test-key}
%sstate:
  messages: {type: messages, default: [{role: user, content: count}]}
nodes:
  model:
    type: llm_call
    with: {messages: "${{ state.messages }}", tools: [count]}
    output: {messages: "${{ result.message }}"}
`+agentAct, kind, base, countTool(tt.on, ts.URL, 3)))
				res, err := Run(context.Background(), g, Options{Store: store.NewMemory(), Environ: []string{}})
				if err != nil || res.Status != store.StatusCompleted {
					t.Fatalf("run: %v %+v", err, res)
				}
				if got := hits.Load(); got != tt.calls {
					t.Errorf("the tool sent %d requests, want %d", got, tt.calls)
				}
				reqs := llm.Requests()
				if len(reqs) != 2 {
					t.Fatalf("the model was asked %d times, want 2", len(reqs))
				}
				seen := reqs[1].ToolResults()
				if len(seen) != 1 || !strings.HasPrefix(seen[0], tt.content) {
					t.Errorf("the model read the tool results %q, want one starting with %q", seen, tt.content)
				}
			})
		}
	}
}
