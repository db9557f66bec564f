package temporal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/temporaltest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// perRun is an httptest server for several runs at once: a request's
// first path segment names its run, and the server keeps, per run, the
// requests in flight and their highest count, so a cap is checked run by
// run while the runs share the workers. The X-Lgx-Worker header (set by
// workerTransport) names the worker that sent it, so a test can see that
// every worker took part. Each request takes delay.
type perRun struct {
	delay time.Duration

	mu       sync.Mutex
	cur, max map[string]int
	byWorker map[string]int
	// onWorker and workerMax are the requests each worker has in
	// flight, and their highest count.
	onWorker, workerMax map[string]int
	total               int
}

func newPerRun(delay time.Duration) *perRun {
	return &perRun{delay: delay, cur: map[string]int{}, max: map[string]int{}, byWorker: map[string]int{},
		onWorker: map[string]int{}, workerMax: map[string]int{}}
}

func (s *perRun) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	run, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	s.mu.Lock()
	s.cur[run]++
	s.max[run] = max(s.max[run], s.cur[run])
	worker := r.Header.Get("X-Lgx-Worker")
	s.byWorker[worker]++
	s.onWorker[worker]++
	s.workerMax[worker] = max(s.workerMax[worker], s.onWorker[worker])
	s.total++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cur[run]--
		s.onWorker[worker]--
		s.mu.Unlock()
	}()
	time.Sleep(s.delay)
	fmt.Fprintf(w, "page %s", r.URL.Path)
}

// maxInFlight is the most requests of run that were in flight at once.
func (s *perRun) maxInFlight(run string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max[run]
}

// busiest is the most requests one worker had in flight at once, and
// clears the counts for the next batch.
func (s *perRun) busiest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	top := 0
	for _, m := range s.workerMax {
		top = max(top, m)
	}
	clear(s.workerMax)
	return top
}

// workers returns the requests each worker sent (by X-Lgx-Worker).
func (s *perRun) workers() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.byWorker))
	for k, v := range s.byWorker {
		out[k] = v
	}
	return out
}

// workerTransport marks each request with the worker that sends it.
type workerTransport struct {
	base   *http.Transport
	worker string
}

func (t workerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Lgx-Worker", t.worker)
	return t.base.RoundTrip(r)
}

// startWorkers starts n workers on queue, each as a separate Temporal
// worker would run on its own machine: its own client connection, its
// own handle on the shared SQLite file, its own Activities (step cache)
// and HTTP client, and at most maxActivities invocations at once. They
// stop when t ends.
func startWorkers(t testing.TB, dbPath, queue string, n, maxActivities int) {
	t.Helper()
	for k := range n {
		c := temporaltest.Dial(t)
		st, err := store.OpenSQLite(dbPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		t.Cleanup(tr.CloseIdleConnections)
		acts := &Activities{Store: st, Environ: []string{},
			HTTPClient: &http.Client{Transport: workerTransport{base: tr, worker: fmt.Sprint(k)}}}
		t.Cleanup(acts.Close)
		w, err := NewWorker(c, acts, WorkerOptions{TaskQueue: queue, MaxActivities: maxActivities})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatalf("start worker %d: %v", k, err)
		}
		t.Cleanup(w.Stop)
	}
}

// batchRun is one run of a batch: its workflow, its items and the most
// requests it may have in flight at once.
type batchRun struct {
	id    string
	g     *runner.Graph
	items int
	cap   int
}

// runBatch submits the runs, starts them all on queue at once and waits
// for every one; it returns the wall time from the first start to the
// last end. Each run fetches hs/<run id>/<i> for its items, so srv
// counts its requests in flight apart from the other runs'. It fails t
// unless every run completes with all its items, within its cap.
func runBatch(ctx context.Context, t testing.TB, c client.Client, st store.Store, queue, url string, srv *perRun, runs []batchRun) time.Duration {
	t.Helper()
	for _, r := range runs {
		urls := make([]any, r.items)
		for i := range urls {
			urls[i] = fmt.Sprintf("%s/%s/%d", url, r.id, i)
		}
		if err := runner.SubmitRun(ctx, r.g, st, r.id, map[string]any{"urls": urls}, nil); err != nil {
			t.Fatalf("submit %s: %v", r.id, err)
		}
	}
	began := time.Now()
	started := make([]client.WorkflowRun, len(runs))
	for i, r := range runs {
		wr, err := Start(ctx, c, queue, RunInput{RunID: r.id})
		if err != nil {
			t.Fatal(err)
		}
		started[i] = wr
	}
	for i, wr := range started {
		out, err := Await(ctx, wr)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != store.StatusCompleted {
			t.Fatalf("run %s: %s (%s)", runs[i].id, out.Status, out.Error)
		}
	}
	wall := time.Since(began)
	for _, r := range runs {
		res, err := runner.Outcome(ctx, st, r.id, nil)
		if res == nil {
			t.Fatalf("outcome of %s: %v", r.id, err)
		}
		if got, want := fmt.Sprint(res.State["n"]), fmt.Sprint(r.items); got != want {
			t.Errorf("run %s fetched %s pages, want %s", r.id, got, want)
		}
		if m := srv.maxInFlight(r.id); m > r.cap {
			t.Errorf("run %s had %d requests in flight at once, cap %d", r.id, m, r.cap)
		}
	}
	return wall
}

// scaleLoad is a load for the scaling measurements: runs started at
// once, each a for_each of items requests of delay under a node cap, on
// workers of maxActivities each.
type scaleLoad struct {
	runs, items   int
	delay         time.Duration
	nodeCap       int
	maxActivities int
}

// scaleFigures is what one batch measured.
type scaleFigures struct {
	wall        time.Duration
	invocations int
	cpu         time.Duration // this process's, per invocation
	serverCPU   time.Duration // the dev server's, per invocation; -1 unknown
}

func (f scaleFigures) perSecond() float64 { return float64(f.invocations) / f.wall.Seconds() }

func (f scaleFigures) String() string {
	s := fmt.Sprintf("%s (%.0f invocations/s); process CPU %s/invocation", f.wall.Round(time.Millisecond),
		f.perSecond(), f.cpu.Round(time.Microsecond))
	if f.serverCPU >= 0 {
		s += fmt.Sprintf(", server CPU %s/invocation", f.serverCPU.Round(time.Microsecond))
	}
	return s
}

// scaleRig is what the batches of a scaling measurement share: the
// client, the SQLite file the client and every worker open, the test
// server and the compiled workflow.
type scaleRig struct {
	load   scaleLoad
	c      client.Client
	dbPath string
	st     store.Store
	srv    *perRun
	url    string
	g      *runner.Graph
	base   string // task queue prefix
}

func newScaleRig(t testing.TB, load scaleLoad) *scaleRig {
	t.Helper()
	r := &scaleRig{load: load, c: temporaltest.Dial(t), dbPath: filepath.Join(t.TempDir(), "runs.db"),
		srv: newPerRun(load.delay), base: fmt.Sprintf("lgx-scale-%d", time.Now().UnixNano())}
	st, err := store.OpenSQLite(r.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.st = st
	hs := httptest.NewServer(r.srv)
	t.Cleanup(hs.Close)
	r.url = hs.URL
	r.g = compile(t, "scale.yaml", fmt.Sprintf(fetchEach, 1000, load.nodeCap))
	return r
}

// batch runs the load once on queue (served by n workers), checks that
// every worker took part, and returns the figures.
func (r *scaleRig) batch(ctx context.Context, t testing.TB, queue string, n int) scaleFigures {
	t.Helper()
	runs := make([]batchRun, r.load.runs)
	for i := range runs {
		runs[i] = batchRun{id: fmt.Sprintf("%s-r%d-%d", queue, i, time.Now().UnixNano()), g: r.g, items: r.load.items, cap: r.load.nodeCap}
	}
	before := r.srv.workers()
	c0, s0 := cpuTime(), serverCPU()
	f := scaleFigures{wall: runBatch(ctx, t, r.c, r.st, queue, r.url, r.srv, runs),
		invocations: r.load.runs * (r.load.items + 1)} // the for_each items and the set node
	inv := time.Duration(f.invocations)
	f.cpu, f.serverCPU = (cpuTime()-c0)/inv, -1
	if s0 >= 0 {
		f.serverCPU = (serverCPU() - s0) / inv
	}
	after := r.srv.workers()
	if busiest := r.srv.busiest(); busiest > r.load.maxActivities {
		t.Errorf("a worker had %d requests in flight, its --max-activities is %d", busiest, r.load.maxActivities)
	}
	perWorker, maxes := []string{}, []string{}
	for k := range n {
		sent := after[fmt.Sprint(k)] - before[fmt.Sprint(k)]
		perWorker = append(perWorker, fmt.Sprint(sent))
		if sent == 0 {
			t.Errorf("worker %d sent no request: the runs did not spread over the workers", k)
		}
	}
	for _, run := range runs {
		maxes = append(maxes, fmt.Sprint(r.srv.maxInFlight(run.id)))
	}
	t.Logf("%d workers × %d activities, %d runs × %d requests of %s: %s; requests per worker %s; max in flight per run %s",
		n, r.load.maxActivities, r.load.runs, r.load.items, r.load.delay, f, strings.Join(perWorker, "/"), strings.Join(maxes, "/"))
	t.Logf("run 0: %s", latencies(ctx, t, r.c, runs[0].id))
	return f
}

// TestScaleWithWorkers checks that throughput grows with workers when
// the workers are the bottleneck, at issue 14's size: 4 runs started at
// once, each a for_each of 100 requests of 100 ms under a node cap of
// 10, on 1, 2 and 4 workers of --max-activities 5. A worker runs at most
// 5 invocations at once, the items of a chunk included (workerSlots), so
// 1 worker runs 5 requests at a time, 2 run 10 and 4 run 20, while the
// runs would take 40: wall(2) < 0.75 × wall(1), wall(4) < 0.5 × wall(1)
// (about 8.4 s, 4.9 s and 3.0 s here). No worker may have more than 5
// requests in flight. .ci/run runs it so, on its own.
//
// Under the race detector (the README's go test) the requests take 200
// ms: the ratios follow from the workers' slots only while the CPU keeps
// up, and the detector multiplies this process's CPU per invocation about
// 4×, which on 2 cores shared with other packages' tests made the machine
// the bottleneck at 4 workers (wall(4) = 0.55 × wall(1) once).
//
// With -short the runs have 20 items and only the results, the caps and
// every worker's taking part are checked: Temporal's fixed costs
// (polling, plan and commit) would blur the ratios.
func TestScaleWithWorkers(t *testing.T) {
	temporaltest.Address(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	load := scaleLoad{runs: 4, items: 100, delay: 100 * time.Millisecond, nodeCap: 10, maxActivities: 5}
	if raceEnabled {
		load.delay = 200 * time.Millisecond
	}
	if testing.Short() {
		load.items = 20
	}
	rig := newScaleRig(t, load)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	wall := map[int]time.Duration{}
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			// A queue per configuration: the previous one's workers,
			// stopped, must not be offered its tasks.
			queue := fmt.Sprintf("%s-%d", rig.base, n)
			startWorkers(t, rig.dbPath, queue, n, load.maxActivities)
			wall[n] = rig.batch(ctx, t, queue, n).wall
		})
	}
	if t.Failed() || testing.Short() {
		return
	}
	if r := wall[2].Seconds() / wall[1].Seconds(); r >= 0.75 {
		t.Errorf("wall(2 workers) = %.2f × wall(1) (%s vs %s), want < 0.75", r, wall[2].Round(time.Millisecond), wall[1].Round(time.Millisecond))
	}
	if r := wall[4].Seconds() / wall[1].Seconds(); r >= 0.5 {
		t.Errorf("wall(4 workers) = %.2f × wall(1) (%s vs %s), want < 0.5", r, wall[4].Round(time.Millisecond), wall[1].Round(time.Millisecond))
	}
}

// BenchmarkScaleWithWorkers measures the load as it stands: 4
// runs × 100 requests of 100 ms, node cap 10, on 1, 2 and 4 workers of
// 5 activities each, reporting wall time, invocations/s and CPU per
// invocation (this process: workers, client, test server, SQLite; the
// dev server's when DEVTEMPORAL_PID names it). One batch takes 5–25 s,
// so run it once per configuration:
//
//	go test ./engine/temporal -run '^$' -bench ScaleWithWorkers -benchtime 1x
func BenchmarkScaleWithWorkers(b *testing.B) {
	temporaltest.Address(b)
	rig := newScaleRig(b, scaleLoad{runs: 4, items: 100, delay: 100 * time.Millisecond, nodeCap: 10, maxActivities: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			queue := fmt.Sprintf("%s-%d", rig.base, n)
			startWorkers(b, rig.dbPath, queue, n, rig.load.maxActivities)
			var f scaleFigures
			b.ResetTimer()
			for range b.N {
				f = rig.batch(ctx, b, queue, n)
			}
			b.ReportMetric(f.perSecond(), "invocations/s")
			b.ReportMetric(float64(f.cpu.Microseconds())/1000, "cpu-ms/invocation")
			if f.serverCPU >= 0 {
				b.ReportMetric(float64(f.serverCPU.Microseconds())/1000, "server-cpu-ms/invocation")
			}
		})
	}
}

// TestCapsAcrossWorkers checks that a run's caps hold however many
// workers serve it (issue 14): the workflow, not a worker, holds them.
// Each worker may run more activities at once (16) than any cap, so only
// the caps can keep the requests down. Four runs at once: two under a
// node cap of 10, two whose node takes a workflow pool of concurrency 3.
// The test server counts each run's requests in flight; besides never
// exceeding the cap, each run must have run several at once, or the
// check would say nothing (requests of 200 ms overlap even when a loaded
// machine starts the activities of a step some way apart).
func TestCapsAcrossWorkers(t *testing.T) {
	temporaltest.Address(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	c := temporaltest.Dial(t)
	dbPath := filepath.Join(t.TempDir(), "runs.db")
	st, err := store.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := newPerRun(200 * time.Millisecond)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	nodeCapped := compile(t, "node-cap.yaml", fmt.Sprintf(fetchEach, 1000, 10))
	pooled := compile(t, "pool-cap.yaml", fmt.Sprintf(fetchEach, 3, 1000))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	base := fmt.Sprintf("lgx-caps-%d", time.Now().UnixNano())
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			queue := fmt.Sprintf("%s-%d", base, n)
			startWorkers(t, dbPath, queue, n, 16)
			runs := []batchRun{
				{id: queue + "-node-a", g: nodeCapped, items: 30, cap: 10},
				{id: queue + "-pool-a", g: pooled, items: 12, cap: 3},
				{id: queue + "-node-b", g: nodeCapped, items: 30, cap: 10},
				{id: queue + "-pool-b", g: pooled, items: 12, cap: 3},
			}
			wall := runBatch(ctx, t, c, st, queue, hs.URL, srv, runs)
			maxes := []string{}
			for _, r := range runs {
				m := srv.maxInFlight(r.id)
				maxes = append(maxes, fmt.Sprintf("%s %d/%d", strings.TrimPrefix(r.id, queue+"-"), m, r.cap))
				if m < 2 {
					t.Errorf("run %s never had two requests in flight: the cap check is vacuous", r.id)
				}
			}
			t.Logf("%d workers: %s; max in flight/cap: %s", n, wall.Round(time.Millisecond), strings.Join(maxes, ", "))
		})
	}
}

// latencies summarises one run's history: how long its invoke
// activities waited in the task queue (scheduled → started), ran
// (started → completed), and how long its workflow tasks took
// (scheduled → completed), as medians and 90th percentiles.
func latencies(ctx context.Context, t testing.TB, c client.Client, runID string) string {
	t.Helper()
	sched := map[int64]time.Time{}
	started := map[int64]time.Time{}
	var queued, ran, wft []time.Duration
	var wftSched time.Time
	it := c.GetWorkflowHistory(ctx, runID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", runID, err)
		}
		at := e.GetEventTime().AsTime()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			sched[e.GetEventId()] = at
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			id := e.GetActivityTaskStartedEventAttributes().GetScheduledEventId()
			started[id] = at
			queued = append(queued, at.Sub(sched[id]))
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			id := e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			ran = append(ran, at.Sub(started[id]))
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			wftSched = at
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			wft = append(wft, at.Sub(wftSched))
		}
	}
	q := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "-"
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return fmt.Sprintf("%s/%s", ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)*9/10].Round(time.Millisecond))
	}
	return fmt.Sprintf("queued %s, ran %s, %d workflow tasks of %s (median/p90)", q(queued), q(ran), len(wft), q(wft))
}
