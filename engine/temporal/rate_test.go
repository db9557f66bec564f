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

// A pool's rate is held by the workflow, on its own clock: invocations
// of a rate-limited pool are dispatched no faster than the pool allows
// (burst, then one per 1/rate), across steps too, whatever the workers.
// The SDK's test environment skips the workflow's timers, so the test
// reads the dispatch times off its clock and takes no real seconds.
func TestSchedulerRateLimit(t *testing.T) {
	srv := &inflight{}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	const src = `
lgx: 1
name: rated
pools:
  api: {concurrency: 10, rate: 2/s, burst: 3}
state:
  urls: {type: list, required: true}
  pages: {type: list, reducer: append, default: []}
nodes:
  fetch:
    type: http_fetch
    for_each: ${{ state.urls }}
    pool: api
    with: {url: "${{ item }}"}
    output: {pages: "${{ result.body }}"}
  again:
    type: http_fetch
    pool: api
    with: {url: "${{ state.urls[0] }}"}
    output: {pages: "${{ result.body }}"}
edges:
  - {from: START, to: fetch}
  - {from: fetch, to: again}
  - {from: again, to: END}
`
	urls := []any{}
	for i := range 7 {
		urls = append(urls, fmt.Sprintf("%s/doc/%d", hs.URL, i))
	}
	g := compile(t, "rated.yaml", src)
	want, err := local(t, g, map[string]any{"urls": urls}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "R", map[string]any{"urls": urls}, nil); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var at []time.Time // dispatch times, on the workflow's clock
	env := suiteEnv(t, st, func(env *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			mu.Lock()
			at = append(at, env.Now())
			mu.Unlock()
			return a.Invoke(ctx, in)
		}}
	})
	began := time.Now()
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "R"})
	completedAsLocally(t, env, st, "R", want)
	if len(at) != 8 {
		t.Fatalf("%d invocations dispatched, want 8", len(at))
	}
	// Invocation i (0-based) may start once burst 3 and 2 a second allow:
	// at t0 + (i-2)/2 s for i >= 3. Each is dispatched as soon as that
	// (the workflow's timers fire on time), so no later than 100 ms after.
	for i, ti := range at {
		earliest := at[0]
		if i >= 3 {
			earliest = earliest.Add(time.Duration(i-2) * 500 * time.Millisecond)
		}
		if ti.Before(earliest) || ti.After(earliest.Add(100*time.Millisecond)) {
			t.Errorf("invocation %d dispatched at +%s, want +%s (burst 3, 2/s)", i, ti.Sub(at[0]), earliest.Sub(at[0]))
		}
	}
	if real := time.Since(began); real > 10*time.Second {
		t.Errorf("took %s of real time: the workflow's timers were not skipped", real)
	}
}
