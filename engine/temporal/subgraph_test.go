package temporal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// A parent that calls a child workflow per item; the child fetches its
// pages under the run's pool api (3), which every child shares.
const subgraphParent = `
lgx: 1
name: parent
pools:
  api: {concurrency: 3}
state:
  base: {type: string, required: true}
  fail: {type: integer, default: -1}
  totals: {type: list, reducer: append, default: []}
nodes:
  each:
    type: subgraph
    for_each: ${{ [0, 1, 2, 3] }}
    retry: {attempts: 1}
    with:
      workflow: lib/child.yaml
      input: {base: "${{ state.base }}", n: "${{ item }}", fail: "${{ state.fail == item }}"}
    output: {totals: "${{ result.summary }}"}
  after:
    type: set
    output: {totals: done}
edges:
  - {from: START, to: each}
  - {from: each, to: after}
`

const subgraphChild = `
lgx: 1
name: child
pools:
  api: {concurrency: 3}
state:
  base: {type: string, required: true}
  n: {type: integer, required: true}
  fail: {type: boolean, default: false}
  pages: {type: list, reducer: append, default: []}
  summary: {type: string}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ [0, 1, 2] }}
    pool: api
    retry: {attempts: 1}
    with: {url: "${{ state.base }}/doc/${{ state.n }}/${{ item }}${{ state.fail && item == 1 ? '/fail' : '' }}"}
    output: {pages: "${{ result.body }}"}
  sum:
    type: template
    with: {template: "{{ .state.n }}: {{ len .state.pages }} pages"}
    output: summary
edges:
  - {from: START, to: fetch}
  - {from: fetch, to: sum}
`

// loadFiles writes files into a temporary directory and loads its
// main.yaml (with the subgraphs it names, read from there).
func loadFiles(t testing.TB, files map[string]string) *runner.Graph {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.TrimSpace(src)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g, err := runner.LoadGraph(filepath.Join(dir, "main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Subgraph invocations run their children step by step, each child
// invocation an activity under the run's caps: the state is a local run's,
// every page is fetched once, the shared pool's 3 hold across the four
// children, and a child's failure fails the run with the local message.
func TestSchedulerSubgraphs(t *testing.T) {
	g := loadFiles(t, map[string]string{"main.yaml": subgraphParent, "lib/child.yaml": subgraphChild})
	fetch := func(in InvokeInput) bool { return in.Child != nil && in.Child.Node == "fetch" }
	for _, fail := range []int{-1, 2} {
		t.Run(fmt.Sprintf("fail=%d", fail), func(t *testing.T) { schedulePages(t, g, fail, fetch) })
	}
}

// schedulePages runs g (whose leaf children fetch /doc/N/I from base, and
// /doc/N/1/fail from the leaf whose n is fail) on the SDK's test
// environment and checks it against a local run: the state or the error
// message the same, every page fetched once, by one activity each (those
// isFetch picks), and, without a failure, 12 pages fetched with 2 or 3
// (pool api) activities in flight at once.
func schedulePages(t *testing.T, g *runner.Graph, fail int, isFetch func(InvokeInput) bool) {
	srv := &flightServer{count: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	inputs := map[string]any{"base": hs.URL, "fail": fail}
	want, lerr := local(t, g, inputs, 0)
	// Requests the local run cancelled may reach the server after it
	// returned: let them land before counting afresh.
	time.Sleep(100 * time.Millisecond)
	srv.reset()
	st := store.NewMemory()
	runID := fmt.Sprintf("S%d", fail+1)
	if err := runner.SubmitRun(context.Background(), g, st, runID, inputs, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	fetches, cur, most := 0, 0, 0
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			if isFetch(in) {
				// Activities in flight, not requests: one worker's own
				// semaphores would hold requests to the pool even if
				// the workflow dispatched more.
				mu.Lock()
				fetches++
				cur++
				most = max(most, cur)
				mu.Unlock()
				defer func() { mu.Lock(); cur--; mu.Unlock() }()
			}
			return a.Invoke(ctx, in)
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: runID})
	srv.mu.Lock()
	top, count := srv.top, len(srv.count)
	for path, n := range srv.count {
		if n != 1 {
			t.Errorf("%s fetched %d times, want once", path, n)
		}
	}
	srv.mu.Unlock()
	if fail >= 0 {
		// No cap check: a failing child cancels its siblings, and the
		// SDK's test environment ends a cancelled activity's future at
		// once, while the activity still runs (the workflow sets
		// WaitForCancellation, which a real server honours and the test
		// environment ignores).
		_, err := runner.Outcome(context.Background(), st, runID, nil)
		if err == nil || lerr == nil || err.Error() != lerr.Error() {
			t.Errorf("error %v, local %v: want the same", err, lerr)
		}
		return
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	completedAsLocally(t, env, st, runID, want)
	if top > 3 || most > 3 {
		t.Errorf("%d requests and %d fetch activities in flight across the children, pool api allows 3", top, most)
	}
	if count != 12 || fetches != 12 {
		t.Errorf("%d pages fetched by %d fetch activities, want 12 by 12", count, fetches)
	}
	if top < 2 {
		t.Errorf("%d request in flight at most: the children should run in parallel", top)
	}
}

// A for_each of subgraph invocations large enough to be chunked is not:
// each item's child is dispatched step by step, and the run ends as a
// local run does.
func TestSchedulerManySubgraphs(t *testing.T) {
	g := loadFiles(t, map[string]string{
		"main.yaml": `lgx: 1
name: many
state:
  xs: {type: list, reducer: append, default: []}
nodes:
  each:
    type: subgraph
    for_each: ${{ 0..69 }}
    with: {workflow: leaf.yaml, input: {n: "${{ item }}"}}
    output: {xs: "${{ result.m }}"}
edges:
  - {from: START, to: each}
`,
		"leaf.yaml": `lgx: 1
name: leaf
state:
  n: {type: integer, required: true}
  m: {type: integer}
nodes:
  twice: {type: set, output: {m: "${{ state.n * 2 }}"}}
edges:
  - {from: START, to: twice}
`})
	want, err := local(t, g, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "M", nil, nil); err != nil {
		t.Fatal(err)
	}
	env := suiteEnv(t, st, nil)
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "M"})
	completedAsLocally(t, env, st, "M", want)
}

// A tools node inside a subgraph's child (an agent as a subgraph): its
// calls are activities the workflow schedules under the child's tools'
// pools, every request sent once, the state a local run's.
func TestSchedulerToolsInSubgraph(t *testing.T) {
	srv := &flightServer{delay: 20 * time.Millisecond, count: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	g := loadFiles(t, map[string]string{
		"main.yaml": `lgx: 1
name: outer
state:
  base: {type: string, required: true}
  log: {type: messages, default: []}
nodes:
  agent:
    type: subgraph
    with: {workflow: agent.yaml, input: {base: "${{ state.base }}"}}
    output: {log: "${{ result.messages }}"}
edges:
  - {from: START, to: agent}
`,
		"agent.yaml": toolsAgent})
	inputs := map[string]any{"base": hs.URL}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv.reset()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "A", inputs, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls, cur, most := 0, 0, 0
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			if in.Child != nil && in.Call > 0 {
				mu.Lock()
				calls++
				cur++
				most = max(most, cur)
				mu.Unlock()
				defer func() { mu.Lock(); cur--; mu.Unlock() }()
			}
			return a.Invoke(ctx, in)
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "A"})
	completedAsLocally(t, env, st, "A", want)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for path, n := range srv.count {
		if n != 1 {
			t.Errorf("%s requested %d times, want once", path, n)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 9 || most > 3 {
		t.Errorf("%d tool-call activities, at most %d in flight: want 9 (8 calls, then 1), at most 3 (pool api)", calls, most)
	}
}

// nestedTop calls nestedMid per item, which calls subgraphChild per item:
// a subgraph inside a subgraph, every level under the pool api (3).
const nestedTop = `lgx: 1
name: top
pools:
  api: {concurrency: 3}
state:
  base: {type: string, required: true}
  fail: {type: integer, default: -1}
  totals: {type: list, reducer: append, default: []}
nodes:
  each:
    type: subgraph
    for_each: ${{ [0, 1] }}
    with:
      workflow: mid.yaml
      input: {base: "${{ state.base }}", m: "${{ item }}", fail: "${{ state.fail }}"}
    output: {totals: "${{ result.line }}"}
edges:
  - {from: START, to: each}
`

const nestedMid = `lgx: 1
name: mid
pools:
  api: {concurrency: 3}
state:
  base: {type: string, required: true}
  m: {type: integer, required: true}
  fail: {type: integer, default: -1}
  sums: {type: list, reducer: append, default: []}
  line: {type: string}
nodes:
  inner:
    type: subgraph
    for_each: ${{ [0, 1] }}
    with:
      workflow: lib/child.yaml
      input: {base: "${{ state.base }}", n: "${{ state.m * 10 + item }}", fail: "${{ state.fail == state.m * 10 + item }}"}
    output: {sums: "${{ result.summary }}"}
  join:
    type: template
    with: {template: "{{ .state.m }}: {{ join \", \" .state.sums }}"}
    output: line
edges:
  - {from: START, to: inner}
  - {from: inner, to: join}
`

// A subgraph inside a subgraph: two children each call two grandchildren
// (subgraphChild), whose fetches the workflow dispatches a grandchild step
// at a time under the run's pool api (3), which all of them share. The
// state is a local run's, every page is fetched once by one activity, and
// a grandchild's failure fails the run with the local message.
func TestSchedulerNestedSubgraphs(t *testing.T) {
	g := loadFiles(t, map[string]string{"main.yaml": nestedTop, "mid.yaml": nestedMid, "lib/child.yaml": subgraphChild})
	fetch := func(in InvokeInput) bool {
		return in.Child != nil && in.Child.Child != nil && in.Child.Child.Node == "fetch"
	}
	for _, fail := range []int{-1, 11} {
		t.Run(fmt.Sprintf("fail=%d", fail), func(t *testing.T) { schedulePages(t, g, fail, fetch) })
	}
}

// A pool a child declares and its parent does not is each child's own, as
// in a local run: four children, each fetching 3 pages under its own
// pool of 2, have up to 2 requests in flight each, more than 2 in all.
func TestSchedulerChildOwnPools(t *testing.T) {
	var mu sync.Mutex
	cur, top := map[string]int{}, map[string]int{}
	total, most := 0, 0
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		child := strings.Split(r.URL.Path, "/")[2] // /doc/N/I
		mu.Lock()
		cur[child]++
		top[child] = max(top[child], cur[child])
		total++
		most = max(most, total)
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		cur[child]--
		total--
		mu.Unlock()
		fmt.Fprintf(w, "page %s", r.URL.Path)
	}))
	defer hs.Close()
	// subgraphChild under a parent that declares no pool api: each
	// child's api (2 here) is its own.
	g := loadFiles(t, map[string]string{
		"main.yaml":      strings.Replace(subgraphParent, "pools:\n  api: {concurrency: 3}\n", "", 1),
		"lib/child.yaml": strings.Replace(subgraphChild, "api: {concurrency: 3}", "api: {concurrency: 2}", 1)})
	inputs := map[string]any{"base": hs.URL}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	localMost := most
	clear(top)
	most = 0
	mu.Unlock()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "O", inputs, nil); err != nil {
		t.Fatal(err)
	}
	env := suiteEnv(t, st, nil)
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "O"})
	completedAsLocally(t, env, st, "O", want)
	mu.Lock()
	defer mu.Unlock()
	for child, n := range top {
		if n > 2 {
			t.Errorf("child %s had %d requests in flight, its pool allows 2", child, n)
		}
	}
	// Shared, the pool would allow 2 (3 had the parent's declaration
	// been left in): four children of 2 each go above both.
	if most <= 3 {
		t.Errorf("at most %d requests in flight in all (locally %d): the children's own pools were shared", most, localMost)
	}
}
