package runner

import (
	"context"
	"reflect"
	"testing"
)

// TestDispatchSeveralNodesInAStep: the workers take a step's invocations
// by one cursor over all its nodes (stepWork). A step of two for_each
// nodes, an empty one, a node without for_each and an instant for_each
// runs every invocation exactly once, on every global cap from one worker
// to more workers than invocations.
func TestDispatchSeveralNodesInAStep(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
state:
  xs:   {type: list, default: [1, 2, 3, 4, 5]}
  none: {type: list, default: []}
  a:    {type: list, reducer: append, default: []}
  b:    {type: list, reducer: append, default: []}
  c:    {type: integer, default: 0}
  d:    {type: list, reducer: append, default: []}
nodes:
  a: {type: probe, for_each: "${{ state.xs }}", with: {group: da, value: "${{ item * 10 }}"}, output: {a: "${{ [result] }}"}}
  b: {type: probe, for_each: "${{ state.none }}", with: {group: db, value: 1}, output: {b: "${{ [result] }}"}}
  c: {type: probe, with: {group: dc, value: 7}, output: {c: "${{ result }}"}}
  e: {type: probe, for_each: "${{ [7, 8, 9] }}", with: {group: de, value: "${{ item }}", rand_ms: 2}, output: {b: "${{ [result] }}"}}
  d: {type: set, for_each: "${{ state.xs }}", output: {d: "${{ [item] }}"}}
edges:
  - {from: START, to: [a, b, c, e, d]}
`)
	for _, conc := range []int{1, 2, 3, 64} {
		groups := map[string]*group{}
		for _, name := range []string{"da", "db", "dc", "de"} {
			groups[name] = resetGroup(name)
		}
		res, err := Run(context.Background(), g, Options{Environ: []string{}, Concurrency: conc})
		if err != nil {
			t.Fatalf("concurrency %d: %v", conc, err)
		}
		want := map[string]any{
			"a": []any{10, 20, 30, 40, 50},
			"b": []any{7, 8, 9},
			"c": 7,
			"d": []any{1, 2, 3, 4, 5},
		}
		for k, v := range want {
			if !reflect.DeepEqual(res.State[k], v) {
				t.Errorf("concurrency %d: %s = %v, want %v", conc, k, res.State[k], v)
			}
		}
		for name, calls := range map[string]int{"da": 5, "db": 0, "dc": 1, "de": 3} {
			if got := groups[name].calls; got != calls {
				t.Errorf("concurrency %d: group %s ran %d times, want %d", conc, name, got, calls)
			}
		}
		if conc <= 3 && groups["da"].max > conc {
			t.Errorf("concurrency %d: %d of a's items in flight at once", conc, groups["da"].max)
		}
	}
}
