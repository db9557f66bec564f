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
// busy must not hold back items of other keys.
func (d *localDispatcher) turnstileFor(nr *nodeRun) *turnstile {
	n := nr.n
	if nr.items == nil || d.workers < 2 || n.caps.none || n.poolKey != nil {
		return nil
	}
	cp := d.r.caps[n.idx]
	if cp.node == nil && len(cp.pools) == 0 && d.r.lim.global == nil {
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
