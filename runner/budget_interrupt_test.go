package runner

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// mapReduceBudget is the map-reduce: 20 documents summarised in
// parallel, then one reduce, under a 5,000-token run budget. Each call
// reserves max_tokens (200) + its prompt's bytes / 4 (200); the server
// reports 350 tokens per call.
const mapReduceBudget = `
lgx: 1
name: t
config: {budget: {tokens: 5000, on_exhausted: interrupt}}
providers:
  default: {kind: openai, model: m, base_url: "URL", api_key: test-key}
state:
  docs: {type: list}
  summaries: {type: list, reducer: append}
  brief: {type: string}
nodes:
  summarize:
    type: llm_call
    for_each: ${{ state.docs }}
    concurrency: 4
    with: {prompt: "${{ item }}", max_tokens: 200}
    output: {summaries: ["${{ result.content }}"]}
  reduce:
    type: llm_call
    with: {prompt: "${{ join(state.summaries, ' ') }}", max_tokens: 200}
    output: {brief: "${{ result.content }}"}
edges:
  - {from: START, to: summarize}
  - {from: summarize, to: reduce}
`

// on_exhausted: interrupt pauses the run before the budget is exceeded,
// every paused call waiting for budget run; a resume with -i tokens=N
// raises the limit, runs only the paused calls (the finished summaries are
// not asked again) and completes; the usage spans both processes.
func TestRunTokenBudgetInterruptResume(t *testing.T) {
	srv := llmtest.New(t)
	var served, calls atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		served.Add(350)
		calls.Add(1)
		return llmtest.Reply{Text: "summary", Usage: &llmtest.Usage{InputTokens: 200, OutputTokens: 150}, Delay: time.Millisecond}
	})
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = strings.Repeat("x", 800)
	}
	st := store.NewMemory()
	rec := &eventLog{}
	src := strings.Replace(mapReduceBudget, "URL", srv.OpenAIURL(), 1)
	res, err := runYAML(t, src, map[string]any{"docs": docs}, func(o *Options) { o.Sink = rec; o.Store = st })
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Status != store.StatusInterrupted || len(res.Interrupts) == 0 {
		t.Fatalf("status %s, interrupts %+v: want paused at the budget", res.Status, res.Interrupts)
	}
	firstCalls := calls.Load()
	if got := served.Load(); got > 5000 || got == 0 {
		t.Errorf("server served %d tokens before the pause, want 1..5000", got)
	}
	for _, in := range res.Interrupts {
		if in.Budget != "run" || in.Node != "summarize" || !strings.HasPrefix(in.Message, "budget run exhausted: ") ||
			!strings.Contains(in.Message, "/5000 tokens used, the call reserves 400") {
			t.Errorf("interrupt %+v", in)
		}
	}
	if int(firstCalls)+len(res.Interrupts) != 20 {
		t.Errorf("%d calls made and %d paused, want 20 in all", firstCalls, len(res.Interrupts))
	}
	evs := rec.named(EventInterrupt)
	if len(evs) != len(res.Interrupts) {
		t.Errorf("%d interrupt events for %d interrupts", len(evs), len(res.Interrupts))
	}
	for _, e := range evs {
		if e.Budget != "run" {
			t.Errorf("interrupt event %+v does not name budget run", e)
		}
	}

	// Without an answer, a lower limit or an unknown key: refused.
	ctx := context.Background()
	for _, a := range []Answer{{}, {Values: map[string]any{"tokens": 4000}}, {Values: map[string]any{"approved": true}}, {Values: map[string]any{"usd": 3}}} {
		var ie *InputError
		if _, err := Resume(ctx, st, res.RunID, Options{Environ: []string{}, Answer: a}); !errors.As(err, &ie) {
			t.Errorf("answer %+v: err = %v, want an input error", a, err)
		}
	}
	if calls.Load() != firstCalls {
		t.Fatalf("a refused resume made calls")
	}

	res2, err := Resume(ctx, st, res.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"tokens": 20000}}})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res2.Status != store.StatusCompleted || res2.State["brief"] != "summary" || len(res2.State["summaries"].([]any)) != 20 {
		t.Fatalf("resumed run: %s, state %v", res2.Status, res2.State)
	}
	if got := calls.Load(); got != 21 {
		t.Errorf("server got %d calls in all, want 21 (20 summaries and the reduce, none repeated)", got)
	}
	if len(res2.Budgets) != 1 || res2.Budgets[0] != (BudgetUsage{Name: "run", Used: served.Load(), Limit: 20000}) {
		t.Errorf("budgets %+v, want run %d/20000", res2.Budgets, served.Load())
	}
}

// With on_exhausted: fail the same run stops with kind budget before the
// server has served more than the budget.
func TestRunTokenBudgetFailMapReduce(t *testing.T) {
	srv := llmtest.New(t)
	var served atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		served.Add(350)
		return llmtest.Reply{Text: "summary", Usage: &llmtest.Usage{InputTokens: 200, OutputTokens: 150}}
	})
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = strings.Repeat("x", 800)
	}
	src := strings.Replace(strings.Replace(mapReduceBudget, "URL", srv.OpenAIURL(), 1), "on_exhausted: interrupt", "on_exhausted: fail", 1)
	_, err := runYAML(t, src, map[string]any{"docs": docs})
	if nodes.KindOf(err) != nodes.KindBudget {
		t.Fatalf("err = %v, want kind budget", err)
	}
	if got := served.Load(); got > 5000 {
		t.Errorf("server served %d tokens, over the 5000 budget", got)
	}
}

// A raised limit is recorded with the calls charged under it, so a later
// resume (here after an interrupt node) keeps it instead of pausing again.
func TestBudgetRaiseSurvivesLaterResume(t *testing.T) {
	srv := llmtest.New(t)
	var calls atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		calls.Add(1)
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 40, OutputTokens: 60}}
	})
	st := store.NewMemory()
	res, err := runYAML(t, `
lgx: 1
name: t
config: {budget: {tokens: 150, on_exhausted: interrupt}}
providers:
  default: {kind: openai, model: m, base_url: "`+srv.OpenAIURL()+`", api_key: test-key}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  a: {type: llm_call, with: {prompt: a, reserve: 100}, output: {n: 1}}
  b: {type: llm_call, with: {prompt: b, reserve: 100}, output: {n: 1}}
  ask: {type: interrupt, with: {message: "go on"}}
  c: {type: llm_call, with: {prompt: c, reserve: 100}, output: {n: 1}}
edges:
  - {from: START, to: a}
  - {from: a, to: b}
  - {from: b, to: ask}
  - {from: ask, to: c}
`, nil, func(o *Options) { o.Store = st })
	if err != nil || res.Status != store.StatusInterrupted || res.Interrupts[0].Budget != "run" || res.Interrupts[0].Node != "b" {
		t.Fatalf("run: %v, %+v", err, res)
	}
	ctx := context.Background()
	res, err = Resume(ctx, st, res.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"tokens": 400}}})
	if err != nil || res.Status != store.StatusInterrupted || res.Interrupts[0].Node != "ask" {
		t.Fatalf("first resume: %v, %+v", err, res)
	}
	res, err = Resume(ctx, st, res.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": true}}})
	if err != nil || res.Status != store.StatusCompleted || res.State["n"] != 3 {
		t.Fatalf("second resume: %v, %+v", err, res)
	}
	if len(res.Budgets) != 1 || res.Budgets[0] != (BudgetUsage{Name: "run", Used: 300, Limit: 400}) {
		t.Errorf("budgets %+v, want run 300/400", res.Budgets)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3", calls.Load())
	}
}

// Money budgets: each call reserves its prompt estimate at the input
// price and max_tokens at the output price, settles at the reported
// usage's price, and fails with kind budget once the dollars are spent;
// events and the result carry the dollars.
func TestMoneyBudget(t *testing.T) {
	srv := llmtest.New(t)
	var calls atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		calls.Add(1)
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 1000, OutputTokens: 500}}
	})
	rec := &eventLog{}
	// Per call: 1000 × $2/M + 500 × $10/M = $0.007; reservation: 4
	// prompt tokens × $2/M + 1000 × $10/M ≈ $0.01. Under $0.03 four
	// calls fit ($0.021 spent + $0.01 reserved > $0.03 at the fourth).
	res, err := runYAML(t, `
lgx: 1
name: t
config: {budget: {usd: 0.03, on_exhausted: fail}}
providers:
  default: {kind: openai, model: m, base_url: "`+srv.OpenAIURL()+`", api_key: test-key, price: {input_per_mtok: 2, output_per_mtok: 10}}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  ask:
    type: llm_call
    for_each: ${{ 1..10 }}
    concurrency: 1
    with: {prompt: "q${{ item }}", max_tokens: 1000}
    output: {n: 1}
edges:
  - {from: START, to: ask}
`, nil, func(o *Options) { o.Sink = rec })
	if nodes.KindOf(err) != nodes.KindBudget || !strings.Contains(err.Error(), "money budget of run exhausted") {
		t.Fatalf("err = %v, want the money budget exhausted", err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3", calls.Load())
	}
	if len(res.Budgets) != 1 {
		t.Fatalf("budgets %+v", res.Budgets)
	}
	b := res.Budgets[0]
	if b.USDLimit != 0.03 || abs(b.USDUsed-0.021) > 1e-9 || b.Used != 4500 || b.Limit != 0 {
		t.Errorf("budget %+v", b)
	}
	if got := b.String(); got != "budget run: $0.0210 of $0.03 used (4500 tokens)" {
		t.Errorf("summary %q", got)
	}
	evs := rec.named(EventBudget)
	if len(evs) != 3 || abs(evs[2].USD-0.007) > 1e-9 || abs(evs[2].USDUsed-0.021) > 1e-9 || evs[2].USDLimit != 0.03 {
		t.Errorf("budget events %+v", evs)
	}
}

// The summary line of a budget in each of its forms.
func TestBudgetUsageString(t *testing.T) {
	tests := []struct {
		u    BudgetUsage
		want string
	}{
		{BudgetUsage{Name: "run", Used: 140, Limit: 200}, "budget run: 140 of 200 tokens used"},
		{BudgetUsage{Name: "pool llm", Used: 4650, USDUsed: 0.0123, USDLimit: 5}, "budget pool llm: $0.0123 of $5.00 used (4650 tokens)"},
		{BudgetUsage{Name: "provider main", Used: 10, Limit: 100, USDUsed: 0.00005, USDLimit: 0.125}, "budget provider main: 10 of 100 tokens, $0.00005 of $0.125 used"},
	}
	for _, tt := range tests {
		if got := tt.u.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.u, got, tt.want)
		}
	}
}

// A call paused for the run budget inside a subgraph pauses the whole
// run; the resume's raise reaches it, the child's finished calls are
// reused, and the budget counts the child's calls.
func TestBudgetInterruptInsideSubgraph(t *testing.T) {
	srv := llmtest.New(t)
	var calls atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		calls.Add(1)
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 30, OutputTokens: 20}}
	})
	dir := t.TempDir()
	writeWorkflows(t, dir, "", map[string]string{
		"main.yaml": `
lgx: 1
name: main
config: {budget: {tokens: 120, on_exhausted: interrupt}}
providers:
  default: {kind: openai, model: m, base_url: "` + srv.OpenAIURL() + `", api_key: test-key}
state:
  n: {type: integer, default: 0}
nodes:
  child:
    type: subgraph
    with: {workflow: sub.yaml}
    output: {n: "${{ result.n }}"}
edges:
  - {from: START, to: child}
`,
		"sub.yaml": `
lgx: 1
name: sub
providers:
  default: {kind: openai, model: m, base_url: "` + srv.OpenAIURL() + `", api_key: test-key}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  ask:
    type: llm_call
    for_each: ${{ 1..3 }}
    concurrency: 1
    with: {prompt: "q${{ item }}", reserve: 50}
    output: {n: 1}
edges:
  - {from: START, to: ask}
`})
	g, err := LoadGraph(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}})
	if err != nil || res.Status != store.StatusInterrupted || len(res.Interrupts) != 1 {
		t.Fatalf("run: %v, %+v", err, res)
	}
	if in := res.Interrupts[0]; in.Path != "1/child/1/ask[2]" || in.Budget != "run" {
		t.Fatalf("interrupt %+v", in)
	}
	res, err = Resume(context.Background(), st, res.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"tokens": 200}}})
	if err != nil || res.Status != store.StatusCompleted || res.State["n"] != 3 {
		t.Fatalf("resume: %v, %+v", err, res)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 3", calls.Load())
	}
	if len(res.Budgets) != 1 || res.Budgets[0] != (BudgetUsage{Name: "run", Used: 150, Limit: 200}) {
		t.Errorf("budgets %+v", res.Budgets)
	}
}
