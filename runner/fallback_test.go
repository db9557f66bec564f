package runner

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

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
		t.Fatalf("recorded %+v", invs)
	}
	got, ok := RecordedLLM(invs[0])
	want := LLMRecord{Provider: "backup", InputTokens: 3, OutputTokens: 2, Budgets: []string{"pool main_pool", "pool backup_pool"}}
	if !ok || got.Provider != want.Provider || got.InputTokens != 3 || got.OutputTokens != 2 || !slices.Equal(got.Budgets, want.Budgets) {
		t.Errorf("recorded LLM %+v (%v), want %+v", got, ok, want)
	}
	if w := string(WritesWithoutLLM(invs[0].Writes)); strings.Contains(w, RecordKeyLLM) || !strings.Contains(w, `"by":"backup"`) {
		t.Errorf("writes without the LLM record: %s", w)
	}
}

// A call that fell back is recorded with the provider that answered; a
// resume (here of the interrupt after it) reuses the record and asks
// neither provider again.
func TestLLMFallbackResumeAsksNoProvider(t *testing.T) {
	primary := llmtest.New(t, llmtest.Reply{Status: 503, ErrorMessage: "overloaded"})
	backup := llmtest.New(t, llmtest.Reply{Text: "from backup"})
	st := store.NewMemory()
	res, err := runYAML(t, `
lgx: 1
name: t
providers:
  main: {kind: openai, model: m, base_url: "`+primary.OpenAIURL()+`", api_key: test-key, fallbacks: [backup]}
  backup: {kind: openai, model: b, base_url: "`+backup.OpenAIURL()+`", api_key: test-key}
state:
  answer: {type: string}
  ok: {type: boolean}
nodes:
  ask:
    type: llm_call
    retry: {attempts: 1}
    with: {provider: main, prompt: hi}
    output: {answer: "${{ result.content }}"}
  check: {type: interrupt, with: {message: "good?"}, output: {ok: "${{ result.ok }}"}}
edges:
  - {from: START, to: [ask, check]}
`, nil, func(o *Options) { o.Store = st })
	if err != nil || res.Status != store.StatusInterrupted {
		t.Fatalf("run: %v, %+v", err, res)
	}
	res, err = Resume(context.Background(), st, res.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": true}}})
	if err != nil || res.Status != store.StatusCompleted || res.State["answer"] != "from backup" {
		t.Fatalf("resume: %v, %+v", err, res)
	}
	if len(primary.Requests()) != 1 || len(backup.Requests()) != 1 {
		t.Errorf("requests: primary %d, backup %d; want 1 each (none on resume)", len(primary.Requests()), len(backup.Requests()))
	}
	invs, _ := st.Invocations(context.Background(), res.RunID)
	for _, inv := range invs {
		if rec, ok := RecordedLLM(inv); inv.Node == "ask" && (!ok || rec.Provider != "backup") {
			t.Errorf("record of ask: %+v", rec)
		}
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

// fakeFallbackSleep makes fallbackSleep record the waits it is asked for
// instead of sleeping, for the test's duration.
func fakeFallbackSleep(t *testing.T) *[]time.Duration {
	var waits []time.Duration
	old := fallbackSleep
	fallbackSleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	t.Cleanup(func() { fallbackSleep = old })
	return &waits
}

const retryAfterWorkflow = `
lgx: 1
name: t
providers:
  main: {kind: openai, model: m, base_url: "MAIN", api_key: test-key, fallbacks: [backup]}
  backup: {kind: openai, model: b, base_url: "BACKUP", api_key: test-key}
state:
  by: {type: string}
nodes:
  ask:
    type: llm_call
    retry: {attempts: 2, backoff: BACKOFF, max_backoff: 1m}
    with: {provider: main, prompt: hi, max_tokens: 10}
    output: {by: "${{ result.provider }}"}
edges:
  - {from: START, to: ask}
`

// Before switching to a fallback, a Retry-After shorter than the switch
// delay (the backoff the policy would wait next) is waited for and the
// primary asked once more; a longer one switches at once.
func TestFallbackWeighsRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		// backoff is retry.backoff: the first retry waits up to it (for
		// real), and after the 2 attempts the next backoff, the switch
		// delay, is twice it.
		backoff    string
		retryAfter string
		third      llmtest.Reply // the primary's answer to a third request
		wantWaits  []time.Duration
		wantMain   int
		wantBackup int
		wantBy     string
	}{
		{name: "shorter: the primary answers after the wait", backoff: "600ms", retryAfter: "1",
			third: llmtest.Reply{Text: "main"}, wantWaits: []time.Duration{time.Second}, wantMain: 3, wantBackup: 0, wantBy: "main"},
		{name: "shorter: the primary fails again, then the backup", backoff: "600ms", retryAfter: "1",
			third: llmtest.Reply{Status: 503, ErrorMessage: "still down"}, wantWaits: []time.Duration{time.Second}, wantMain: 3, wantBackup: 1, wantBy: "backup"},
		{name: "longer: switch at once", backoff: "10ms", retryAfter: "1",
			third: llmtest.Reply{Text: "main"}, wantWaits: nil, wantMain: 2, wantBackup: 1, wantBy: "backup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waits := fakeFallbackSleep(t)
			primary := llmtest.New(t,
				llmtest.Reply{Status: 503, ErrorMessage: "overloaded"}, // its retry policy's wait: backoff, honoured by attempts
				llmtest.Reply{Status: 429, ErrorMessage: "slow down", RetryAfter: tt.retryAfter},
				tt.third,
			)
			backup := llmtest.New(t, llmtest.Reply{Text: "backup"})
			src := strings.NewReplacer("MAIN", primary.OpenAIURL(), "BACKUP", backup.OpenAIURL(), "BACKOFF", tt.backoff).Replace(retryAfterWorkflow)
			rec := &eventLog{}
			res, err := runYAML(t, src, nil, func(o *Options) { o.Sink = rec; o.Store = store.NewMemory() })
			if err != nil {
				t.Fatal(err)
			}
			if res.State["by"] != tt.wantBy {
				t.Errorf("answered by %v, want %s", res.State["by"], tt.wantBy)
			}
			if n := len(primary.Requests()); n != tt.wantMain {
				t.Errorf("primary got %d requests, want %d", n, tt.wantMain)
			}
			if n := len(backup.Requests()); n != tt.wantBackup {
				t.Errorf("backup got %d requests, want %d", n, tt.wantBackup)
			}
			if !slices.Equal(*waits, tt.wantWaits) {
				t.Errorf("waits before switching %v, want %v", *waits, tt.wantWaits)
			}
			if len(tt.wantWaits) > 0 {
				found := false
				for _, e := range rec.named(EventRetry) {
					found = found || (e.DelayMS == 1000 && strings.Contains(e.Message, "provider main asked to retry after 1s"))
				}
				if !found {
					t.Errorf("no retry event for the Retry-After wait: %+v", rec.named(EventRetry))
				}
			}
		})
	}
}
