package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// BudgetStore is a store that holds runs' budgets for many workers.
type BudgetStore interface {
	store.Store
	store.BudgetLedger
}

// RunBudgets runs the conformance suite of store.BudgetLedger (the token
// and money budgets of runs whose calls run on several workers). open
// must return a new, empty store for each call; RunBudgets closes it when
// the subtest ends.
func RunBudgets(t *testing.T, open func(t *testing.T) BudgetStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s BudgetStore)
	}{
		{"Fit", testBudgetFit},
		{"Money", testBudgetMoney},
		{"Expiry", testBudgetExpiry},
		{"DeadHolder", testBudgetDeadHolder},
		{"Renew", testBudgetRenew},
		{"Reset", testBudgetReset},
		{"Isolated", testBudgetIsolated},
		{"Rejects", testBudgetRejects},
		{"Race", testBudgetRace},
		{"PrunedWithRun", testBudgetPruned},
	}
	for _, tc := range tests {
		runCase(t, tc.name, open, tc.fn)
	}
}

// far is a holder on another host, alive until exp.
func far(owner string, exp time.Time) store.Lease {
	return store.Lease{Owner: owner, PID: 1, Host: "another-host.invalid", Expires: exp}
}

func budgetReq(run, budget, id string, tokens int64, limit int64, h store.Lease, now time.Time) store.BudgetRequest {
	return store.BudgetRequest{RunID: run, Budget: budget, ID: id, Amount: store.BudgetAmount{Tokens: tokens},
		Limit: store.BudgetAmount{Tokens: limit}, Holder: h, Now: now}
}

func mustReserve(t *testing.T, s store.BudgetLedger, req store.BudgetRequest) store.BudgetGrant {
	t.Helper()
	g, err := s.ReserveBudget(context.Background(), req)
	if err != nil {
		t.Fatalf("ReserveBudget(%s %s %s): %v", req.RunID, req.Budget, req.ID, err)
	}
	return g
}

func mustSettle(t *testing.T, s store.BudgetLedger, run, budget, id string, used store.BudgetAmount) store.BudgetTotals {
	t.Helper()
	tot, err := s.SettleBudget(context.Background(), run, budget, id, used)
	if err != nil {
		t.Fatalf("SettleBudget(%s %s %s): %v", run, budget, id, err)
	}
	return tot
}

func tokens(n int64) store.BudgetAmount { return store.BudgetAmount{Tokens: n} }

// testBudgetFit: a reservation fits next to the settled usage and the
// reservations in flight, or takes nothing; settling replaces the
// estimate by the usage.
func testBudgetFit(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	now := time.Now()
	h := far("w1", now.Add(time.Hour))
	if g := mustReserve(t, s, budgetReq("run", "run", "a", 60, 100, h, now)); !g.OK || g.Totals != (store.BudgetTotals{}) {
		t.Fatalf("first reservation: %+v", g)
	}
	g := mustReserve(t, s, budgetReq("run", "run", "b", 50, 100, h, now))
	if g.OK || g.Totals != (store.BudgetTotals{Reserved: tokens(60)}) {
		t.Fatalf("second reservation (60 in flight, 50 more of 100): %+v", g)
	}
	if tot := mustSettle(t, s, "run", "run", "a", tokens(30)); tot != (store.BudgetTotals{Used: tokens(30)}) {
		t.Fatalf("after settling: %+v", tot)
	}
	if g := mustReserve(t, s, budgetReq("run", "run", "b", 50, 100, h, now)); !g.OK || g.Totals.Used != tokens(30) {
		t.Fatalf("after settling, 50 more: %+v", g)
	}
	if g := mustReserve(t, s, budgetReq("run", "run", "c", 21, 100, h, now)); g.OK {
		t.Fatalf("30 used + 50 reserved + 21 > 100 fitted: %+v", g)
	}
	// A limit of 0 tokens is no limit.
	if g := mustReserve(t, s, budgetReq("run", "run", "d", 1000, 0, h, now)); !g.OK {
		t.Fatalf("no limit: %+v", g)
	}
	tot, err := s.BudgetTotals(context.Background(), "run", "run", now)
	if err != nil || tot != (store.BudgetTotals{Used: tokens(30), Reserved: tokens(1050)}) {
		t.Fatalf("BudgetTotals = %+v, %v", tot, err)
	}
}

// testBudgetMoney: dollars are compared with a small slack, since sums of
// prices are not exact.
func testBudgetMoney(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	now := time.Now()
	h := far("w1", now.Add(time.Hour))
	usd := func(id string, v float64) store.BudgetRequest {
		return store.BudgetRequest{RunID: "run", Budget: "provider p", ID: id, Amount: store.BudgetAmount{USD: v},
			Limit: store.BudgetAmount{USD: 0.3}, Holder: h, Now: now}
	}
	for i, id := range []string{"a", "b", "c"} {
		if g := mustReserve(t, s, usd(id, 0.1)); !g.OK {
			t.Fatalf("reservation %d of $0.1 under $0.3: %+v", i, g)
		}
		mustSettle(t, s, "run", "provider p", id, store.BudgetAmount{USD: 0.1})
	}
	if g := mustReserve(t, s, usd("d", 0.001)); g.OK {
		t.Fatalf("$0.001 over a spent $0.3 fitted: %+v", g)
	}
}

// testBudgetExpiry: a reservation whose lease expired stops counting and
// is cleared; settling it later still charges its usage.
func testBudgetExpiry(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	now := time.Now()
	if g := mustReserve(t, s, budgetReq("run", "run", "old", 80, 100, far("w1", now.Add(time.Second)), now)); !g.OK {
		t.Fatal(g)
	}
	later := now.Add(2 * time.Second)
	g := mustReserve(t, s, budgetReq("run", "run", "new", 80, 100, far("w2", later.Add(time.Hour)), later))
	if !g.OK || g.Totals != (store.BudgetTotals{}) {
		t.Fatalf("an expired reservation still counts: %+v", g)
	}
	if tot := mustSettle(t, s, "run", "run", "old", tokens(70)); tot.Used != tokens(70) || tot.Reserved != tokens(80) {
		t.Fatalf("settling a cleared reservation: %+v", tot)
	}
}

// testBudgetDeadHolder: on this host, a reservation of a process that is
// gone stops counting at once.
func testBudgetDeadHolder(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	now := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := store.Lease{Owner: "dead", PID: cmd.Process.Pid, Host: store.Hostname(), Expires: now.Add(time.Hour)}
	if g := mustReserve(t, s, budgetReq("run", "run", "a", 80, 100, dead, now)); !g.OK {
		t.Fatal(g)
	}
	if g := mustReserve(t, s, budgetReq("run", "run", "b", 80, 100, holder("me", now, time.Minute), now)); !g.OK {
		t.Fatalf("a dead process's reservation still counts: %+v", g)
	}
	if g := mustReserve(t, s, budgetReq("run", "run", "c", 80, 100, holder("me", now, time.Minute), now)); g.OK {
		t.Fatalf("a live process's reservation does not count: %+v", g)
	}
}

// testBudgetRenew: a renewed reservation outlives its first expiry.
func testBudgetRenew(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	ctx := context.Background()
	now := time.Now()
	if g := mustReserve(t, s, budgetReq("run", "run", "a", 80, 100, far("w1", now.Add(time.Second)), now)); !g.OK {
		t.Fatal(g)
	}
	if err := s.RenewBudget(ctx, "run", "run", "a", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if g := mustReserve(t, s, budgetReq("run", "run", "b", 80, 100, far("w2", now.Add(time.Hour)), now.Add(time.Minute))); g.OK {
		t.Fatalf("a renewed reservation expired: %+v", g)
	}
	// Renewing what is not held is no error.
	if err := s.RenewBudget(ctx, "run", "run", "gone", now.Add(time.Hour)); err != nil {
		t.Fatalf("renew a reservation not held: %v", err)
	}
}

// testBudgetReset: a reset leaves the settled usage given, per budget,
// and no reservation.
func testBudgetReset(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	ctx := context.Background()
	now := time.Now()
	h := far("w1", now.Add(time.Hour))
	mustReserve(t, s, budgetReq("run", "run", "a", 50, 100, h, now))
	mustReserve(t, s, budgetReq("run", "pool p", "a", 50, 100, h, now))
	mustSettle(t, s, "run", "pool p", "a", tokens(40))
	if err := s.ResetBudgets(ctx, "run", map[string]store.BudgetAmount{"run": {Tokens: 70, USD: 0.5}}); err != nil {
		t.Fatal(err)
	}
	for budget, want := range map[string]store.BudgetTotals{"run": {Used: store.BudgetAmount{Tokens: 70, USD: 0.5}}, "pool p": {}} {
		if tot, err := s.BudgetTotals(ctx, "run", budget, now); err != nil || tot != want {
			t.Errorf("%s after reset: %+v, %v; want %+v", budget, tot, err, want)
		}
	}
	if err := s.ResetBudgets(ctx, "nope", nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reset of an unknown run: %v, want ErrNotFound", err)
	}
}

// testBudgetIsolated: runs and budgets do not share amounts.
func testBudgetIsolated(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("r1", at(0)))
	mustCreate(t, s, newRun("r2", at(1)))
	now := time.Now()
	h := far("w1", now.Add(time.Hour))
	for _, rb := range [][2]string{{"r1", "run"}, {"r1", "pool p"}, {"r2", "run"}} {
		if g := mustReserve(t, s, budgetReq(rb[0], rb[1], "a", 100, 100, h, now)); !g.OK {
			t.Fatalf("%s %s: %+v", rb[0], rb[1], g)
		}
	}
}

// testBudgetRejects: bad requests and unknown runs take nothing.
func testBudgetRejects(t *testing.T, s BudgetStore) {
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	now := time.Now()
	h := far("w1", now.Add(time.Hour))
	for name, req := range map[string]store.BudgetRequest{
		"no id":           budgetReq("run", "run", "", 1, 10, h, now),
		"no budget":       budgetReq("run", "", "a", 1, 10, h, now),
		"negative amount": budgetReq("run", "run", "a", -1, 10, h, now),
	} {
		if _, err := s.ReserveBudget(ctx, req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := s.ReserveBudget(ctx, budgetReq("nope", "run", "a", 1, 10, h, now)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reserve for an unknown run: %v, want ErrNotFound", err)
	}
	if _, err := s.SettleBudget(ctx, "run", "run", "", tokens(1)); err == nil {
		t.Error("settle without an id: accepted")
	}
}

// testBudgetRace: reservations racing from many goroutines never exceed
// the limit together.
func testBudgetRace(t *testing.T, s BudgetStore) {
	mustCreate(t, s, newRun("run", at(0)))
	now := time.Now()
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := s.ReserveBudget(context.Background(), budgetReq("run", "run", fmt.Sprint("r", i), 10, 100, far("w", now.Add(time.Hour)), now))
			if err != nil {
				t.Error(err)
				return
			}
			if g.OK {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n != 10 {
		t.Errorf("%d reservations of 10 under 100 were taken, want 10", n)
	}
}

// testBudgetPruned: a run's budgets go when the run is pruned.
func testBudgetPruned(t *testing.T, s BudgetStore) {
	p, ok := store.Store(s).(store.Pruner)
	if !ok {
		t.Skip("the store does not prune")
	}
	ctx := context.Background()
	r := newRun("run", at(0))
	mustCreate(t, s, r)
	mustReserve(t, s, budgetReq("run", "run", "a", 10, 100, far("w", time.Now().Add(time.Hour)), time.Now()))
	mustSettle(t, s, "run", "run", "a", tokens(10))
	if err := s.FinishRun(ctx, "run", store.StatusCompleted, "", at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PruneRuns(ctx, at(2)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, newRun("run", at(3)))
	if tot, err := s.BudgetTotals(ctx, "run", "run", time.Now()); err != nil || tot != (store.BudgetTotals{}) {
		t.Errorf("a new run of a pruned run's id sees %+v, %v", tot, err)
	}
}
