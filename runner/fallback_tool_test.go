package runner

import (
	"strings"
	"testing"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/store"
)

// An llm_call that is a tool's node falls back like a node does: the
// primary answers 503, the backup answers, and the tool message is the
// backup's answer (it was "error: … HTTP 503").
func TestLLMFallbackInTool(t *testing.T) {
	primary := llmtest.New(t, llmtest.Reply{Status: 503, ErrorMessage: "overloaded"})
	backup := llmtest.New(t, llmtest.Reply{Text: "from backup"})
	res, err := runYAML(t, `
lgx: 1
name: t
providers:
  main: {kind: openai, model: m, base_url: "`+primary.OpenAIURL()+`", api_key: test-key, fallbacks: [backup]}
  backup: {kind: openai, model: b, base_url: "`+backup.OpenAIURL()+`", api_key: test-key}
tools:
  ask:
    parameters: {type: object}
    node: {type: llm_call, retry: {attempts: 1}, with: {provider: main, prompt: hi}}
    output: '${{ result.provider + ": " + result.content }}'
state:
  messages: {type: messages, default: []}
nodes:
  act:
    type: tools
    with: {calls: [{id: c1, name: ask, arguments: {}}]}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
`, nil)
	if err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("run: %v %v", err, res)
	}
	msgs, _ := res.State["messages"].([]any)
	if len(msgs) != 1 {
		t.Fatalf("messages %v", res.State["messages"])
	}
	if c, _ := msgs[0].(map[string]any)["content"].(string); !strings.Contains(c, "backup: from backup") {
		t.Errorf("tool message %q, want the backup's answer", c)
	}
}
