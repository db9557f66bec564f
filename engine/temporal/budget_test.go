package temporal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/internal/temporaltest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// A run budget on Temporal holds across two workers: 20 summaries and a
// reduce, each call reserving 400 tokens of 1,400 (so at most 3 in
// flight, whichever worker makes them), give the local run's state and
// usage, both workers make calls, and the provider never sees more than
// the budget allows at once.
func TestTemporalBudgetTwoWorkers(t *testing.T) {
	temporaltest.Address(t)
	c := temporaltest.Dial(t)
	var inFlight, maxInFlight atomic.Int64
	var mu sync.Mutex
	byWorker := map[string]int{}
	srv := llmtest.New(t)
	srv.SetResponder(func(r llmtest.Request) llmtest.Reply {
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		mu.Lock()
		byWorker[r.Header.Get("X-Lgx-Worker")]++
		mu.Unlock()
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 30, OutputTokens: 20}, Delay: 40 * time.Millisecond,
			OnChunk: func(i int) {
				if i == 0 {
					inFlight.Add(-1) // the client settles after the last chunk
				}
			}}
	})
	g := compile(t, "budget.yaml", fmt.Sprintf(`
lgx: 1
name: budget_workers
config: {budget: {tokens: 1400}}
providers:
  default: {kind: openai, model: m, base_url: "%s", api_key: test-key}
state:
  docs: {type: list, required: true}
  summaries: {type: list, reducer: append}
  brief: {type: string}
nodes:
  summarize:
    type: llm_call
    for_each: ${{ state.docs }}
    with: {prompt: "${{ item }}", reserve: 400}
    output: {summaries: ["${{ item }}: ${{ result.content }}"]}
  reduce:
    type: llm_call
    with: {prompt: "${{ join(state.summaries, ' ') }}", reserve: 400}
    output: {brief: "${{ result.content }}"}
edges:
  - {from: START, to: summarize}
  - {from: summarize, to: reduce}
`, srv.OpenAIURL()))
	docs := make([]any, 20)
	for i := range docs {
		docs[i] = fmt.Sprintf("doc%02d", i)
	}
	inputs := map[string]any{"docs": docs}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatalf("local run: %v", err)
	}
	maxInFlight.Store(0)
	clear(byWorker)

	dbPath := filepath.Join(t.TempDir(), "runs.db")
	st, err := store.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	queue := fmt.Sprintf("lgx-budget-%d", time.Now().UnixNano())
	startWorkers(t, dbPath, queue, 2, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runID := queue + "-run" // workflow ids outlive a test run on the server
	if err := runner.SubmitRun(ctx, g, st, runID, inputs, nil); err != nil {
		t.Fatal(err)
	}
	wr, err := Start(ctx, c, queue, RunInput{RunID: runID})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Await(ctx, wr)
	if err != nil || out.Status != store.StatusCompleted {
		t.Fatalf("run: %+v, %v", out, err)
	}
	got, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state:\n temporal %s\n local    %s", g, w)
	}
	if g, w := fmt.Sprint(got.Budgets), fmt.Sprint(want.Budgets); g != w || w != "[budget run: 1050 of 1400 tokens used]" {
		t.Errorf("budgets: temporal %s, local %s", g, w)
	}
	if m := maxInFlight.Load(); m > 3 {
		t.Errorf("%d calls in flight at once; the budget holds 3", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if byWorker["0"] == 0 || byWorker["1"] == 0 {
		t.Errorf("calls by worker %v: want both workers to call", byWorker)
	}
	t.Logf("max in flight %d, calls by worker %v", maxInFlight.Load(), byWorker)
}

// budgetInterrupt is runner/testdata/budget_interrupt.yaml calling the
// OpenAI server at url: four calls reserving 70 tokens each (the server
// reports 70) under a 200-token run budget with on_exhausted: interrupt,
// one at a time, so the third and fourth pause; the reduce after them
// reserves 70 more.
func budgetInterrupt(t testing.TB, url string) string {
	t.Helper()
	src, err := os.ReadFile("../../runner/testdata/budget_interrupt.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(src), "URL", url)
}

// seventyTokens answers every call with 50+20 tokens, counting the calls.
func seventyTokens(t *testing.T, calls *atomic.Int64) *llmtest.Server {
	srv := llmtest.New(t)
	srv.SetResponder(func(llmtest.Request) llmtest.Reply {
		calls.Add(1)
		return llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{InputTokens: 50, OutputTokens: 20}, Delay: 5 * time.Millisecond}
	})
	return srv
}

// A budget interrupt on Temporal, on two workers: the run pauses at the
// two calls that do not fit (the workflow waits, as at an interrupt
// node), a raise that does not raise is refused before it reaches the
// workflow, the accepted raise runs the two paused calls again (and only
// them: 5 calls in all) and the reduce under the new limit, a second
// answer is refused, and the outcome (state, usage) is the local run's
// resumed with the same answer. The raise's limit never enters the
// workflow's history: only its nonce.
func TestTemporalBudgetInterrupt(t *testing.T) {
	temporaltest.Address(t)
	c := temporaltest.Dial(t)
	var calls atomic.Int64
	srv := seventyTokens(t, &calls)
	g := compile(t, "budget.yaml", budgetInterrupt(t, srv.OpenAIURL()))
	inputs := map[string]any{"docs": []any{"a", "b", "c", "d"}}
	lst := store.NewMemory()
	if _, err := runner.Run(context.Background(), g, runner.Options{Store: lst, RunID: "L", Inputs: inputs, Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	raise := map[string]any{"tokens": 4321}
	want, err := runner.Resume(context.Background(), lst, "L", runner.Options{Environ: []string{}, Answer: runner.Answer{Values: raise}})
	if err != nil {
		t.Fatal(err)
	}
	calls.Store(0)

	dbPath := filepath.Join(t.TempDir(), "runs.db")
	st, err := store.OpenSQLite(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	queue := fmt.Sprintf("lgx-budget-intr-%d", time.Now().UnixNano())
	startWorkers(t, dbPath, queue, 2, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, inputs, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, c, queue, RunInput{RunID: runID}); err != nil {
		t.Fatal(err)
	}
	out, err := Follow(ctx, c, runID)
	if err != nil || out.Status != store.StatusInterrupted {
		t.Fatalf("run: %+v %v; want it paused", out, err)
	}
	paused, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var waits []string
	for _, in := range paused.Interrupts {
		waits = append(waits, in.Path+" on "+in.Budget)
	}
	if fmt.Sprint(waits) != "[1/summarize[2] on run 1/summarize[3] on run]" || fmt.Sprint(paused.Budgets) != "[budget run: 140 of 200 tokens used]" {
		t.Fatalf("paused at %v with %v", waits, paused.Budgets)
	}
	if _, err := runner.RecordAnswer(ctx, st, runID, runner.Answer{Values: map[string]any{"tokens": 150}}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "tokens=150 does not raise budget run: its limit is 200 tokens (140 used)") {
		t.Fatalf("a raise that lowers the limit: %v", err)
	}
	first, err := runner.RecordAnswer(ctx, st, runID, runner.Answer{Values: raise}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := runner.RecordAnswer(ctx, st, runID, runner.Answer{Values: map[string]any{"tokens": 5000}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Answer(ctx, c, runID, first.Path, first.Nonce); err != nil {
		t.Fatalf("raise: %v", err)
	}
	var ref *RefusedError
	if err := Answer(ctx, c, runID, second.Path, second.Nonce); !errors.As(err, &ref) {
		t.Fatalf("second answer: %v, want a *RefusedError", err)
	}
	raised(ctx, t, c, st, runID, want, "[budget run: 350 of 4321 tokens used]")
	if n := calls.Load(); n != 5 {
		t.Errorf("%d calls sent; want 5 (the paused calls once, nothing twice)", n)
	}
	hist := historyText(ctx, t, c, runID)
	if contains(hist, "4321") || !contains(hist, first.Nonce) {
		t.Errorf("the history holds the raised limit, or not the raise's nonce")
	}
}

// A budget interrupt inside a subgraph's child: the child's calls spend
// the parent's run budget, so its last two calls pause it; the
// raise runs them again (dispatched by the workflow as child invocations,
// each carrying the raise) and the run ends as the local one resumed with
// the same answer, with no call sent twice.
func TestTemporalBudgetInterruptInChild(t *testing.T) {
	lw := startLive(t, "lgx-budget-child", 4)
	c, st, queue := lw.c, lw.st, lw.queue
	var calls atomic.Int64
	srv := seventyTokens(t, &calls)
	files := map[string]string{
		"main.yaml": fmt.Sprintf(`
lgx: 1
name: parent
config: {budget: {tokens: 200, on_exhausted: interrupt}}
providers:
  default: {kind: openai, model: m, base_url: "%s", api_key: test-key}
state:
  n: {type: integer, reducer: sum, default: 0}
nodes:
  each:
    type: subgraph
    with: {workflow: child.yaml, input: {k: 7}}
    output: {n: "${{ result.n }}"}
edges:
  - {from: START, to: each}
`, srv.OpenAIURL()),
		"child.yaml": fmt.Sprintf(`
lgx: 1
name: child
providers:
  default: {kind: openai, model: m, base_url: "%s", api_key: test-key}
state:
  k: {type: integer, required: true}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  summarize:
    type: llm_call
    for_each: ${{ [0, 1, 2, 3] }}
    concurrency: 1
    with: {prompt: "${{ state.k }} ${{ item }}", reserve: 70}
    output: {n: 1}
edges:
  - {from: START, to: summarize}
`, srv.OpenAIURL()),
	}
	g := loadFiles(t, files)
	raise := map[string]any{"tokens": 400}
	lst := store.NewMemory()
	if _, err := runner.Run(context.Background(), g, runner.Options{Store: lst, RunID: "L", Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
	want, err := runner.Resume(context.Background(), lst, "L", runner.Options{Environ: []string{}, Answer: runner.Answer{Values: raise}})
	if err != nil {
		t.Fatal(err)
	}
	if want.Status != store.StatusCompleted {
		t.Fatalf("local run resumed: %s", want.Status)
	}
	calls.Store(0)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, c, queue, RunInput{RunID: runID}); err != nil {
		t.Fatal(err)
	}
	out, err := Follow(ctx, c, runID)
	if err != nil || out.Status != store.StatusInterrupted {
		t.Fatalf("run: %+v %v; want it paused", out, err)
	}
	waiting, err := runner.Waiting(ctx, st, runID)
	if err != nil {
		t.Fatal(err)
	}
	var waits []string
	for _, in := range waiting {
		waits = append(waits, in.Path+" on "+in.Budget)
	}
	if fmt.Sprint(waits) != "[1/each/1/summarize[2] on run 1/each/1/summarize[3] on run]" {
		t.Fatalf("paused at %v", waits)
	}
	a, err := runner.RecordAnswer(ctx, st, runID, runner.Answer{Values: raise}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Answer(ctx, c, runID, a.Path, a.Nonce); err != nil {
		t.Fatalf("raise: %v", err)
	}
	raised(ctx, t, c, st, runID, want, "[budget run: 280 of 400 tokens used]")
	if n := calls.Load(); n != 4 {
		t.Errorf("%d calls sent; want 4 (the paused calls once, nothing twice)", n)
	}
}

// raised follows run runID on from its raise to its end and checks that
// it ended as want, the local run resumed with the same answer, with
// budgets as reported.
func raised(ctx context.Context, t *testing.T, c client.Client, st store.Store, runID string, want *runner.Result, budgets string) {
	t.Helper()
	if out, err := Follow(ctx, c, runID); err != nil || out.Status != store.StatusCompleted {
		t.Fatalf("after the raise: %+v %v", out, err)
	}
	got, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.State), jsonOf(t, want.State); g != w {
		t.Errorf("state:\n temporal %s\n local    %s", g, w)
	}
	if g, w := fmt.Sprint(got.Budgets), fmt.Sprint(want.Budgets); g != w || w != budgets {
		t.Errorf("budgets: temporal %s, local %s, want %s", g, w, budgets)
	}
}

// A raise whose redo continues as new (a history limit of 30 events,
// reached while the step's paused calls are dispatched again): the next
// execution carries the raise on, so the calls it dispatches run under it
// rather than pause again, and each call is sent once.
func TestTemporalBudgetRaiseContinued(t *testing.T) {
	lw := startLive(t, "lgx-budget-continued", 4)
	c, st, queue := lw.c, lw.st, lw.queue
	var calls atomic.Int64
	srv := seventyTokens(t, &calls)
	g := compile(t, "budget.yaml", budgetInterrupt(t, srv.OpenAIURL()))
	docs := make([]any, 10)
	for i := range docs {
		docs[i] = fmt.Sprint(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, map[string]any{"docs": docs}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, c, queue, RunInput{RunID: runID, HistoryLimit: 30}); err != nil {
		t.Fatal(err)
	}
	out, err := Follow(ctx, c, runID)
	if err != nil || out.Status != store.StatusInterrupted {
		t.Fatalf("run: %+v %v; want it paused", out, err)
	}
	waiting, err := runner.Waiting(ctx, st, runID)
	if err != nil || len(waiting) != 8 {
		t.Fatalf("waiting at %d calls (%v), want 8", len(waiting), err)
	}
	before := executions(ctx, t, c, runID)
	a, err := runner.RecordAnswer(ctx, st, runID, runner.Answer{Values: map[string]any{"tokens": 1000}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Answer(ctx, c, runID, a.Path, a.Nonce); err != nil {
		t.Fatalf("raise: %v", err)
	}
	if out, err = Follow(ctx, c, runID); err != nil || out.Status != store.StatusCompleted {
		t.Fatalf("after the raise: %+v %v", out, err)
	}
	if after := executions(ctx, t, c, runID); after < before+1 {
		t.Fatalf("%d executions before the raise, %d after: the redo did not continue as new", before, after)
	}
	got, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b := fmt.Sprint(got.Budgets); b != "[budget run: 770 of 1000 tokens used]" {
		t.Errorf("budgets %s", b)
	}
	if n := calls.Load(); n != 11 {
		t.Errorf("%d calls sent; want 11 (10 summaries and the reduce, each once)", n)
	}
}

// executions counts the executions of workflow id (each Continue-As-New
// starts one).
func executions(ctx context.Context, t *testing.T, c client.Client, id string) int {
	t.Helper()
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = %q", id)})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetExecutions())
}
