package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// amount is tokens and US dollars, reserved or used.
type amount struct {
	tokens int64
	usd    float64
}

func (a amount) plus(b amount) amount { return amount{a.tokens + b.tokens, a.usd + b.usd} }

// usdEpsilon absorbs float rounding when dollars are compared: sums of
// prices like 0.15 / 1e6 are not exact.
const usdEpsilon = 1e-9

// tokenBudget is a token and/or money budget (SPEC §9.9): calls reserve an
// estimate before they start and settle it with the usage the provider
// reports, so that what was spent plus what is in flight never exceeds a
// limit.
type tokenBudget struct {
	name     string  // "run", "pool NAME" or "provider NAME"
	limit    int64   // tokens; 0 = no token limit
	usdLimit float64 // dollars; 0 = no money limit
	// mode is the budget's on_exhausted. wait (the default) and interrupt:
	// a call that does not fit while others are in flight waits for them
	// to settle; fail: it fails at once. Once the settled usage alone
	// leaves too little (nothing in a run refills a budget), the call
	// fails with kind budget, or with interrupt pauses the run so that a
	// person may raise the limit on resume.
	mode string

	mu       sync.Mutex
	used     amount        // settled usage (a resume starts with the recorded usage)
	reserved amount        // reservations of calls in flight
	raised   bool          // a resume raised a limit (recorded with each call, see llmRecord)
	freed    chan struct{} // closed (and replaced) when a reservation ends while calls wait
	waiters  int           // calls waiting on freed
	// shared, when set, keeps used and reserved in the store's ledger
	// instead (a run whose calls run on several workers; see
	// budget_shared.go): used and reserved above stay zero.
	shared *sharedBudget
}

func newTokenBudget(name string, b *spec.Budget) *tokenBudget {
	if b == nil || (b.Tokens <= 0 && b.USD <= 0) {
		return nil
	}
	mode := b.OnExhausted
	if mode == "" {
		mode = spec.BudgetWait
	}
	return &tokenBudget{name: name, limit: b.Tokens, usdLimit: b.USD, mode: mode, freed: make(chan struct{})}
}

// fits reports whether n more fits next to the settled usage and, with
// inFlight, the reservations of calls in flight. b.mu is held.
func (b *tokenBudget) fits(n amount, inFlight bool) bool {
	u := b.used
	if inFlight {
		u = u.plus(b.reserved)
	}
	if b.limit > 0 && u.tokens+n.tokens > b.limit {
		return false
	}
	return b.usdLimit <= 0 || u.usd+n.usd <= b.usdLimit+usdEpsilon
}

// reserve takes n. It fails (kind budget) when n does not fit and the
// budget fails on exhaustion, or when n could never fit (the settled
// usage alone leaves too little, so waiting would be forever); with
// on_exhausted: interrupt the latter is a *budgetExhausted, which pauses
// the run. Otherwise it waits for reservations to settle; onWait is
// called once.
func (b *tokenBudget) reserve(ctx context.Context, n amount, onWait func()) error {
	waited, waiting := false, false
	for {
		b.mu.Lock()
		if waiting {
			b.waiters--
			waiting = false
		}
		if b.fits(n, true) {
			b.reserved = b.reserved.plus(n)
			b.mu.Unlock()
			return nil
		}
		never := !b.fits(n, false)
		if never || b.mode == spec.BudgetFail {
			err := b.exhausted(n, never)
			b.mu.Unlock()
			return err
		}
		freed := b.freed
		b.waiters++
		waiting = true
		b.mu.Unlock()
		if !waited && onWait != nil {
			onWait()
			waited = true
		}
		select {
		case <-freed:
		case <-ctx.Done():
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
			return ctx.Err()
		}
	}
}

// exhausted is the error of a reservation of n that does not fit. b.mu is
// held.
func (b *tokenBudget) exhausted(n amount, never bool) error {
	return b.exhaustedAt(n, b.used, b.reserved, never)
}

// exhaustedAt is exhausted with the settled usage used and the
// reservations in flight reserved (the ledger's, for a shared budget).
func (b *tokenBudget) exhaustedAt(n, used, reserved amount, never bool) error {
	tokens := b.limit > 0 && used.tokens+reserved.tokens+n.tokens > b.limit
	if never {
		tokens = b.limit > 0 && used.tokens+n.tokens > b.limit
	}
	if never && b.mode == spec.BudgetInterrupt {
		var msg string
		if tokens {
			msg = fmt.Sprintf("budget %s exhausted: %d/%d tokens used, the call reserves %d (resume with -i tokens=N to raise the limit)",
				b.name, used.tokens, b.limit, n.tokens)
		} else {
			msg = fmt.Sprintf("budget %s exhausted: %s/%s used, the call reserves %s (resume with -i usd=X to raise the limit)",
				b.name, formatUSD(used.usd, 4), formatUSD(b.usdLimit, 2), formatUSD(n.usd, 4))
		}
		return &budgetExhausted{budget: b.name, intr: nodes.Interrupt{Message: msg}}
	}
	if tokens {
		return &nodes.Error{Kind: nodes.KindBudget, Err: fmt.Errorf("token budget of %s exhausted: the call reserves %d tokens, %d of %d are used and %d reserved by calls in flight",
			b.name, n.tokens, used.tokens, b.limit, reserved.tokens)}
	}
	return &nodes.Error{Kind: nodes.KindBudget, Err: fmt.Errorf("money budget of %s exhausted: the call reserves %s, %s of %s are spent and %s reserved by calls in flight",
		b.name, formatUSD(n.usd, 4), formatUSD(used.usd, 4), formatUSD(b.usdLimit, 2), formatUSD(reserved.usd, 4))}
}

// settle ends a reservation of n, charging used, and returns the usage
// after it.
func (b *tokenBudget) settle(n, used amount) BudgetUsage {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved = b.reserved.plus(amount{-n.tokens, -n.usd})
	b.used = b.used.plus(used)
	b.wake()
	return b.usageLocked()
}

// wake lets waiting reservations look again. b.mu is held. Without
// waiters nothing is closed, so a settle allocates nothing.
func (b *tokenBudget) wake() {
	if b.waiters > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
}

// raise sets new limits (0 = keep), never lowering one: a resume's answer
// to a budget interrupt, or a raise recorded by an earlier resume.
func (b *tokenBudget) raise(tokens int64, usd float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tokens > b.limit && b.limit > 0 {
		b.limit, b.raised = tokens, true
	}
	if usd > b.usdLimit && b.usdLimit > 0 {
		b.usdLimit, b.raised = usd, true
	}
	b.wake()
}

// budgetExhausted pauses the run at a call whose budget (on_exhausted:
// interrupt) ran out. It unwraps to the *nodes.Interrupt, so the executor
// treats it as any interrupt; Budget names the budget.
type budgetExhausted struct {
	budget string
	intr   nodes.Interrupt
}

func (e *budgetExhausted) Error() string { return e.intr.Error() }
func (e *budgetExhausted) Unwrap() error { return &e.intr }

// exhaustedBudget names the budget a budget interrupt in err's chain
// waits for, or "".
func exhaustedBudget(err error) string {
	if err == nil {
		return "" // errors.As's target escapes: no allocation per invocation
	}
	var be *budgetExhausted
	if errors.As(err, &be) {
		return be.budget
	}
	return ""
}

// BudgetUsage is the state of one budget at the end of a run.
type BudgetUsage struct {
	Name  string `json:"name"`  // "run", "pool NAME" or "provider NAME"
	Used  int64  `json:"used"`  // tokens, recorded usage before a resume included
	Limit int64  `json:"limit"` // tokens; 0 = no token limit
	// USDUsed and USDLimit are the money budget in US dollars (USDLimit 0
	// = no money limit; USDUsed is counted only then).
	USDUsed  float64 `json:"usd_used,omitempty"`
	USDLimit float64 `json:"usd_limit,omitempty"`
}

// String is the summary line of the budget: "budget run: 140 of 200
// tokens used", "budget run: $0.0123 of $5.00 used (4650 tokens)".
func (u BudgetUsage) String() string {
	money := formatUSD(u.USDUsed, 4) + " of " + formatUSD(u.USDLimit, 2)
	switch {
	case u.Limit > 0 && u.USDLimit > 0:
		return fmt.Sprintf("budget %s: %d of %d tokens, %s used", u.Name, u.Used, u.Limit, money)
	case u.USDLimit > 0:
		return fmt.Sprintf("budget %s: %s used (%d tokens)", u.Name, money, u.Used)
	}
	return fmt.Sprintf("budget %s: %d of %d tokens used", u.Name, u.Used, u.Limit)
}

// formatUSD writes dollars with at least prec decimals, more when the
// value needs them to be exact up to 6 ($0.0005, $5.00, $0.125).
func formatUSD(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	for p := prec + 1; p <= 6; p++ {
		if f, _ := strconv.ParseFloat(s, 64); f == v || abs(f-v) < 1e-12 {
			break
		}
		s = strconv.FormatFloat(v, 'f', p, 64)
	}
	return "$" + s
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func (b *tokenBudget) usage() BudgetUsage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.usageLocked()
}

func (b *tokenBudget) usageLocked() BudgetUsage {
	return BudgetUsage{Name: b.name, Used: b.used.tokens, Limit: b.limit, USDUsed: b.used.usd, USDLimit: b.usdLimit}
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

// budget finds a budget by name ("run", "pool NAME", "provider NAME").
func (l *limits) budget(name string) *tokenBudget {
	switch {
	case name == "run":
		return l.run
	case strings.HasPrefix(name, "pool "):
		if p := l.pools[strings.TrimPrefix(name, "pool ")]; p != nil {
			return p.budget
		}
	case strings.HasPrefix(name, "provider "):
		return l.providers[strings.TrimPrefix(name, "provider ")]
	}
	return nil
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

// price is what provider charges; nil when it declares no price.
func (r *run) price(provider string) *spec.Price {
	for _, p := range r.g.wf.Providers {
		if p.Name == provider {
			return p.Price
		}
	}
	return nil
}

// cost prices u with p (nil: free, as far as a budget can tell; validate
// rejects a money budget over a provider without a price).
func cost(p *spec.Price, u nodes.TokenUsage) float64 {
	if p == nil {
		return 0
	}
	return (float64(u.Input)*p.InputPerMTok + float64(u.Output)*p.OutputPerMTok) / 1e6
}

// ReserveTokens implements nodes.TokenBudgets for an llm_call: it reserves
// res (priced with the provider's price) from the run's budget, the
// budgets of the pools the invocation takes (the provider's pool among
// them) and the provider's budget, in that order, and returns the
// function that settles all of them, reports each as a budget event and
// counts the usage in the invocation's record.
func (c *call) ReserveTokens(ctx context.Context, provider string, res nodes.TokenUsage) (func(nodes.TokenUsage), error) {
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
	price := c.r.price(provider)
	if len(list) == 0 {
		return func(u nodes.TokenUsage) { c.llm.charge(u, cost(price, u), nil) }, nil
	}
	n := amount{tokens: int64(res.Total()), usd: cost(price, res)}
	holds := make([]*ledgerHold, len(list))
	for i, b := range list {
		h, err := b.take(ctx, l, c.r.prefix, n, func() { c.onWait("budget " + b.name) })
		if err != nil {
			for j, done := range list[:i] {
				done.give(holds[j], n, amount{})
			}
			if ctx.Err() != nil {
				return nil, &nodes.Error{Kind: nodes.KindCancelled, Err: err}
			}
			return nil, err
		}
		holds[i] = h
	}
	var once sync.Once
	return func(u nodes.TokenUsage) {
		once.Do(func() {
			used := amount{tokens: int64(u.Total()), usd: cost(price, u)}
			c.llm.charge(u, used.usd, list)
			for i, b := range list {
				after := b.give(holds[i], n, used)
				if c.r.sink != nil {
					ev := Event{Event: EventBudget, Node: c.n.name, Path: c.pathOf(), Step: c.step, Budget: b.name,
						Tokens: used.tokens, Used: after.Used, Limit: after.Limit}
					if after.USDLimit > 0 {
						ev.USD, ev.USDUsed, ev.USDLimit = used.usd, after.USDUsed, after.USDLimit
					}
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
