package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// fanOutYAML is START → n set nodes appending their index → one join node
// that counts them: issue #13's "run a 10,000-branch fan-out at ≤ 1 µs per
// branch" shape.
func fanOutYAML(n int) string {
	var sb strings.Builder
	sb.WriteString("lgx: 1\nname: fan\nstate:\n  hits: {type: integer, reducer: sum, default: 0}\n  count: {type: integer}\nnodes:\n")
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("b%d", i)
		fmt.Fprintf(&sb, "  %s: {type: set, output: {hits: 1}}\n", names[i])
	}
	sb.WriteString("  join: {type: set, output: {count: \"${{ state.hits }}\"}}\n")
	fmt.Fprintf(&sb, "edges:\n  - {from: START, to: [%s]}\n  - {from: [%s], to: join}\n", strings.Join(names, ", "), strings.Join(names, ", "))
	return sb.String()
}

func TestFanOutScale(t *testing.T) {
	for _, n := range []int{1, 10, 2_000} {
		g := compileYAML(t, fanOutYAML(n))
		res, err := Run(context.Background(), g, Options{Environ: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		if res.State["count"] != n || res.State["hits"] != n {
			t.Fatalf("n=%d: state %v", n, res.State)
		}
	}
}

// BenchmarkFanOutScale runs the fan-out at 10 to 10,000 branches and
// reports wall and CPU time per branch; linear scaling keeps both flat.
func BenchmarkFanOutScale(b *testing.B) {
	for _, n := range []int{10, 100, 1_000, 10_000} {
		g := compileYAML(b, fanOutYAML(n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			opts := Options{Environ: []string{}, Sink: benchSink}
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				res, err := Run(context.Background(), g, opts)
				if err != nil || res.State["count"] != n {
					b.Fatalf("%v %v", err, res.State)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/branch")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(n), "cpu-ns/branch")
		})
	}
}
