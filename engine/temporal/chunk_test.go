package temporal

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// flightServer counts requests per path and in flight, answering after
// delay (default 2 ms); a path ending in /fail answers 404.
type flightServer struct {
	delay    time.Duration
	mu       sync.Mutex
	count    map[string]int
	cur, top int
}

func (s *flightServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.count[r.URL.Path]++
	s.cur++
	s.top = max(s.top, s.cur)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.cur--; s.mu.Unlock() }()
	// A request the client gave up on (its step failed) leaves at once:
	// its slot is free on the client's side, and another item may take it.
	select {
	case <-time.After(cmp.Or(s.delay, 2*time.Millisecond)):
	case <-r.Context().Done():
		return
	}
	if strings.HasSuffix(r.URL.Path, "/fail") {
		http.Error(w, "no such page", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "page %s", r.URL.Path)
}

// reset forgets the counts once the requests of the previous run have
// left the handler: a run that failed cancelled its requests, but their
// handlers sleep out their delay, and were counted in flight with the
// next run's (46 against a cap of 40 on a loaded machine).
func (s *flightServer) reset() {
	for i := 0; ; i++ {
		s.mu.Lock()
		if s.cur == 0 {
			clear(s.count)
			s.top = 0
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if i == 10000 {
			panic("flightServer: requests still in flight after 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// urlList is n URLs of hs, the one at fail (if ≥ 0) ending in /fail.
func urlList(hs *httptest.Server, n, fail int) []any {
	urls := make([]any, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/doc/%d", hs.URL, i)
		if i == fail {
			urls[i] = fmt.Sprintf("%s/doc/%d/fail", hs.URL, i)
		}
	}
	return urls
}

// A large for_each goes to the workers in chunks of items, an activity
// each: fewer activities (and history events) than items, no chunk over
// maxChunk, the node's cap held per item, every item sent once, the state
// a local run's. A failing item fails the run with the local message.
func TestSchedulerChunks(t *testing.T) {
	srv := &flightServer{count: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	for _, tt := range []struct {
		name string
		fail int
	}{{"completes", -1}, {"an item fails", 150}} {
		t.Run(tt.name, func(t *testing.T) {
			const n, nodeCap = 300, 40
			g := compile(t, "chunks.yaml", fmt.Sprintf(fetchEach, 100, nodeCap))
			inputs := map[string]any{"urls": urlList(hs, n, tt.fail)}
			want, lerr := local(t, g, inputs, 0)
			srv.reset()
			st := store.NewMemory()
			if err := runner.SubmitRun(context.Background(), g, st, "C", inputs, nil); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var chunks []int
			env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
				return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
					if in.Node == "fetch" {
						mu.Lock()
						chunks = append(chunks, max(1, len(in.Items)))
						mu.Unlock()
					}
					return a.Invoke(ctx, in)
				}}
			})
			env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "C"})
			if tt.fail < 0 {
				if lerr != nil {
					t.Fatal(lerr)
				}
				completedAsLocally(t, env, st, "C", want)
				srv.mu.Lock()
				for i := range n {
					if k := srv.count[fmt.Sprintf("/doc/%d", i)]; k != 1 {
						t.Errorf("/doc/%d requested %d times, want once", i, k)
					}
				}
				srv.mu.Unlock()
			} else {
				_, err := runner.Outcome(context.Background(), st, "C", nil)
				if err == nil || lerr == nil || err.Error() != lerr.Error() {
					t.Errorf("error %v, local %v: want the same", err, lerr)
				}
			}
			srv.mu.Lock()
			top := srv.top
			srv.mu.Unlock()
			if top > nodeCap {
				t.Errorf("%d requests in flight, the node's cap is %d", top, nodeCap)
			}
			mu.Lock()
			defer mu.Unlock()
			sum := 0
			for _, c := range chunks {
				sum += c
				if c > maxChunk {
					t.Errorf("a chunk of %d items, more than %d", c, maxChunk)
				}
			}
			if tt.fail < 0 && (sum != n || len(chunks) > n/4) {
				t.Errorf("%d items in %d activities (%v): want all %d in at most %d", sum, len(chunks), chunks, n, n/4)
			}
		})
	}
}

// A 10,000-item for_each completes on the dev server, its items in
// chunks and the history bounded by continuing as new: every item sent
// once, the state a local run's.
func TestTemporalLargeForEach(t *testing.T) {
	lw := startLive(t, "lgx-large", 8)
	c, st, queue := lw.c, lw.st, lw.queue
	srv := &flightServer{count: map[string]int{}}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const n, nodeCap = 10_000, 200
	g := compile(t, "large.yaml", fmt.Sprintf(fetchEach, 1000, nodeCap))
	inputs := map[string]any{"urls": urlList(hs, n, -1)}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv.reset()
	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, inputs, nil); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	wr, err := Start(ctx, c, queue, RunInput{RunID: runID, HistoryLimit: 400})
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
	elapsed := time.Since(started)
	got, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state differs from the local run's (%d and %d bytes)", len(g), len(w))
	}
	srv.mu.Lock()
	for i := range n {
		if k := srv.count[fmt.Sprintf("/doc/%d", i)]; k != 1 {
			t.Errorf("/doc/%d requested %d times, want once", i, k)
		}
	}
	if srv.top > nodeCap {
		t.Errorf("%d requests in flight, the node's cap is %d", srv.top, nodeCap)
	}
	srv.mu.Unlock()
	execs, events := 0, 0
	for runIDOf := wr.GetRunID(); runIDOf != ""; execs++ {
		next := ""
		for it := c.GetWorkflowHistory(ctx, runID, runIDOf, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			events++
			if a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes(); a != nil {
				next = a.GetNewExecutionRunId()
			}
		}
		runIDOf = next
		if execs > 100 {
			t.Fatal("more than 100 executions")
		}
	}
	if execs < 2 {
		t.Errorf("%d execution: with a history limit of 400 events, 10,000 items take several", execs)
	}
	if events > n/2 {
		t.Errorf("%d history events for %d items: chunks should need far fewer", events, n)
	}
	t.Logf("%d items in %s: %d executions, %d history events", n, elapsed.Round(time.Millisecond), execs, events)
}
