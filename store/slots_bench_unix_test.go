//go:build unix

package store_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// BenchmarkSQLiteSlot is one machine-wide slot: acquire (slot and rate
// token, one transaction) and release, on a store file.
func BenchmarkSQLiteSlot(b *testing.B) {
	s, err := store.OpenSQLite(filepath.Join(b.TempDir(), "lgx.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	h := store.Lease{Owner: "bench", PID: os.Getpid(), Host: store.Hostname()}
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	defer func() {
		b.StopTimer()
		// CPU time of the process per op (user + system: SQLite's work
		// and the WAL writes' syscalls), beside the wall time.
		b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	}()
	for i := 0; i < b.N; i++ {
		now := time.Now()
		h.Expires = now.Add(store.SlotTTL)
		g, err := s.AcquireSlot(ctx, store.SlotRequest{Pool: "llm", Concurrency: 3, Rate: 1e9, Burst: 3, Holder: h, Now: now})
		if err != nil || !g.OK {
			b.Fatalf("%+v, %v", g, err)
		}
		if err := s.ReleaseSlot(ctx, "llm", g.Slot, h.Owner); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
