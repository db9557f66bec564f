package runner

import (
	"context"
	"sync"
)

// turnstile lets the items of one for_each take their caps in index order
// (FIFO): workers pick items up in order but race from there, so without
// it item 7 could take a freed slot while item 3 still waits. Item k
// starts (node_start) only once items 0..k-1 hold their caps or have
// ended; it keeps its turn while it waits for a slot, so a waiting item
// with a lower index gets a freed slot before any higher one.
//
// A turn is waited for at most until the invocation's context ends; an
// item that gives up early passes when it ends, out of order, and the
// turn moves past every item that has passed.
type turnstile struct {
	mu     sync.Mutex
	next   int             // the ordinal whose turn it is
	passed []bool          // ordinals that passed (only those >= next matter)
	wake   []chan struct{} // per ordinal, made when it waits for its turn
}

func newTurnstile(n int) *turnstile {
	return &turnstile{passed: make([]bool, n), wake: make([]chan struct{}, n)}
}

// turn is an invocation's place in a turnstile; the zero value has none.
type turn struct {
	ts  *turnstile
	ord int
}

// wait blocks until it is t's turn or ctx ends.
func (t turn) wait(ctx context.Context) {
	if t.ts == nil {
		return
	}
	s := t.ts
	s.mu.Lock()
	if s.next >= t.ord {
		s.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	s.wake[t.ord] = ch
	s.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// pass gives the turn on; called once per ordinal (see call.passTurn).
func (t turn) pass() {
	if t.ts == nil {
		return
	}
	s := t.ts
	s.mu.Lock()
	s.passed[t.ord] = true
	was := s.next
	for s.next < len(s.passed) && s.passed[s.next] {
		s.next++
	}
	var ch chan struct{}
	if s.next != was && s.next < len(s.wake) {
		ch = s.wake[s.next]
		s.wake[s.next] = nil
	}
	s.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// turnstileFor returns the turnstile of a for_each's items about to be
// handed to the workers, or nil when their order cannot matter: one item
// to run, one worker, no cap to wait for, or a subgraph node (no slot).
// Items taking a pool with a key have none either: an item whose key is
// busy must not hold back items of other keys. solo says the for_each is
// the only node of its step.
func (d *localDispatcher) turnstileFor(nr *nodeRun, solo bool) *turnstile {
	n := nr.n
	if nr.items == nil || d.workers < 2 || n.caps.none || n.poolKey != nil {
		return nil
	}
	cp := d.r.caps[n.idx]
	if cp.node == nil && len(cp.pools) == 0 && d.r.lim.global == nil {
		return nil
	}
	if solo && d.neverWaits(cp) {
		return nil
	}
	todo := 0
	for i := range nr.res {
		if !nr.res[i].reused {
			todo++
		}
	}
	if todo < 2 {
		return nil
	}
	return newTurnstile(todo)
}

// neverWaits reports whether the items of a step's only node, taking caps
// cp, can never wait for a slot and nobody watches the order they start
// in: no events are sent (the turnstile orders node_start and acquired),
// no pool (shared with other nodes, tool calls and runs, and rate
// limited), a node cap and a global cap at least as large as the number
// of workers, and a run whose global cap no parent's invocations share.
// At most one item per worker then holds a slot, so every acquire takes
// one at once and the turn would only make each item wait for the
// goroutine of the one before it to be scheduled: a park and a wake-up
// for about half the items of a 2,000-GET for_each (issue 13).
func (d *localDispatcher) neverWaits(cp *caps) bool {
	r := d.r
	return r.sink == nil && len(cp.pools) == 0 && r.opts.limits == nil &&
		(cp.node == nil || cp.node.capacity() >= d.workers) &&
		(r.lim.global == nil || r.lim.global.capacity() >= d.workers)
}
