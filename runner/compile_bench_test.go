package runner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

// compileFan is a workflow of n parallel set nodes, each with one
// expression in its output.
func compileFan(n int) []byte {
	var b strings.Builder
	b.WriteString("lgx: 1\nname: fan\nstate:\n  total: {type: integer, reducer: sum, default: 0}\nnodes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  b%d: {type: set, output: {total: \"${{ state.total + %d }}\"}}\n", i, i)
	}
	b.WriteString("edges:\n  - from: START\n    to: [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "b%d", i)
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// BenchmarkCompile measures Compile alone (a run compiles its workflow
// and every subgraph once): per expression, mostly expr-lang's parse,
// check and compile.
func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{100, 1000} {
		w, ds := spec.Load("fan.yaml", compileFan(n))
		ds = append(ds, spec.Validate(w)...)
		if ds.HasErrors() {
			b.Fatal(ds.String())
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/expr")
		})
	}
}
