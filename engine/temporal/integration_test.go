package temporal

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/temporaltest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// goleakIgnores are the SDK's process-wide goroutines that outlive any
// one client or worker: the gRPC resolver and balancer goroutines it
// leaves behind briefly after Close, and the shared sticky-cache
// eviction loop, started once per process.
var goleakIgnores = []goleak.Option{
	goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal.(*sharedWorkerCache).evictionLoop"),
	goleak.IgnoreAnyFunction("go.temporal.io/sdk/internal/common/cache.(*lru).evictionLoop"),
}

// TestTemporalMatchesLocal runs example workflows locally and through
// lgx.run on the dev server (tools/devtemporal) with a worker in this
// process, both recording in one SQLite file each side opens, and
// compares the final state and output byte for byte; a caps case counts
// the requests in flight at the test server.
func TestTemporalMatchesLocal(t *testing.T) {
	temporaltest.Address(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, append(goleakIgnores, ignore)...) })
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
	w := NewWorker(c, acts, WorkerOptions{TaskQueue: queue, MaxActivities: 8})
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
			got, gerr := runner.Outcome(ctx, clientStore, runID)
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
