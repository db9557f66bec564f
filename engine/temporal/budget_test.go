package temporal

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
