package temporal

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// keyServer counts the requests in flight per key (the first path
// segment) and in all.
type keyServer struct {
	mu       sync.Mutex
	cur, max map[string]int
	all, top int
}

func (s *keyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	s.mu.Lock()
	s.cur[key]++
	s.max[key] = max(s.max[key], s.cur[key])
	s.all++
	s.top = max(s.top, s.all)
	s.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	s.mu.Lock()
	s.cur[key]--
	s.all--
	s.mu.Unlock()
	w.Write([]byte("ok " + r.URL.Path))
}

const keyedFetch = `
lgx: 1
name: keyed
pools:
  hosts: {concurrency: 3, per_key: {concurrency: 1}}
state:
  urls: {type: list, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ state.urls }}
    pool: {name: hosts, key: "${{ split(item, '/')[3] }}"}
    with: {url: "${{ item }}"}
    output: {pages: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
`

// A keyed pool's caps are held by the workflow per key: the plan numbers
// the invocations' keys (classes, not values), one request per host at a
// time, at most 3 in all, hosts in parallel; the state is a local run's.
func TestSchedulerKeyedPool(t *testing.T) {
	srv := &keyServer{cur: map[string]int{}, max: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var urls []any
	for i := range 12 {
		urls = append(urls, hs.URL+"/"+[]string{"a", "b", "c", "d"}[i/3]+"/doc")
	}
	g := compile(t, "keyed.yaml", keyedFetch)
	want, err := local(t, g, map[string]any{"urls": urls}, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	clear(srv.max)
	srv.top = 0
	srv.mu.Unlock()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "K", map[string]any{"urls": urls}, nil); err != nil {
		t.Fatal(err)
	}
	var plan *runner.StepPlan
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{PlanActivity: func(ctx context.Context, in PlanInput) (*runner.StepPlan, error) {
			p, err := a.Plan(ctx, in)
			if err == nil && plan == nil && !p.Done {
				plan = p
			}
			return p, err
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "K"})
	completedAsLocally(t, env, st, "K", want)
	if keys := plan.Nodes[0].Keys; jsonOf(t, keys) != "[0,0,0,1,1,1,2,2,2,3,3,3]" {
		t.Errorf("key classes %v, want hosts a b c d numbered in order of first use", keys)
	}
	if hist := jsonOf(t, plan); strings.Contains(hist, hs.URL) {
		t.Errorf("the plan holds a key's value: %s", hist)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for key, m := range srv.max {
		if m > 1 {
			t.Errorf("host %s: %d requests in flight, per_key concurrency 1", key, m)
		}
	}
	if srv.top > 3 || srv.top < 2 {
		t.Errorf("%d requests in flight at most: want 2–3 (the pool's 3 bound all hosts, which run in parallel)", srv.top)
	}
}

// keyedChildParent calls keyedChild, whose keyed pool hosts only it
// declares, for two items.
const keyedChildParent = `lgx: 1
name: parent
state:
  base: {type: string, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  each:
    type: subgraph
    for_each: ${{ [0, 1] }}
    with: {workflow: child.yaml, input: {base: "${{ state.base }}", n: "${{ item }}"}}
    output: {pages: "${{ result.pages }}"}
edges:
  - {from: START, to: each}
`

const keyedChild = `lgx: 1
name: child
pools:
  hosts: {concurrency: 3, per_key: {concurrency: 1}}
state:
  base: {type: string, required: true}
  n: {type: integer, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ ["a", "a", "a", "b", "b", "b"] }}
    pool: {name: hosts, key: "${{ item }}"}
    with: {url: "${{ state.base }}/${{ state.n }}-${{ item }}/${{ index }}"}
    output: {pages: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
`

// A keyed pool that a subgraph's child alone declares is each child
// invocation's own, as locally: the workflow holds its keys' caps per
// child step (the child's plan numbers its keys). Two children fetch from
// hosts a and b, three pages each: one request per host and child at a
// time, at most 3 per child; the state is a local run's.
func TestSchedulerKeyedPoolInChild(t *testing.T) {
	srv := &keyServer{cur: map[string]int{}, max: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	g := loadFiles(t, map[string]string{
		"main.yaml": keyedChildParent, "child.yaml": keyedChild})
	inputs := map[string]any{"base": hs.URL}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	clear(srv.max)
	srv.top = 0
	srv.mu.Unlock()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "KC", inputs, nil); err != nil {
		t.Fatal(err)
	}
	env := suiteEnv(t, st, nil)
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "KC"})
	completedAsLocally(t, env, st, "KC", want)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.max) != 4 {
		t.Errorf("requests for %d child-host pairs, want 4: %v", len(srv.max), srv.max)
	}
	for key, m := range srv.max {
		if m > 1 {
			t.Errorf("child-host %s: %d requests in flight, per_key concurrency 1", key, m)
		}
	}
	if srv.top < 2 {
		t.Errorf("at most %d request in flight: hosts and children should run in parallel", srv.top)
	}
}

// sharedKeysParent fetches from hosts a and b with a key on its pool
// hosts while, in the same step, two children (sharedKeysChild) fetch
// from the same hosts with a key on hosts, which they declare too: one
// pool, as locally.
const sharedKeysParent = `lgx: 1
name: parent
pools:
  hosts: {concurrency: 3, per_key: {concurrency: 1}}
state:
  base: {type: string, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  each:
    type: subgraph
    for_each: ${{ [0, 1] }}
    with: {workflow: child.yaml, input: {base: "${{ state.base }}", n: "${{ item }}"}}
    output: {pages: "${{ result.pages }}"}
  fetch:
    type: http_fetch
    for_each: ${{ ["a", "a", "a", "a", "b", "b", "b", "b"] }}
    pool: {name: hosts, key: "${{ item }}"}
    with: {url: "${{ state.base }}/${{ item }}/p-${{ index }}"}
    output: {pages: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
  - {from: START, to: each}
`

const sharedKeysChild = `lgx: 1
name: child
pools:
  hosts: {concurrency: 3, per_key: {concurrency: 1}}
state:
  base: {type: string, required: true}
  n: {type: integer, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ ["a", "a", "b", "b"] }}
    pool: {name: hosts, key: "${{ item }}"}
    with: {url: "${{ state.base }}/${{ item }}/c${{ state.n }}-${{ index }}"}
    output: {pages: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
`

// A key on a pool the parent and a subgraph's child both declare is one
// key across the parent's and every child's invocations, as locally: the
// plans give keys stable ids, by which the workflow counts them. The
// fetches the workflow has in flight (one process's runner would hold a
// key for itself, workers on many machines would not) are one per host at
// a time, hosts in parallel; the state is a local run's and no plan holds
// a key's value.
func TestSchedulerKeyedPoolSharedWithChild(t *testing.T) {
	srv := &keyServer{cur: map[string]int{}, max: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	g := loadFiles(t, map[string]string{"main.yaml": sharedKeysParent, "child.yaml": sharedKeysChild})
	inputs := map[string]any{"base": hs.URL}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "KS", inputs, nil); err != nil {
		t.Fatal(err)
	}
	// The host each fetch takes, by its node's items.
	hostOf := func(in InvokeInput) string {
		switch {
		case in.Node == "fetch" && in.Child == nil:
			return "aaaabbbb"[in.Index : in.Index+1]
		case in.Node == "each" && in.Child != nil && in.Child.Node == "fetch":
			return "aabb"[in.Child.Index : in.Child.Index+1]
		}
		return ""
	}
	var mu sync.Mutex // activities run on goroutines of their own
	var plans []string
	var hf hostFlights
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{
			PlanActivity: func(ctx context.Context, in PlanInput) (*runner.StepPlan, error) {
				p, err := a.Plan(ctx, in)
				if err == nil {
					mu.Lock()
					plans = append(plans, jsonOf(t, p))
					mu.Unlock()
				}
				return p, err
			},
			InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
				host := hostOf(in)
				if host != "" {
					hf.begin(host)
					defer hf.end(host)
					// Long enough for the children's fetches, planned by
					// local activities, to be dispatched beside the
					// parent's.
					time.Sleep(50 * time.Millisecond)
				}
				r, err := a.Invoke(ctx, in)
				mu.Lock()
				defer mu.Unlock()
				if err == nil && r.Child != nil {
					plans = append(plans, jsonOf(t, r.Child))
				}
				return r, err
			}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "KS"})
	completedAsLocally(t, env, st, "KS", want)
	mu.Lock()
	defer mu.Unlock()
	if len(plans) != 3 {
		t.Errorf("%d plans, want the run's and its two children's", len(plans))
	}
	for _, p := range plans {
		if strings.Contains(p, `"a"`) || strings.Contains(p, hs.URL) {
			t.Errorf("a plan holds a key's value: %s", p)
		}
	}
	hf.check(t, "across the parent and its children")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.top > 2 {
		t.Errorf("%d requests in flight at most: want at most 2 (one per host)", srv.top)
	}
}

// hostFlights counts the fetches the workflow has in flight, per host (a
// keyed pool's key) and in all.
type hostFlights struct {
	mu       sync.Mutex
	cur, top map[string]int
	all, max int
}

func (h *hostFlights) begin(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur == nil {
		h.cur, h.top = map[string]int{}, map[string]int{}
	}
	h.cur[host]++
	h.top[host] = max(h.top[host], h.cur[host])
	h.all++
	h.max = max(h.max, h.all)
}

func (h *hostFlights) end(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur[host]--
	h.all--
}

// check fails t unless two hosts were fetched in parallel, one fetch per
// host at a time (per_key concurrency 1, held as said by where).
func (h *hostFlights) check(t *testing.T, where string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.top) != 2 || h.max != 2 {
		t.Errorf("fetches from %d hosts, at most %d in flight: want 2 hosts in parallel: %v", len(h.top), h.max, h.top)
	}
	for host, m := range h.top {
		if m > 1 {
			t.Errorf("host %s: %d fetches in flight, per_key concurrency 1 %s", host, m, where)
		}
	}
}
