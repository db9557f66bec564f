package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// buildLGX builds the real lgx binary once per test binary.
var buildLGX = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lgx-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lgx")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// postServer records every POST /items/N with its Idempotency-Key, answers
// after a short delay, and reports what it saw.
type postServer struct {
	mu    sync.Mutex
	seen  map[string][]string // item -> idempotency keys, in arrival order
	delay time.Duration
	total int
	// killAt closes reached when the killAt-th request arrives.
	killAt  int
	reached chan struct{}
}

func (p *postServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "want POST", http.StatusMethodNotAllowed)
		return
	}
	item := strings.TrimPrefix(r.URL.Path, "/items/")
	var body struct {
		N int `json:"n"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	p.mu.Lock()
	p.seen[item] = append(p.seen[item], r.Header.Get("Idempotency-Key"))
	p.total++
	if p.total == p.killAt {
		close(p.reached)
	}
	p.mu.Unlock()
	select {
	case <-time.After(p.delay):
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"item": %q, "square": %d}`, item, body.N*body.N)
}

func (p *postServer) snapshot() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string][]string, len(p.seen))
	for k, v := range p.seen {
		out[k] = append([]string(nil), v...)
	}
	return out
}

const crashWorkflow = `lgx: 1
name: crash
state:
  items:   {type: list, default: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}
  squares: {type: list, reducer: append, default: []}
  done:    {type: boolean, default: false}
nodes:
  post:
    type: http_fetch
    for_each: ${{ state.items }}
    concurrency: 4
    with:
      url: "${{ env.ITEMS_URL }}/items/${{ item }}"
      method: POST
      json: {n: "${{ item }}"}
    output:
      squares: ${{ result.json.square }}
  finish:
    type: set
    output: {done: true}
edges:
  - {from: START, to: post}
  - {from: post, to: finish}
output: [squares, done]
`

// TestKillAndResume starts a run of 20 POSTs (4 in flight), SIGKILLs the
// real binary at many different moments, resumes, and checks that the final
// state equals an uninterrupted run's, that no item whose writes were
// recorded was sent again, and that every re-sent item reused its key.
func TestKillAndResume(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wf := filepath.Join(dir, "crash.yaml")
	if err := os.WriteFile(wf, []byte(crashWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"done": true, "squares": []any{}}
	for i := 1; i <= 20; i++ {
		want["squares"] = append(want["squares"].([]any), float64(i*i))
	}

	partial := 0 // kills that landed with some, but not all, items recorded
	defer func() {
		if partial < 3 {
			t.Errorf("only %d kills landed mid-run; the test no longer exercises resume", partial)
		}
	}()
	// Kill when the server has received the k-th request (deterministic
	// under any load), plus a moment later so that some kills land between
	// a response and its record, or between steps.
	type killPoint struct {
		request int
		after   time.Duration
	}
	points := []killPoint{{1, 0}, {2, 5}, {4, 0}, {5, 21}, {8, 0}, {10, 10}, {13, 0}, {16, 25}, {19, 0}, {20, 22}, {20, 200}}
	for _, kp := range points {
		name := fmt.Sprintf("request%d+%dms", kp.request, kp.after)
		killAfter := kp.after * time.Millisecond
		t.Run(name, func(t *testing.T) {
			srv := &postServer{seen: map[string][]string{}, delay: 20 * time.Millisecond, killAt: kp.request, reached: make(chan struct{})}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			home := filepath.Join(t.TempDir(), "lgx")
			env := append(os.Environ(), "LGX_HOME="+home, "ITEMS_URL="+ts.URL, "CI=true")

			// Start the run and kill it.
			cmd := exec.Command(bin, "run", wf)
			cmd.Env = env
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			cmd.Stdout = io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			runID := waitForRunID(t, stderr)
			select {
			case <-srv.reached:
			case <-time.After(20 * time.Second):
				t.Fatalf("server never saw request %d", kp.request)
			}
			time.Sleep(killAfter)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			before := srv.snapshot()

			// What the store recorded before the kill.
			recorded, status := recordedItems(t, filepath.Join(home, "lgx.db"), runID)
			t.Logf("killed after %v: status %s, %d of 20 items recorded", killAfter, status, len(recorded))
			if len(recorded) > 0 && len(recorded) < 20 {
				partial++
			}
			if status == store.StatusCompleted {
				// The run finished before the kill: nothing to resume, and
				// every item was sent exactly once.
				for i := 1; i <= 20; i++ {
					if n := len(before[fmt.Sprint(i)]); n != 1 {
						t.Errorf("item %d sent %d times", i, n)
					}
				}
				return
			}

			res := exec.Command(bin, "resume", runID, "-o", "json")
			res.Env = env
			var out, errOut bytes.Buffer
			res.Stdout, res.Stderr = &out, &errOut
			if resumeErr := res.Run(); resumeErr != nil {
				t.Fatalf("resume: %v\n%s", resumeErr, errOut.String())
			}
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("resume output %q: %v", out.String(), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("final state after kill at %v:\n got %v\nwant %v", killAfter, got, want)
			}
			after := srv.snapshot()
			for item, keys := range after {
				sentBefore := len(before[item])
				if recorded[item] && len(keys) > sentBefore {
					t.Errorf("item %s had recorded writes but was sent again on resume", item)
				}
				for _, k := range keys {
					if k == "" || k != keys[0] {
						t.Errorf("item %s: idempotency keys differ across sends: %q", item, keys)
						break
					}
				}
			}
			for i := 1; i <= 20; i++ {
				if len(after[fmt.Sprint(i)]) == 0 {
					t.Errorf("item %d never sent", i)
				}
			}
		})
	}
}

var runIDLine = regexp.MustCompile(`(?m)^run (\S+)`)

func waitForRunID(t *testing.T, stderr *syncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := runIDLine.FindStringSubmatch(stderr.String()); m != nil {
			return m[1]
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no run id on stderr: %q", stderr.String())
	return ""
}

// recordedItems returns the for_each items (as "1".."20") whose writes the
// store holds, and the run's recorded status.
func recordedItems(t *testing.T, db, runID string) (map[string]bool, store.Status) {
	t.Helper()
	run, invs := loadRecords(t, db, runID)
	rec := map[string]bool{}
	for _, inv := range invs {
		if inv.Status == store.InvocationOK && inv.Node == "post" {
			rec[fmt.Sprint(inv.Index+1)] = true
		}
	}
	return rec, run.Status
}

// loadRecords reads a run (its status as readers see it) and its
// invocation records from the SQLite store at db.
func loadRecords(t *testing.T, db, runID string) (*store.Run, []*store.Invocation) {
	t.Helper()
	s, err := store.OpenSQLite(db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run, err := s.GetRun(context.Background(), runID)
	if err != nil {
		t.Fatalf("run %s not recorded: %v", runID, err)
	}
	invs, err := s.Invocations(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	return run, invs
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const pureLoopWorkflow = `lgx: 1
name: pureloop
config: {recursion_limit: 10000}
state:
  i:   {type: integer, default: 0}
  acc: {type: integer, default: 0}
  log: {type: list, reducer: append, default: []}
nodes:
  step:
    type: set
    output: {i: "${{ state.i + 1 }}"}
  check:
    type: template
    with: {template: "{{ .state.i }}"}
    output: {acc: "${{ state.acc + state.i }}", log: "${{ state.i % 500 == 0 ? result : [] }}"}
edges:
  - {from: START, to: step}
  - {from: step, to: check}
  - from: check
    when:
      - {if: state.i < 3000, to: step}
    else: END
output: [i, acc, log]
`

// TestKillAndResumePureLoop kills a run of 6,000 side-effect-free steps
// (recorded in batches) at several moments and checks that resume reaches
// exactly the state of an uninterrupted run: steps lost with an unrecorded
// batch are run again with the same result.
func TestKillAndResumePureLoop(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wf := filepath.Join(dir, "pureloop.yaml")
	if err := os.WriteFile(wf, []byte(pureLoopWorkflow), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": 3000.0, "acc": 4501500.0, "log": []any{"500", "1000", "1500", "2000", "2500", "3000"}}
	resumedMidRun := 0
	for _, after := range []time.Duration{20, 60, 120, 200} {
		after *= time.Millisecond
		t.Run(after.String(), func(t *testing.T) {
			env := append(os.Environ(), "LGX_HOME="+filepath.Join(t.TempDir(), "lgx"), "CI=true")
			cmd := exec.Command(bin, "run", wf)
			cmd.Env = env
			stderr := &syncBuffer{}
			cmd.Stderr, cmd.Stdout = stderr, io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			runID := waitForRunID(t, stderr)
			time.Sleep(after)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()

			res := exec.Command(bin, "resume", runID, "-o", "json")
			res.Env = env
			var out, errOut bytes.Buffer
			res.Stdout, res.Stderr = &out, &errOut
			if err := res.Run(); err != nil {
				if strings.Contains(errOut.String(), "nothing to resume") {
					return // finished before the kill
				}
				t.Fatalf("resume: %v\n%s", err, errOut.String())
			}
			resumedMidRun++
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("resume output %q: %v", out.String(), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("after a kill at %v and resume:\n got %v\nwant %v", after, got, want)
			}
		})
	}
	if resumedMidRun == 0 {
		t.Error("every run finished before its kill; the test exercised no resume")
	}
}

// The agent-shaped crash test: a for_each subgraph whose child POSTs a
// charge, then has a tools node POST two notifications. The parent file
// names the child by a relative path, and resume runs from another
// directory.
var subgraphCrashFiles = map[string]string{
	"flows/orders.yaml": `lgx: 1
name: orders
state:
  orders:  {type: list, default: [1, 2, 3, 4, 5, 6]}
  results: {type: list, reducer: append, default: []}
nodes:
  each:
    type: subgraph
    for_each: ${{ state.orders }}
    concurrency: 3
    with: {workflow: lib/order.yaml, input: {n: "${{ item }}"}}
    output: {results: "${{ result.summary }}"}
edges:
  - {from: START, to: each}
output: [results]
`,
	"flows/lib/order.yaml": `lgx: 1
name: order
state:
  n: integer
  square: integer
  calls: list
  summary: string
tools:
  notify:
    description: Notify about an order
    parameters: {type: object, properties: {n: {type: integer}, k: {type: integer}}, required: [n, k]}
    node:
      type: http_fetch
      with: {url: "${{ env.ITEMS_URL }}/items/${{ args.n }}-${{ args.k }}", method: POST, json: {n: "${{ args.k }}"}}
    output: ${{ result.json.square }}
nodes:
  charge:
    type: http_fetch
    with: {url: "${{ env.ITEMS_URL }}/items/${{ state.n }}", method: POST, json: {n: "${{ state.n }}"}}
    output: {square: "${{ result.json.square }}"}
  plan:
    type: template
    with:
      format: json
      template: '[{"id": "a{{ .state.n }}", "name": "notify", "arguments": {"n": {{ .state.n }}, "k": 2}}, {"id": "b{{ .state.n }}", "name": "notify", "arguments": {"n": {{ .state.n }}, "k": 3}}]'
    output: {calls: "${{ result }}"}
  notify_all:
    type: tools
    with: {calls: "${{ state.calls }}"}
    output: {summary: "${{ string(state.n) + ':' + string(state.square) + ':' + join(map(result.messages, .content), ',') }}"}
edges:
  - {from: START, to: charge}
  - {from: charge, to: plan}
  - {from: plan, to: notify_all}
`,
}

// TestKillAndResumeSubgraphsAndTools SIGKILLs the real binary at many
// moments of the subgraph workflow, resumes from another directory, and
// checks that the final state equals an uninterrupted run's, that no
// invocation recorded before the kill (a charge, a tool call, a whole
// child) was sent again, and that re-sent ones reused their key.
func TestKillAndResumeSubgraphsAndTools(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, src := range subgraphCrashFiles {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var want []any
	for n := 1; n <= 6; n++ {
		want = append(want, fmt.Sprintf("%d:%d:4,9", n, n*n))
	}
	partial := 0
	for _, kp := range []struct {
		request int
		after   time.Duration
	}{{1, 0}, {3, 5}, {5, 0}, {7, 21}, {9, 0}, {11, 10}, {13, 0}, {15, 22}, {17, 0}, {18, 30}} {
		t.Run(fmt.Sprintf("request%d+%dms", kp.request, kp.after), func(t *testing.T) {
			srv := &postServer{seen: map[string][]string{}, delay: 20 * time.Millisecond, killAt: kp.request, reached: make(chan struct{})}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			home := filepath.Join(t.TempDir(), "lgx")
			env := append(os.Environ(), "LGX_HOME="+home, "ITEMS_URL="+ts.URL, "CI=true")

			cmd := exec.Command(bin, "run", filepath.Join("flows", "orders.yaml"))
			cmd.Dir, cmd.Env = dir, env
			stderr := &syncBuffer{}
			cmd.Stderr, cmd.Stdout = stderr, io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			runID := waitForRunID(t, stderr)
			select {
			case <-srv.reached:
			case <-time.After(20 * time.Second):
				t.Fatalf("server never saw request %d; stderr:\n%s", kp.request, stderr.String())
			}
			time.Sleep(kp.after * time.Millisecond)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			before := srv.snapshot()
			recorded, status := recordedPaths(t, filepath.Join(home, "lgx.db"), runID)
			if status == store.StatusCompleted {
				return
			}
			if status != store.StatusStale {
				t.Errorf("a killed run shows %s, want stale", status)
			}
			if len(recorded) > 0 {
				partial++
			}

			res := exec.Command(bin, "resume", runID, "-o", "json")
			res.Dir, res.Env = t.TempDir(), env // another directory: the texts come from the store
			var out, errOut bytes.Buffer
			res.Stdout, res.Stderr = &out, &errOut
			if err := res.Run(); err != nil {
				t.Fatalf("resume: %v\n%s", err, errOut.String())
			}
			var got map[string]any
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("resume output %q: %v", out.String(), err)
			}
			if !reflect.DeepEqual(got["results"], want) {
				t.Errorf("final state:\n got %v\nwant %v", got["results"], want)
			}
			prefix := "lgx-" + runID + "-"
			for item, keys := range srv.snapshot() {
				for _, k := range keys {
					if !strings.HasPrefix(k, prefix) || k != keys[0] {
						t.Errorf("item %s: keys %q (want one key, lgx-RUN-PATH)", item, keys)
						break
					}
				}
				path := strings.TrimPrefix(keys[0], prefix)
				if len(keys) > len(before[item]) && recordedUnder(recorded, path) {
					t.Errorf("item %s (%s) was recorded before the kill but sent again on resume", item, path)
				}
			}
			if n := len(srv.snapshot()); n != 18 {
				t.Errorf("%d of 18 items sent", n)
			}
		})
	}
	if partial < 3 {
		t.Errorf("only %d kills landed with some invocations recorded; the test no longer exercises resume", partial)
	}
}

// recordedUnder reports whether path, or an invocation it runs inside
// (a subgraph child, a tools node), was recorded as finished.
func recordedUnder(recorded map[string]bool, path string) bool {
	for p := path; ; {
		if recorded[p] {
			return true
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// recordedPaths returns the paths of the invocations the store holds as
// finished, and the run's status as readers see it.
func recordedPaths(t *testing.T, db, runID string) (map[string]bool, store.Status) {
	t.Helper()
	run, invs := loadRecords(t, db, runID)
	rec := map[string]bool{}
	for _, inv := range invs {
		if inv.Status == store.InvocationOK {
			rec[inv.Path] = true
		}
	}
	return rec, run.Status
}
