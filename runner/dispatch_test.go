package runner

import (
	"context"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/store"
)

// reverseDispatcher runs a step's invocations one at a time on the loop's
// goroutine, last node and last item first: the opposite of the order the
// local dispatcher hands them out in.
type reverseDispatcher struct {
	r  *run
	ac attemptCtx
}

func (d *reverseDispatcher) dispatch(ctx context.Context, runs []*nodeRun) {
	for k := len(runs) - 1; k >= 0; k-- {
		nr := runs[k]
		for i := len(nr.res) - 1; i >= 0; i-- {
			if nr.res[i].reused {
				continue
			}
			var item any
			if nr.items != nil {
				item = nr.items[i]
			}
			d.r.invoke(ctx, &d.ac, nr.n, itemIndex(nr, i), item, &nr.res[i])
		}
	}
}

func (d *reverseDispatcher) close() { d.ac.release() }

// TestDispatcherDropsIn: a second dispatcher plugs into the run without
// touching the step core, and the run it gives — state, steps, recorded
// checkpoints — is the local dispatcher's, because what a step's writes
// amount to is decided by the core in file and item order, not by the
// order invocations end in.
func TestDispatcherDropsIn(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: shapes
state:
  round: {type: integer, default: 0}
  items: {type: list, default: [x, y, z]}
  log:   {type: list, reducer: append, default: []}
nodes:
  start: {type: set, output: {round: "${{ state.round + 1 }}"}}
  each:  {type: template, for_each: "${{ state.items }}", with: {template: "{{ .item }}{{ .state.round }}"}, output: {log: "${{ result }}"}}
  left:  {type: set, output: {log: left}}
  right: {type: set, output: {log: right}}
  join:  {type: set, output: {log: join}}
edges:
  - {from: START, to: start}
  - {from: start, to: [each, left, right]}
  - {from: [each, left, right], to: join}
  - from: join
    when:
      - {if: "state.round < 3", to: start}
    else: END
`)
	exec := func(d func(*run) dispatcher) (*Result, []*store.Checkpoint) {
		t.Helper()
		st := store.NewMemory()
		res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, dispatcher: d})
		if err != nil {
			t.Fatal(err)
		}
		cps, err := st.Checkpoints(context.Background(), res.RunID)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range cps {
			cp.RunID, cp.At = "", time.Time{} // differ between runs
		}
		return res, cps
	}
	local, localCPs := exec(nil)
	rev, revCPs := exec(func(r *run) dispatcher { return &reverseDispatcher{r: r} })
	if !reflect.DeepEqual(local.State, rev.State) || local.Steps != rev.Steps {
		t.Errorf("local: %d steps %v\nreverse: %d steps %v", local.Steps, local.State, rev.Steps, rev.State)
	}
	if len(localCPs) != len(revCPs) {
		t.Fatalf("%d checkpoints, reverse %d", len(localCPs), len(revCPs))
	}
	for i := range localCPs {
		a, b := localCPs[i], revCPs[i]
		if a.Step != b.Step || !reflect.DeepEqual(a.Next, b.Next) || !reflect.DeepEqual(a.Changed, b.Changed) || string(a.Joins) != string(b.Joins) {
			t.Errorf("checkpoint %d differs:\n%+v\n%+v", i, a, b)
		}
	}
	log := local.State["log"].([]any)
	if len(log) != 18 || log[0] != "x1" || log[2] != "z1" || log[3] != "left" || log[5] != "join" {
		t.Errorf("log = %v", log)
	}
}

// TestDispatchHurriesTheRecorder: once a worker finds no invocation of
// the step left to start, the recorder commits what finished so far while
// the last ones run, so that the barrier, which the run waits for, has
// only those left to commit.
func TestDispatchHurriesTheRecorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := compileYAML(t, `
lgx: 1
name: t
config: {concurrency: 2}
state:
  xs: {type: list}
nodes:
  f: {type: probe, for_each: "${{ state.xs }}", with: {sleep_ms: "${{ item }}"}}
edges:
  - {from: START, to: f}
`)
		st := &countingStore{Store: store.NewMemory()}
		// Six items end at once; of the two workers, one finds none left
		// after the 5 ms item, while the other runs the 10 ms one.
		xs := []any{0, 0, 0, 0, 0, 0, 5, 10}
		res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}, Inputs: map[string]any{"xs": xs}})
		if err != nil || res.Status != store.StatusCompleted {
			t.Fatalf("run: %v, %v", err, res.Status)
		}
		if got := st.calls(); !reflect.DeepEqual(got, []int{7, 1}) {
			t.Errorf("invocation commits %v, want [7 1]: the first seven before the last ended", got)
		}
	})
}

// TestDispatchTellsWorkersInTurn: the loop tells one worker of a step and
// each tells the next as it starts; every worker the step can use still
// runs at once, and a step whose items a few workers took all before the
// others were told ends without waiting for those.
func TestDispatchTellsWorkersInTurn(t *testing.T) {
	t.Run("every worker runs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := resetGroup("turns")
			start := time.Now()
			res, err := runYAML(t, `
lgx: 1
name: t
config: {concurrency: 16}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..32 }}", with: {sleep_ms: 5, group: turns}}
edges:
  - {from: START, to: f}
`, nil)
			if err != nil || res.Status != store.StatusCompleted {
				t.Fatalf("run: %v, %v", err, res.Status)
			}
			if g.max != 16 || time.Since(start) != 10*time.Millisecond {
				t.Errorf("%d in flight at most, %v for 32 items of 5 ms: want 16 and 10ms", g.max, time.Since(start))
			}
		})
	})
	t.Run("items gone before the workers are told", func(t *testing.T) {
		for range 20 {
			res, err := runYAML(t, `
lgx: 1
name: t
config: {concurrency: 64}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  f: {type: probe, for_each: "${{ 1..300 }}", with: {value: 1}, output: {n: "${{ result }}"}}
  g: {type: probe, for_each: "${{ 1..3 }}", with: {value: 1}, output: {n: "${{ result }}"}}
edges:
  - {from: START, to: f}
  - {from: f, to: g}
`, nil)
			if err != nil || res.State["n"] != 303 {
				t.Fatalf("run: %v, n = %v", err, res.State["n"])
			}
		}
	})
}
