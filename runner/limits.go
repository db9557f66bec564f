package runner

import (
	"context"

	xsemaphore "golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/lgx-run/lgx/spec"
)

// semaphore caps how many invocations hold a slot at once; nil means "no
// cap". It is golang.org/x/sync/semaphore with its size kept (the workers
// started per step are bounded by the global cap's size).
type semaphore struct {
	w    *xsemaphore.Weighted
	size int
}

func newSemaphore(n int) *semaphore {
	if n <= 0 {
		return nil
	}
	return &semaphore{w: xsemaphore.NewWeighted(int64(n)), size: n}
}

// acquire takes a slot, calling onWait once first if it has to wait.
// Waiting is ended only by ctx.
func (s *semaphore) acquire(ctx context.Context, onWait func()) error {
	if s == nil || s.w.TryAcquire(1) {
		return nil
	}
	if onWait != nil {
		onWait()
	}
	return s.w.Acquire(ctx, 1)
}

func (s *semaphore) release() {
	if s != nil {
		s.w.Release(1)
	}
}

// capacity is the number of slots, 0 for no cap.
func (s *semaphore) capacity() int {
	if s == nil {
		return 0
	}
	return s.size
}

// pool is a named cap shared by nodes (SPEC §4.2): a concurrency semaphore
// and an optional token bucket taken once per attempt.
type pool struct {
	name    string
	sem     *semaphore
	limiter *rate.Limiter // nil = no rate limit
}

func newPool(p *spec.Pool) *pool {
	pl := &pool{name: p.Name, sem: newSemaphore(p.Concurrency)}
	if ps := p.Rate.PerSecond(); ps > 0 {
		burst := p.Burst
		if burst <= 0 {
			burst = max(1, p.Concurrency)
		}
		pl.limiter = rate.NewLimiter(rate.Limit(ps), burst)
	}
	return pl
}

// limits are the caps of one run, shared with its subgraphs: the global
// semaphore and the pools by name. Per-node semaphores live in nodeCaps.
type limits struct {
	global *semaphore
	pools  map[string]*pool
}

func newLimits(concurrency int, pools []*spec.Pool) *limits {
	l := &limits{global: newSemaphore(concurrency), pools: make(map[string]*pool, len(pools))}
	for _, p := range pools {
		l.pools[p.Name] = newPool(p)
	}
	return l
}

// child returns the limits of a subgraph: the parent's global cap and
// pools, plus the child's own pools where the parent has none of that name.
func (l *limits) child(pools []*spec.Pool) *limits {
	c := &limits{global: l.global, pools: make(map[string]*pool, len(l.pools)+len(pools))}
	for n, p := range l.pools {
		c.pools[n] = p
	}
	for _, p := range pools {
		if _, ok := c.pools[p.Name]; !ok {
			c.pools[p.Name] = newPool(p)
		}
	}
	return c
}

// caps is what one invocation attempt must hold: its node's semaphore and
// its pools (sorted by name, so that every invocation acquires in the same
// order and none can deadlock), then one global slot.
type caps struct {
	node  *semaphore
	pools []*pool
	none  bool // the invocation holds no slot (a subgraph node)
}

// acquire takes every slot and token of c for one attempt, in a fixed order:
// node, pools, rate tokens, global. onWait reports what it waits for. On
// error everything taken is released.
func (l *limits) acquire(ctx context.Context, c *caps, onWait func(what string)) error {
	if c.none {
		return nil
	}
	wait := func(what string) func() {
		if onWait == nil {
			return nil
		}
		return func() { onWait(what) }
	}
	if err := c.node.acquire(ctx, wait("node")); err != nil {
		return err
	}
	for i, p := range c.pools {
		if err := p.sem.acquire(ctx, wait("pool "+p.name)); err != nil {
			l.releasePartial(c, i)
			return err
		}
	}
	for _, p := range c.pools {
		if p.limiter == nil {
			continue
		}
		if !p.limiter.Allow() {
			if onWait != nil {
				onWait("rate " + p.name)
			}
			if err := p.limiter.Wait(ctx); err != nil {
				l.releasePartial(c, len(c.pools))
				return err
			}
		}
	}
	if err := l.global.acquire(ctx, wait("global")); err != nil {
		l.releasePartial(c, len(c.pools))
		return err
	}
	return nil
}

// releasePartial releases the node slot and the first n pool slots.
func (l *limits) releasePartial(c *caps, n int) {
	for i := n - 1; i >= 0; i-- {
		c.pools[i].sem.release()
	}
	c.node.release()
}

// release gives back everything acquire took.
func (l *limits) release(c *caps) {
	if c.none {
		return
	}
	l.global.release()
	l.releasePartial(c, len(c.pools))
}
