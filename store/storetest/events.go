package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// EventStore is a store that keeps runs' event logs.
type EventStore interface {
	store.Store
	store.EventLog
}

// RunEvents runs the conformance suite of store.EventLog. open must
// return a new, empty store for each call; RunEvents closes it when the
// subtest ends.
func RunEvents(t *testing.T, open func(t *testing.T) EventStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s EventStore)
	}{
		{"Order", testEventsOrder},
		{"Rejects", testEventsRejects},
		{"Limit", testEventsLimit},
		{"ConcurrentTail", testEventsConcurrentTail},
		{"PrunedWithRun", testEventsPruned},
	}
	for _, tc := range tests {
		runCase(t, tc.name, open, tc.fn)
	}
}

func mustAppend(t *testing.T, s store.EventLog, run string, events ...string) {
	t.Helper()
	raw := make([][]byte, len(events))
	for i, e := range events {
		raw[i] = []byte(e)
	}
	if err := s.AppendEvents(context.Background(), run, raw); err != nil {
		t.Fatalf("AppendEvents(%s, %q): %v", run, events, err)
	}
}

// flat is the batches' events as strings, each prefixed by its batch's
// sequence number.
func flat(bs []store.EventBatch) []string {
	var out []string
	for _, b := range bs {
		for _, e := range b.Events {
			out = append(out, fmt.Sprintf("%d:%s", b.Seq, e))
		}
	}
	return out
}

func testEventsOrder(t *testing.T, s EventStore) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	mustCreate(t, s, newRun("other", at(0)))
	mustAppend(t, s, "run", `{"event":"node_start","node":"a"}`, `{"event":"token","token":"line one\nline two"}`)
	mustAppend(t, s, "other", `{"event":"x"}`)
	mustAppend(t, s, "run", `{"event":"node_end","node":"a"}`)
	bs, err := s.Events(ctx, "run", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`1:{"event":"node_start","node":"a"}`, `1:{"event":"token","token":"line one\nline two"}`, `2:{"event":"node_end","node":"a"}`}
	if got := flat(bs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Events(run, 0) = %q, want %q", got, want)
	}
	bs, err = s.Events(ctx, "run", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := flat(bs); fmt.Sprint(got) != fmt.Sprint(want[2:]) {
		t.Errorf("Events(run, 1) = %q, want %q", got, want[2:])
	}
	if bs, err := s.Events(ctx, "run", 2); err != nil || len(bs) != 0 {
		t.Errorf("Events(run, 2) = %v, %v; want none", bs, err)
	}
	if bs, err := s.Events(ctx, "other", 0); err != nil || fmt.Sprint(flat(bs)) != `[1:{"event":"x"}]` {
		t.Errorf("Events(other, 0) = %q, %v", flat(bs), err)
	}
	if bs, err := s.Events(ctx, "nobody", 0); err != nil || len(bs) != 0 {
		t.Errorf("Events of an unknown run = %v, %v; want none", bs, err)
	}
}

func testEventsRejects(t *testing.T, s EventStore) {
	ctx := context.Background()
	if err := s.AppendEvents(ctx, "nobody", [][]byte{[]byte(`{}`)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AppendEvents to an unknown run: %v, want ErrNotFound", err)
	}
	mustCreate(t, s, newRun("run", at(0)))
	for _, bad := range [][]byte{[]byte("{}\n{}"), nil} {
		if err := s.AppendEvents(ctx, "run", [][]byte{bad}); err == nil {
			t.Errorf("AppendEvents(%q) was accepted", bad)
		}
	}
	if bs, err := s.Events(ctx, "run", 0); err != nil || len(bs) != 0 {
		t.Errorf("after refused batches: %q, %v", flat(bs), err)
	}
}

func testEventsLimit(t *testing.T, s EventStore) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	n := store.EventBatchLimit + 3
	for i := range n {
		mustAppend(t, s, "run", fmt.Sprintf(`{"i":%d}`, i))
	}
	bs, err := s.Events(ctx, "run", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != store.EventBatchLimit || bs[len(bs)-1].Seq != store.EventBatchLimit {
		t.Fatalf("first read: %d batches, want %d", len(bs), store.EventBatchLimit)
	}
	bs, err = s.Events(ctx, "run", bs[len(bs)-1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if got := flat(bs); len(got) != 3 || got[2] != fmt.Sprintf(`%d:{"i":%d}`, n, n-1) {
		t.Errorf("second read: %q", got)
	}
}

// testEventsConcurrentTail appends from several writers while a reader
// follows the log from the last number it saw: the reader must see every
// batch, once, numbered 1, 2, 3, … (a batch committed with a number below
// one already read would be missed).
func testEventsConcurrentTail(t *testing.T, s EventStore) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.AppendEvents(ctx, "run", [][]byte{fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var last int64
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		bs, err := s.Events(ctx, "run", last)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.Seq != last+1 {
				t.Fatalf("read batch %d after %d", b.Seq, last)
			}
			last = b.Seq
			for _, e := range b.Events {
				if seen[string(e)] {
					t.Fatalf("event %s read twice", e)
				}
				seen[string(e)] = true
			}
		}
		if finished && len(bs) == 0 {
			break
		}
	}
	if len(seen) != writers*each {
		t.Errorf("read %d events, want %d", len(seen), writers*each)
	}
}

func testEventsPruned(t *testing.T, s EventStore) {
	p, ok := store.Store(s).(store.Pruner)
	if !ok {
		t.Skip("the store does not prune")
	}
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	mustAppend(t, s, "run", `{"event":"a"}`)
	if err := s.FinishRun(ctx, "run", store.StatusCompleted, "", at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PruneRuns(ctx, at(2)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, newRun("run", at(3)))
	if bs, err := s.Events(ctx, "run", 0); err != nil || len(bs) != 0 {
		t.Errorf("a new run of a pruned run's id sees %q, %v", flat(bs), err)
	}
}
