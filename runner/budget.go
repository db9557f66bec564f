package runner

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// tokenBudget is a token budget (SPEC §9.9): calls reserve an estimate
// before they start and settle it with the usage the provider reports, so
// that tokens already spent plus tokens in flight never exceed the limit.
type tokenBudget struct {
	name  string // "run", "pool NAME" or "provider NAME"
	limit int64
	// wait: a call that does not fit while others are in flight waits for
	// them to settle (on_exhausted: wait, the default); else it fails at
	// once (fail). Either way a call fails once the settled usage alone
	// leaves too little: nothing in a run refills a budget.
	wait bool

	mu       sync.Mutex
	used     int64         // settled usage
	reserved int64         // reservations of calls in flight
	freed    chan struct{} // closed (and replaced) whenever tokens are given back
}

func newTokenBudget(name string, b *spec.Budget) *tokenBudget {
	if b == nil || b.Tokens <= 0 {
		return nil
	}
	wait := b.OnExhausted != spec.BudgetFail
	return &tokenBudget{name: name, limit: b.Tokens, wait: wait, freed: make(chan struct{})}
}

// reserve takes n tokens. It fails with kind budget when they do not fit
// and the budget fails on exhaustion, or when they could never fit (the
// settled usage alone leaves too little, so waiting would be forever).
// Otherwise it waits for reservations to settle; onWait is called once.
func (b *tokenBudget) reserve(ctx context.Context, n int64, onWait func()) error {
	waited := false
	for {
		b.mu.Lock()
		if b.used+b.reserved+n <= b.limit {
			b.reserved += n
			b.mu.Unlock()
			return nil
		}
		if !b.wait || b.used+n > b.limit {
			err := &nodes.Error{Kind: nodes.KindBudget, Err: fmt.Errorf("token budget of %s exhausted: the call reserves %d tokens, %d of %d are used and %d reserved by calls in flight",
				b.name, n, b.used, b.limit, b.reserved)}
			b.mu.Unlock()
			return err
		}
		freed := b.freed
		b.mu.Unlock()
		if !waited && onWait != nil {
			onWait()
			waited = true
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settle ends a reservation of n tokens, charging used, and returns the
// usage and limit after it.
func (b *tokenBudget) settle(n, used int64) (int64, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved -= n
	b.used += used
	close(b.freed)
	b.freed = make(chan struct{})
	return b.used, b.limit
}

// BudgetUsage is the state of one token budget at the end of a run.
type BudgetUsage struct {
	Name  string `json:"name"` // "run", "pool NAME" or "provider NAME"
	Used  int64  `json:"used"`
	Limit int64  `json:"limit"`
}

func (b *tokenBudget) usage() BudgetUsage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BudgetUsage{Name: b.name, Used: b.used, Limit: b.limit}
}

// setBudgets adds the run's and the providers' budgets of w to l, keeping
// those a parent run already has (a subgraph spends its parent's budgets).
func (l *limits) setBudgets(w *spec.Workflow) {
	if l.run == nil && l.parentless {
		l.run = newTokenBudget("run", w.Config.Budget)
	}
	if l.providers == nil {
		l.providers = map[string]*tokenBudget{}
	}
	for _, p := range w.Providers {
		if _, ok := l.providers[p.Name]; !ok {
			if b := newTokenBudget("provider "+p.Name, p.Budget); b != nil {
				l.providers[p.Name] = b
			}
		}
	}
}

// budgetUsage lists every budget of l, the run's first, then by name.
func (l *limits) budgetUsage() []BudgetUsage {
	var out []BudgetUsage
	var rest []BudgetUsage
	if l.run != nil {
		out = append(out, l.run.usage())
	}
	for _, p := range l.pools {
		if p.budget != nil {
			rest = append(rest, p.budget.usage())
		}
	}
	for _, b := range l.providers {
		rest = append(rest, b.usage())
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Name < rest[j].Name })
	return append(out, rest...)
}

// ReserveTokens implements nodes.TokenBudgets for an llm_call: it reserves
// tokens from the run's budget, the budgets of the pools the invocation
// takes (the provider's pool among them) and the provider's budget, in
// that order, and returns the function that settles all of them and
// reports each as a budget event.
func (c *call) ReserveTokens(ctx context.Context, provider string, tokens int) (func(used int), error) {
	l := c.r.lim
	var list []*tokenBudget
	if l.run != nil {
		list = append(list, l.run)
	}
	for _, p := range c.callPools(provider) {
		if p.budget != nil {
			list = append(list, p.budget)
		}
	}
	if b := l.providers[provider]; b != nil {
		list = append(list, b)
	}
	if len(list) == 0 {
		return func(int) {}, nil
	}
	n := int64(tokens)
	for i, b := range list {
		err := b.reserve(ctx, n, func() { c.onWait("budget " + b.name) })
		if err != nil {
			for _, done := range list[:i] {
				done.settle(n, 0)
			}
			if ctx.Err() != nil {
				return nil, &nodes.Error{Kind: nodes.KindCancelled, Err: err}
			}
			return nil, err
		}
	}
	var once sync.Once
	return func(used int) {
		once.Do(func() {
			for _, b := range list {
				total, limit := b.settle(n, int64(used))
				if c.r.sink != nil {
					ev := Event{Event: EventBudget, Node: c.n.name, Path: c.pathOf(), Step: c.step, Budget: b.name,
						Tokens: int64(used), Used: total, Limit: limit}
					if c.index >= 0 {
						i := c.index
						ev.Index = &i
					}
					c.r.emit(ev)
				}
			}
		})
	}, nil
}

// callPools are the pools whose budgets a call to provider spends: those
// the node names and provider's pool (for a fallback, the fallback's).
func (c *call) callPools(provider string) []*pool {
	var out []*pool
	add := func(name string) {
		if p, ok := c.r.lim.pools[name]; ok && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range c.n.spec.Pools {
		add(p.Value)
	}
	if p := c.r.g.providers[provider]; p != nil && p.pool != "" {
		add(p.pool)
	}
	// One order for every call, so that waiting calls cannot deadlock.
	slices.SortFunc(out, func(a, b *pool) int { return strings.Compare(a.name, b.name) })
	return out
}
