package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// The workflows of BENCHMARKS.md's scale table (issue 13: 10 / 100 /
// 1,000 / 10,000 for S1, S2, for_each and state size). S1 and S2 at 100
// are BenchmarkS1Chain100 and BenchmarkS2Fanout100.

// s1ChainYAML is S1 with n nodes: a chain of n set nodes, each
// incrementing n.
func s1ChainYAML(n int) string {
	var sb strings.Builder
	sb.WriteString("lgx: 1\nname: s1\nstate:\n  n: {type: integer, default: 0}\nnodes:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  n%d:\n    type: set\n    output:\n      n: ${{ state.n + 1 }}\n", i)
	}
	sb.WriteString("edges:\n  - {from: START, to: n0}\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&sb, "  - {from: n%d, to: n%d}\n", i-1, i)
	}
	fmt.Fprintf(&sb, "config: {recursion_limit: %d}\n", 2*n)
	return sb.String()
}

// s2FanoutYAML is S2 with n branches: START fans out to n set nodes
// appending their names to one list, joined into one final node that
// counts them.
func s2FanoutYAML(n int) string {
	var sb strings.Builder
	sb.WriteString("lgx: 1\nname: s2\nstate:\n  items: {type: list, reducer: append, default: []}\n  count: {type: integer}\nnodes:\n")
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("w%03d", i)
		fmt.Fprintf(&sb, "  %s: {type: set, output: {items: %s}}\n", names[i], names[i])
	}
	sb.WriteString("  final:\n    type: set\n    output:\n      count: ${{ len(state.items) }}\n")
	fmt.Fprintf(&sb, "edges:\n  - {from: START, to: [%s]}\n  - {from: [%s], to: final}\n", strings.Join(names, ", "), strings.Join(names, ", "))
	return sb.String()
}

// forEachWorkflow runs one set node over the items input, each item
// adding 1 to done.
const forEachWorkflow = `
lgx: 1
name: each
state:
  items: {type: list}
  done:  {type: integer, reducer: sum, default: 0}
nodes:
  each:
    type: set
    for_each: ${{ state.items }}
    output: {done: 1}
edges:
  - {from: START, to: each}
`

// BenchmarkScale runs each shape at N = 10, 100, 1,000 and 10,000 and
// reports wall and CPU time per unit (node, branch, item, element of the
// state) next to the allocations per run: linear scaling keeps the per
// unit figures flat. state carries a list of N elements through 5
// appending steps, with no store and with SQLite (one file for all the
// runs, as BenchmarkS3Loop1000Store; the first checkpoint of each run
// holds the whole list).
func BenchmarkScale(b *testing.B) {
	ints := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = i
		}
		return l
	}
	type shape struct {
		name, unit string
		g          func(n int) *Graph
		inputs     func(n int) map[string]any
		check      func(n int, res *Result) bool
		store      bool
	}
	shapes := []shape{
		{"s1", "node", func(n int) *Graph { return compileYAML(b, s1ChainYAML(n)) }, nil,
			func(n int, res *Result) bool { return res.State["n"] == n }, false},
		{"s2", "branch", func(n int) *Graph { return compileYAML(b, s2FanoutYAML(n)) }, nil,
			func(n int, res *Result) bool { return res.State["count"] == n }, false},
		{"foreach", "item", func(int) *Graph { return compileYAML(b, forEachWorkflow) },
			func(n int) map[string]any { return map[string]any{"items": ints(n)} },
			func(n int, res *Result) bool { return res.State["done"] == n }, false},
		{"state", "elem", func(int) *Graph { return compileYAML(b, appendLoopWorkflow) },
			func(n int) map[string]any { return map[string]any{"xs": ints(n), "steps": 5} },
			func(n int, res *Result) bool { return len(res.State["xs"].([]any)) == n+5 }, false},
		{"state-sqlite", "elem", func(int) *Graph { return compileYAML(b, appendLoopWorkflow) },
			func(n int) map[string]any { return map[string]any{"xs": ints(n), "steps": 5} },
			func(n int, res *Result) bool { return len(res.State["xs"].([]any)) == n+5 }, true},
	}
	for _, sh := range shapes {
		for _, n := range []int{10, 100, 1_000, 10_000} {
			g := sh.g(n)
			var in map[string]any
			if sh.inputs != nil {
				in = sh.inputs(n)
			}
			b.Run(fmt.Sprintf("%s/%d", sh.name, n), func(b *testing.B) {
				opts := Options{Environ: []string{}, Sink: benchSink, Inputs: in}
				if sh.store {
					st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "lgx.db"))
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					opts.Store = st
				}
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					res, err := Run(context.Background(), g, opts)
					if err != nil || !sh.check(n, res) {
						b.Fatalf("%v %v", err, res)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/"+sh.unit)
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(n), "cpu-ns/"+sh.unit)
			})
		}
	}
}
