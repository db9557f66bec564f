package runner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

// compileFan is a workflow of n parallel set nodes, each with one
// expression in its output: n distinct ones, or the same one n times.
func compileFan(n int, same bool) []byte {
	var b strings.Builder
	b.WriteString("lgx: 1\nname: fan\nstate:\n  total: {type: integer, reducer: sum, default: 0}\nnodes:\n")
	for i := range n {
		k := i
		if same {
			k = 1
		}
		fmt.Fprintf(&b, "  b%d: {type: set, output: {total: \"${{ state.total + %d }}\"}}\n", i, k)
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
// and every subgraph once): per expression written, mostly expr-lang's
// parse, check and compile, once per distinct expression (/same: one
// expression written n times).
func BenchmarkCompile(b *testing.B) {
	for _, c := range []struct {
		n    int
		same bool
	}{{100, false}, {1000, false}, {1000, true}} {
		n := c.n
		w, ds := spec.Load("fan.yaml", compileFan(n, c.same))
		ds = append(ds, spec.Validate(w)...)
		if ds.HasErrors() {
			b.Fatal(ds.String())
		}
		name := fmt.Sprint(n)
		if c.same {
			name += "/same"
		}
		b.Run(name, func(b *testing.B) {
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
