package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/store"
)

// The primary answers 503, then 429 with Retry-After, exhausting its two
// attempts; the call goes to the backup, under the backup's pool and
// budget, and completes there. result.provider, the fallback event, the
// budget events (the failed calls settle at 0) and the recorded writes name the backup.
func TestLLMFallbackToBackup(t *testing.T) {
	primary := llmtest.New(t,
		llmtest.Reply{Status: 503, ErrorMessage: "overloaded"},
		llmtest.Reply{Status: 429, ErrorMessage: "slow down", RetryAfter: "0"},
	)
	backup := llmtest.New(t, llmtest.Reply{Text: "from backup", Usage: &llmtest.Usage{InputTokens: 3, OutputTokens: 2}})
	st := store.NewMemory()
	rec := &eventLog{}
	res, err := runYAML(t, `
lgx: 1
name: t
pools:
  main_pool: {concurrency: 1, budget: {tokens: 100000}}
  backup_pool: {concurrency: 1, budget: {tokens: 100000}}
providers:
  main: {kind: openai, model: m, base_url: "`+primary.OpenAIURL()+`", api_key: test-key, pool: main_pool, fallbacks: [backup]}
  backup: {kind: anthropic, model: b, base_url: "`+backup.AnthropicURL()+`", api_key: test-key, pool: backup_pool}
state:
  answer: {type: string}
  by: {type: string}
nodes:
  ask:
    type: llm_call
    retry: {attempts: 2, backoff: 1ms, max_backoff: 2ms}
    with: {provider: main, prompt: hi, max_tokens: 10}
    output: {answer: "${{ result.content }}", by: "${{ result.provider }}"}
edges:
  - {from: START, to: ask}
`, nil, func(o *Options) { o.Sink = rec; o.Store = st })
	if err != nil {
		t.Fatal(err)
	}
	if res.State["answer"] != "from backup" || res.State["by"] != "backup" {
		t.Fatalf("state %v", res.State)
	}
	if n := len(primary.Requests()); n != 2 {
		t.Errorf("primary got %d requests, want 2 (its retry policy)", n)
	}
	if n := len(backup.Requests()); n != 1 {
		t.Errorf("backup got %d requests, want 1", n)
	}
	fb := rec.named(EventFallback)
	if len(fb) != 1 || fb[0].Kind != "status" || !strings.Contains(fb[0].Message, "provider main failed after its retries; asking backup") {
		t.Errorf("fallback events %+v", fb)
	}
	charged := map[string]int64{}
	for _, e := range rec.named(EventBudget) {
		charged[e.Budget] += e.Tokens
	}
	if charged["pool main_pool"] != 0 || charged["pool backup_pool"] != 5 {
		t.Errorf("budget events charged %v: want the failed calls 0 and the backup's pool 5", charged)
	}
	for _, b := range res.Budgets {
		if want := map[string]int64{"pool main_pool": 0, "pool backup_pool": 5}[b.Name]; b.Used != want {
			t.Errorf("budget %+v, want used %d", b, want)
		}
	}
	invs, _ := st.Invocations(context.Background(), res.RunID)
	if len(invs) != 1 || invs[0].Attempts != 3 || !strings.Contains(string(invs[0].Writes), `"by":"backup"`) {
		t.Errorf("recorded %+v", invs)
	}
}

// A failure another provider would meet too (a 400) does not fall back.
func TestLLMNoFallbackOnBadRequest(t *testing.T) {
	primary := llmtest.New(t, llmtest.Reply{Status: 400, ErrorMessage: "bad request"})
	backup := llmtest.New(t)
	_, err := runYAML(t, `
lgx: 1
name: t
providers:
  main: {kind: openai, model: m, base_url: "`+primary.OpenAIURL()+`", api_key: test-key, fallbacks: [backup]}
  backup: {kind: openai, model: b, base_url: "`+backup.OpenAIURL()+`", api_key: test-key}
state: {}
nodes:
  ask:
    type: llm_call
    timeout: 5s
    retry: {attempts: 1}
    with: {provider: main, prompt: hi}
edges:
  - {from: START, to: ask}
`, nil)
	if err == nil || len(backup.Requests()) != 0 {
		t.Fatalf("err = %v, backup requests %d: want the 400 to fail without a fallback", err, len(backup.Requests()))
	}
}
