package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// appendLoopWorkflow is issue #13's "append one element to a list of N":
// xs starts as the input list, and each step of a loop appends one
// integer to it until `steps` steps have run.
const appendLoopWorkflow = `
lgx: 1
name: append_scale
config: {recursion_limit: 100000}
state:
  steps: {type: integer, default: 1}
  i:     {type: integer, default: 0}
  xs:    {type: list, reducer: append, default: []}
nodes:
  grow:
    type: set
    output:
      i: ${{ state.i + 1 }}
      xs: ${{ state.i }}
edges:
  - {from: START, to: grow}
  - from: grow
    when:
      - {if: state.i < state.steps, to: grow}
    else: END
output: [i]
`

// appendInputs is the inputs of a run of appendLoopWorkflow over a list
// of n elements for the given number of steps. The elements are small
// strings, as a list of messages or ids would be.
func appendInputs(n, steps int) map[string]any {
	xs := make([]any, n)
	for i := range xs {
		xs[i] = fmt.Sprintf("e%d", i)
	}
	return map[string]any{"xs": xs, "steps": steps}
}

// appendStores are the stores BenchmarkAppendScale runs on: none (the
// executor alone), and SQLite on a real file (the store an `lgx run`
// uses), a new database for each run so that the bytes a run adds are
// not blurred by pages an earlier run freed.
var appendStores = []struct {
	name string
	open func(b *testing.B) store.Store
}{
	{"nostore", func(*testing.B) store.Store { return nil }},
	{"sqlite", func(b *testing.B) store.Store {
		st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "lgx.db"))
		if err != nil {
			b.Fatal(err)
		}
		return st
	}},
}

// appendSteps is how many appending steps a measured run adds to a
// one-step run of a list of n: enough for the steps to outweigh the
// spread of the run's O(n) parts, and few enough (1 %) that the list
// does not outgrow the room its first copy leaves (ownList).
func appendSteps(n int) int { return max(1_000, n/100) }

// BenchmarkAppendScale measures the cost of one appending step on a list
// of N = 10³, 10⁵ and 10⁶ elements. A run also has costs proportional to
// N that are not a step's (the inputs' record, the first checkpoint
// holding the whole list, the first copy of the input list), so each
// iteration runs the workflow twice, for 1 step and for 1+appendSteps
// steps, and the metrics are the differences divided by appendSteps: CPU
// and wall time per appended step and, on SQLite, the bytes the database
// grew by per appended step. O(1) append keeps all three flat in N.
func BenchmarkAppendScale(b *testing.B) {
	g := compileYAML(b, appendLoopWorkflow)
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		k := appendSteps(n)
		short, long := appendInputs(n, 1), appendInputs(n, 1+k)
		for _, sc := range appendStores {
			b.Run(fmt.Sprintf("%s/N=%d", sc.name, n), func(b *testing.B) {
				run := func(in map[string]any, steps int) (cpu, wall, size int64) {
					st := sc.open(b)
					if st != nil {
						defer st.Close()
					}
					opts := Options{Environ: []string{}, Sink: benchSink, Store: st, Inputs: in}
					// Both runs start on a collected heap and collect nothing:
					// a collection scanning the N elements, falling into one
					// run and not the other, would outweigh the steps. What a
					// step allocates is bounded by TestAppendCostFlat.
					runtime.GC()
					defer debug.SetGCPercent(debug.SetGCPercent(-1))
					c0 := cpuTime()
					w0 := time.Now()
					res, err := Run(context.Background(), g, opts)
					wall = int64(time.Since(w0))
					c1 := cpuTime()
					if err != nil || res.State["i"] != steps || len(res.State["xs"].([]any)) != n+steps {
						b.Fatalf("%v %v", err, res.State["i"])
					}
					if st != nil {
						size = dataSize(b, st)
					}
					return int64(c1 - c0), wall, size
				}
				var dCPU, dWall, dBytes int64
				for b.Loop() {
					c1, w1, s1 := run(short, 1)
					c2, w2, s2 := run(long, 1+k)
					dCPU += c2 - c1
					dWall += w2 - w1
					dBytes += s2 - s1
				}
				per := float64(b.N * k)
				b.ReportMetric(float64(dCPU)/per, "cpu-ns/append")
				b.ReportMetric(float64(dWall)/per, "ns/append")
				if sc.name == "sqlite" {
					b.ReportMetric(float64(dBytes)/per, "bytes/append")
				}
			})
		}
	}
}

func dataSize(b *testing.B, st store.Store) int64 {
	ds, ok := st.(interface {
		DataSize(context.Context) (int64, error)
	})
	if !ok {
		return 0
	}
	n, err := ds.DataSize(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return n
}
