package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

func TestSQLiteSlots(t *testing.T) {
	storetest.RunSlots(t, func(t *testing.T) storetest.SlotStore { return openTemp(t) })
}

// TestSQLiteSlotsShared: two handles on one file (two processes) share
// the pool's slots.
func TestSQLiteSlotsShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	var stores [2]*store.SQLite
	for i := range stores {
		s, err := store.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	now := time.Now()
	h := func(o string) store.Lease {
		return store.Lease{Owner: o, PID: os.Getpid(), Host: store.Hostname(), Expires: now.Add(time.Minute)}
	}
	ctx := context.Background()
	if g, err := stores[0].AcquireSlot(ctx, store.SlotRequest{Pool: "p", Concurrency: 1, Holder: h("a"), Now: now}); err != nil || !g.OK {
		t.Fatalf("first handle: %+v, %v", g, err)
	}
	if g, err := stores[1].AcquireSlot(ctx, store.SlotRequest{Pool: "p", Concurrency: 1, Holder: h("b"), Now: now}); err != nil || g.OK {
		t.Fatalf("second handle took a held slot: %+v, %v", g, err)
	}
}

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
	b.ResetTimer()
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
