package runner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// s3Workflow is benchmark S3: a two-node cycle that leaves through a when
// edge after 1,000 iterations (2,000 steps).
const s3Workflow = `
lgx: 1
name: s3
config: {recursion_limit: 5000}
state:
  i: {type: integer, default: 0}
  acc: {type: integer, default: 0}
nodes:
  step:
    type: set
    output:
      i: ${{ state.i + 1 }}
  check:
    type: set
    output:
      acc: ${{ state.acc + state.i }}
edges:
  - {from: START, to: step}
  - {from: step, to: check}
  - from: check
    when:
      - {if: state.i < 1000, to: step}
    else: END
`

// BenchmarkS3Loop1000Store is S3 with a durable record of every
// invocation and checkpoint: the memory store, and the SQLite store on a
// real file (target ≤ 50 µs per iteration). For SQLite it reports the bytes
// the database grew by per step.
func BenchmarkS3Loop1000Store(b *testing.B) {
	g := compileYAML(b, s3Workflow)
	b.Run("memory", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			res, err := Run(context.Background(), g, Options{Environ: []string{}, Sink: benchSink, Store: store.NewMemory()})
			if err != nil || res.State["i"] != 1000 {
				b.Fatalf("%v %v", err, res)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/iter")
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1000, "cpu-ns/iter")
	})
	b.Run("sqlite", func(b *testing.B) {
		st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "lgx.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		size0, err := st.DataSize(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		steps := 0
		cpu0 := cpuTime()
		for b.Loop() {
			res, err := Run(context.Background(), g, Options{Environ: []string{}, Sink: benchSink, Store: st})
			if err != nil || res.State["i"] != 1000 {
				b.Fatalf("%v %v", err, res)
			}
			steps += res.Steps
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/iter")
		// The machine is shared: CPU time per iteration is what a change
		// moves; wall time also measures the neighbours.
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1000, "cpu-ns/iter")
		size1, err := st.DataSize(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(size1-size0)/float64(steps), "bytes/step")
	})
}
