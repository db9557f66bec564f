package runner

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// benchSink is the benchmarks' sink: Discard (events not built) unless
// LGX_BENCH_EVENTS=1 asks for a sink that receives and drops every event.
var benchSink Sink = Discard

func init() {
	if os.Getenv("LGX_BENCH_EVENTS") == "1" {
		benchSink = SinkFunc(func(Event) {})
	}
}

// cpuTime is the process's user+system CPU time. The benchmarks report it
// next to wall time because the machines they run on are shared: CPU time
// per unit is what the executor costs, wall time also counts waiting for a
// core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkS1Chain100: 100 set nodes in a chain, each incrementing n.
func BenchmarkS1Chain100(b *testing.B) {
	g := compileYAML(b, s1ChainYAML(100))
	opts := Options{Environ: []string{}, Sink: benchSink}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := Run(context.Background(), g, opts)
		if err != nil || res.State["n"] != 100 {
			b.Fatalf("%v %v", err, res.State)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/node")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/100, "cpu-ns/node")
}

// BenchmarkS2Fanout100: START fans out to 100 set nodes appending their
// names, joined into one final node.
func BenchmarkS2Fanout100(b *testing.B) {
	g := compileYAML(b, s2FanoutYAML(100))
	opts := Options{Environ: []string{}, Sink: benchSink}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := Run(context.Background(), g, opts)
		if err != nil || res.State["count"] != 100 {
			b.Fatalf("%v %v", err, res.State["count"])
		}
		items := res.State["items"].([]any)
		if items[0] != "w000" || items[99] != "w099" {
			b.Fatalf("items out of file order: %v", items)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkS3Loop1000: a two-node cycle leaving through a when edge after
// 1,000 iterations.
func BenchmarkS3Loop1000(b *testing.B) {
	g := compileYAML(b, s3Workflow)
	opts := Options{Environ: []string{}, Sink: benchSink}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := Run(context.Background(), g, opts)
		if err != nil || res.State["i"] != 1000 {
			b.Fatalf("%v %v", err, res.State)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/iter")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1000, "cpu-ns/iter")
}
