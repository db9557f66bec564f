package temporal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// pathCounter answers every request after a short delay and counts the
// requests per path.
type pathCounter struct {
	mu    sync.Mutex
	count map[string]int
}

func (p *pathCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(5 * time.Millisecond)
	p.mu.Lock()
	p.count[r.URL.Path]++
	p.mu.Unlock()
	fmt.Fprintf(w, "page %s", r.URL.Path)
}

// A run whose history grows past the limit continues as new, in the
// middle of a for_each and at step boundaries: every execution plans
// from the store, what was recorded is not dispatched (or sent) again,
// and the run ends as a local run does. lgx.wait follows the executions.
func TestTemporalContinueAsNew(t *testing.T) {
	lw := startLive(t, "lgx-can", 8)
	c, st, queue := lw.c, lw.st, lw.queue
	srv := &pathCounter{count: map[string]int{}}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	const n = 40
	urls := []any{}
	for i := range n {
		urls = append(urls, fmt.Sprintf("%s/doc/%d", hs.URL, i))
	}
	g := compile(t, "can.yaml", fmt.Sprintf(fetchEach, 100, 4))
	inputs := map[string]any{"urls": urls}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	clear(srv.count)
	srv.mu.Unlock()

	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, inputs, nil); err != nil {
		t.Fatal(err)
	}
	wr, err := Start(ctx, c, queue, RunInput{RunID: runID, HistoryLimit: 60})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Follow(ctx, c, runID)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != store.StatusCompleted {
		t.Fatalf("run %s (%s)", out.Status, out.Error)
	}
	got, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state:\n temporal %s\n local    %s", g, w)
	}
	srv.mu.Lock()
	for i := range n {
		if k := srv.count[fmt.Sprintf("/doc/%d", i)]; k != 1 {
			t.Errorf("/doc/%d requested %d times, want once", i, k)
		}
	}
	srv.mu.Unlock()

	// Count the executions: each but the last ends continued as new, with
	// a history near the limit.
	execs := 0
	for runIDOf := wr.GetRunID(); runIDOf != ""; execs++ {
		it := c.GetWorkflowHistory(ctx, runID, runIDOf, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		runIDOf = ""
		if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
			runIDOf = a.GetNewExecutionRunId()
		}
		if execs > 50 {
			t.Fatal("more than 50 executions")
		}
	}
	if execs < 3 {
		t.Errorf("%d executions: with a history limit of 60 events, 41 invocations take several", execs)
	}
	t.Logf("%d invocations in %d executions", n+1, execs)
}
