package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// testPruneRuns: PruneRuns deletes the finished runs that ended before the
// cut-off, with their invocations and checkpoints, and nothing else.
func testPruneRuns(t *testing.T, s store.Store) {
	p, ok := s.(store.Pruner)
	if !ok {
		t.Fatalf("%T does not implement store.Pruner", s)
	}
	ctx := context.Background()
	finish := func(id string, st store.Status, ended int) {
		mustCreate(t, s, newRun(id, at(0)))
		if err := s.RecordInvocation(ctx, &store.Invocation{RunID: id, Step: 1, Node: "a", Index: -1, Path: "1/a", Status: "completed", StartedAt: at(1), EndedAt: at(2)}); err != nil {
			t.Fatalf("RecordInvocation(%s): %v", id, err)
		}
		if st != store.StatusRunning {
			if err := s.FinishRun(ctx, id, st, "", at(ended)); err != nil {
				t.Fatalf("FinishRun(%s): %v", id, err)
			}
		}
	}
	finish("old-done", store.StatusCompleted, 10)
	finish("old-failed", store.StatusFailed, 20)
	finish("old-cancelled", store.StatusCancelled, 30)
	finish("old-paused", store.StatusInterrupted, 10)
	finish("new-done", store.StatusCompleted, 100)
	finish("at-cutoff", store.StatusCompleted, 50)
	finish("running", store.StatusRunning, 0)

	got, err := p.PruneRuns(ctx, at(50))
	if err != nil {
		t.Fatalf("PruneRuns: %v", err)
	}
	if want := []string{"old-cancelled", "old-done", "old-failed"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pruned %v, want %v", got, want)
	}
	for _, id := range []string{"old-done", "old-failed", "old-cancelled"} {
		if _, err := s.GetRun(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRun(%s) after prune: %v, want ErrNotFound", id, err)
		}
		if _, err := s.Invocations(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Invocations(%s) after prune: %v, want ErrNotFound", id, err)
		}
	}
	for _, id := range []string{"old-paused", "new-done", "at-cutoff", "running"} {
		if _, err := s.GetRun(ctx, id); err != nil {
			t.Errorf("GetRun(%s) after prune: %v (must be kept)", id, err)
		}
		invs, err := s.Invocations(ctx, id)
		if err != nil || len(invs) != 1 {
			t.Errorf("Invocations(%s) after prune: %d, %v (must be kept)", id, len(invs), err)
		}
	}
	again, err := p.PruneRuns(ctx, at(50))
	if err != nil || len(again) != 0 {
		t.Errorf("second PruneRuns = %v, %v; want nothing", again, err)
	}
	// An id freed by pruning can be used again.
	mustCreate(t, s, newRun("old-done", at(200)))
}
