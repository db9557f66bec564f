package temporal

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// config.timeout on Temporal: the workflow holds the deadline; when it
// passes, the step's invocations are cancelled and the run is recorded
// failed with the local run's message (resumable); reopened, it starts a
// fresh deadline, reuses what was recorded, and goes on.
func TestTemporalRunTimeout(t *testing.T) {
	lw := startLive(t, "lgx-timeout", 4)
	c, st, queue := lw.c, lw.st, lw.queue
	srv := &inflight{delay: 400 * time.Millisecond}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	urls := []any{}
	for i := range 6 {
		urls = append(urls, fmt.Sprintf("%s/doc/%d", hs.URL, i))
	}
	// One at a time, 6 × 400 ms: past a timeout of 1 s.
	src := strings.Replace(fmt.Sprintf(fetchEach, 100, 1), "name: fetch_each\n", "name: fetch_each\nconfig: {timeout: 1s}\n", 1)
	g := compile(t, "timeout.yaml", src)
	inputs := map[string]any{"urls": urls}
	_, lerr := local(t, g, inputs, 0)
	if lerr == nil {
		t.Fatal("the local run did not time out")
	}

	srv.total.Store(0) // the local run's
	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, inputs, nil); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := Start(ctx, c, queue, RunInput{RunID: runID}); err != nil {
		t.Fatal(err)
	}
	out, err := Follow(ctx, c, runID)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	if out.Status != store.StatusFailed || out.Error != lerr.Error() {
		t.Fatalf("run %s %q, want failed %q as locally", out.Status, out.Error, lerr.Error())
	}
	if took > 10*time.Second {
		t.Errorf("the run took %s to fail past a 1 s deadline", took)
	}
	sent := srv.total.Load()
	if sent >= 6 {
		t.Errorf("%d requests before the deadline stopped the run: it ran to the end", sent)
	}

	// Reopened: a fresh deadline, the recorded items reused.
	for round := 0; ; round++ {
		if err := runner.ReopenRun(ctx, st, runID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Start(ctx, c, queue, RunInput{RunID: runID, Resumed: true}); err != nil {
			t.Fatal(err)
		}
		out, err := Follow(ctx, c, runID)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status == store.StatusCompleted {
			break
		}
		if out.Status != store.StatusFailed || round > 6 {
			t.Fatalf("round %d: %s %q", round, out.Status, out.Error)
		}
	}
	res, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.State["n"]; n != 6 {
		t.Errorf("n = %v, want 6 pages", n)
	}
}
