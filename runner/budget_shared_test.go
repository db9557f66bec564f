package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// noLedger are the limits of a call whose budgets are shared already.
var noLedger = &limits{}

// sharedPair is one budget as two workers open it: two tokenBudgets whose
// amounts live in one store's ledger.
func sharedPair(t *testing.T, mode string, limit int64, ttl time.Duration) (a, b *tokenBudget, st *store.Memory) {
	t.Helper()
	st = store.NewMemory()
	if err := st.CreateRun(context.Background(), &store.Run{ID: "R", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mk := func() *tokenBudget {
		tb := newTokenBudget("run", &spec.Budget{Tokens: limit, OnExhausted: mode})
		tb.shared = &sharedBudget{ledger: st, runID: "R", key: "run", ttl: ttl}
		return tb
	}
	return mk(), mk(), st
}

// A budget shared by two workers through the ledger: a reservation on
// one counts on the other; fail refuses at once naming what is in
// flight; wait waits for the other worker's settle; exhaustion by
// settled usage fails either way.
func TestSharedBudgetAcrossWorkers(t *testing.T) {
	ctx := context.Background()
	t.Run("fail", func(t *testing.T) {
		w1, w2, _ := sharedPair(t, spec.BudgetFail, 500, time.Minute)
		h, err := w1.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = w2.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if nodes.KindOf(err) != nodes.KindBudget || !strings.Contains(err.Error(), "0 of 500 are used and 300 reserved by calls in flight") {
			t.Fatalf("second worker's reservation: %v, want kind budget naming the first's 300 in flight", err)
		}
		if u := w1.give(h, amount{tokens: 300}, amount{tokens: 100}); u.Used != 100 || u.Limit != 500 {
			t.Fatalf("settle: %+v", u)
		}
		h2, err := w2.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if err != nil {
			t.Fatalf("after the first settled: %v", err)
		}
		w2.give(h2, amount{tokens: 300}, amount{tokens: 300}) // used 400
		if _, err := w1.take(ctx, noLedger, "", amount{tokens: 101}, nil); nodes.KindOf(err) != nodes.KindBudget ||
			!strings.Contains(err.Error(), "400 of 500 are used") {
			t.Fatalf("over the settled usage: %v", err)
		}
	})
	t.Run("wait", func(t *testing.T) {
		w1, w2, _ := sharedPair(t, spec.BudgetWait, 500, time.Minute)
		h, err := w1.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var waited atomic.Bool
		done := make(chan error, 1)
		go func() {
			h2, err := w2.take(ctx, noLedger, "", amount{tokens: 300}, func() { waited.Store(true) })
			if err == nil {
				w2.give(h2, amount{tokens: 300}, amount{tokens: 50})
			}
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("the second worker did not wait: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		w1.give(h, amount{tokens: 300}, amount{tokens: 100})
		if err := <-done; err != nil || !waited.Load() {
			t.Fatalf("the waiting reservation: %v (waited %v)", err, waited.Load())
		}
		// 150 used: 400 more could never fit, and waiting would be forever.
		if _, err := w1.take(ctx, noLedger, "", amount{tokens: 400}, nil); nodes.KindOf(err) != nodes.KindBudget {
			t.Fatalf("a reservation that can never fit: %v", err)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		w1, w2, _ := sharedPair(t, spec.BudgetWait, 500, time.Minute)
		h, err := w1.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w1.give(h, amount{tokens: 300}, amount{})
		cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		if _, err := w2.take(cctx, noLedger, "", amount{tokens: 300}, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("take after its context ended: %v", err)
		}
	})
	t.Run("dead worker", func(t *testing.T) {
		// The first worker dies holding a reservation (it stops renewing
		// and never settles): it stops counting once its lease expires.
		const ttl = 60 * time.Millisecond
		w1, w2, st := sharedPair(t, spec.BudgetWait, 500, ttl)
		h, err := w1.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * ttl) // renewed meanwhile: still held
		if tot, _ := st.BudgetTotals(ctx, "R", "run", time.Now()); tot.Reserved.Tokens != 300 {
			t.Fatalf("a renewed reservation does not count: %+v", tot)
		}
		close(h.stop) // killed
		<-h.done
		start := time.Now()
		h2, err := w2.take(ctx, noLedger, "", amount{tokens: 300}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w2.give(h2, amount{tokens: 300}, amount{tokens: 10})
		if d := time.Since(start); d > 10*ttl {
			t.Errorf("took %v to reclaim a dead worker's reservation (ttl %v)", d, ttl)
		}
	})
}

// budgetMapReduce is 20 summaries and a reduce under a run budget that
// holds at most 3 reservations of 400 at once: the server reports 50
// tokens a call, so all 21 calls fit (1,050 of 1,400).
const budgetMapReduce = `
lgx: 1
name: budget_steps
config: {budget: {tokens: 1400}}
providers:
  default: {kind: openai, model: m, base_url: "%s", api_key: test-key}
state:
  docs: {type: list}
  summaries: {type: list, reducer: append}
  brief: {type: string}
nodes:
  summarize:
    type: llm_call
    for_each: ${{ state.docs }}
    with: {prompt: "${{ item }}", reserve: 400}
    output: {summaries: ["${{ item }}: ${{ result.content }}"]}
  reduce:
    type: llm_call
    with: {prompt: "${{ join(state.summaries, ' ') }}", reserve: 400}
    output: {brief: "${{ result.content }}"}
edges:
  - {from: START, to: summarize}
  - {from: summarize, to: reduce}
`

// The map-reduce under a run budget, its invocations spread over two
// StepRuns (two workers) running at once: the same state and budget usage
// as a local run, and never more reservations in flight, across both,
// than the budget holds.
func TestSharedBudgetTwoWorkers(t *testing.T) {
	srv := llmtest.New(t)
	var inFlight, maxInFlight, served atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		served.Add(50)
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 30, OutputTokens: 20}, Delay: 10 * time.Millisecond,
			OnChunk: func(i int) {
				if i == 0 {
					inFlight.Add(-1)
				}
			}}
	})
	g := compileYAML(t, fmt.Sprintf(budgetMapReduce, srv.OpenAIURL()))
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = fmt.Sprintf("doc%02d", i)
	}
	inputs := map[string]any{"docs": docs}
	ctx := context.Background()
	local, err := Run(ctx, g, Options{Store: store.NewMemory(), Inputs: inputs, Environ: []string{}})
	if err != nil {
		t.Fatalf("local run: %v", err)
	}
	if m := maxInFlight.Load(); m > 3 {
		t.Fatalf("local run: %d calls in flight, want <= 3", m)
	}
	maxInFlight.Store(0)
	served.Store(0)

	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "B", inputs, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	p := driveTwoWorkers(t, st, "B")
	if p.Status != store.StatusCompleted {
		t.Fatalf("steps: %s (%s)", p.Status, p.Error)
	}
	res, err := Outcome(ctx, st, "B", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(res.State)
	want, _ := json.Marshal(local.State)
	if string(got) != string(want) {
		t.Errorf("state:\n steps %s\n local %s", got, want)
	}
	wantUse := []BudgetUsage{{Name: "run", Used: 1050, Limit: 1400}}
	if fmt.Sprint(res.Budgets) != fmt.Sprint(wantUse) || fmt.Sprint(local.Budgets) != fmt.Sprint(wantUse) {
		t.Errorf("budgets: steps %v, local %v; want %v", res.Budgets, local.Budgets, wantUse)
	}
	if m := maxInFlight.Load(); m > 3 || m < 2 {
		t.Errorf("two workers had %d calls in flight at most, want 2 or 3 (1,400 holds 3 reservations of 400)", m)
	}
	if s := served.Load(); s != 1050 {
		t.Errorf("served %d tokens, want 1050", s)
	}
	tot, err := st.BudgetTotals(ctx, "B", "run", time.Now())
	if err != nil || tot != (store.BudgetTotals{Used: store.BudgetAmount{Tokens: 1050}}) {
		t.Errorf("ledger after the run: %+v, %v", tot, err)
	}
}

// A budget that runs out fails the step's calls with kind budget on both
// workers, as locally: the reduce cannot fit, and the run fails there
// with the local run's error and usage.
func TestSharedBudgetExhaustedTwoWorkers(t *testing.T) {
	srv := llmtest.New(t)
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 30, OutputTokens: 20}, Delay: 5 * time.Millisecond}
	})
	// 20 calls of 50 leave 400 of 1,350: the reduce's 400 + 1 cannot fit.
	src := strings.Replace(strings.Replace(fmt.Sprintf(budgetMapReduce, srv.OpenAIURL()), "tokens: 1400", "tokens: 1350", 1),
		"join(state.summaries, ' ') }}\", reserve: 400", "join(state.summaries, ' ') }}\", reserve: 401", 1)
	g := compileYAML(t, src)
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = fmt.Sprintf("doc%02d", i)
	}
	inputs := map[string]any{"docs": docs}
	ctx := context.Background()
	local, lerr := Run(ctx, g, Options{Store: store.NewMemory(), Inputs: inputs, Environ: []string{}})
	if lerr == nil || nodes.KindOf(lerr) != nodes.KindBudget {
		t.Fatalf("local run: %v, want kind budget", lerr)
	}
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "B", inputs, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	p := driveTwoWorkers(t, st, "B")
	if p.Status != store.StatusFailed {
		t.Fatalf("steps: %s, want failed", p.Status)
	}
	res, err := Outcome(ctx, st, "B", nil)
	if err == nil || err.Error() != lerr.Error() {
		t.Errorf("error: steps %v, local %v", err, lerr)
	}
	if res == nil || fmt.Sprint(res.Budgets) != fmt.Sprint(local.Budgets) {
		t.Errorf("budgets: steps %+v, local %v", res, local.Budgets)
	}
}

// driveTwoWorkers drives run runID to its end as an engine with two
// workers would: each step is planned, its invocations run all at once,
// alternately on two StepRuns, then committed.
func driveTwoWorkers(t *testing.T, st store.Store, runID string) *StepPlan {
	t.Helper()
	ctx := context.Background()
	open := func() *StepRun {
		s, err := OpenStep(ctx, st, runID, StepOptions{Environ: []string{}})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	}
	for range 20 {
		p, err := open().Plan(ctx)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if p.Done {
			return p
		}
		workers := [2]*StepRun{open(), open()}
		var wg sync.WaitGroup
		n := 0
		for _, pn := range p.Nodes {
			for k := range pn.Invocations() {
				idx := k
				if pn.Items < 0 {
					idx = -1
				}
				w := workers[n%2]
				n++
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := w.InvokeOne(ctx, pn.Name, idx); err != nil {
						t.Errorf("invoke %s[%d]: %v", pn.Name, idx, err)
					}
				}()
			}
		}
		wg.Wait()
		if _, err := open().CommitStep(ctx, p.Step); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	t.Fatal("the run did not end in 20 steps")
	return nil
}

// A stopped run handed to the engine again starts from the usage its
// invocations recorded: what the ledger held (a call killed mid-flight,
// calls of a local resume it never saw) is replaced.
func TestReopenResetsLedger(t *testing.T) {
	srv := llmtest.New(t)
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 30, OutputTokens: 20}}
	})
	g := compileYAML(t, fmt.Sprintf(budgetMapReduce, srv.OpenAIURL()))
	ctx := context.Background()
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "B", map[string]any{"docs": []any{"a", "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStep(ctx, st, "B", StepOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Plan(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if r, err := s.InvokeOne(ctx, "summarize", i); err != nil || r.Status != store.InvocationOK {
			t.Fatalf("invoke %d: %+v, %v", i, r, err)
		}
	}
	// A reservation of a worker that died, and usage nothing recorded.
	if _, err := st.ReserveBudget(ctx, store.BudgetRequest{RunID: "B", Budget: "run", ID: "ghost", Amount: store.BudgetAmount{Tokens: 400},
		Limit: store.BudgetAmount{Tokens: 1400}, Holder: store.Lease{Owner: "x", Host: "elsewhere.invalid", Expires: time.Now().Add(time.Hour)}, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SettleBudget(ctx, "B", "run", "lost", store.BudgetAmount{Tokens: 999}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ReopenRun(ctx, st, "B", nil); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	tot, err := st.BudgetTotals(ctx, "B", "run", time.Now())
	if err != nil || tot != (store.BudgetTotals{Used: store.BudgetAmount{Tokens: 100}}) {
		t.Errorf("ledger after reopening: %+v, %v; want the 100 tokens recorded", tot, err)
	}
}

// A subgraph's own pool budget lives as long as one subgraph invocation
// (SPEC §9.9): driven step by step, each child invocation runs in an
// activity of its own, and the budget still spans them through the
// ledger (scoped to the subgraph invocation), so the run fails where the
// local run fails.
func TestSharedBudgetSubgraphPool(t *testing.T) {
	srv := llmtest.New(t)
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 200, OutputTokens: 50}}
	})
	dir := t.TempDir()
	writeWorkflows(t, dir, srv.OpenAIURL(), map[string]string{
		"main.yaml": `
lgx: 1
name: parent
state:
  n: {type: integer, default: 0}
nodes:
  sub:
    type: subgraph
    with: {workflow: child.yaml}
    output: {n: "${{ result.n }}"}
edges:
  - {from: START, to: sub}
`,
		"child.yaml": `
lgx: 1
name: child
pools:
  cp: {concurrency: 1, budget: {tokens: 1000}}
providers:
  default: {kind: openai, model: m, base_url: "URL", api_key: test-key}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  ask:
    type: llm_call
    for_each: ${{ 1..3 }}
    pool: cp
    with: {prompt: "q${{ item }}", reserve: 300}
    output: {n: 1}
  more:
    type: llm_call
    pool: cp
    with: {prompt: "more", reserve: 300}
    output: {n: 1}
edges:
  - {from: START, to: ask}
  - {from: ask, to: more}
`})
	g, err := LoadGraph(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	local, lerr := Run(ctx, g, Options{Store: store.NewMemory(), Environ: []string{}})
	if nodes.KindOf(lerr) != nodes.KindBudget {
		t.Fatalf("local run: %v, want kind budget (3 calls of 250 leave too little for a 4th reservation of 300)", lerr)
	}
	if !strings.Contains(lerr.Error(), "node more failed [budget]") {
		t.Fatalf("local run failed elsewhere: %v", lerr)
	}
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "S", nil, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	p := driveSteps(t, st, "S", false)
	if p.Status != local.Status {
		t.Fatalf("steps: %s (%s), local %s (%v)", p.Status, p.Error, local.Status, lerr)
	}
	if _, err := Outcome(ctx, st, "S", nil); err == nil || err.Error() != lerr.Error() {
		t.Errorf("error: steps %v, local %v", err, lerr)
	}
}
