package temporal

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/temporaltest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// TestTemporalMatchesLocal runs example workflows locally and through
// lgx.run on the dev server (tools/devtemporal) with a worker in this
// process, both recording in one SQLite file each side opens, and
// compares the final state and output byte for byte; a caps case counts
// the requests in flight at the test server.
func TestTemporalMatchesLocal(t *testing.T) {
	temporaltest.Address(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	c := temporaltest.Dial(t)
	dbPath := filepath.Join(t.TempDir(), "runs.db")
	workerStore, err := store.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { workerStore.Close() })
	clientStore, err := store.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clientStore.Close() })

	queue := fmt.Sprintf("lgx-test-%d", time.Now().UnixNano())
	acts := &Activities{Store: workerStore, Environ: []string{}}
	w, err := NewWorker(c, acts, WorkerOptions{TaskQueue: queue, MaxActivities: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(acts.Close)
	t.Cleanup(w.Stop)

	srv := &inflight{delay: 30 * time.Millisecond}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	urls := []any{}
	for i := range 9 {
		urls = append(urls, fmt.Sprintf("%s/doc/%d", hs.URL, i))
	}
	example := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name, src   string
		inputs      map[string]any
		concurrency int
		capMax      int64 // requests in flight allowed at once (0: not checked)
		status      store.Status
	}{
		{name: "hello", src: example("hello.yaml"), inputs: map[string]any{"name": "Ada"}, status: store.StatusCompleted},
		{name: "research", src: example("research.yaml"), inputs: map[string]any{"query": "q", "urls": urls}, capMax: 3, status: store.StatusCompleted},
		{name: "pool cap 2", src: fmt.Sprintf(fetchEach, 2, 100), inputs: map[string]any{"urls": urls}, capMax: 2, status: store.StatusCompleted},
		{name: "global cap 4", src: fmt.Sprintf(fetchEach, 100, 100), inputs: map[string]any{"urls": urls}, concurrency: 4, capMax: 4, status: store.StatusCompleted},
		{name: "loop", src: loopFetch, inputs: map[string]any{"urls": urls[:3]}, capMax: 2, status: store.StatusCompleted},
		{name: "failure", src: fmt.Sprintf(fetchEach, 100, 1), inputs: map[string]any{"urls": []any{hs.URL + "/a", hs.URL + "/fail", hs.URL + "/c"}}, status: store.StatusFailed},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compile(t, tt.name+".yaml", tt.src)
			want, lerr := local(t, g, tt.inputs, tt.concurrency)
			if want.Status != tt.status {
				t.Fatalf("local run: %s (%v), want %s", want.Status, lerr, tt.status)
			}
			runID := fmt.Sprintf("%s-%s", queue, strings.ReplaceAll(tt.name, " ", "-"))
			if err := runner.SubmitRun(ctx, g, clientStore, runID, tt.inputs, nil); err != nil {
				t.Fatalf("submit: %v", err)
			}
			srv.max.Store(0)
			began := time.Now()
			wr, err := Start(ctx, c, queue, RunInput{RunID: runID, Concurrency: tt.concurrency})
			if err != nil {
				t.Fatal(err)
			}
			out, err := Await(ctx, wr)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s in %s", tt.name, out.Status, time.Since(began).Round(time.Millisecond))
			if out.Status != tt.status {
				t.Fatalf("status %s (%s), want %s", out.Status, out.Error, tt.status)
			}
			got, gerr := runner.Outcome(ctx, clientStore, runID, nil)
			if got == nil {
				t.Fatalf("outcome: %v", gerr)
			}
			if fmt.Sprint(gerr) != fmt.Sprint(lerr) {
				t.Errorf("error:\n temporal %v\n local    %v", gerr, lerr)
			}
			if g, w := jsonOf(t, got.Output), jsonOf(t, want.Output); g != w {
				t.Errorf("output:\n temporal %s\n local    %s", g, w)
			}
			if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
				t.Errorf("state:\n temporal %s\n local    %s", g, w)
			}
			if m := srv.max.Load(); tt.capMax > 0 && m > tt.capMax {
				t.Errorf("%d requests in flight at once, cap %d", m, tt.capMax)
			}
		})
	}
}

// TestTemporalCost measures what an invocation costs on Temporal beyond
// its own work, with a worker in this process: one at a time (latency
// per activity) and 10 at a time (throughput), each node a 20 ms request.
// CPU is the whole test process's (worker, client, test server, SQLite),
// an upper bound on the worker's. It asserts only that the runs complete;
// the figures are logged (go test -v).
func TestTemporalCost(t *testing.T) {
	temporaltest.Address(t)
	c := temporaltest.Dial(t)
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	queue := fmt.Sprintf("lgx-cost-%d", time.Now().UnixNano())
	acts := &Activities{Store: st, Environ: []string{}}
	w, err := NewWorker(c, acts, WorkerOptions{TaskQueue: queue, MaxActivities: 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(acts.Close)
	t.Cleanup(w.Stop)
	const work = 20 * time.Millisecond
	hs := httptest.NewServer(&inflight{delay: work})
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		n, conc int
	}{
		{"serial", 20, 1},
		{"cap 10", 100, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			urls := make([]any, tc.n)
			for i := range urls {
				urls[i] = fmt.Sprintf("%s/doc/%d", hs.URL, i)
			}
			g := compile(t, "cost.yaml", fmt.Sprintf(fetchEach, 100, 100))
			inputs := map[string]any{"urls": urls}
			t0, c0 := time.Now(), cpuTime()
			if _, err := local(t, g, inputs, tc.conc); err != nil {
				t.Fatal(err)
			}
			lw, lc := time.Since(t0), cpuTime()-c0
			runID := fmt.Sprintf("%s-%d", queue, tc.n)
			if err := runner.SubmitRun(ctx, g, st, runID, inputs, nil); err != nil {
				t.Fatal(err)
			}
			t0, c0 = time.Now(), cpuTime()
			s0 := serverCPU()
			wr, err := Start(ctx, c, queue, RunInput{RunID: runID, Concurrency: tc.conc})
			if err != nil {
				t.Fatal(err)
			}
			out, err := Await(ctx, wr)
			if err != nil || out.Status != store.StatusCompleted {
				t.Fatalf("run: %v %+v", err, out)
			}
			tw, tcpu := time.Since(t0), cpuTime()-c0
			inv := time.Duration(tc.n + 1) // the for_each items and the set node
			events := 0
			for it := c.GetWorkflowHistory(ctx, runID, wr.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); events++ {
				if _, err := it.Next(); err != nil {
					t.Fatalf("history: %v", err)
				}
			}
			t.Logf("history: %d events, %.1f per invocation", events, float64(events)/float64(inv))
			if s0 >= 0 {
				t.Logf("Temporal server: %s CPU/invocation", ((serverCPU() - s0) / inv).Round(time.Microsecond))
			}
			t.Logf("%d invocations of a %s request, %d at a time: local %s wall, %s CPU/invocation; temporal %s wall (%.0f invocations/s), %s CPU/invocation, %s wall overhead/invocation at one at a time",
				tc.n, work, tc.conc, lw.Round(time.Millisecond), (lc / inv).Round(time.Microsecond),
				tw.Round(time.Millisecond), float64(inv)/tw.Seconds(), (tcpu / inv).Round(time.Microsecond),
				((tw - lw) * time.Duration(tc.conc) / inv).Round(time.Millisecond))
		})
	}
}

// serverCPU is the dev server's CPU time so far, from /proc, when
// DEVTEMPORAL_PID names it (tools/devtemporal/start.sh exports it); -1
// when unknown.
func serverCPU() time.Duration {
	pid := os.Getenv("DEVTEMPORAL_PID")
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if pid == "" || err != nil {
		return -1
	}
	// Fields after the command name (which ends with ')'): state is 3,
	// utime 14 and stime 15, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.Atoi(f[11])
	st, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopFetch is agent-shaped: a node that fetches under a cap of 2 and a
// conditional back edge that runs it again until three rounds are done;
// every round's writes append, and a set node counts the rounds.
const loopFetch = `
lgx: 1
name: loop
state:
  urls: {type: list, required: true}
  pages: {type: list, reducer: append, default: []}
  rounds: {type: integer, reducer: sum, default: 0}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ state.urls }}
    concurrency: 2
    with: {url: "${{ item }}"}
    output: {pages: "${{ result.body }}"}
  count:
    type: set
    output: {rounds: 1}
edges:
  - {from: START, to: fetch}
  - {from: fetch, to: count}
  - from: count
    when:
      - {if: "state.rounds < 3", to: fetch}
    else: END
`
