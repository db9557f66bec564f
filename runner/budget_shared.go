package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Budgets of a run executed step by step on many workers (SPEC §9.9 on a
// distributed engine). Each worker opens the run on its own, so the
// budgets' amounts cannot live in a worker's memory: every reservation and
// settlement goes through the store's BudgetLedger, in one transaction
// each, and the limit holds across workers as it holds across a local
// run's goroutines. The ledger starts empty with the run (SubmitRun) and
// is reset to the recorded usage when a stopped run is handed to the
// engine again (ReopenRun), so that it agrees with what a local resume
// counts.

// budgetLedger is the store's ledger of one run.
type budgetLedger struct {
	ledger store.BudgetLedger
	runID  string
}

// sharedBudget is where a tokenBudget keeps its amounts when the run's
// calls run in several processes: the ledger's rows under key (the
// budget's name; for a subgraph's own budget, which lives as long as one
// subgraph invocation, its name and the invocation's path).
type sharedBudget struct {
	ledger store.BudgetLedger
	runID  string
	key    string
	ttl    time.Duration
}

// ledgerPoll bounds the wait between two attempts to reserve from a budget
// that has no room while calls in flight may free some: attempts start
// ledgerPollMin apart and back off to ledgerPollMax. A settle in this
// process wakes its waiters at once; one in another process is seen at
// the next poll.
const (
	ledgerPollMin = 5 * time.Millisecond
	ledgerPollMax = 200 * time.Millisecond
)

// ledgerHold is one reservation taken from the ledger, renewed until it
// is settled.
type ledgerHold struct {
	sh   *sharedBudget
	id   string
	stop chan struct{}
	done chan struct{}
}

// shareBudgets makes every budget of l keep its amounts in st's ledger
// under run runID; a store without one cannot execute such a run.
func (l *limits) shareBudgets(st store.Store, runID string) error {
	list := l.allBudgets()
	bl, ok := st.(store.BudgetLedger)
	switch {
	case !ok && len(list) > 0:
		return fmt.Errorf("run %s has token budgets, which this store cannot share between workers", runID)
	case !ok:
		return nil
	}
	// Set without budgets of the run's own too: its subgraphs' budgets
	// join it.
	l.ledger = &budgetLedger{ledger: bl, runID: runID}
	for _, b := range list {
		b.sharing(l.ledger, "")
	}
	return nil
}

// sharing makes b keep its amounts in ledger (nil: b stays in memory,
// unless it is shared already) under its name, scoped by the path prefix
// of the subgraph run that owns it ("" for the top-level run's budgets),
// and returns where it keeps them (nil: in memory).
func (b *tokenBudget) sharing(ledger *budgetLedger, scope string) *sharedBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shared == nil && ledger != nil {
		key := b.name
		if scope != "" {
			key += " in " + strings.TrimSuffix(scope, "/")
		}
		b.shared = &sharedBudget{ledger: ledger.ledger, runID: ledger.runID, key: key, ttl: store.BudgetTTL}
	}
	return b.shared
}

// allBudgets lists l's budgets: the run's, the pools', the providers'.
func (l *limits) allBudgets() []*tokenBudget {
	var out []*tokenBudget
	if l.run != nil {
		out = append(out, l.run)
	}
	for _, p := range l.pools {
		if p.budget != nil {
			out = append(out, p.budget)
		}
	}
	for _, b := range l.providers {
		out = append(out, b)
	}
	return out
}

// take reserves n as reserve does, from the ledger when the budget is
// shared (the hold is then what give settles). l and scope are the
// limits and path prefix of the run making the call: a subgraph's own
// budget joins its run's ledger here.
func (b *tokenBudget) take(ctx context.Context, l *limits, scope string, n amount, onWait func()) (*ledgerHold, error) {
	sh := b.sharing(l.ledger, scope)
	if sh == nil {
		return nil, b.reserve(ctx, n, onWait)
	}
	return b.reserveShared(ctx, sh, n, onWait)
}

// give settles a reservation of n that take returned, charging used.
func (b *tokenBudget) give(h *ledgerHold, n, used amount) BudgetUsage {
	if h == nil {
		return b.settle(n, used)
	}
	return b.settleShared(h, used)
}

// reserveShared is reserve against the ledger: it takes n when it fits
// next to the settled usage and every worker's live reservations, fails
// as reserve fails (on_exhausted: fail, or the settled usage alone leaves
// too little), and otherwise polls with backoff until it fits or ctx
// ends.
func (b *tokenBudget) reserveShared(ctx context.Context, sh *sharedBudget, n amount, onWait func()) (*ledgerHold, error) {
	id := ulid.Make().String()
	holder := store.Lease{Owner: id, PID: os.Getpid(), Host: store.Hostname()}
	poll := ledgerPollMin
	for waited := false; ; waited = true {
		b.mu.Lock()
		freed := b.freed
		b.waiters++
		limit := store.BudgetAmount{Tokens: b.limit, USD: b.usdLimit}
		b.mu.Unlock()
		now := time.Now()
		holder.Expires = now.Add(sh.ttl)
		g, err := sh.ledger.ReserveBudget(ctx, store.BudgetRequest{RunID: sh.runID, Budget: sh.key, ID: id,
			Amount: store.BudgetAmount{Tokens: n.tokens, USD: n.usd}, Limit: limit, Holder: holder, Now: now})
		if err == nil && !g.OK {
			used := amount{g.Totals.Used.Tokens, g.Totals.Used.USD}
			never := !store.BudgetFits(limit, g.Totals.Used, store.BudgetAmount{Tokens: n.tokens, USD: n.usd})
			if never || b.mode == spec.BudgetFail {
				err = b.exhaustedAt(n, used, amount{g.Totals.Reserved.Tokens, g.Totals.Reserved.USD}, never)
			}
		}
		if err != nil || g.OK {
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
			switch {
			case err == nil:
				return sh.hold(id), nil
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case errors.As(err, new(*nodes.Error)), errors.As(err, new(*budgetExhausted)):
				return nil, err
			}
			return nil, fmt.Errorf("budget %s: %w", b.name, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		// Jitter, so that waiting workers do not ask in lockstep.
		delay := poll/2 + rand.N(poll/2+1)
		poll = min(2*poll, ledgerPollMax)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-freed:
		case <-t.C:
		}
		t.Stop()
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// hold starts renewing reservation id every ttl/3 until it is settled, so
// that it counts while its call runs however long, and stops counting
// within ttl when its process dies.
func (sh *sharedBudget) hold(id string) *ledgerHold {
	h := &ledgerHold{sh: sh, id: id, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(sh.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), sh.ttl/3)
			// A renewal that fails is tried again at the next tick;
			// the lease lives ttl, so two more come before it expires.
			_ = sh.ledger.RenewBudget(ctx, sh.runID, sh.key, id, time.Now().Add(sh.ttl))
			cancel()
		}
	}()
	return h
}

// settleTries bounds how long a settlement is retried when the store
// refuses it (busy, briefly unreachable): meanwhile the reservation stays
// renewed, so that its estimate keeps counting, which errs on the side of
// the limit.
const settleTries = 8

// settleShared ends reservation h in the ledger, charging used, and wakes
// this process's waiters.
func (b *tokenBudget) settleShared(h *ledgerHold, used amount) BudgetUsage {
	sh := h.sh
	var (
		t   store.BudgetTotals
		err error
	)
	wait := 20 * time.Millisecond
	for try := 0; try < settleTries; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		t, err = sh.ledger.SettleBudget(ctx, sh.runID, sh.key, h.id, store.BudgetAmount{Tokens: used.tokens, USD: used.usd})
		cancel()
		if err == nil {
			break
		}
		time.Sleep(wait)
		wait = min(2*wait, time.Second)
	}
	if err == nil {
		close(h.stop)
		<-h.done
	}
	// else: the reservation stays renewed (counting its estimate) until
	// the process ends; its usage is not charged.
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wake()
	return BudgetUsage{Name: b.name, Used: t.Used.Tokens, Limit: b.limit, USDUsed: t.Used.USD, USDLimit: b.usdLimit}
}

// recordedBudgets is each budget of g's top-level workflow as the run's
// recorded invocations charged it (what a resume starts from), the run's
// first, then by name.
func recordedBudgets(g *Graph, invs []*store.Invocation) []BudgetUsage {
	l := newLimits(0, g.wf.Pools)
	l.setBudgets(g.wf)
	l.seedBudgets(invs)
	return l.budgetUsage()
}

// hasBudgets reports whether g's workflow declares any token budget.
func hasBudgets(g *Graph) bool {
	l := newLimits(0, g.wf.Pools)
	l.setBudgets(g.wf)
	return len(l.allBudgets()) > 0
}

// resetLedger sets the ledger of run runID to the usage its invocations
// recorded, before the engine drives it again: calls of an earlier
// execution that never settled (a process killed mid-call) stop counting,
// and calls a local resume made start counting, as Resume counts them.
func resetLedger(ctx context.Context, st store.Store, g *Graph, runID string) error {
	if !hasBudgets(g) {
		return nil
	}
	bl, ok := st.(store.BudgetLedger)
	if !ok {
		return fmt.Errorf("run %s has token budgets, which this store cannot share between workers", runID)
	}
	invs, err := st.Invocations(ctx, runID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	used := map[string]store.BudgetAmount{}
	for _, u := range recordedBudgets(g, invs) {
		used[u.Name] = store.BudgetAmount{Tokens: u.Used, USD: u.USDUsed}
	}
	if err := bl.ResetBudgets(ctx, runID, used); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// budgetOutcome fills res.Budgets of a run read from the store, as a
// local run reports them: each budget's recorded usage against its limit.
func budgetOutcome(ctx context.Context, st store.Store, g *Graph, res *Result) error {
	if !hasBudgets(g) {
		return nil
	}
	invs, err := st.Invocations(ctx, res.RunID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	res.Budgets = recordedBudgets(g, invs)
	return nil
}

// interruptBudget reports whether b pauses the run when it runs out: its
// answer raises a limit every worker must see.
func interruptBudget(b *spec.Budget) bool {
	return b != nil && (b.Tokens > 0 || b.USD > 0) && b.OnExhausted == spec.BudgetInterrupt
}

// interruptBudgets reports whether a budget of g's workflow, or of one of
// its subgraphs (subs, may be nil), pauses the run when it runs out.
func interruptBudgets(g *Graph, subs *subgraphs) bool {
	wfs := []*spec.Workflow{g.wf}
	if subs != nil {
		for _, cg := range subs.graphs {
			wfs = append(wfs, cg.wf)
		}
	}
	for _, w := range wfs {
		if interruptBudget(w.Config.Budget) {
			return true
		}
		for _, p := range w.Pools {
			if interruptBudget(p.Budget) {
				return true
			}
		}
		for _, p := range w.Providers {
			if interruptBudget(p.Budget) {
				return true
			}
		}
	}
	return false
}

// raisedLimits restores the limits that answers to budget interrupts
// raised, as the calls charged under them recorded them (LLMRecord.Limits),
// in a run opened step by step whose budgets may pause: the ledger keeps
// the usage every worker sees, not the limits, so a worker opening a later
// step reads them from the records as a local resume does.
func (r *run) raisedLimits(ctx context.Context, st store.Store) error {
	if !interruptBudgets(r.g, r.subs) {
		return nil // nothing raises a limit: no records to read
	}
	invs, err := st.Invocations(ctx, r.id)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, inv := range invs {
		rec, ok := RecordedLLM(inv)
		if !ok {
			continue
		}
		for name, lim := range rec.Limits {
			if b := r.lim.budget(name); b != nil {
				b.raise(lim.Tokens, lim.USD)
			}
		}
	}
	return nil
}

// pausedOnBudget reports whether inv records a call paused on a budget.
func pausedOnBudget(inv *store.Invocation) bool {
	return inv != nil && inv.Status == store.InvocationInterrupted && recordedExhausted(inv) != ""
}

// raise applies the accepted answer br (nil: none) to a budget interrupt
// to the run's budgets: the budget's limits become the answer's, once per
// answer whatever the invocations that carry it.
func (s *StepRun) raise(ctx context.Context, br *BudgetRaise) error {
	if br == nil {
		return nil
	}
	s.raiseMu.Lock()
	defer s.raiseMu.Unlock()
	if s.raised[br.Nonce] {
		return nil
	}
	values, err := s.answer(ctx, br.Path, br.Nonce)
	if err != nil {
		return err
	}
	b := s.r.lim.budget(br.Budget)
	if b == nil {
		return fmt.Errorf("run %s: %s waits for budget %s, which its workflow does not declare", s.r.id, br.Path, br.Budget)
	}
	// RecordAnswer checked the values; a limit never goes down (raise),
	// so a worker that saw a later raise keeps it.
	tokens, _ := toInt64(values["tokens"])
	usd, _ := toFloat(values["usd"])
	b.raise(tokens, usd)
	if s.raised == nil {
		s.raised = map[string]bool{}
	}
	s.raised[br.Nonce] = true
	return nil
}

// budgetAnswerTo is RecordAnswer's reading of an answer a to the budget
// interrupts of run runID (waiting): the interrupt it answers, or nil when
// a answers an interrupt node. It is refused as a local resume refuses it
// (Resume, budgetAnswer), against the budgets as the run's records left
// them.
func budgetAnswerTo(ctx context.Context, st store.Store, g *Graph, runID string, waiting []Interrupt, a Answer) (*Interrupt, error) {
	l := newLimits(0, g.wf.Pools)
	l.setBudgets(g.wf)
	if len(l.allBudgets()) == 0 {
		return nil, nil
	}
	invs, err := st.Invocations(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	l.seedBudgets(invs)
	target, _, _, handled, err := l.budgetRaise(runID, waiting, a)
	if err != nil || !handled {
		return nil, err
	}
	return target, nil
}
