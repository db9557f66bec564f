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
