package runner

import (
	"context"
	"slices"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestForEachResultsAcrossRuns: the results of a for_each are kept, zeroed,
// for the graph's next run (recycleSlabs); nothing of one run's outcomes
// (a failure, a continued item, its writes) shows in the next, with fewer
// items or more.
func TestForEachResultsAcrossRuns(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
state:
  xs: {type: list}
  out: {type: list, reducer: append, default: []}
nodes:
  f:
    type: probe
    for_each: ${{ state.xs }}
    concurrency: 4
    with: {fail: "${{ item < 0 ? 'network' : '' }}", value: "${{ item }}"}
    retry: {attempts: 1}
    on_error: continue
    output: {out: "${{ error == nil ? result : 'failed' }}"}
edges:
  - {from: START, to: f}
`)
	for _, tc := range []struct {
		xs   []any
		want []any
	}{
		{[]any{1, -2, 3, 4, -5, 6}, []any{1, "failed", 3, 4, "failed", 6}},
		{[]any{7, 8}, []any{7, 8}},
		{[]any{9, 10, 11, 12, 13, 14, 15, 16}, []any{9, 10, 11, 12, 13, 14, 15, 16}},
		{[]any{-1}, []any{"failed"}},
	} {
		for _, st := range []store.Store{nil, store.NewMemory()} {
			opts := Options{Inputs: map[string]any{"xs": tc.xs}, Environ: []string{}}
			if st != nil {
				opts.Store = st
			}
			res, err := Run(context.Background(), g, opts)
			if err != nil {
				t.Fatalf("xs %v: %v", tc.xs, err)
			}
			if got := res.State["out"].([]any); !slices.Equal(got, tc.want) {
				t.Errorf("xs %v: out = %v, want %v", tc.xs, got, tc.want)
			}
		}
	}
}
