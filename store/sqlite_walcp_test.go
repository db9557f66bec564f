package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSQLiteCheckpointsInBackground: no commit checkpoints the WAL (every
// connection has wal_autocheckpoint 0, so none waits on the copy and the
// fsyncs), and the checkpointer still folds the WAL into the database
// once it has grown past walCheckpointBytes.
func TestSQLiteCheckpointsInBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Every connection of the pool: hold them all at once, then give
	// them back for the writes.
	conns := make([]*sql.Conn, maxConns)
	for i := range conns {
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		var n int
		if err := c.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("connection %d: wal_autocheckpoint = %d, want 0 (a commit would checkpoint)", i, n)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	db0 := fileSize(t, path)
	// 6 MiB of inputs, past the checkpointer's mark.
	big, _ := json.Marshal(map[string]string{"x": strings.Repeat("y", 512<<10)})
	for i := 0; i < 12; i++ {
		if err := s.CreateRun(ctx, &Run{ID: fmt.Sprintf("r%d", i), Status: StatusRunning, Inputs: big}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); fileSize(t, path) < db0+walCheckpointBytes; {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes (was %d), WAL %d: never checkpointed", fileSize(t, path), db0, fileSize(t, path+"-wal"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
