package temporal

import (
	"context"
	"testing"
	"time"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// The step cache opens a step once for its invocations, drops a run's
// earlier steps when a later one opens, and closes a step nobody used
// for cacheIdle when another step is opened (a worker must not keep the
// snapshot of a step another worker committed).
func TestStepCache(t *testing.T) {
	ctx := context.Background()
	g := compile(t, "c.yaml", `
lgx: 1
name: c
state: {x: {type: integer}}
nodes:
  a: {type: set, output: {x: 1}}
edges: [{from: START, to: a}]
`)
	st := store.NewMemory()
	for _, id := range []string{"A", "B"} {
		if err := runner.SubmitRun(ctx, g, st, id, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &stepCache{now: func() time.Time { return now }}
	opened := map[cacheKey]int{}
	get := func(run string, step int) func() {
		t.Helper()
		_, release, err := c.get(ctx, InvokeInput{RunID: run, Step: step}, func() (*runner.StepRun, error) {
			opened[cacheKey{run, step}]++
			return runner.OpenStep(ctx, st, run, runner.StepOptions{Environ: []string{}})
		})
		if err != nil {
			t.Fatal(err)
		}
		return release
	}
	cached := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.entries)
	}
	r1, r2 := get("A", 1), get("A", 1)
	r1()
	r2()
	if opened[cacheKey{"A", 1}] != 1 {
		t.Errorf("step A/1 opened %d times for two invocations", opened[cacheKey{"A", 1}])
	}
	get("A", 2)() // a later step of A: A/1 goes
	if cached() != 1 {
		t.Errorf("%d steps cached after A/2 opened, want 1", cached())
	}
	now = now.Add(cacheIdle + time.Second)
	hold := get("B", 1) // A/2 idle past cacheIdle: closed
	if cached() != 1 {
		t.Errorf("%d steps cached after A/2 idled, want 1 (B/1)", cached())
	}
	now = now.Add(cacheIdle + time.Second)
	get("B", 2)() // B/1 is still in use: kept until released, then closed
	hold()
	c.mu.Lock()
	closed := c.evictWhere(func(int, cacheKey) bool { return true })
	c.mu.Unlock()
	closeAll(closed)
}
