package runner

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// A map-reduce over 20 documents under a 5,000-token run budget: each
// call reserves max_tokens (200) + its prompt's bytes / 4 (200) and the
// server reports 350 tokens per call, so the budget runs out before the
// 20 summaries are done. The run fails with kind budget, the server has
// served no more than 5,000 tokens, and the result reports the usage.
func TestRunTokenBudgetStopsMapReduce(t *testing.T) {
	srv := llmtest.New(t)
	var served atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		served.Add(350)
		return llmtest.Reply{Text: "summary", Usage: &llmtest.Usage{InputTokens: 200, OutputTokens: 150}, Delay: time.Millisecond}
	})
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = strings.Repeat("x", 800)
	}
	rec := &eventLog{}
	res, err := runYAML(t, `
lgx: 1
name: t
config: {budget: {tokens: 5000}}
providers:
  default: {kind: openai, model: m, base_url: "`+srv.OpenAIURL()+`", api_key: test-key}
state:
  docs: {type: list}
  summaries: {type: list, reducer: append}
  brief: {type: string}
nodes:
  summarize:
    type: llm_call
    for_each: ${{ state.docs }}
    with: {prompt: "${{ item }}", max_tokens: 200}
    output: {summaries: ["${{ result.content }}"]}
  reduce:
    type: llm_call
    with: {prompt: "${{ join(state.summaries, ' ') }}", max_tokens: 200}
    output: {brief: "${{ result.content }}"}
edges:
  - {from: START, to: summarize}
  - {from: summarize, to: reduce}
`, map[string]any{"docs": docs}, func(o *Options) { o.Sink = rec })
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Kind != nodes.KindBudget || ne.Node != "summarize" {
		t.Fatalf("err = %v, want kind budget at summarize", err)
	}
	if !strings.Contains(err.Error(), "token budget of run exhausted") {
		t.Errorf("message %q", err)
	}
	if got := served.Load(); got > 5000 || got == 0 {
		t.Errorf("server served %d tokens, want 1..5000", got)
	}
	if res == nil || res.Status != store.StatusFailed || len(res.Budgets) != 1 {
		t.Fatalf("result %+v", res)
	}
	if b := res.Budgets[0]; b.Name != "run" || b.Limit != 5000 || b.Used != served.Load() {
		t.Errorf("budget usage %+v, want run %d/5000", b, served.Load())
	}
	evs := rec.named(EventBudget)
	if len(evs) == 0 || evs[len(evs)-1].Budget != "run" || evs[len(evs)-1].Tokens != 350 {
		t.Errorf("budget events %+v", evs)
	}
}

// A pool budget waits by default: calls reserving 300 tokens under a
// 1,000-token budget run 3 at a time, and as each settles at its real
// usage (50) the others go on, so all 10 complete.
func TestPoolTokenBudgetWaits(t *testing.T) {
	srv := llmtest.New(t)
	// In flight from the request's arrival to its text being written: the
	// client settles only after that (the usage comes last), so these
	// calls surely hold reservations. (The server's own count ends when
	// its handler returns, which may be after the client settled.)
	var inFlight, maxInFlight atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 30, OutputTokens: 20}, Delay: 5 * time.Millisecond,
			OnChunk: func(i int) {
				if i == 0 {
					inFlight.Add(-1)
				}
			}}
	})
	rec := &eventLog{}
	res, err := runYAML(t, `
lgx: 1
name: t
pools:
  llm: {concurrency: 10, budget: {tokens: 1000}}
providers:
  default: {kind: openai, model: m, base_url: "`+srv.OpenAIURL()+`", api_key: test-key, pool: llm}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  ask:
    type: llm_call
    for_each: ${{ 1..10 }}
    with: {prompt: "q${{ item }}", reserve: 300}
    output: {n: 1}
edges:
  - {from: START, to: ask}
`, nil, func(o *Options) { o.Sink = rec })
	if err != nil || res.State["n"] != 10 {
		t.Fatalf("run: %v, n = %v", err, res.State["n"])
	}
	if m := maxInFlight.Load(); m > 3 {
		t.Errorf("server saw %d calls in flight, want <= 3 (1000 / 300)", m)
	}
	waited := false
	for _, e := range rec.named(EventWait) {
		waited = waited || e.Waiting == "budget pool llm"
	}
	if !waited {
		t.Error("no wait event for the pool budget")
	}
	if len(res.Budgets) != 1 || res.Budgets[0] != (BudgetUsage{Name: "pool llm", Used: 500, Limit: 1000}) {
		t.Errorf("budgets %+v", res.Budgets)
	}
}

// tokenBudget: fitting reservations pass, contention waits or fails as
// on_exhausted says, and exhaustion by settled usage always fails.
func TestTokenBudgetReserve(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{spec.BudgetWait, spec.BudgetFail} {
		t.Run(mode, func(t *testing.T) {
			b := newTokenBudget("run", &spec.Budget{Tokens: 100, OnExhausted: mode})
			if err := b.reserve(ctx, amount{tokens: 60}, nil); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- b.reserve(ctx, amount{tokens: 60}, nil) }()
			if mode == spec.BudgetFail {
				if err := <-done; nodes.KindOf(err) != nodes.KindBudget {
					t.Fatalf("contention with fail: %v", err)
				}
				return
			}
			select {
			case err := <-done:
				t.Fatalf("second reservation did not wait: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
			if u := b.settle(amount{tokens: 60}, amount{tokens: 30}); u.Used != 30 {
				t.Fatalf("used %d", u.Used)
			}
			if err := <-done; err != nil {
				t.Fatalf("after settle: %v", err)
			}
			b.settle(amount{tokens: 60}, amount{tokens: 60}) // used 90
			if err := b.reserve(ctx, amount{tokens: 20}, nil); nodes.KindOf(err) != nodes.KindBudget {
				t.Fatalf("exhausted: %v", err)
			}
		})
	}
}

// BenchmarkTokenBudgetReserveSettle is one call's reserve and settle on a
// budget with tokens and dollars, as an llm_call pays per budget.
func BenchmarkTokenBudgetReserveSettle(b *testing.B) {
	ctx := context.Background()
	tb := newTokenBudget("run", &spec.Budget{Tokens: 1 << 62, USD: 1e12})
	n := amount{tokens: 400, usd: 0.004}
	b.ReportAllocs()
	for b.Loop() {
		if err := tb.reserve(ctx, n, nil); err != nil {
			b.Fatal(err)
		}
		tb.settle(n, amount{tokens: 350, usd: 0.0035})
	}
}
