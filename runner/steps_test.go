package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// driveSteps runs a submitted run the way a distributed scheduler does:
// Plan, every invocation through InvokeOne on its own StepRun (last item
// first, as a remote worker pool may finish them), CommitStep on another.
// repeat calls every operation twice, as a retried activity would.
func driveSteps(t *testing.T, st store.Store, runID string, repeat bool) *StepPlan {
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
	for range 50 {
		p, err := open().Plan(ctx)
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if p.Done {
			return p
		}
		inv := open()
		for i := len(p.Nodes) - 1; i >= 0; i-- {
			pn := p.Nodes[i]
			for k := pn.Invocations() - 1; k >= 0; k-- {
				idx := k
				if pn.Items < 0 {
					idx = -1
				}
				for n := range 1 + boolN(repeat) {
					invoke := inv.InvokeOne
					if n == 0 && k%2 == 0 {
						invoke = inv.InvokeFirst
					}
					r, err := invoke(ctx, pn.Name, idx)
					if err != nil {
						t.Fatalf("invoke %s[%d]: %v", pn.Name, idx, err)
					}
					if r.Recorded != (n == 1) {
						t.Errorf("invoke %s[%d] call %d: Recorded = %v", pn.Name, idx, n+1, r.Recorded)
					}
				}
			}
		}
		var first *StepResult
		for n := range 1 + boolN(repeat) {
			res, err := open().CommitStep(ctx, p.Step)
			if err != nil {
				t.Fatalf("commit %d: %v", p.Step, err)
			}
			if n == 0 {
				first = res
			} else if fmt.Sprint(res) != fmt.Sprint(first) {
				t.Errorf("second commit of step %d = %+v, first %+v", p.Step, res, first)
			}
		}
		if first.Status != store.StatusRunning {
			p2, err := open().Plan(ctx)
			if err != nil {
				t.Fatalf("plan after end: %v", err)
			}
			return p2
		}
	}
	t.Fatal("no end after 50 steps")
	return nil
}

func boolN(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestStepsMatchRun(t *testing.T) {
	tests := []struct {
		name, src string
		inputs    map[string]any
		status    store.Status
		errHas    string
	}{
		{name: "fan-out, join, for_each", src: `
lgx: 1
name: steps
state:
  n: {type: integer, default: 3}
  xs: {type: list, reducer: append, default: []}
  total: {type: integer, default: 0}
  msg: {type: string}
nodes:
  a:
    type: set
    output: {xs: "${{ 'a' }}"}
  b:
    type: probe
    with: {value: 2, rand_ms: 3}
    output: {total: "${{ result }}"}
  each:
    type: probe
    for_each: ${{ [1, 2, 3, 4, 5] }}
    with: {value: "${{ item * 10 }}", rand_ms: 3}
    output: {xs: "${{ result }}"}
  again:
    type: set
    output: {total: 100}
  fin:
    type: template
    with: {template: "{{ len .state.xs }} items"}
    output: msg
edges:
  - {from: START, to: [a, b]}
  - {from: [a, b], to: each}
  - from: each
    when:
      - {if: "state.total < 8", to: again}
    else: fin
  - {from: again, to: each}
  - {from: fin, to: END}
`, status: store.StatusCompleted},
		{name: "failure stops the run", src: `
lgx: 1
name: steps_fail
state:
  xs: {type: list, reducer: append, default: []}
nodes:
  each:
    type: probe
    for_each: ${{ [1, 2, 3] }}
    retry: {attempts: 2, backoff: 1ms}
    with: {value: 1, fail: "${{ item == 2 ? 'http' : '' }}", status: 503, group: steps_fail}
    output: {xs: "${{ result }}"}
  after:
    type: set
    output: {xs: 9}
edges:
  - {from: START, to: each}
  - {from: each, to: after}
  - {from: after, to: END}
`, status: store.StatusFailed, errHas: "step 1: node each item 1 failed [http]: probe failure 2"},
		{name: "continue on error", src: `
lgx: 1
name: steps_continue
state:
  errs: {type: list, reducer: append, default: []}
nodes:
  x:
    type: probe
    on_error: continue
    with: {fail: http, group: steps_continue}
    output: {errs: "${{ error.kind }}"}
edges:
  - {from: START, to: x}
  - {from: x, to: END}
`, status: store.StatusCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileYAML(t, tt.src)
			ctx := context.Background()
			attemptsByKey.Clear()
			local, lerr := Run(ctx, g, Options{Store: store.NewMemory(), Inputs: tt.inputs, Environ: []string{}})
			attemptsByKey.Clear()
			for _, repeat := range []bool{false, true} {
				st := store.NewMemory()
				runID := fmt.Sprintf("R%v", repeat)
				if err := SubmitRun(ctx, g, st, runID, tt.inputs, nil); err != nil {
					t.Fatalf("submit: %v", err)
				}
				p := driveSteps(t, st, runID, repeat)
				attemptsByKey.Clear()
				if p.Status != tt.status || local.Status != tt.status {
					t.Fatalf("status: steps %s (%s), local %s (%v); want %s", p.Status, p.Error, local.Status, lerr, tt.status)
				}
				res, err := Outcome(ctx, st, runID)
				if tt.errHas != "" {
					if err == nil || !strings.Contains(err.Error(), tt.errHas) || lerr == nil || err.Error() != lerr.Error() {
						t.Errorf("error: steps %v, local %v; want both equal, containing %q", err, lerr, tt.errHas)
					}
				} else if err != nil {
					t.Fatalf("outcome: %v", err)
				}
				got, _ := json.Marshal(res.State)
				want, _ := json.Marshal(local.State)
				if string(got) != string(want) {
					t.Errorf("state (repeat %v):\n steps %s\n local %s", repeat, got, want)
				}
				gotO, _ := json.Marshal(res.Output)
				wantO, _ := json.Marshal(local.Output)
				if string(gotO) != string(wantO) {
					t.Errorf("output: steps %s, local %s", gotO, wantO)
				}
			}
		})
	}
}

func TestDistributableRefuses(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"interrupt", `
lgx: 1
name: i
state: {d: {type: object}}
nodes:
  ask: {type: interrupt, with: {message: hi}, output: {d: "${{ result }}"}}
edges: [{from: START, to: ask}, {from: ask, to: END}]
`, "node ask: type interrupt (interrupts)"},
		{"rate pool", `
lgx: 1
name: r
pools: {p: {concurrency: 2, rate: 5/s}}
state: {x: {type: integer}}
nodes:
  a: {type: set, pool: p, output: {x: 1}}
edges: [{from: START, to: a}, {from: a, to: END}]
`, "pool p: rate (rate limits)"},
		{"timeout", `
lgx: 1
name: t
config: {timeout: 1m}
state: {x: {type: integer}}
nodes:
  a: {type: set, output: {x: 1}}
edges: [{from: START, to: a}, {from: a, to: END}]
`, "config.timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileYAML(t, tt.src)
			err := Distributable(g)
			var ue *UnsupportedError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Distributable = %v, want an *UnsupportedError naming %q", err, tt.want)
			}
			if err := SubmitRun(context.Background(), g, store.NewMemory(), "X", nil, nil); !errors.As(err, &ue) {
				t.Errorf("SubmitRun = %v, want it refused", err)
			}
		})
	}
}

// A step committed with an invocation that has no record (its activity
// failed past the engine's retries) fails the run, naming it.
func TestCommitStepMissingInvocation(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: missing
state: {xs: {type: list, reducer: append, default: []}}
nodes:
  each:
    type: probe
    for_each: ${{ [1, 2] }}
    with: {value: 1}
    output: {xs: "${{ result }}"}
edges: [{from: START, to: each}, {from: each, to: END}]
`)
	ctx := context.Background()
	st := store.NewMemory()
	if err := SubmitRun(ctx, g, st, "M", nil, nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStep(ctx, st, "M", StepOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Plan(ctx)
	if err != nil || p.Done || p.Step != 1 {
		t.Fatalf("plan: %+v, %v", p, err)
	}
	s2, err := OpenStep(ctx, st, "M", StepOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.InvokeOne(ctx, "each", 0); err != nil {
		t.Fatal(err)
	}
	res, err := s2.CommitStep(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "step 1: invocation 1/each[1] ended without a record (it failed on the workers: see the engine's history)"
	if res.Status != store.StatusFailed || res.Error != want {
		t.Errorf("commit: %+v; want failed: %s", res, want)
	}
}
