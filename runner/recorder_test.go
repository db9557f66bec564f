package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/store"
)

// countingStore counts RecordInvocations calls and can fail the records of
// one node.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	batches []int
	failFor string
}

func (s *countingStore) RecordInvocations(ctx context.Context, invs []*store.Invocation) error {
	s.mu.Lock()
	s.batches = append(s.batches, len(invs))
	s.mu.Unlock()
	for _, inv := range invs {
		if inv.Node == s.failFor {
			return fmt.Errorf("disk full")
		}
	}
	return store.RecordInvocations(ctx, s.Store, invs)
}

func (s *countingStore) calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

func newCountingStore(t *testing.T) *countingStore {
	t.Helper()
	m := store.NewMemory()
	if err := m.CreateRun(context.Background(), &store.Run{ID: "r", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	return &countingStore{Store: m}
}

func recInv(i int) *store.Invocation {
	return &store.Invocation{RunID: "r", Step: 1, Node: "n", Index: i, Status: store.InvocationOK,
		Writes: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
}

func TestRecorder(t *testing.T) {
	t.Run("flush makes everything durable, in order, in few commits", func(t *testing.T) {
		st := newCountingStore(t)
		rc := newRecorder(st, recordLinger, nil)
		defer rc.close()
		for i := range 100 {
			rc.add(recInv(i))
		}
		if err := rc.flush(); err != nil {
			t.Fatal(err)
		}
		invs, _ := st.Invocations(context.Background(), "r")
		if len(invs) != 100 {
			t.Fatalf("%d invocations durable after flush, want 100", len(invs))
		}
		for i, inv := range invs {
			if inv.Index != i {
				t.Fatalf("invocation %d has index %d: order lost", i, inv.Index)
			}
		}
		if n := len(st.calls()); n > 2 {
			t.Errorf("100 records added at once took %d commits (%v), want 1 or 2", n, st.calls())
		}
	})
	// The timing subtests run on the fake clock of a synctest bubble:
	// synctest.Wait lets the recorder's goroutine do all it would before
	// the clock moves, so "within the linger" and "at once" are exact.
	t.Run("committed within the linger without a flush", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newCountingStore(t)
			rc := newRecorder(st, recordLinger, nil)
			defer rc.close()
			rc.add(recInv(1))
			time.Sleep(recordLinger)
			synctest.Wait()
			if got := st.calls(); len(got) != 1 {
				t.Fatalf("commits after the linger = %v, want one", got)
			}
		})
	})
	t.Run("a full batch commits at once, a partial one waits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newCountingStore(t)
			rc := newRecorder(st, time.Hour, nil)
			defer rc.close()
			for i := range recordBatch + 10 {
				rc.add(recInv(i))
			}
			synctest.Wait()
			time.Sleep(20 * time.Millisecond) // a wrong second commit would show
			if got := st.calls(); len(got) != 1 || got[0] < recordBatch {
				t.Fatalf("commits = %v, want one of at least %d before the linger", got, recordBatch)
			}
			if err := rc.flush(); err != nil {
				t.Fatal(err)
			}
			if invs, _ := st.Invocations(context.Background(), "r"); len(invs) != recordBatch+10 {
				t.Errorf("%d durable after flush, want %d", len(invs), recordBatch+10)
			}
		})
	})
	t.Run("hurried, it commits at once what it holds, if that is enough", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newCountingStore(t)
			rc := newRecorder(st, time.Hour, nil)
			defer rc.close()
			for i := range 10 {
				rc.add(recInv(i))
			}
			rc.hurry(11) // fewer queued than asked: it waits for the linger
			synctest.Wait()
			if got := st.calls(); len(got) != 0 {
				t.Fatalf("commits after hurry(11) with 10 queued = %v, want none", got)
			}
			rc.hurry(10)
			synctest.Wait()
			if got := st.calls(); len(got) != 1 || got[0] != 10 {
				t.Fatalf("commits after hurry(10) = %v, want one of 10", got)
			}
			// What is added later waits for the linger or a flush again.
			rc.add(recInv(10))
			synctest.Wait()
			if got := st.calls(); len(got) != 1 {
				t.Fatalf("commits after one more record = %v, want still one", got)
			}
			if err := rc.flush(); err != nil {
				t.Fatal(err)
			}
			if got := st.calls(); len(got) != 2 || got[1] != 1 {
				t.Errorf("commits after the flush = %v, want [10 1]", got)
			}
		})
	})
	// A fast for_each: 45 items finish every millisecond (the 2,000-GET
	// benchmark's rate on a quiet machine). Each commit costs the same
	// whatever it holds, so they must be gathered by the several hundred,
	// not by the 45 a 1 ms linger gathered (issue 13).
	t.Run("a fast for_each is committed hundreds of items at a time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newCountingStore(t)
			rc := newRecorder(st, recordLinger, nil)
			defer rc.close()
			const items, perMS = 2000, 45
			for i := range items {
				rc.add(recInv(i))
				if i%perMS == perMS-1 {
					time.Sleep(time.Millisecond)
				}
			}
			if err := rc.flush(); err != nil {
				t.Fatal(err)
			}
			got := st.calls()
			if len(got) > items/500+1 {
				t.Errorf("%d items took %d commits (%v), want at most %d", items, len(got), got, items/500+1)
			}
			if invs, _ := st.Invocations(context.Background(), "r"); len(invs) != items {
				t.Errorf("%d durable after flush, want %d", len(invs), items)
			}
		})
	})
	t.Run("errors reach the next flush, once", func(t *testing.T) {
		st := newCountingStore(t)
		st.failFor = "bad"
		rc := newRecorder(st, recordLinger, nil)
		defer rc.close()
		bad := recInv(1)
		bad.Node = "bad"
		rc.add(bad)
		if err := rc.flush(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("flush = %v, want the store's error", err)
		}
		if err := rc.flush(); err != nil {
			t.Fatalf("second flush = %v, want nil", err)
		}
	})
	t.Run("close commits what is queued", func(t *testing.T) {
		st := newCountingStore(t)
		rc := newRecorder(st, recordLinger, nil)
		rc.add(recInv(7))
		rc.close()
		if invs, _ := st.Invocations(context.Background(), "r"); len(invs) != 1 {
			t.Fatalf("%d invocations after close, want 1", len(invs))
		}
	})
}

// TestRunFailsWhenRecordingFails: a store that cannot record the items of
// a for_each fails the run at that step, naming the store, instead of
// going on with writes that resume could not find.
func TestRunFailsWhenRecordingFails(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
state:
  xs: {type: list, default: [1, 2, 3]}
  n: {type: integer, reducer: sum, default: 0}
nodes:
  each:
    type: set
    for_each: ${{ state.xs }}
    output: {n: 1}
  after:
    type: set
    output: {n: 100}
edges:
  - {from: START, to: each}
  - {from: each, to: after}
`)
	st := &countingStore{Store: store.NewMemory(), failFor: "each"}
	res, err := Run(context.Background(), g, Options{Environ: []string{}, Store: st, RunID: "r"})
	if err == nil || !strings.Contains(err.Error(), "store: record invocations of step 1") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want the store failure at step 1", err)
	}
	if res.Status != store.StatusFailed || res.State["n"] == 103 {
		t.Errorf("status %s, n = %v: the run went on past the failed step", res.Status, res.State["n"])
	}
	run, gerr := st.GetRun(context.Background(), "r")
	if gerr != nil || run.Status != store.StatusFailed {
		t.Errorf("recorded run: %v %v", run, gerr)
	}
}
