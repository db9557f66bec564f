package runner

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// heapPeak samples the live heap (objects not yet freed, garbage
// included: what the process must hold pages for) every millisecond
// until stopped, and reports the highest sample.
type heapPeak struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	h := &heapPeak{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		h.peak = max(h.peak, sample[0].Value.Uint64())
	}
	read()
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return h
}

// Stop ends the sampling and returns the peak in bytes.
func (h *heapPeak) Stop() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak
}

// BenchmarkStateGrowth runs testdata/append_mb.yaml on the memory and the SQLite
// store and reports the peak heap per MiB of final state: memory must be
// proportional to the state, not to the state times the steps a batch of
// pure steps holds (SPEC §9.6, issue 12).
func BenchmarkStateGrowth(b *testing.B) {
	src, err := os.ReadFile("testdata/append_mb.yaml")
	if err != nil {
		b.Fatal(err)
	}
	g := compileYAML(b, string(src))
	const stateMiB = 100
	for _, tc := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(*testing.B) store.Store { return store.NewMemory() }},
		{"sqlite", func(b *testing.B) store.Store {
			st, err := store.OpenSQLite(filepath.Join(b.TempDir(), "lgx.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var peak uint64
			cpu0 := cpuTime()
			for b.Loop() {
				st := tc.open(b)
				h := startHeapPeak()
				res, err := Run(context.Background(), g, Options{Environ: []string{}, Sink: benchSink, Store: st})
				peak = max(peak, h.Stop())
				if err != nil || res.State["i"] != 100 {
					b.Fatalf("%v %v", err, res)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20)/stateMiB, "peak-heap-MiB/state-MiB")
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/stateMiB/1e6, "cpu-ms/state-MiB")
		})
	}
}
