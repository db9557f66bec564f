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
	// keyed holds the key buckets for nodes that take the pool with a key.
	keyed *keyedPool
	// budget is the pool's token budget; nil = none.
	budget *tokenBudget
	// machine, for a pool of the user's config, takes its slots and rate
	// tokens machine-wide (machinepool.go); nil = a pool of this run.
	machine *machineSlots
	// scope is the path prefix of the subgraph invocation whose child
	// declared the pool ("" for the run's own): each child run has its
	// own instance of a pool its ancestors do not declare.
	scope string
}

func newPool(p *spec.Pool) *pool {
	pl := &pool{name: p.Name, sem: newSemaphore(p.Concurrency), budget: newTokenBudget("pool "+p.Name, p.Budget)}
	if ps := p.Rate.PerSecond(); ps > 0 {
		burst := p.Burst
		if burst <= 0 {
			burst = max(1, p.Concurrency)
		}
		pl.limiter = rate.NewLimiter(rate.Limit(ps), burst)
	}
	// A key never lifts the pool's own caps (SPEC §9.9: "one bucket per
	// key value, bounded by the pool's total"); without per_key its
	// buckets cap nothing of their own.
	var perKey spec.PoolLimits
	if p.PerKey != nil {
		perKey = *p.PerKey
	}
	pl.keyed = newKeyedPool(perKey)
	return pl
}

// limits are the caps of one run, shared with its subgraphs: the global
// semaphore and the pools by name. Per-node semaphores live in nodeCaps.
type limits struct {
	global *semaphore
	pools  map[string]*pool
	// run and providers are the token budgets (see setBudgets); nil = none.
	run        *tokenBudget
	providers  map[string]*tokenBudget
	parentless bool // the limits of a top-level run
	// ledger, when set, holds the budgets' amounts for every worker of a
	// run driven step by step (budget_shared.go); a subgraph's own
	// budgets join it when they are first reserved from.
	ledger *budgetLedger
}

func newLimits(concurrency int, pools []*spec.Pool) *limits {
	l := &limits{global: newSemaphore(concurrency), pools: make(map[string]*pool, len(pools)), parentless: true}
	for _, p := range pools {
		l.pools[p.Name] = newPool(p)
	}
	return l
}

// child returns the limits of a subgraph whose invocation paths start
// with scope: the parent's global cap and pools, plus the child's own
// pools where the parent has none of that name.
func (l *limits) child(pools []*spec.Pool, scope string) *limits {
	c := &limits{global: l.global, pools: make(map[string]*pool, len(l.pools)+len(pools)), run: l.run,
		providers: make(map[string]*tokenBudget, len(l.providers)), ledger: l.ledger}
	for n, b := range l.providers {
		c.providers[n] = b
	}
	for n, p := range l.pools {
		c.pools[n] = p
	}
	for _, p := range pools {
		if _, ok := c.pools[p.Name]; !ok {
			np := newPool(p)
			np.scope = scope
			c.pools[p.Name] = np
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
	none  bool // the invocation holds no global or pool slot, only its node's (a subgraph or tools node)
	// keyAt is 1 + the index in pools of the pool taken with a key (0 =
	// none); key is the invocation's key value. A node's shared caps have
	// keyAt set and key unset: each invocation takes a copy with its key
	// (see call.run).
	keyAt int
	key   string
	// held is the key bucket taken by the current attempt.
	held *bucket
}

// keyed reports whether c takes pool i with a key.
func (c *caps) keyed(i int) bool { return c.keyAt == i+1 }

// acquire takes every slot and token of c for one attempt, in a fixed order:
// node, pools (a keyed pool: the key's bucket, then its total), rate
// tokens (unless tokensGiven: the caller took them), global. onWait
// reports what it waits for. On error everything taken is released.
//
// A keyed invocation waits for its key's bucket before it takes a slot of
// the total: one busy key then never holds total slots that other keys
// could use.
func (l *limits) acquire(ctx context.Context, c *caps, onWait func(what string), tokensGiven bool) error {
	wait := func(what string) func() {
		if onWait == nil {
			return nil
		}
		return func() { onWait(what) }
	}
	if err := c.node.acquire(ctx, wait("node")); err != nil {
		return err
	}
	if c.none {
		// A subgraph or tools node caps its own invocations (its items)
		// and nothing else: its children's nodes and its tool calls take
		// their slots, which a slot held here could starve.
		return nil
	}
	for i, p := range c.pools {
		if c.keyed(i) {
			b := p.keyed.get(c.key)
			if err := b.acquire(ctx, p.name, onWait, tokensGiven); err != nil {
				p.keyed.put(b)
				l.releasePartial(c, i)
				return err
			}
			c.held = b
		}
		if err := p.sem.acquire(ctx, wait("pool "+p.name)); err != nil {
			l.releaseBucket(c, i)
			l.releasePartial(c, i)
			return err
		}
		if err := p.machine.acquire(ctx, wait("machine-wide pool "+p.name)); err != nil {
			p.sem.release()
			l.releaseBucket(c, i)
			l.releasePartial(c, i)
			return err
		}
	}
	for _, p := range c.pools {
		if p.limiter == nil || tokensGiven {
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

// releaseBucket gives back the key bucket pool i of c holds, if any.
func (l *limits) releaseBucket(c *caps, i int) {
	if c.keyed(i) && c.held != nil {
		c.held.sem.release()
		c.pools[i].keyed.put(c.held)
		c.held = nil
	}
}

// releasePartial releases the node slot and the first n pools' slots.
func (l *limits) releasePartial(c *caps, n int) {
	for i := n - 1; i >= 0; i-- {
		p := c.pools[i]
		p.machine.release()
		p.sem.release()
		l.releaseBucket(c, i)
	}
	c.node.release()
}

// release gives back everything acquire took.
func (l *limits) release(c *caps) {
	if c.none {
		c.node.release()
		return
	}
	l.global.release()
	l.releasePartial(c, len(c.pools))
}
