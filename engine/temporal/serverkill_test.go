package temporal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// killPort is the frontend port of the private dev server
// TestTemporalServerKill starts (it binds killPort..killPort+7): away
// from the shared one's 17233 so that killing it disturbs no other test.
// LGX_TEST_TEMPORAL_KILL_PORT overrides it.
const killPort = 17900

// postEach POSTs each url (so http_fetch sends an Idempotency-Key) two at
// a time.
const postEach = `
lgx: 1
name: post_each
state:
  urls: {type: list, required: true}
  pages: {type: list, reducer: append, default: []}
  n: {type: integer, default: 0}
nodes:
  post:
    type: http_fetch
    for_each: ${{ state.urls }}
    concurrency: 2
    with: {url: "${{ item }}", method: POST, body: "x"}
    output: {pages: "${{ result.body }}"}
  count:
    type: set
    output: {n: "${{ len(state.pages) }}"}
edges:
  - {from: START, to: post}
  - {from: post, to: count}
  - {from: count, to: END}
`

// TestTemporalServerKill SIGKILLs the Temporal server (a private dev
// server from DEVTEMPORAL_BIN) in the middle of a for_each, restarts it
// on the same data and ports, and checks that the run completes with a
// local run's output and state, and that no invocation whose response
// had come back (and been recorded) is sent again.
//
// Two outages: a restart at once, where the worker's reports of the
// invocations that finished meanwhile get through on the SDK's retries
// (it retries them for a minute); and one longer than the heartbeat
// timeout, where the server may time those activities out at restart
// and schedule new attempts, which find the invocations recorded.
func TestTemporalServerKill(t *testing.T) {
	bin := os.Getenv("DEVTEMPORAL_BIN")
	if bin == "" {
		t.Skip("DEVTEMPORAL_BIN not set: no dev server binary to start and kill (eval \"$(tools/devtemporal/start.sh)\" exports it)")
	}
	port := killPort
	if p := os.Getenv("LGX_TEST_TEMPORAL_KILL_PORT"); p != "" {
		var err error
		if port, err = strconv.Atoi(p); err != nil {
			t.Fatalf("LGX_TEST_TEMPORAL_KILL_PORT=%q: %v", p, err)
		}
	}
	for _, tc := range []struct {
		name   string
		outage time.Duration // from the kill to the restart
	}{
		{"restart at once", 0},
		{"restart after the heartbeat timeout", heartbeatTimeout + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { serverKill(t, bin, port, tc.outage) })
	}
}

func serverKill(t *testing.T, bin string, port int, outage time.Duration) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	data := t.TempDir()
	srv := startDevServer(ctx, t, bin, data, port)
	// One cleanup for whichever server runs last, registered before the
	// client's and the worker's: they stop first, while it still serves.
	t.Cleanup(func() { srv.kill(t) })
	addr := net127(port)
	c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: silentLogger()})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	lw := serve(t, c, "lgx-serverkill", 8)
	st, queue := lw.st, lw.queue

	keys := &keyLog{delay: 200 * time.Millisecond}
	hs := httptest.NewServer(keys)
	t.Cleanup(hs.Close)
	const items = 10
	urls := func(base string) []any {
		u := make([]any, items)
		for i := range u {
			u[i] = fmt.Sprintf("%s/doc/%d", base, i)
		}
		return u
	}
	g := compile(t, "post_each.yaml", postEach)
	want, lerr := local(t, g, map[string]any{"urls": urls(hs.URL)}, 0)
	if lerr != nil || want.Status != store.StatusCompleted {
		t.Fatalf("local run: %s (%v)", want.Status, lerr)
	}
	// The local run's keys (another run id) are not the Temporal run's.
	keys.reset()

	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, map[string]any{"urls": urls(hs.URL)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, c, queue, RunInput{RunID: runID}); err != nil {
		t.Fatal(err)
	}

	// Kill once 3 responses came back (recorded as they did): mid-step,
	// with 2 more in flight and 5 not sent.
	for keys.completed() < 3 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d responses before the deadline", keys.completed())
		case <-time.After(5 * time.Millisecond):
		}
	}
	killedAt := time.Now()
	doneAtKill := keys.completed()
	srv.kill(t)
	time.Sleep(outage)
	down := time.Now()
	srv = startDevServer(ctx, t, bin, data, port)
	t.Logf("server SIGKILLed after %d responses, %s into the test; restarted %s later on the same data in %s",
		doneAtKill, killedAt.Sub(began).Round(time.Millisecond), outage, time.Since(down).Round(time.Millisecond))

	out := awaitThroughOutage(ctx, t, c, runID)
	t.Logf("run %s %s after the kill (%d requests for %d items)", out.Status, time.Since(killedAt).Round(time.Millisecond), keys.total(), items)
	if out.Status != store.StatusCompleted {
		t.Fatalf("run %s (%s), want completed", out.Status, out.Error)
	}
	got, gerr := runner.Outcome(ctx, st, runID, nil)
	if got == nil {
		t.Fatalf("outcome: %v", gerr)
	}
	if g, w := jsonOf(t, got.Output), jsonOf(t, want.Output); g != w {
		t.Errorf("output:\n temporal %s\n local    %s", g, w)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state:\n temporal %s\n local    %s", g, w)
	}
	t.Logf("history: %s", retried(ctx, t, c, runID))
	for _, p := range keys.problems(items) {
		t.Error(p)
	}
}

// retried says how the run's activities recovered: the activity attempts
// after a first (the server timed one out and scheduled it again).
func retried(ctx context.Context, t *testing.T, c client.Client, runID string) string {
	t.Helper()
	retries, events := 0, 0
	for it := c.GetWorkflowHistory(ctx, runID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); events++ {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			retries++
		}
	}
	return fmt.Sprintf("%d events, %d activity attempts after a first", events, retries)
}

// devServer is a dev server process this test started.
type devServer struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
}

// startDevServer starts bin on data and port and waits (bounded by ctx)
// until it writes DATA/ready. The caller kills it (the data is
// throwaway); startDevServer does when it fails the test.
func startDevServer(ctx context.Context, t *testing.T, bin, data string, port int) *devServer {
	t.Helper()
	ready := filepath.Join(data, "ready")
	// A killed server leaves its ready file behind; the new one removes it
	// at start, but not before this test would have read it.
	if err := os.Remove(ready); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(data, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-data", data, "-port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	s := &devServer{cmd: cmd, done: make(chan struct{})}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.done) }()
	for {
		if _, err := os.Stat(ready); err == nil {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("dev server on port %d exited before it was ready (%v; ports %d..%d in use? set LGX_TEST_TEMPORAL_KILL_PORT):\n%s",
				port, waitErr, port, port+7, tail(filepath.Join(data, "stderr.log")))
		case <-ctx.Done():
			s.kill(t)
			t.Fatalf("dev server on port %d not ready: %v\n%s", port, ctx.Err(), tail(filepath.Join(data, "stderr.log")))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill SIGKILLs the server and waits for it to be gone (its ports free).
func (s *devServer) kill(t *testing.T) {
	select {
	case <-s.done:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill dev server: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Errorf("dev server pid %d still there 10 s after SIGKILL", s.cmd.Process.Pid)
	}
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func net127(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// awaitThroughOutage waits for the run's workflow to close, asking again
// while the server is unreachable or restarting (each call may fail with
// Unavailable until the frontend serves again).
func awaitThroughOutage(ctx context.Context, t *testing.T, c client.Client, runID string) *RunOutput {
	t.Helper()
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var out RunOutput
		err := c.GetWorkflow(actx, runID, "").Get(actx, &out)
		cancel()
		if err == nil {
			return &out
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("run %s did not end: %v (last: %v)", runID, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// silentLogger drops the SDK's warnings: while the server is down, the
// worker's pollers and heartbeats log an error a second.
func silentLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

// keyLog is a test server that answers every POST after delay and logs,
// per Idempotency-Key, when each request arrived and whether (and when)
// its response was written.
type keyLog struct {
	delay time.Duration
	mu    sync.Mutex
	sends map[string][]*keySend
	done  int
	n     int
}

type keySend struct {
	path       string
	start, end time.Time // end: zero until the response was written
}

func (k *keyLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		http.Error(w, "no Idempotency-Key", http.StatusBadRequest)
		return
	}
	s := &keySend{path: r.URL.Path, start: time.Now()}
	k.mu.Lock()
	if k.sends == nil {
		k.sends = map[string][]*keySend{}
	}
	k.sends[key] = append(k.sends[key], s)
	k.n++
	k.mu.Unlock()
	select {
	case <-time.After(k.delay):
	case <-r.Context().Done():
		return
	}
	fmt.Fprintf(w, "page %s", r.URL.Path)
	w.(http.Flusher).Flush()
	k.mu.Lock()
	s.end = time.Now()
	k.done++
	k.mu.Unlock()
}

func (k *keyLog) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sends, k.done, k.n = nil, 0, 0
}

func (k *keyLog) completed() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.done
}

func (k *keyLog) total() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// problems lists what breaks "each of the items' keys was sent, and none
// again after a response to it was written".
func (k *keyLog) problems(items int) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	if len(k.sends) != items {
		out = append(out, fmt.Sprintf("%d distinct Idempotency-Keys, want one per item (%d)", len(k.sends), items))
	}
	keys := make([]string, 0, len(k.sends))
	for key := range k.sends {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		sends := k.sends[key]
		var answered time.Time
		for i, s := range sends {
			if i > 0 && !answered.IsZero() && s.start.After(answered) {
				out = append(out, fmt.Sprintf("key %s (%s) sent again %s after its response was written (send %d of %d)",
					key, s.path, s.start.Sub(answered).Round(time.Millisecond), i+1, len(sends)))
			}
			if !s.end.IsZero() && (answered.IsZero() || s.end.Before(answered)) {
				answered = s.end
			}
		}
	}
	return out
}
