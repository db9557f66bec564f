package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/store"
)

// A budget interrupt driven step by step, as the Temporal engine drives
// it: the calls that do not fit pause (the commit names the budget each
// waits for), RecordAnswer refuses what a local resume refuses, and the
// accepted raise, carried by every invocation of the step to two
// "workers" (StepRuns opened apart), runs the paused calls again and only
// them; a worker opening the next step keeps the raised limit (read from
// the records), so the reduce does not pause at the old one. State,
// budgets and the calls sent equal a local run resumed with the same
// answer.
func TestStepsBudgetInterrupt(t *testing.T) {
	ctx := context.Background()
	srv := llmtest.New(t)
	var calls atomic.Int64
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		calls.Add(1)
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 50, OutputTokens: 20}, Delay: time.Millisecond}
	})
	g := compileYAML(t, budgetInterruptYAML(t, srv.OpenAIURL()))
	if err := Distributable(g); err != nil {
		t.Fatalf("Distributable: %v", err)
	}
	inputs := map[string]any{"docs": []any{"a", "b", "c", "d"}}
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "R", inputs, nil); err != nil {
		t.Fatal(err)
	}
	open := func() *StepRun {
		s, err := OpenStep(ctx, st, "R", StepOptions{Environ: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	p, err := open().Plan(ctx)
	if err != nil || p.Done {
		t.Fatalf("plan: %+v %v", p, err)
	}
	worker := open()
	for k := range 4 {
		if _, err := worker.Invoke(ctx, Invocation{Node: "summarize", Index: k}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := open().CommitStep(ctx, p.Step)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusInterrupted || fmt.Sprint(res.Waiting) != "[1/summarize[2] 1/summarize[3]]" || fmt.Sprint(res.Budgets) != "[run run]" {
		t.Fatalf("commit: %s waiting %v budgets %q; want interrupted at items 2 and 3, both on budget run", res.Status, res.Waiting, res.Budgets)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls sent before the pause, want 2", n)
	}

	// Refused as a local resume refuses them; nothing is recorded.
	for _, tt := range []struct {
		values map[string]any
		want   string
	}{
		{nil, "raise the budget with -i tokens=N or -i usd=X"},
		{map[string]any{"tokens": 150}, "tokens=150 does not raise budget run: its limit is 200 tokens (140 used)"},
		{map[string]any{"usd": 5}, "budget run has no money limit to raise; raise its tokens"},
		{map[string]any{"approved": true}, "-i approved: a budget interrupt takes tokens=N and usd=X"},
	} {
		_, err := RecordAnswer(ctx, st, "R", Answer{Values: tt.values}, nil, nil)
		var ie *InputError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("answer %v: %v, want an *InputError saying %q", tt.values, err, tt.want)
		}
	}
	a, err := RecordAnswer(ctx, st, "R", Answer{Values: map[string]any{"tokens": 400}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path != "1/summarize[2]" {
		t.Fatalf("answer recorded for %s, want the first call waiting for the budget", a.Path)
	}
	raise := &BudgetRaise{Path: a.Path, Budget: "run", Nonce: a.Nonce}

	// Without the raise a paused call stays paused and sends nothing.
	s := open()
	if r, err := s.Invoke(ctx, Invocation{Node: "summarize", Index: 3, Lookup: true}); err != nil || !r.Recorded || r.Status != store.InvocationInterrupted {
		t.Fatalf("paused call without the raise: %+v %v; want its record", r, err)
	}
	if err := s.Continue(ctx); err != nil {
		t.Fatal(err)
	}
	if p, err = s.Plan(ctx); err != nil || p.Done {
		t.Fatalf("plan again: %+v %v", p, err)
	}
	// A continued execution's plan: the paused calls are done unless
	// raised (then they run again); an answer's plan sends them again.
	for _, tt := range []struct {
		name string
		plan func(*StepRun) (*StepPlan, error)
		want string
	}{
		{"continued", func(s *StepRun) (*StepPlan, error) { return s.PlanContinued(ctx, false) }, "[true true true true]"},
		{"continued, raised", func(s *StepRun) (*StepPlan, error) { return s.PlanContinued(ctx, true) }, "[true true false false]"},
		{"recorded", func(s *StepRun) (*StepPlan, error) { return s.PlanRecorded(ctx) }, "[true true false false]"},
	} {
		cp, err := tt.plan(open())
		if err != nil {
			t.Fatal(err)
		}
		var done []bool
		for k := range 4 {
			done = append(done, cp.Nodes[0].Done(k))
		}
		if fmt.Sprint(done) != tt.want {
			t.Errorf("%s plan: done %v, want %s", tt.name, done, tt.want)
		}
	}
	// Two workers share the step's invocations, each carrying the raise.
	workers := []*StepRun{open(), open()}
	for k := range 4 {
		r, err := workers[k%2].Invoke(ctx, Invocation{Node: "summarize", Index: k, Lookup: true, Raise: raise})
		if err != nil {
			t.Fatal(err)
		}
		if ran := !r.Recorded; ran != (k >= 2) || r.Status != store.InvocationOK {
			t.Errorf("summarize[%d]: %+v; want the paused calls run again, the others reused", k, r)
		}
	}
	if res, err = open().CommitStep(ctx, p.Step); err != nil || res.Status != store.StatusRunning {
		t.Fatalf("commit after the raise: %+v %v", res, err)
	}
	// The next step's worker opens the run afresh: the raise holds.
	p, err = open().Plan(ctx)
	if err != nil || p.Done || p.Nodes[0].Name != "reduce" {
		t.Fatalf("plan of reduce: %+v %v", p, err)
	}
	if r, err := open().Invoke(ctx, Invocation{Node: "reduce", Index: -1}); err != nil || r.Status != store.InvocationOK {
		t.Fatalf("reduce: %+v %v; want it run under the raised limit", r, err)
	}
	if res, err = open().CommitStep(ctx, p.Step); err != nil || res.Status != store.StatusCompleted {
		t.Fatalf("last commit: %+v %v", res, err)
	}
	got, err := Outcome(ctx, st, "R", nil)
	if err != nil {
		t.Fatal(err)
	}
	sent := calls.Load()

	// The same run, locally, resumed with the same answer.
	calls.Store(0)
	lst := store.NewMemory()
	if _, err := Run(ctx, g, Options{Store: lst, RunID: "L", Inputs: inputs, Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	want, err := Resume(ctx, lst, "L", Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"tokens": 400}}})
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := json.Marshal(got.State)
	ws, _ := json.Marshal(want.State)
	if string(gs) != string(ws) {
		t.Errorf("state:\n steps %s\n local %s", gs, ws)
	}
	if g, w := fmt.Sprint(got.Budgets), fmt.Sprint(want.Budgets); g != w || w != "[budget run: 350 of 400 tokens used]" {
		t.Errorf("budgets: steps %s, local %s", g, w)
	}
	if sent != 5 || calls.Load() != 5 {
		t.Errorf("calls sent: steps %d, local %d; want 5 each (nothing sent twice)", sent, calls.Load())
	}
}

// budgetInterruptYAML is testdata/budget_interrupt.yaml calling the
// OpenAI server at url.
func budgetInterruptYAML(t testing.TB, url string) string {
	t.Helper()
	src, err := os.ReadFile("testdata/budget_interrupt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(src), "URL", url)
}
