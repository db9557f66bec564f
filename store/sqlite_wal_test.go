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
// would wait for 10,000 pages (40 MB). Without the goroutine, the database
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
	const runs = 12 // 6 MB: past the 4 MB that ask for a checkpoint, far below 40
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
			t.Fatalf("database file %d bytes (%d empty) 10 s after 6 MB were written: no checkpoint copied the log into it",
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

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
