package temporal

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/temporaltest"
	"github.com/lgx-run/lgx/store"
)

// live is a worker in this process serving a task queue of its own on a
// Temporal server, with the SQLite store it and the test's client share.
type live struct {
	c     client.Client
	st    store.Store
	queue string
}

// startLive starts a worker (maxActivities at once) on the dev server
// LGX_TEST_TEMPORAL names, skipping the test without it, and checks at
// the end that no goroutine outlives it.
func startLive(t *testing.T, prefix string, maxActivities int) *live {
	t.Helper()
	temporaltest.Address(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	return serve(t, temporaltest.Dial(t), prefix, maxActivities)
}

// serve starts a worker on c, on a fresh task queue named after prefix,
// with a fresh SQLite store; both are stopped when the test ends.
func serve(t *testing.T, c client.Client, prefix string, maxActivities int) *live {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	queue := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	acts := &Activities{Store: st, Environ: []string{}}
	w, err := NewWorker(c, acts, WorkerOptions{TaskQueue: queue, MaxActivities: maxActivities})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(acts.Close)
	t.Cleanup(w.Stop)
	return &live{c: c, st: st, queue: queue}
}
