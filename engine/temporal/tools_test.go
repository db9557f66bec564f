package temporal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// An agent's turn: a model (here a set node) asks for tool calls, a
// tools node runs them. The calls take their tool's caps: the tool's
// pool slow (2) and pool api (3) bound them together with the
// other tool's calls, whatever the tools node's own with.concurrency.
const toolsAgent = `
lgx: 1
name: tools_agent
pools:
  api: {concurrency: 3}
  slow: {concurrency: 2}
state:
  base: {type: string, required: true}
  calls: {type: list}
  messages: {type: messages, default: []}
  turns: {type: integer, default: 0}
tools:
  status:
    description: a service's status
    parameters: {type: object, properties: {service: {type: string}}, required: [service]}
    node:
      type: http_fetch
      pool: [slow, api]
      with: {url: "${{ state.base }}/s/${{ args.service }}"}
    output: ${{ result.body }}
  incidents:
    description: a service's incidents
    parameters: {type: object, properties: {service: {type: string}}, required: [service]}
    node:
      type: http_fetch
      pool: api
      with: {url: "${{ state.base }}/i/${{ args.service }}"}
    output: ${{ result.body }}
nodes:
  model:
    type: set
    output:
      calls: |-
        ${{ state.turns == 0
          ? [{id: "sa", name: "status", arguments: {service: "a"}},
             {id: "sb", name: "status", arguments: {service: "b"}},
             {id: "sc", name: "status", arguments: {service: "c"}},
             {id: "sd", name: "status", arguments: {service: "d"}},
             {id: "se", name: "status", arguments: {service: "e"}},
             {id: "sf", name: "status", arguments: {service: "f"}},
             {id: "ia", name: "incidents", arguments: {service: "a"}},
             {id: "ib", name: "incidents", arguments: {service: "b"}},
             {id: "x", name: "reboot", arguments: {}},
             {id: "y", name: "status", arguments: {}}]
          : [{id: "z", name: "status", arguments: {service: "z"}}] }}
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

// Tool calls run as activities the workflow schedules under their tools'
// caps: the state is a local run's, every call is sent once, the status
// tool never has more than 2 requests in flight nor the pool more than 3,
// and no argument enters the history (the plan of calls names tools only).
func TestSchedulerToolCalls(t *testing.T) {
	srv := &flightServer{delay: 30 * time.Millisecond, count: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	inputs := map[string]any{"base": hs.URL}
	g := compile(t, "tools.yaml", toolsAgent)
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if srv.top != 3 {
		t.Fatalf("the local run had %d requests in flight at most, want the pool's 3", srv.top)
	}
	srv.reset()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "T", inputs, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var plans []*runner.ToolCallsPlan
	var statusTop, statusCur int
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{
			ToolCallsActivity: func(ctx context.Context, in InvokeInput) (*runner.ToolCallsPlan, error) {
				p, err := a.ToolCalls(ctx, in)
				mu.Lock()
				plans = append(plans, p)
				mu.Unlock()
				return p, err
			},
			InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
				status := in.Call > 0 && in.Step == 2 && in.Call <= 6
				if status {
					mu.Lock()
					statusCur++
					statusTop = max(statusTop, statusCur)
					mu.Unlock()
					defer func() { mu.Lock(); statusCur--; mu.Unlock() }()
				}
				return a.Invoke(ctx, in)
			},
		}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "T"})
	completedAsLocally(t, env, st, "T", want)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for path, n := range srv.count {
		if n != 1 {
			t.Errorf("%s was requested %d times, want once", path, n)
		}
	}
	if len(srv.count) != 9 {
		t.Errorf("%d distinct requests, want 9 (8 calls, then 1): %v", len(srv.count), srv.count)
	}
	if srv.top > 3 || srv.top < 2 {
		t.Errorf("%d requests in flight at most: want 2–3 (pool api: 3)", srv.top)
	}
	mu.Lock()
	defer mu.Unlock()
	if statusTop > 2 {
		t.Errorf("%d status calls in flight at most, its pool slow allows 2", statusTop)
	}
	if len(plans) != 2 {
		t.Fatalf("%d tool call plans, want one per tools invocation (2)", len(plans))
	}
	if got := jsonOf(t, plans[0]); got != `{"Limit":8,"Calls":[{"Tool":"status"},{"Tool":"status"},{"Tool":"status"},{"Tool":"status"},{"Tool":"status"},{"Tool":"status"},{"Tool":"incidents"},{"Tool":"incidents"},{},{}]}` {
		t.Errorf("first plan %s: want the tools named, the unknown tool and the invalid call not dispatched, no argument", got)
	}
}

// A tool whose own output fails until its third request, with retry.on
// naming expr, is retried inside its call on Temporal as it is locally:
// the same state (the tool message is the third answer) and three
// requests each way.
func TestSchedulerToolOutputRetry(t *testing.T) {
	var hits atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"n": %d}`, hits.Add(1))
	}))
	defer hs.Close()
	g := compile(t, "retry.yaml", fmt.Sprintf(`
lgx: 1
name: tool_retry
tools:
  count:
    description: Count
    parameters: {type: object}
    node:
      type: http_fetch
      retry: {attempts: 4, backoff: 1ms, on: [expr]}
      with: {url: "%s"}
    output: "${{ result.json.n >= 3 ? string(result.json.n) : result.json.missing.deeper }}"
state:
  messages: {type: messages, default: []}
nodes:
  act:
    type: tools
    with: {calls: [{id: c1, name: count, arguments: {}}]}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
`, hs.URL))
	want, err := local(t, g, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := want.State["messages"].([]any)
	if n := hits.Swap(0); n != 3 || len(msgs) != 1 || msgs[0].(map[string]any)["content"] != "3" {
		t.Fatalf("locally: %d requests, messages %v; want 3 and the tool's answer 3", n, want.State["messages"])
	}
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "R", nil, nil); err != nil {
		t.Fatal(err)
	}
	env := suiteEnv(t, st, nil)
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "R"})
	completedAsLocally(t, env, st, "R", want)
	if n := hits.Load(); n != 3 {
		t.Errorf("on Temporal: %d requests, want 3", n)
	}
}
