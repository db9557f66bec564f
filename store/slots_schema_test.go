package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenSQLiteUpgradesV4: a store of schema version 4 (before
// machine-wide pools) keeps its runs and leases slots once opened.
func TestOpenSQLiteUpgradesV4(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:4]); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO runs (id, workflow, status, started_at, ended_at) VALUES ('old', 'wf', 'completed', 1700000000000000000, 1700000001000000000)`)
	db.Close()

	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite on a v4 store: %v", err)
	}
	defer s.Close()
	if r, err := s.GetRun(ctx, "old"); err != nil || r.Status != StatusCompleted {
		t.Fatalf("v4 run after upgrade = %+v, %v", r, err)
	}
	now := time.Now()
	g, err := s.AcquireSlot(ctx, SlotRequest{Pool: "llm", Concurrency: 1, Rate: 1, Holder: Lease{Owner: "o", PID: os.Getpid(), Host: Hostname(), Expires: now.Add(time.Minute)}, Now: now})
	if err != nil || !g.OK || g.Slot != 0 {
		t.Fatalf("AcquireSlot on an upgraded store = %+v, %v", g, err)
	}
	if v := pragmaInt(t, s.db, "user_version"); v != len(migrations) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
}
