package temporal

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// inflight is an httptest server that counts the requests in flight and
// keeps the highest count; each request takes delay. A path ending in
// /fail answers 404.
type inflight struct {
	cur, max, total atomic.Int64
	delay           time.Duration
}

func (s *inflight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.cur.Add(1)
	defer s.cur.Add(-1)
	s.total.Add(1)
	for {
		m := s.max.Load()
		if n <= m || s.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(s.delay)
	if strings.HasSuffix(r.URL.Path, "/fail") {
		http.Error(w, "no such page", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "page %s", r.URL.Path)
}

// quietLogger keeps the SDK's debug lines out of test output.
func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// compile loads, validates and compiles a workflow text.
func compile(t testing.TB, name, src string) *runner.Graph {
	t.Helper()
	w, ds := spec.Load(name, []byte(src))
	if ds.HasErrors() {
		t.Fatalf("load: %v", ds.Errors())
	}
	if ds := spec.Validate(w); ds.HasErrors() {
		t.Fatalf("validate: %v", ds.Errors())
	}
	g, err := runner.Compile(w)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return g
}

// counting wraps the activities to observe the scheduler: the invoke
// activities outstanding at once, and the order of plans and commits.
type counting struct {
	a        *Activities
	mu       sync.Mutex
	cur, max int
	invokes  int
	log      []string
}

func (c *counting) Plan(ctx context.Context, in PlanInput) (*runner.StepPlan, error) {
	p, err := c.a.Plan(ctx, in)
	if err == nil {
		c.mu.Lock()
		c.log = append(c.log, fmt.Sprintf("plan %d done=%v", p.Step, p.Done))
		c.mu.Unlock()
	}
	return p, err
}

func (c *counting) Invoke(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
	c.mu.Lock()
	c.cur++
	c.invokes++
	c.max = max(c.max, c.cur)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.cur--
		c.mu.Unlock()
	}()
	return c.a.Invoke(ctx, in)
}

func (c *counting) Commit(ctx context.Context, in CommitInput) (*runner.StepResult, error) {
	r, err := c.a.Commit(ctx, in)
	if err == nil {
		c.mu.Lock()
		c.log = append(c.log, fmt.Sprintf("commit %d %s", r.Step, r.Status))
		c.mu.Unlock()
	}
	return r, err
}

// suiteEnv is the SDK's test environment running lgx.run, its activities
// served by a real Activities on st; with, when set, replaces some of them
// (by name) to observe or steer the scheduler.
func suiteEnv(t *testing.T, st store.Store, with func(env *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var ts testsuite.WorkflowTestSuite
	ts.SetLogger(quietLogger())
	env := ts.NewTestWorkflowEnvironment()
	a := &Activities{Store: st, Environ: []string{}}
	t.Cleanup(a.Close)
	acts := map[string]any{PlanActivity: a.Plan, InvokeActivity: a.Invoke, CommitActivity: a.Commit, CancelActivity: a.Cancel, ToolCallsActivity: a.ToolCalls}
	if with != nil {
		for name, fn := range with(env, a) {
			acts[name] = fn
		}
	}
	env.RegisterWorkflowWithOptions(Run, workflow.RegisterOptions{Name: WorkflowName})
	for name, fn := range acts {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	return env
}

// completedAsLocally checks that the workflow env ran completed the run
// and left the state the local run want left.
func completedAsLocally(t *testing.T, env *testsuite.TestWorkflowEnvironment, st store.Store, runID string, want *runner.Result) {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var out RunOutput
	if err := env.GetWorkflowResult(&out); err != nil || out.Status != store.StatusCompleted {
		t.Fatalf("run: %+v %v", out, err)
	}
	got, err := runner.Outcome(context.Background(), st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state:\n temporal %s\n local    %s", g, w)
	}
}

// runTestsuite runs a submitted run through lgx.run in the SDK's test
// environment, the activities served by the real Activities on st.
func runTestsuite(t *testing.T, st store.Store, runID string, concurrency int) (*RunOutput, *counting) {
	t.Helper()
	var c *counting
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		c = &counting{a: a}
		return map[string]any{PlanActivity: c.Plan, InvokeActivity: c.Invoke, CommitActivity: c.Commit}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: runID, Concurrency: concurrency})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	var out RunOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	return &out, c
}

// local runs g as `lgx run` does, recorded in a memory store.
func local(t *testing.T, g *runner.Graph, inputs map[string]any, concurrency int) (*runner.Result, error) {
	t.Helper()
	return runner.Run(context.Background(), g, runner.Options{Store: store.NewMemory(), Inputs: inputs, Environ: []string{}, Concurrency: concurrency})
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const fetchEach = `
lgx: 1
name: fetch_each
pools:
  site: {concurrency: %d}
state:
  urls: {type: list, required: true}
  pages: {type: list, reducer: append, default: []}
  n: {type: integer, default: 0}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ state.urls }}
    concurrency: %d
    pool: site
    with: {url: "${{ item }}"}
    output: {pages: "${{ result.body }}"}
  count:
    type: set
    output: {n: "${{ len(state.pages) }}"}
edges:
  - {from: START, to: fetch}
  - {from: fetch, to: count}
  - {from: count, to: END}
`

func TestSchedulerMatchesLocal(t *testing.T) {
	srv := &inflight{delay: 20 * time.Millisecond}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	hello, err := os.ReadFile(filepath.Join("..", "..", "workflows", "hello.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	research, err := os.ReadFile(filepath.Join("..", "..", "workflows", "research.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	urls := []any{}
	for i := range 7 {
		urls = append(urls, fmt.Sprintf("%s/doc/%d", hs.URL, i))
	}
	tests := []struct {
		name, src   string
		inputs      map[string]any
		concurrency int
		capMax      int // most invoke activities allowed outstanding at once
		steps       []string
	}{
		{name: "hello", src: string(hello), inputs: map[string]any{"name": "Ada"}, capMax: 2,
			steps: []string{"plan 1 done=false", "commit 1 running", "plan 2 done=false", "commit 2 completed"}},
		{name: "research", src: string(research), inputs: map[string]any{"query": "q", "urls": urls}, capMax: 3,
			steps: []string{"plan 1 done=false", "commit 1 running", "plan 2 done=false", "commit 2 completed"}},
		{name: "node cap 2", src: fmt.Sprintf(fetchEach, 100, 2), inputs: map[string]any{"urls": urls}, capMax: 2},
		{name: "pool cap 3", src: fmt.Sprintf(fetchEach, 3, 100), inputs: map[string]any{"urls": urls}, capMax: 3},
		{name: "global cap 1", src: fmt.Sprintf(fetchEach, 100, 100), inputs: map[string]any{"urls": urls}, concurrency: 1, capMax: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compile(t, tt.name+".yaml", tt.src)
			want, err := local(t, g, tt.inputs, tt.concurrency)
			if err != nil {
				t.Fatalf("local run: %v", err)
			}
			st := store.NewMemory()
			runID := "R-" + strings.ReplaceAll(tt.name, " ", "-")
			if err := runner.SubmitRun(context.Background(), g, st, runID, tt.inputs, nil); err != nil {
				t.Fatalf("submit: %v", err)
			}
			srv.max.Store(0)
			out, c := runTestsuite(t, st, runID, tt.concurrency)
			if out.Status != store.StatusCompleted {
				t.Fatalf("status %s (%s), want completed", out.Status, out.Error)
			}
			got, err := runner.Outcome(context.Background(), st, runID, nil)
			if err != nil {
				t.Fatalf("outcome: %v", err)
			}
			if g, w := jsonOf(t, got.Output), jsonOf(t, want.Output); g != w {
				t.Errorf("output:\n temporal %s\n local    %s", g, w)
			}
			if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
				t.Errorf("state:\n temporal %s\n local    %s", g, w)
			}
			if c.max > tt.capMax {
				t.Errorf("%d invoke activities outstanding at once, cap %d", c.max, tt.capMax)
			}
			if tt.steps == nil && c.max < tt.capMax {
				// Else the test environment ran them one by one and the
				// cap check above proves nothing.
				t.Errorf("at most %d invoke activities outstanding at once; the cap %d was never reached", c.max, tt.capMax)
			}
			if m := srv.max.Load(); m > int64(tt.capMax) {
				t.Errorf("%d requests in flight at once, cap %d", m, tt.capMax)
			}
			if tt.steps != nil && strings.Join(c.log, "; ") != strings.Join(tt.steps, "; ") {
				t.Errorf("steps: %q, want %q", c.log, tt.steps)
			}
		})
	}
}

func TestSchedulerFailureStopsRun(t *testing.T) {
	srv := &inflight{delay: 20 * time.Millisecond}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	// The second URL fails; with one invocation at a time the third and
	// later are never sent, and the step after is never planned.
	urls := []any{hs.URL + "/a", hs.URL + "/fail", hs.URL + "/c", hs.URL + "/d"}
	g := compile(t, "fail.yaml", fmt.Sprintf(fetchEach, 100, 1))
	inputs := map[string]any{"urls": urls}
	_, lerr := local(t, g, inputs, 0)
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "RF", inputs, nil); err != nil {
		t.Fatal(err)
	}
	before := srv.total.Load()
	out, c := runTestsuite(t, st, "RF", 0)
	if out.Status != store.StatusFailed || lerr == nil || out.Error != lerr.Error() {
		t.Fatalf("status %s, error %q; want failed with the local run's error %q", out.Status, out.Error, lerr)
	}
	if n := srv.total.Load() - before; n > 2 {
		t.Errorf("%d requests sent, want 2 (the rest of the step stopped at the failure)", n)
	}
	if want := "plan 1 done=false; commit 1 failed"; strings.Join(c.log, "; ") != want {
		t.Errorf("steps %q, want %q", c.log, want)
	}
	_, err := runner.Outcome(context.Background(), st, "RF", nil)
	if err == nil || err.Error() != lerr.Error() {
		t.Errorf("outcome error %v, want %v", err, lerr)
	}
}

// A cancelled lgx.run stops dispatching, records the run as cancelled at
// its step (resumable), and a local resume completes it with the state a
// run never cancelled has.
func TestSchedulerCancel(t *testing.T) {
	srv := &inflight{delay: 50 * time.Millisecond}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	urls := []any{}
	for i := range 6 {
		urls = append(urls, fmt.Sprintf("%s/doc/%d", hs.URL, i))
	}
	g := compile(t, "cancel.yaml", fmt.Sprintf(fetchEach, 100, 1))
	inputs := map[string]any{"urls": urls}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "RC", inputs, nil); err != nil {
		t.Fatal(err)
	}
	before := srv.total.Load()
	var invokes atomic.Int64
	env := suiteEnv(t, st, func(env *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			if invokes.Add(1) == 2 { // Ctrl-C while the second item runs
				env.CancelWorkflow()
			}
			return a.Invoke(ctx, in)
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "RC"})
	var out RunOutput
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if out.Status != store.StatusCancelled || out.Error != "run cancelled at step 1: context canceled" {
		t.Fatalf("outcome %+v, want cancelled at step 1", out)
	}
	if n := srv.total.Load() - before; n > 2 {
		t.Errorf("%d requests sent before the cancellation took effect, want at most 2 (one at a time, the third never sent)", n)
	}
	res, err := runner.Resume(context.Background(), st, "RC", runner.Options{Environ: []string{}})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if g, w := jsonOf(t, res.State), jsonOf(t, want.State); g != w {
		t.Errorf("state after resume:\n %s\nwant\n %s", g, w)
	}
}
