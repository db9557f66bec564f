package runner

import (
	"context"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// inFlight replays a run's events and returns the most invocations that
// held their caps at once: between their acquired and node_end/node_error.
func inFlight(t *testing.T, rec *eventLog) int {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	held := map[string]bool{}
	most := 0
	for _, e := range rec.events {
		switch e.Event {
		case EventAcquired:
			if held[e.Path] {
				t.Errorf("%s: acquired twice", e.Path)
			}
			held[e.Path] = true
			most = max(most, len(held))
		case EventNodeEnd, EventNodeError:
			delete(held, e.Path)
		}
	}
	return most
}

// Every invocation that holds a slot sends one acquired event, after its
// node_start and before its node_end, once however many attempts it makes;
// its duration is the time it was queued, and the events alone show the
// cap (what max_in_flight checks read).
func TestAcquiredEvent(t *testing.T) {
	tests := []struct {
		name       string
		src        string
		invs       int  // invocations sending acquired
		cap        int  // most in flight by the events; 0: not checked (a retry backs off without its slot)
		wantQueued bool // some invocation must have waited for a slot
	}{
		{"node cap over for_each", `
lgx: 1
name: t
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..8 }}", concurrency: 2, with: {sleep_ms: 15}}
edges:
  - {from: START, to: f}
`, 8, 2, true},
		{"retries acquire again but report once", `
lgx: 1
name: t
state: {}
nodes:
  f:
    type: probe
    for_each: "${{ 1..4 }}"
    concurrency: 1
    retry: {attempts: 3, backoff: 1ms, max_backoff: 2ms}
    with: {sleep_ms: 2, group: acq2, fail: network, fail_times: 2}
edges:
  - {from: START, to: f}
`, 4, 0, true},
		{"pool across two nodes", `
lgx: 1
name: t
pools:
  web: {concurrency: 3}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 1..5 }}", pool: web, with: {sleep_ms: 10}}
  h: {type: probe, for_each: "${{ 1..5 }}", pool: web, with: {sleep_ms: 10}}
edges:
  - {from: START, to: [f, h]}
`, 10, 3, true},
		{"single node, nothing to wait for", `
lgx: 1
name: t
state: {}
nodes:
  a: {type: probe, with: {value: 1}}
edges:
  - {from: START, to: a}
`, 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resetGroup("acq2")
			rec := &eventLog{}
			res, err := runYAML(t, tt.src, nil, func(o *Options) { o.Sink = rec })
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != store.StatusCompleted {
				t.Fatalf("status %s", res.Status)
			}
			acq := rec.named(EventAcquired)
			if len(acq) != tt.invs {
				t.Fatalf("%d acquired events, want %d", len(acq), tt.invs)
			}
			if got := inFlight(t, rec); tt.cap > 0 && got != tt.cap {
				t.Errorf("most in flight by events = %d, want %d", got, tt.cap)
			}
			// Order per path: node_start, acquired, node_end.
			seen := map[string]string{}
			rec.mu.Lock()
			for _, e := range rec.events {
				switch e.Event {
				case EventNodeStart:
					seen[e.Path] = e.Event
				case EventAcquired:
					if seen[e.Path] != EventNodeStart {
						t.Errorf("%s: acquired after %q", e.Path, seen[e.Path])
					}
					seen[e.Path] = e.Event
				case EventNodeEnd:
					if seen[e.Path] != EventAcquired {
						t.Errorf("%s: node_end after %q", e.Path, seen[e.Path])
					}
				}
			}
			rec.mu.Unlock()
			queued := false
			for _, e := range acq {
				if e.DurationMS < 0 {
					t.Errorf("%s: negative queue time %d", e.Path, e.DurationMS)
				}
				if e.DurationMS > 0 {
					queued = true
				}
			}
			if tt.wantQueued && !queued {
				t.Errorf("no acquired event reports a queue time")
			}
		})
	}
}

// The items of a for_each start and take their caps in index order: a
// waiting item with a lower index gets a freed slot before a higher one,
// whatever order the workers pick them up in.
func TestForEachStartsInIndexOrder(t *testing.T) {
	tests := []struct{ name, caps string }{
		{"node cap", "concurrency: 1"},
		{"pool", "pool: one"},
		{"node cap 3", "concurrency: 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &eventLog{}
			res, err := runYAML(t, `
lgx: 1
name: t
config: {concurrency: 8}
pools:
  one: {concurrency: 1}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 0..19 }}", `+tt.caps+`, with: {rand_ms: 2}}
edges:
  - {from: START, to: f}
`, nil, func(o *Options) { o.Sink = rec })
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != store.StatusCompleted {
				t.Fatalf("status %s", res.Status)
			}
			for _, name := range []string{EventNodeStart, EventAcquired} {
				var order []int
				for _, e := range rec.named(name) {
					order = append(order, *e.Index)
				}
				for i, got := range order {
					if got != i {
						t.Fatalf("%s order %v, want 0..19", name, order)
					}
				}
				if len(order) != 20 {
					t.Fatalf("%d %s events", len(order), name)
				}
			}
		})
	}
}

// A turnstile moves past items that passed out of turn (cancelled while
// waiting) and wakes only the item whose turn it is.
func TestTurnstile(t *testing.T) {
	ts := newTurnstile(4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	turn{ts, 2}.wait(ctx) // cancelled: returns without its turn
	turn{ts, 2}.pass()    // out of order: item 0 keeps the turn
	woke := make(chan int, 4)
	go func() { turn{ts, 3}.wait(context.Background()); woke <- 3 }()
	go func() { turn{ts, 1}.wait(context.Background()); woke <- 1 }()
	turn{ts, 0}.wait(context.Background())
	select {
	case k := <-woke:
		t.Fatalf("item %d woke before item 0 passed", k)
	case <-time.After(20 * time.Millisecond):
	}
	turn{ts, 0}.pass()
	if k := <-woke; k != 1 {
		t.Fatalf("item %d woke first, want 1", k)
	}
	turn{ts, 1}.pass() // 2 passed already: the turn goes to 3
	if k := <-woke; k != 3 {
		t.Fatalf("item %d woke, want 3", k)
	}
}
