package temporal

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// An agent whose tools run child workflows: pages (subgraphChild: three
// fetches under pool api, then a template) and agent (toolsAgent: an
// agent with tools of its own, itself under pool api). The model asks for
// three pages calls (one of whose children fails, by state.fail) and two
// agent calls, then one more pages call.
const subgraphToolsMain = `
lgx: 1
name: boss
pools:
  api: {concurrency: 3}
state:
  base: {type: string, required: true}
  fail: {type: integer, default: -1}
  calls: {type: list}
  messages: {type: messages, default: []}
  turns: {type: integer, default: 0}
tools:
  pages:
    description: a document's pages
    parameters: {type: object, properties: {n: {type: integer}}, required: [n]}
    node:
      type: subgraph
      with:
        workflow: lib/child.yaml
        input: {base: "${{ state.base }}", n: "${{ args.n }}", fail: "${{ state.fail == args.n }}"}
    output: ${{ result.summary }}
  agent:
    description: a sub-agent on its own services
    parameters: {type: object, properties: {n: {type: integer}}, required: [n]}
    node:
      type: subgraph
      with:
        workflow: agent.yaml
        input: {base: "${{ state.base }}/a${{ args.n }}"}
    output: ${{ len(result.messages) }}
nodes:
  model:
    type: set
    output:
      calls: |-
        ${{ state.turns == 0
          ? [{id: "p1", name: "pages", arguments: {n: 1}},
             {id: "p2", name: "pages", arguments: {n: 2}},
             {id: "p3", name: "pages", arguments: {n: 3}},
             {id: "a1", name: "agent", arguments: {n: 1}},
             {id: "a2", name: "agent", arguments: {n: 2}}]
          : [{id: "p4", name: "pages", arguments: {n: 4}}] }}
  act:
    type: tools
    with: {calls: "${{ state.calls }}", concurrency: 8}
    output: {messages: "${{ result.messages }}"}
  turn:
    type: set
    output: {turns: "${{ state.turns + 1 }}"}
edges:
  - {from: START, to: model}
  - {from: model, to: act}
  - {from: act, to: turn}
  - from: turn
    when:
      - {if: "state.turns < 2", to: model}
    else: END
`

// Subgraph tools' calls run their children step by step, each child
// invocation (and each call of a tools node inside a child) an activity
// under the run's caps: the state is a local run's (a failing child is
// its call's error message, as locally), every request is sent once, and
// pool api's 3 hold across every call's child.
func TestSchedulerSubgraphTools(t *testing.T) {
	g := loadFiles(t, map[string]string{"main.yaml": subgraphToolsMain, "lib/child.yaml": subgraphChild, "agent.yaml": toolsAgent})
	for _, fail := range []int{-1, 2} {
		t.Run(fmt.Sprintf("fail=%d", fail), func(t *testing.T) {
			srv := &flightServer{delay: 20 * time.Millisecond, count: map[string]int{}}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			inputs := map[string]any{"base": hs.URL, "fail": fail}
			want, err := local(t, g, inputs, 0)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond) // requests a local failure cancelled land
			srv.mu.Lock()
			localCount := len(srv.count)
			srv.mu.Unlock()
			srv.reset()
			st := store.NewMemory()
			runID := fmt.Sprintf("B%d", fail+1)
			if err := runner.SubmitRun(context.Background(), g, st, runID, inputs, nil); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			inChild, cur, most := 0, 0, 0
			env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
				return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
					if in.Tool != "" && in.Child != nil {
						mu.Lock()
						inChild++
						cur++
						most = max(most, cur)
						mu.Unlock()
						defer func() { mu.Lock(); cur--; mu.Unlock() }()
					}
					return a.Invoke(ctx, in)
				}}
			})
			env.ExecuteWorkflow(WorkflowName, RunInput{RunID: runID})
			completedAsLocally(t, env, st, runID, want)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for path, n := range srv.count {
				if n != 1 {
					t.Errorf("%s requested %d times, want once", path, n)
				}
			}
			// A failing child cancels its siblings, whose requests may or
			// may not have been sent by then: counted without one only.
			if fail < 0 && len(srv.count) != localCount {
				t.Errorf("%d distinct requests, the local run sent %d", len(srv.count), localCount)
			}
			if srv.top > 3 {
				t.Errorf("%d requests in flight across the calls' children, pool api allows 3", srv.top)
			}
			mu.Lock()
			defer mu.Unlock()
			if inChild == 0 || most > 8 {
				t.Errorf("%d activities inside the calls' children, %d at most in flight", inChild, most)
			}
		})
	}
}

// The same agent as a subgraph's child: its subgraph tools' calls are
// reached through the subgraph invocation (a ChildRef chain whose tools
// invocation names the call, ChildRef.Tool), and run as at the top level.
func TestSchedulerSubgraphToolsInSubgraph(t *testing.T) {
	outer := `lgx: 1
name: outer
pools:
  api: {concurrency: 3}
state:
  base: {type: string, required: true}
  log: {type: messages, default: []}
nodes:
  boss:
    type: subgraph
    with: {workflow: boss.yaml, input: {base: "${{ state.base }}", fail: 3}}
    output: {log: "${{ result.messages }}"}
edges:
  - {from: START, to: boss}
`
	g := loadFiles(t, map[string]string{"main.yaml": outer, "boss.yaml": subgraphToolsMain, "lib/child.yaml": subgraphChild, "agent.yaml": toolsAgent})
	srv := &flightServer{delay: 20 * time.Millisecond, count: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	inputs := map[string]any{"base": hs.URL}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	srv.reset()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "O", inputs, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	viaChain := 0
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			if in.Child != nil && in.Child.Tool != "" {
				mu.Lock()
				viaChain++
				mu.Unlock()
			}
			return a.Invoke(ctx, in)
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "O"})
	completedAsLocally(t, env, st, "O", want)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for path, n := range srv.count {
		if n != 1 {
			t.Errorf("%s requested %d times, want once", path, n)
		}
	}
	if srv.top > 3 {
		t.Errorf("%d requests in flight, pool api allows 3", srv.top)
	}
	mu.Lock()
	defer mu.Unlock()
	if viaChain == 0 {
		t.Error("no invocation was reached through a chain naming a tool call")
	}
}
