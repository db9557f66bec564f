package temporal

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"go.temporal.io/sdk/testsuite"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// A worker polls for an activity task only while one of its invocation
// slots is free, at most max tasks at once; invocations take slots up to
// max whatever the tasks hold, so a chunk's items are not held back by a
// poller.
func TestWorkerSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		w := newWorkerSlots(2)
		// Two tasks reserved (pollers waiting on the server): the
		// invocations of a running chunk still get both slots.
		p1, err := w.ReserveSlot(ctx, nil)
		if err != nil || p1 == nil {
			t.Fatal(err)
		}
		if _, err := w.ReserveSlot(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if w.TryReserveSlot(nil) != nil {
			t.Error("a third task slot was given, the bound is 2")
		}
		rel1, err := w.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rel2, err := w.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Full: a third invocation waits, and so does a poller once a
		// task slot is free.
		var third atomic.Bool
		go func() {
			rel, err := w.acquire(ctx)
			if err == nil {
				third.Store(true)
				rel()
			}
		}()
		w.ReleaseSlot(nil)
		var polled atomic.Bool
		go func() {
			if _, err := w.ReserveSlot(ctx, nil); err == nil {
				polled.Store(true)
			}
		}()
		synctest.Wait()
		if third.Load() || polled.Load() {
			t.Fatalf("with both invocation slots taken: a third invocation ran (%v), a poller reserved (%v)", third.Load(), polled.Load())
		}
		if w.TryReserveSlot(nil) != nil {
			t.Error("an eager task was given a slot while every invocation slot is taken")
		}
		rel1()
		rel1() // a second release is a no-op
		synctest.Wait()
		if !third.Load() {
			t.Error("a freed invocation slot did not go to the waiting invocation")
		}
		if !polled.Load() {
			t.Error("a freed invocation slot did not let the poller reserve")
		}
		rel2()
		// A cancelled reservation gives its task slot back.
		cctx, cancel := context.WithCancel(ctx)
		rel3, _ := w.acquire(ctx)
		rel4, _ := w.acquire(ctx)
		w.ReleaseSlot(nil)
		errc := make(chan error, 1)
		go func() { _, err := w.ReserveSlot(cctx, nil); errc <- err }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled reservation returned %v, want context.Canceled", err)
		}
		rel3()
		rel4()
		if w.TryReserveSlot(nil) == nil {
			t.Error("no task slot after the cancelled reservation: it kept its slot")
		}
	})
}

// A chunk's items each take one of the worker's invocation slots: with a
// bound of 3, a for_each under a node cap of 40 never has more than 3
// requests in flight on the worker, and still completes as locally.
func TestSchedulerChunksUnderWorkerBound(t *testing.T) {
	srv := &flightServer{count: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	const n, nodeCap, bound = 120, 40, 3
	g := compile(t, "bound.yaml", fmt.Sprintf(fetchEach, 100, nodeCap))
	inputs := map[string]any{"urls": urlList(hs, n, -1)}
	want, err := local(t, g, inputs, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv.reset()
	st := store.NewMemory()
	if err := runner.SubmitRun(context.Background(), g, st, "B", inputs, nil); err != nil {
		t.Fatal(err)
	}
	var chunked atomic.Bool
	env := suiteEnv(t, st, func(_ *testsuite.TestWorkflowEnvironment, a *Activities) map[string]any {
		a.slots = newWorkerSlots(bound)
		return map[string]any{InvokeActivity: func(ctx context.Context, in InvokeInput) (*runner.InvokeResult, error) {
			if len(in.Items) > bound {
				chunked.Store(true)
			}
			return a.Invoke(ctx, in)
		}}
	})
	env.ExecuteWorkflow(WorkflowName, RunInput{RunID: "B"})
	completedAsLocally(t, env, st, "B", want)
	if !chunked.Load() {
		t.Fatalf("no chunk of more than %d items: the test shows nothing", bound)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.top > bound {
		t.Errorf("%d requests in flight on a worker bounded to %d invocations", srv.top, bound)
	}
	if srv.top < 2 {
		t.Errorf("at most %d request in flight: the chunk's items did not run concurrently", srv.top)
	}
}
