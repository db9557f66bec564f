package temporal

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// updateHistories makes TestRecordHistories record the histories that
// testdata/histories lacks, against the dev server:
//
//	eval "$(tools/devtemporal/start.sh)"
//	go test ./engine/temporal -run TestRecordHistories -update-histories
//
// It never overwrites a file: a recorded history is what workers in the
// field may be replaying, so it stays until no deployed version can have
// started it (docs/decisions.md, "Changing the workflow").
var updateHistories = flag.Bool("update-histories", false, "record the missing testdata/histories/*.json against LGX_TEST_TEMPORAL")

const historiesDir = "testdata/histories"

// recordedHistories are the shapes of lgx.run TestReplayHistories must
// find recorded: each a kind of execution the workflow code must still
// replay after any change.
var recordedHistories = []recordedHistory{
	{"hello", "a plain run: a fan-out of two set nodes, then a template", recordHello, store.StatusCompleted},
	{"foreach_pool_cap", "a for_each of 5 fetches under a pool of 2 and a global cap of 3, then a set node", recordPoolCap, store.StatusCompleted},
	{"foreach_node_cap_failure", "a for_each under a node cap of 2 whose second item fails: the rest are cancelled", recordFailure, store.StatusFailed},
	{"interrupts_answered", "a step paused at two interrupts (and a fetch), answered through lgx.answer one at a time, a second answer refused", recordAnswers, store.StatusCompleted},
	{"cancelled", "a for_each cancelled while an item is in flight: lgx.cancel records the run cancelled", recordCancel, store.StatusCancelled},
	{"hello_pure_local", "hello with pure invocations as local activities (version 1 of pure-nodes-local): no activity task", recordHello, store.StatusCompleted},
	{"continued", "the last execution of a run continued as new mid-for_each (history limit 40): it plans with what was recorded and dispatches the rest", recordContinued, store.StatusCompleted},
	{"timeout", "config.timeout of 1 s passing while an item hangs: the workflow's timer cancels the step, lgx.cancel records the run failed", recordTimeout, store.StatusFailed},
	{"keyed_pool", "a for_each of 6 fetches over 2 hosts under a keyed pool (per_key concurrency 1, total 3): items of a free host pass a busy one", recordKeyed, store.StatusCompleted},
	{"rate_pool", "a for_each of 6 fetches under a pool of rate 20/s, burst 2: workflow timers space the dispatches", recordRatePool, store.StatusCompleted},
	{"reopened", "a run whose second item failed, reopened (RunInput.Resumed): a new execution that looks its first step up", recordReopened, store.StatusCompleted},
	{"chunked_items", "a for_each of 100 fetches under a node cap of 10 (version 1 of chunked-items): its items go in chunks of up to 10, an activity each", recordChunks, store.StatusCompleted},
	{"subgraphs", "a for_each of 4 subgraph invocations whose children fetch 3 pages each under the run's pool of 3: each child's steps dispatched by the workflow, a local activity per child step planned", recordSubgraphs, store.StatusCompleted},
	{"tools_in_subgraph", "a subgraph whose child is a tools agent: the child's tool calls planned and dispatched by the workflow under the child's tools' pools", recordToolsInSubgraph, store.StatusCompleted},
	{"chunked_items_split", "the chunked_items run under version 2 of chunked-items: a chunk that would take every free slot of the node cap takes half, so two chunks run side by side", recordChunks, store.StatusCompleted},
	{"nested_subgraphs", "subgraphs inside subgraphs: 2 children each call 2 grandchildren that fetch 3 pages under the run's pool of 3, every level's steps dispatched by the workflow (ChildRef chains)", recordNested(-1), store.StatusCompleted},
	{"nested_subgraph_failure", "the same with one grandchild's fetch failing (version 1 of wait-cancelled): its siblings are cancelled and waited for, and the run fails", recordNested(11), store.StatusFailed},
	{"cancel_waited", "a for_each whose second fetch fails while the third hangs (version 1 of wait-cancelled): the hanging one is cancelled and its end waited for before the step fails", recordCancelWaited, store.StatusFailed},
	{"wait_events", "a for_each of 8 fetches under a node cap of 3 (version 1 of wait-events): the items held back for the cap carry Waited [node] and the step's start, for their workers' wait events", recordWaitEvents, store.StatusCompleted},
	{"keyed_pool_in_child", "two subgraph children, each fetching from 2 hosts under a keyed pool only the child declares (per_key 1): each child plan numbers its keys, the workflow holds them per child step", recordKeyedInChild, store.StatusCompleted},
	{"tool_calls", "two turns of a tools node: lgx.toolcalls plans 10 then 1 calls, each run as an activity under its tool's pools (2 and 3), an unknown tool and invalid arguments answered without one", recordToolCalls, store.StatusCompleted},
	{"budget_raised", "a for_each of 4 llm calls (one at a time) whose last 2 pause on a run budget (on_exhausted: interrupt), answered through lgx.answer with a raise (version 1 of budget-raise): every invocation of the redo carries it, the paused calls run again, a second answer refused, then a reduce", recordBudgetRaise, store.StatusCompleted},
	{"subgraph_tools", "an agent whose tools run child workflows (version 1 of subgraph-tools): 5 then 1 calls, each call's child dispatched a step at a time by the workflow under the run's pool of 3 (InvokeInput.Tool, ChildRef chains), one child failing into its call's message, one child an agent with tool calls of its own", recordSubgraphTools, store.StatusCompleted},
	{"budget_raised_continued", "the last execution of a raise's redo that continued as new (history limit 30; 10 calls, 8 paused on the budget): RunInput.Raise carried on, its plan marks the paused calls not done and each invocation carries the raise", recordBudgetRaiseContinued, store.StatusCompleted},
	{"keyed_pool_shared", "a parent fetching from 2 hosts with a key on its pool hosts while 2 subgraph children, which declare hosts too, fetch from the same hosts with a key (version 1 of shared-pool-keys): plans give keys stable ids (KeyIDs), the workflow counts each key across the parent and the children", recordKeyedShared, store.StatusCompleted},
}

type recordedHistory struct {
	name string // file testdata/histories/NAME.json
	doc  string
	run  func(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status
	want store.Status // how the recorded run ends
}

// TestReplayHistories replays every recorded history of lgx.run against
// the workflow code as it is now. It needs no server, so it runs in every
// CI run: a change to Run that alters its commands for an execution
// already in history (a worker upgraded while runs are open) fails here
// with the SDK's nondeterminism error, instead of in production. Such a
// change goes behind workflow.GetVersion (docs/decisions.md).
func TestReplayHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	// A history that went missing must not make the test pass vacuously.
	for _, h := range recordedHistories {
		if !slices.Contains(files, filepath.Join(historiesDir, h.name+".json")) {
			t.Errorf("%s/%s.json is missing (%s): record it with -update-histories against the dev server", historiesDir, h.name, h.doc)
		}
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			sched := &scheduledActivities{}
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{Interceptors: []interceptor.WorkerInterceptor{sched}})
			if err != nil {
				t.Fatal(err)
			}
			r.RegisterWorkflowWithOptions(Run, workflow.RegisterOptions{Name: WorkflowName})
			if err := r.ReplayWorkflowHistoryFromJSONFile(quietLogger(), file); err != nil {
				t.Fatalf("lgx.run no longer replays %s: %v\n(a change to the workflow's commands goes behind workflow.GetVersion; see docs/decisions.md, \"Changing the workflow\")", file, err)
			}
			// The SDK matches a scheduled activity by its id and type, not
			// its input: two lgx.invoke calls swapped (another node or item
			// first) replay "fine" and hand each the other's result.
			if err := sched.matches(recordedSchedules(t, file)); err != nil {
				t.Fatalf("lgx.run no longer replays %s: %v\n(a change to the workflow's commands goes behind workflow.GetVersion; see docs/decisions.md, \"Changing the workflow\")", file, err)
			}
			// The replayer checks the commands, not the result: a run that
			// completed must also end with the outcome it recorded.
			want := recordedResult(t, file)
			if want == nil {
				return
			}
			// The SDK's replayer keeps the result, outside its interface.
			res, ok := r.(interface{ GetWorkflowResult(string, any) error })
			if !ok {
				t.Fatalf("the SDK's replayer %T no longer keeps the replayed result", r)
			}
			var got RunOutput
			if err := res.GetWorkflowResult("", &got); err != nil {
				t.Fatalf("replayed result: %v", err)
			}
			if got != *want {
				t.Errorf("replayed outcome %+v, recorded %+v", got, *want)
			}
		})
	}
}

// scheduledActivities records the activities the replayed workflow
// schedules, with their input as the data converter encodes it.
type scheduledActivities struct {
	interceptor.WorkerInterceptorBase
	calls []string // "TYPE INPUT"
}

func (s *scheduledActivities) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	in := &scheduledInbound{s: s}
	in.Next = next
	return in
}

type scheduledInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	s *scheduledActivities
}

func (in *scheduledInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	out := &scheduledOutbound{s: in.s}
	out.Next = outbound
	return in.Next.Init(out)
}

type scheduledOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	s *scheduledActivities
}

func (out *scheduledOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	p, err := converter.GetDefaultDataConverter().ToPayloads(args...)
	input := fmt.Sprintf("unencodable input: %v", err)
	if err == nil {
		input = payloadsText(p)
	}
	out.s.calls = append(out.s.calls, activityType+" "+input)
	return out.Next.ExecuteActivity(ctx, activityType, args...)
}

// matches checks that the replay scheduled the recorded activities, with
// the same inputs, in the same order. The recorded ones are a
// subsequence, not all, of the calls: a call cancelled in the workflow
// task that made it (its step failed meanwhile) never reaches history.
func (s *scheduledActivities) matches(recorded []string) error {
	i := 0
	for _, c := range s.calls {
		if i < len(recorded) && c == recorded[i] {
			i++
		}
	}
	if i < len(recorded) {
		return fmt.Errorf("recorded activity %d of %d, %s, is not scheduled in that order any more; the replay scheduled:\n  %s",
			i+1, len(recorded), recorded[i], strings.Join(s.calls, "\n  "))
	}
	return nil
}

// recordedSchedules are the ActivityTaskScheduled events of a history, as
// scheduledActivities writes its calls.
func recordedSchedules(t *testing.T, file string) []string {
	t.Helper()
	var out []string
	for _, ev := range readHistory(t, file).Events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			out = append(out, a.GetActivityType().GetName()+" "+payloadsText(a.GetInput()))
		}
	}
	return out
}

// payloadsText is the activity's input as JSON without zero values, so
// that a field added to an input (zero in the recorded runs) or a
// changed omitempty does not count as a change: the values do.
func payloadsText(p *commonpb.Payloads) string {
	var parts []string
	for _, pl := range p.GetPayloads() {
		var v any
		if err := json.Unmarshal(pl.GetData(), &v); err != nil {
			parts = append(parts, string(pl.GetData()))
			continue
		}
		b, err := json.Marshal(dropZero(v))
		if err != nil {
			parts = append(parts, string(pl.GetData()))
			continue
		}
		parts = append(parts, string(b))
	}
	return strings.Join(parts, " ")
}

func dropZero(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, x := range m {
		switch x := dropZero(x).(type) {
		case nil:
		case string:
			if x != "" {
				out[k] = x
			}
		case float64:
			if x != 0 {
				out[k] = x
			}
		case bool:
			if x {
				out[k] = x
			}
		default:
			out[k] = x
		}
	}
	return out
}

func readHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return h
}

// recordedResult is the RunOutput a history's completion event holds
// (nil when the execution did not complete).
func recordedResult(t *testing.T, file string) *RunOutput {
	t.Helper()
	h := readHistory(t, file)
	last := h.Events[len(h.Events)-1].GetWorkflowExecutionCompletedEventAttributes()
	if last == nil {
		return nil
	}
	var out RunOutput
	if err := converter.GetDefaultDataConverter().FromPayloads(last.GetResult(), &out); err != nil {
		t.Fatalf("%s: recorded result: %v", file, err)
	}
	return &out
}

// TestReplayDetectsChange shows that the replay test has teeth: a
// workflow registered under lgx.run that issues one command before Run's
// own (a timer) does not replay the recorded histories.
func TestReplayDetectsChange(t *testing.T) {
	changed := func(ctx workflow.Context, in RunInput) (*RunOutput, error) {
		if err := workflow.Sleep(ctx, time.Millisecond); err != nil {
			return nil, err
		}
		return Run(ctx, in)
	}
	for _, h := range recordedHistories {
		t.Run(h.name, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(changed, workflow.RegisterOptions{Name: WorkflowName})
			// The SDK logs the panic it turns into the error: expected here.
			silent := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
			err := r.ReplayWorkflowHistoryFromJSONFile(silent, filepath.Join(historiesDir, h.name+".json"))
			// TMPRL1100 is the SDK's code for a nondeterminism error.
			if err == nil || !strings.Contains(err.Error(), "TMPRL1100") {
				t.Fatalf("replay of a changed workflow: %v, want a nondeterminism error", err)
			}
		})
	}
}

// recorder runs lgx.run executions on the dev server with a worker in
// this process, for TestRecordHistories.
type recorder struct {
	c     client.Client
	st    store.Store
	queue string
	hs    *httptest.Server
	slow  *slowServer
}

// TestRecordHistories records testdata/histories/NAME.json for every
// shape of recordedHistories whose file is missing (only with
// -update-histories, against LGX_TEST_TEMPORAL). Each is a real run on
// the dev server; the history holds run ids, node names, counts and
// nonces, never state values (the activities keep those in the store).
func TestRecordHistories(t *testing.T) {
	if !*updateHistories {
		t.Skip("records histories only with -update-histories")
	}
	lw := startLive(t, "lgx-replay", 8)
	c, st, queue := lw.c, lw.st, lw.queue
	slow := &slowServer{}
	hs := httptest.NewServer(slow)
	t.Cleanup(hs.Close)
	if err := os.MkdirAll(historiesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &recorder{c: c, st: st, queue: queue, hs: hs, slow: slow}
	for _, rh := range recordedHistories {
		t.Run(rh.name, func(t *testing.T) {
			file := filepath.Join(historiesDir, rh.name+".json")
			if _, err := os.Stat(file); err == nil {
				t.Skipf("%s exists: kept (a recorded history is never overwritten)", file)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			runID := queue + "-" + rh.name
			if got, want := rh.run(ctx, t, h, runID), rh.want; got != want {
				t.Fatalf("run ended %s, want %s", got, want)
			}
			b, err := historyJSON(ctx, c, runID)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("recorded %s (%d bytes)", file, len(b))
		})
	}
}

// historyJSON is the closed workflow execution's history as the JSON
// `temporal workflow show --output json` writes, which
// ReplayWorkflowHistoryFromJSONFile reads.
func historyJSON(ctx context.Context, c client.Client, workflowID string) ([]byte, error) {
	var h historypb.History
	for it := c.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT); it.HasNext(); {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	if n := len(h.Events); n == 0 || !isClosing(h.Events[n-1].GetEventType()) {
		return nil, fmt.Errorf("history of %s: the execution has not closed", workflowID)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", workflowID, err)
	}
	return append(b, '\n'), nil
}

func isClosing(t enumspb.EventType) bool {
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return true
	}
	return false
}

// slowServer answers after delay, or when the request is abandoned (a
// cancelled invocation); a path ending in /fail answers 404, one ending
// in /hang waits 30 s (hanging counts those being served).
type slowServer struct {
	hanging atomic.Int64
	flaky   atomic.Int64 // requests to a path ending in /flaky: the first fails
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/flaky") && s.flaky.Add(1) == 1 {
		http.Error(w, "try again later", http.StatusNotFound)
		return
	}
	delay := 20 * time.Millisecond
	if strings.HasSuffix(r.URL.Path, "/hang") {
		s.hanging.Add(1)
		defer s.hanging.Add(-1)
		delay = 30 * time.Second
	}
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	if strings.HasSuffix(r.URL.Path, "/fail") {
		http.Error(w, "no such page", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "page %s", r.URL.Path)
}

// submit submits g with inputs as runID and starts lgx.run for it.
func (h *recorder) submit(ctx context.Context, t *testing.T, g *runner.Graph, runID string, inputs map[string]any) client.WorkflowRun {
	t.Helper()
	if err := runner.SubmitRun(ctx, g, h.st, runID, inputs, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	wr, err := Start(ctx, h.c, h.queue, RunInput{RunID: runID})
	if err != nil {
		t.Fatal(err)
	}
	return wr
}

// start submits the workflow src with inputs as runID and starts lgx.run for it.
func (h *recorder) start(ctx context.Context, t *testing.T, name, src string, inputs map[string]any, concurrency int) client.WorkflowRun {
	t.Helper()
	g := compile(t, name+".yaml", src)
	if err := runner.SubmitRun(ctx, g, h.st, name, inputs, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	wr, err := Start(ctx, h.c, h.queue, RunInput{RunID: name, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	return wr
}

func (h *recorder) await(ctx context.Context, t *testing.T, wr client.WorkflowRun) store.Status {
	t.Helper()
	out, err := Await(ctx, wr)
	if err != nil {
		t.Fatal(err)
	}
	return out.Status
}

func (h *recorder) urls(paths ...string) []any {
	var u []any
	for _, p := range paths {
		u = append(u, h.hs.URL+p)
	}
	return u
}

func recordHello(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	b, err := os.ReadFile(filepath.Join("..", "..", "workflows", "hello.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return h.await(ctx, t, h.start(ctx, t, runID, string(b), map[string]any{"name": "Ada"}, 0))
}

func recordPoolCap(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/doc/0", "/doc/1", "/doc/2", "/doc/3", "/doc/4")
	return h.await(ctx, t, h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 2, 100), map[string]any{"urls": urls}, 3))
}

func recordChunks(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	var paths []string
	for i := range 100 {
		paths = append(paths, fmt.Sprintf("/doc/%d", i))
	}
	return h.await(ctx, t, h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 100, 10), map[string]any{"urls": h.urls(paths...)}, 0))
}

func recordSubgraphs(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	g := loadFiles(t, map[string]string{"main.yaml": subgraphParent, "lib/child.yaml": subgraphChild})
	return h.await(ctx, t, h.submit(ctx, t, g, runID, map[string]any{"base": h.hs.URL}))
}

func recordNested(fail int) func(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	return func(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
		g := loadFiles(t, map[string]string{"main.yaml": nestedTop, "mid.yaml": nestedMid, "lib/child.yaml": subgraphChild})
		return h.await(ctx, t, h.submit(ctx, t, g, runID, map[string]any{"base": h.hs.URL, "fail": fail}))
	}
}

func recordWaitEvents(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	var paths []string
	for i := range 8 {
		paths = append(paths, fmt.Sprintf("/doc/%d", i))
	}
	return h.await(ctx, t, h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 100, 3), map[string]any{"urls": h.urls(paths...)}, 0))
}

func recordCancelWaited(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/doc/0", "/fail", "/hang")
	return h.await(ctx, t, h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 100, 3), map[string]any{"urls": urls}, 0))
}

func recordKeyedInChild(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	g := loadFiles(t, map[string]string{"main.yaml": keyedChildParent, "child.yaml": keyedChild})
	return h.await(ctx, t, h.submit(ctx, t, g, runID, map[string]any{"base": h.hs.URL}))
}

func recordKeyedShared(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	g := loadFiles(t, map[string]string{"main.yaml": sharedKeysParent, "child.yaml": sharedKeysChild})
	return h.await(ctx, t, h.submit(ctx, t, g, runID, map[string]any{"base": h.hs.URL}))
}

func recordToolsInSubgraph(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	outer := "lgx: 1\nname: outer\nstate:\n  base: {type: string, required: true}\n  log: {type: messages, default: []}\n" +
		"nodes:\n  agent:\n    type: subgraph\n    with: {workflow: agent.yaml, input: {base: \"${{ state.base }}\"}}\n" +
		"    output: {log: \"${{ result.messages }}\"}\nedges:\n  - {from: START, to: agent}\n"
	g := loadFiles(t, map[string]string{"main.yaml": outer, "agent.yaml": toolsAgent})
	return h.await(ctx, t, h.submit(ctx, t, g, runID, map[string]any{"base": h.hs.URL}))
}

func recordSubgraphTools(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	g := loadFiles(t, map[string]string{"main.yaml": subgraphToolsMain, "lib/child.yaml": subgraphChild, "agent.yaml": toolsAgent})
	return h.await(ctx, t, h.submit(ctx, t, g, runID, map[string]any{"base": h.hs.URL, "fail": 2}))
}

func recordToolCalls(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	return h.await(ctx, t, h.start(ctx, t, runID, toolsAgent, map[string]any{"base": h.hs.URL}, 0))
}

func recordFailure(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/doc/0", "/fail", "/doc/2", "/doc/3", "/doc/4")
	return h.await(ctx, t, h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 100, 2), map[string]any{"urls": urls}, 0))
}

func recordAnswers(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	wr := h.start(ctx, t, runID, approvalsWithFetch, map[string]any{"url": h.hs.URL + "/doc"}, 0)
	follow := func(want store.Status) {
		t.Helper()
		out, err := Follow(ctx, h.c, runID)
		if err != nil {
			t.Fatal(err)
		}
		if out.Status != want {
			t.Fatalf("run %s (%s), want %s", out.Status, out.Error, want)
		}
	}
	answer := func(node string, ok bool) *runner.AnswerRecord {
		t.Helper()
		a, err := runner.RecordAnswer(ctx, h.st, runID, runner.Answer{Node: node, Values: map[string]any{"ok": ok}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	follow(store.StatusInterrupted)
	first, second := answer("legal", true), answer("legal", false)
	if err := Answer(ctx, h.c, runID, first.Path, first.Nonce); err != nil {
		t.Fatalf("first answer: %v", err)
	}
	var ref *RefusedError
	if err := Answer(ctx, h.c, runID, second.Path, second.Nonce); !errors.As(err, &ref) {
		t.Fatalf("second answer: %v, want a *RefusedError", err)
	}
	if err := runner.RefuseAnswer(ctx, h.st, second); err != nil {
		t.Fatal(err)
	}
	follow(store.StatusInterrupted)
	fin := answer("finance", false)
	if err := Answer(ctx, h.c, runID, fin.Path, fin.Nonce); err != nil {
		t.Fatal(err)
	}
	return h.await(ctx, t, wr)
}

func recordCancel(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/doc/0", "/hang", "/doc/2", "/doc/3")
	wr := h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 100, 1), map[string]any{"urls": urls}, 0)
	// Cancel once the second item (the one that hangs) is in flight: one
	// invocation recorded, one cancelled, two never started.
	for h.slow.hanging.Load() == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("the hanging item was never sent")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := h.c.CancelWorkflow(ctx, runID, ""); err != nil {
		t.Fatal(err)
	}
	return h.await(ctx, t, wr)
}

func recordRatePool(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	src := strings.Replace(fmt.Sprintf(fetchEach, 100, 100), "site: {concurrency: 100}", "site: {concurrency: 100, rate: 20/s, burst: 2}", 1)
	urls := h.urls("/doc/0", "/doc/1", "/doc/2", "/doc/3", "/doc/4", "/doc/5")
	return h.await(ctx, t, h.start(ctx, t, runID, src, map[string]any{"urls": urls}, 0))
}

func recordContinued(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/doc/0", "/doc/1", "/doc/2", "/doc/3", "/doc/4", "/doc/5", "/doc/6", "/doc/7", "/doc/8", "/doc/9", "/doc/10", "/doc/11")
	g := compile(t, runID+".yaml", fmt.Sprintf(fetchEach, 100, 2))
	if err := runner.SubmitRun(ctx, g, h.st, runID, map[string]any{"urls": urls}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, h.c, h.queue, RunInput{RunID: runID, HistoryLimit: 40}); err != nil {
		t.Fatal(err)
	}
	out, err := Follow(ctx, h.c, runID)
	if err != nil {
		t.Fatal(err)
	}
	return out.Status
}

func recordTimeout(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	src := strings.Replace(fmt.Sprintf(fetchEach, 100, 1), "name: fetch_each\n", "name: fetch_each\nconfig: {timeout: 1s}\n", 1)
	return h.await(ctx, t, h.start(ctx, t, runID, src, map[string]any{"urls": h.urls("/doc/0", "/hang")}, 0))
}

func recordKeyed(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/a/0", "/a/1", "/a/2", "/b/0", "/b/1", "/b/2")
	return h.await(ctx, t, h.start(ctx, t, runID, keyedFetch, map[string]any{"urls": urls}, 0))
}

func recordReopened(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	urls := h.urls("/doc/0", "/flaky", "/doc/2")
	wr := h.start(ctx, t, runID, fmt.Sprintf(fetchEach, 100, 1), map[string]any{"urls": urls}, 0)
	if got := h.await(ctx, t, wr); got != store.StatusFailed {
		t.Fatalf("first execution ended %s, want failed", got)
	}
	if err := runner.ReopenRun(ctx, h.st, runID, nil); err != nil {
		t.Fatal(err)
	}
	wr, err := Start(ctx, h.c, h.queue, RunInput{RunID: runID, Resumed: true})
	if err != nil {
		t.Fatal(err)
	}
	return h.await(ctx, t, wr)
}

// TestScheduledActivitiesMatch: the input check TestReplayHistories adds
// to the SDK's catches swapped invocations, tolerates a call cancelled
// before it reached history and an input field added with its zero value.
func TestScheduledActivitiesMatch(t *testing.T) {
	inv := func(node string, index int, extra string) string {
		p, err := converter.GetDefaultDataConverter().ToPayloads(json.RawMessage(fmt.Sprintf(`{"RunID":"R","Step":1,"Node":%q,"Index":%d%s}`, node, index, extra)))
		if err != nil {
			t.Fatal(err)
		}
		return InvokeActivity + " " + payloadsText(p)
	}
	a, b, c := inv("a", -1, ""), inv("b", -1, ""), inv("c", 0, "")
	tests := []struct {
		name            string
		calls, recorded []string
		ok              bool
	}{
		{"same", []string{a, b, c}, []string{a, b, c}, true},
		{"swapped", []string{b, a, c}, []string{a, b, c}, false},
		{"one missing", []string{a, c}, []string{a, b, c}, false},
		{"cancelled before sent", []string{a, b, c}, []string{a, c}, true},
		{"zero field added", []string{inv("a", -1, `,"Lookup":false,"Answer":""`), b, c}, []string{a, b, c}, true},
		{"field set", []string{inv("a", -1, `,"Lookup":true`), b, c}, []string{a, b, c}, false},
		{"item 0 vs no item", []string{inv("c", -1, ""), a}, []string{c, a}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&scheduledActivities{calls: tt.calls}).matches(tt.recorded)
			if (err == nil) != tt.ok {
				t.Errorf("matches: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func recordBudgetRaise(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	var calls atomic.Int64
	srv := seventyTokens(t, &calls)
	wr := h.start(ctx, t, runID, budgetInterrupt(t, srv.OpenAIURL()), map[string]any{"docs": []any{"a", "b", "c", "d"}}, 0)
	if out, err := Follow(ctx, h.c, runID); err != nil || out.Status != store.StatusInterrupted {
		t.Fatalf("run: %+v %v; want it paused", out, err)
	}
	answer := func(tokens int) *runner.AnswerRecord {
		t.Helper()
		a, err := runner.RecordAnswer(ctx, h.st, runID, runner.Answer{Values: map[string]any{"tokens": tokens}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	first, second := answer(400), answer(500)
	if err := Answer(ctx, h.c, runID, first.Path, first.Nonce); err != nil {
		t.Fatalf("raise: %v", err)
	}
	var ref *RefusedError
	if err := Answer(ctx, h.c, runID, second.Path, second.Nonce); !errors.As(err, &ref) {
		t.Fatalf("second answer: %v, want a *RefusedError", err)
	}
	return h.await(ctx, t, wr)
}

func recordBudgetRaiseContinued(ctx context.Context, t *testing.T, h *recorder, runID string) store.Status {
	var calls atomic.Int64
	srv := seventyTokens(t, &calls)
	// Without the reduce, the last execution is one the raise's redo
	// continued into.
	src := budgetInterrupt(t, srv.OpenAIURL())
	src = src[:strings.Index(src, "  reduce:")] + "edges:\n  - {from: START, to: summarize}\n"
	g := compile(t, runID+".yaml", src)
	docs := make([]any, 10)
	for i := range docs {
		docs[i] = fmt.Sprint(i)
	}
	if err := runner.SubmitRun(ctx, g, h.st, runID, map[string]any{"docs": docs}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, h.c, h.queue, RunInput{RunID: runID, HistoryLimit: 30}); err != nil {
		t.Fatal(err)
	}
	if out, err := Follow(ctx, h.c, runID); err != nil || out.Status != store.StatusInterrupted {
		t.Fatalf("run: %+v %v; want it paused", out, err)
	}
	a, err := runner.RecordAnswer(ctx, h.st, runID, runner.Answer{Values: map[string]any{"tokens": 1000}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Answer(ctx, h.c, runID, a.Path, a.Nonce); err != nil {
		t.Fatalf("raise: %v", err)
	}
	out, err := Follow(ctx, h.c, runID)
	if err != nil {
		t.Fatal(err)
	}
	return out.Status
}
