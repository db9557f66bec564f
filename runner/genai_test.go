package runner

import (
	"testing"

	"github.com/lgx-run/lgx/internal/llmtest"
)

// An llm_call retried after a failed model call reports both calls on its
// node_end, in order: the progress view sums their usage and a trace shows
// a chat span for each (a report of only the last call lost the usage of
// calls that answered before a retry).
func TestGenAIReportsEveryModelCall(t *testing.T) {
	srv := llmtest.New(t,
		llmtest.Reply{Status: 503, ErrorMessage: "overloaded"},
		llmtest.Reply{Text: "hello", Usage: &llmtest.Usage{InputTokens: 7, OutputTokens: 3}},
	)
	rec := &eventLog{}
	_, err := runYAML(t, `
lgx: 1
name: t
providers:
  main: {kind: anthropic, model: m, base_url: "`+srv.AnthropicURL()+`", api_key: test-key}
state:
  answer: {type: string}
nodes:
  ask:
    type: llm_call
    retry: {attempts: 2, backoff: 1ms, max_backoff: 2ms}
    with: {provider: main, prompt: hi, max_tokens: 10}
    output: {answer: "${{ result.content }}"}
edges:
  - {from: START, to: ask}
  - {from: ask, to: END}
`, nil, func(o *Options) { o.Sink = rec })
	if err != nil {
		t.Fatal(err)
	}
	ends := rec.named(EventNodeEnd)
	if len(ends) != 1 {
		t.Fatalf("%d node_end events", len(ends))
	}
	g := ends[0].GenAI
	if len(g) != 2 {
		t.Fatalf("node_end reports %d model calls, want 2: %+v", len(g), g)
	}
	if g[0].Error == "" || g[0].OutputTokens != 0 {
		t.Errorf("first call should report its failure and no usage: %+v", g[0])
	}
	if g[1].Error != "" || g[1].InputTokens != 7 || g[1].OutputTokens != 3 {
		t.Errorf("second call should report its usage: %+v", g[1])
	}
}
