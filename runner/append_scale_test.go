package runner

import (
	"context"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestAppendCostFlat guards issue 13's "appending one element to a list of
// N costs O(1) in the step and O(write) in the store": on a list of 10⁵
// elements, the bytes allocated from step 20 to step 120 (the run's O(N)
// start, the inputs' record and first checkpoint, left behind) and, on
// SQLite, the bytes the database grows by per step must stay under bounds
// that do not depend on N. A step that copies the list allocates 1.6 MB;
// a checkpoint that re-encodes it writes 700 KB.
func TestAppendCostFlat(t *testing.T) {
	g := compileYAML(t, appendLoopWorkflow)
	const n, from, steps = 100_000, 20, 100
	short, long := appendInputs(n, from), appendInputs(n, from+steps)
	for _, tc := range []struct {
		name      string
		open      func() store.Store
		allocStep int64 // bytes allocated per step, at most
	}{
		{"nostore", func() store.Store { return nil }, 4 << 10},
		{"sqlite", func() store.Store {
			st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		}, 16 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(in map[string]any, want int) (alloc, size int64) {
				st := tc.open()
				var at [2]uint64
				sink := SinkFunc(func(e Event) {
					if e.Event != EventStepEnd || (e.Step != from && e.Step != from+steps) {
						return
					}
					var m runtime.MemStats
					runtime.ReadMemStats(&m)
					at[min(e.Step-from, 1)] = m.TotalAlloc
				})
				res, err := Run(context.Background(), g, Options{Environ: []string{}, Store: st, Inputs: in, Sink: sink})
				if err != nil || res.State["i"] != want || len(res.State["xs"].([]any)) != n+want {
					t.Fatalf("%v %v", err, res.State["i"])
				}
				if sq, ok := st.(*store.SQLite); ok {
					var err error
					if size, err = sq.DataSize(context.Background()); err != nil {
						t.Fatal(err)
					}
					sq.Close()
				}
				return int64(at[1] - at[0]), size
			}
			_, s1 := run(short, from)
			a2, s2 := run(long, from+steps)
			perAlloc, perByte := a2/steps, (s2-s1)/steps
			t.Logf("per step: %d bytes allocated, %d bytes stored", perAlloc, perByte)
			if perAlloc > tc.allocStep {
				t.Errorf("a step allocates %d bytes on a list of %d (at most %d): the step copies the list", perAlloc, n, tc.allocStep)
			}
			if perByte > 1<<10 {
				t.Errorf("a step grows the database by %d bytes on a list of %d (at most 1 KiB): the checkpoint re-encodes the list", perByte, n)
			}
		})
	}
}

// TestAppendInPlaceSafe: the core extends an appending key's list in place
// from step to step, so it must never extend a list someone else holds:
// the state a reader sees is capped (its append copies), an input list a
// write of an empty list left as it was is not extended in the caller's memory, a
// list read into another key keeps its elements, and union extends in
// place as append does.
func TestAppendInPlaceSafe(t *testing.T) {
	const wf = `
lgx: 1
name: inplace
config: {recursion_limit: 100}
state:
  i:  {type: integer, default: 0}
  xs: {type: list, reducer: append, default: []}
  ys: {type: list}
  zs: {type: list, reducer: append}
  us: {type: list, reducer: union, default: []}
nodes:
  grow:
    type: set
    output:
      i: ${{ state.i + 1 }}
      xs: ${{ state.i }}
      ys: "${{ state.i == 3 ? state.xs : state.ys }}"
      zs: "${{ state.i == 0 ? [] : state.i }}"
      us: "${{ [state.i % 3, state.i] }}"
edges:
  - {from: START, to: grow}
  - from: grow
    when:
      - {if: state.i < 40, to: grow}
    else: END
`
	g := compileYAML(t, wf)
	in := make([]any, 2, 64) // room the run must not write into
	in[0], in[1] = "a", "b"
	res, err := Run(context.Background(), g, Options{Environ: []string{}, Inputs: map[string]any{"zs": in}})
	if err != nil {
		t.Fatal(err)
	}
	if got := in[:cap(in)][2]; got != nil {
		t.Errorf("the run wrote %v past the end of the caller's input list", got)
	}
	var wantXs, wantZs []any
	wantZs = append(wantZs, "a", "b")
	wantUs := []any{}
	seen := map[int]bool{}
	for i := range 40 {
		wantXs = append(wantXs, i)
		if i > 0 {
			wantZs = append(wantZs, i)
		}
		for _, u := range []int{i % 3, i} {
			if !seen[u] {
				seen[u] = true
				wantUs = append(wantUs, u)
			}
		}
	}
	for key, want := range map[string][]any{"xs": wantXs, "ys": wantXs[:3], "zs": wantZs, "us": wantUs} {
		got, _ := res.State[key].([]any)
		if !reflect.DeepEqual(normalizeInts(got), want) {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
		if cap(got) != len(got) {
			t.Errorf("%s: the state holds a list with room (len %d, cap %d): a reader's append would write where the core extends it", key, len(got), cap(got))
		}
	}
}

// normalizeInts turns the integers of l into int, as the test's wants are.
func normalizeInts(l []any) []any {
	out := make([]any, len(l))
	for i, v := range l {
		switch x := v.(type) {
		case int64:
			out[i] = int(x)
		case float64:
			out[i] = int(x)
		default:
			out[i] = v
		}
	}
	return out
}
