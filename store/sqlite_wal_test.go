package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// TestSQLiteCheckpointsInBackground: once a few megabytes were written,
// the store's own goroutine copies the write-ahead log into the database
// file; SQLite's automatic checkpoint, which runs inside a writer's commit,
// would wait for 2,000 pages (8 MB). Without the goroutine, the database
// file stays at its empty size here.
func TestSQLiteCheckpointsInBackground(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	empty := fileSize(t, path)
	inputs := json.RawMessage(`{"x":"` + strings.Repeat("a", 512<<10) + `"}`)
	const runs = 10 // 5 MB: past the 4 MB that ask for a checkpoint, below 8
	for i := range runs {
		r := &store.Run{ID: fmt.Sprintf("r%d", i), Workflow: "w", Inputs: inputs, Status: store.StatusRunning, StartedAt: time.Now()}
		if err := s.CreateRun(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpoint runs in the background: wait for it, boundedly. It
	// copies what no writer holds at the time, most of the 4 MB at least
	// (at most the first frames of a write under way are left).
	deadline := time.Now().Add(10 * time.Second)
	for fileSize(t, path) < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes (%d empty) 10 s after 5 MB were written: no checkpoint copied the log into it",
				fileSize(t, path), empty)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Everything written is there, whether read from the log or the file.
	for i := range runs {
		r, err := s.GetRun(context.Background(), fmt.Sprintf("r%d", i))
		if err != nil || len(r.Inputs) != len(inputs) {
			t.Fatalf("run r%d: %v", i, err)
		}
	}
}

// TestSQLiteLogBoundedAcrossProcesses: each store counts only its own
// writes, so four held open at once (four processes) that each write
// 3.5 MB, less than a background checkpoint's worth, leave the log to
// SQLite's backstop of 2,000 pages: 14 MB written, the log at most about
// 8 MB (at 10,000 pages it was all 14).
func TestSQLiteLogBoundedAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	var stores []*store.SQLite
	for range 4 {
		s, err := store.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	inputs := json.RawMessage(`{"x":"` + strings.Repeat("a", 512<<10) + `"}`)
	for i := range 7 {
		for p, s := range stores {
			r := &store.Run{ID: fmt.Sprintf("p%d-r%d", p, i), Workflow: "w", Inputs: inputs, Status: store.StatusRunning, StartedAt: time.Now()}
			if err := s.CreateRun(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := fileSize(t, path+"-wal"); n > 10<<20 {
		t.Errorf("log %d bytes after 4 stores wrote 3.5 MB each: past the 2,000-page backstop", n)
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
