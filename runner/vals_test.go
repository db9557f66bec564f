package runner

import (
	"context"
	"reflect"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// valsChecker is a dispatcher that, before each step, checks that the
// run's slot mirror (core.vals, which the fast path reads) holds exactly
// what its state map holds, then dispatches as the local one does.
type valsChecker struct {
	t     *testing.T
	r     *run
	local *localDispatcher
	steps int
}

func (v *valsChecker) dispatch(ctx context.Context, runs []*nodeRun) {
	v.steps++
	r := v.r
	if len(r.vals) != len(r.g.keys) {
		v.t.Errorf("step %d: %d slots for %d keys", r.step, len(r.vals), len(r.g.keys))
	}
	for i, k := range r.g.keys {
		if i < len(r.vals) && !reflect.DeepEqual(r.vals[i], r.state[k.name]) {
			v.t.Errorf("step %d: slot of %s holds %#v, the state %#v", r.step, k.name, r.vals[i], r.state[k.name])
		}
	}
	v.local.dispatch(ctx, runs)
}

func (v *valsChecker) close() { v.local.close() }

// TestStateSlotsMirrorState: through every reducer, for_each items, a
// conditional loop, an interrupt and a resume from the checkpoints, the
// state's slots (read by the expression fast path) equal the state map
// before every step, and the fast path's results match the VM's.
func TestStateSlotsMirrorState(t *testing.T) {
	const wf = `lgx: 1
name: slots
state:
  i: {type: integer, default: 0}
  sum: {type: integer, reducer: sum, default: 0}
  log: {type: list, reducer: append, default: []}
  bag: {type: object, reducer: merge, default: {}}
  top: {type: integer, reducer: max, default: 0}
  seen: {type: list, reducer: union, default: []}
  ok: {type: boolean}
nodes:
  step:
    type: set
    output:
      i: ${{ state.i + 1 }}
      sum: ${{ state.i * 2 }}
      log: ${{ state.i }}
      bag: {last: "${{ state.i }}"}
      top: ${{ state.i }}
  each:
    type: set
    for_each: ${{ state.log }}
    output:
      seen: ${{ item }}
      sum: ${{ item + state.i }}
  ask: {type: interrupt, with: {message: "go on at ${{ state.i }}?"}, output: {ok: "${{ result.ok }}"}}
  done: {type: set, output: {sum: "${{ state.sum + state.top }}"}}
edges:
  - {from: START, to: step}
  - {from: step, to: each}
  - from: each
    when:
      - {if: "${{ state.i < 4 }}", to: step}
      - {if: "${{ state.i == 4 && state.ok == nil }}", to: ask}
    else: done
  - {from: ask, to: step}
`
	g := compileYAML(t, wf)
	st := store.NewMemory()
	var checkers []*valsChecker
	opts := func() Options {
		return Options{Store: st, Environ: []string{}, dispatcher: func(r *run) dispatcher {
			v := &valsChecker{t: t, r: r, local: &localDispatcher{r: r}}
			checkers = append(checkers, v)
			return v
		}}
	}
	res, err := Run(context.Background(), g, opts())
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusInterrupted {
		t.Fatalf("status %s, state %v", res.Status, res.State)
	}
	ro := opts()
	ro.Answer = Answer{Values: map[string]any{"ok": true}}
	res2, err := Resume(context.Background(), st, res.RunID, ro)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Status != store.StatusCompleted {
		t.Fatalf("resumed status %s", res2.Status)
	}
	if len(checkers) != 2 || checkers[0].steps == 0 || checkers[1].steps == 0 {
		t.Fatalf("the checking dispatcher was not used: %d runs", len(checkers))
	}
	// The same workflow without the slots (every state read through the
	// map) ends in the same state.
	g2 := compileYAML(t, wf)
	for _, n := range g2.nodes {
		for _, o := range n.output {
			dropSlots(o.val)
		}
	}
	st2 := store.NewMemory()
	r1, err := Run(context.Background(), g2, Options{Store: st2, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Resume(context.Background(), st2, r1.RunID, Options{Environ: []string{}, Answer: Answer{Values: map[string]any{"ok": true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r2.State, res2.State) {
		t.Fatalf("with slots %v\nwithout %v", res2.State, r2.State)
	}
}

// dropSlots recompiles the fast path of a compiled value without the
// graph's keys, so that it reads the state map.
func dropSlots(c cval) {
	switch x := c.(type) {
	case *progVal:
		if x.fast != nil {
			x.fast = compileFast(x.prog.Node(), nil)
		}
	case *mapVal:
		for _, v := range x.vals {
			dropSlots(v)
		}
	case *listVal:
		for _, v := range x.vals {
			dropSlots(v)
		}
	case *interpVal:
		for _, v := range x.parts {
			dropSlots(v)
		}
	}
}

// TestAloneTakesNoSlotYetKeepsTheCap: an instant node alone in its step
// skips the global slot (call.alone), and the cap still holds for the
// steps around it: with concurrency 1, probes of a wide step run one at a
// time, and every slot is free once each step ends (a skipped slot given
// back, or one taken and kept, would show here).
func TestAloneTakesNoSlotYetKeepsTheCap(t *testing.T) {
	grp := resetGroup("alone1")
	const wf = `lgx: 1
name: alone
config: {concurrency: 1}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  a: {type: set, output: {n: 1}}
  p1: {type: probe, with: {group: alone1, sleep_ms: 5}, output: {n: 1}}
  p2: {type: probe, with: {group: alone1, sleep_ms: 5}, output: {n: 1}}
  p3: {type: probe, with: {group: alone1, sleep_ms: 5}, output: {n: 1}}
  b: {type: set, output: {n: 1}}
edges:
  - {from: START, to: a}
  - {from: a, to: [p1, p2, p3]}
  - {from: [p1, p2, p3], to: b}
  - from: b
    when:
      - {if: "${{ state.n < 15 }}", to: a}
`
	g := compileYAML(t, wf)
	var frees []bool
	res, err := Run(context.Background(), g, Options{Environ: []string{}, dispatcher: func(r *run) dispatcher {
		return &slotChecker{r: r, local: &localDispatcher{r: r}, frees: &frees}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res.State["n"] != 15 {
		t.Fatalf("state %v", res.State)
	}
	if grp.max != 1 || grp.calls != 9 {
		t.Fatalf("probes: %d calls, %d at most at once; want 9 and 1", grp.calls, grp.max)
	}
	for i, free := range frees {
		if !free {
			t.Fatalf("after step %d the global slot was held", i+1)
		}
	}
}

// slotChecker dispatches as the local dispatcher does and records, after
// each step, whether the run's global slot is free.
type slotChecker struct {
	r     *run
	local *localDispatcher
	frees *[]bool
}

func (s *slotChecker) dispatch(ctx context.Context, runs []*nodeRun) {
	s.local.dispatch(ctx, runs)
	free := s.r.lim.global.w.TryAcquire(1)
	if free {
		s.r.lim.global.release()
	}
	*s.frees = append(*s.frees, free)
}

func (s *slotChecker) close() { s.local.close() }
