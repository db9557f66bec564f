package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// BudgetLedger is implemented by stores that hold the token and money
// budgets (SPEC §9.9) of runs whose llm_calls run in several processes at
// once (the workers of a distributed engine). Every call reserves its
// estimate from the ledger before it starts and settles it with the usage
// it reports, so that what was spent plus what is in flight never exceeds
// a limit whichever process makes the call.
//
// A reservation is a lease like a machine-wide pool's slot: its holder
// renews it while the call runs; a reservation whose holder died stops
// counting once its lease expired or, on the holder's host, as soon as its
// pid is gone. Settled usage is kept as one sum per run and budget.
type BudgetLedger interface {
	// ReserveBudget adds reservation req.ID of req.Amount to the run's
	// budget, in one transaction, when it fits next to the settled usage
	// and the live reservations; otherwise it changes nothing. Either
	// way the grant carries the totals it decided on (before the
	// reservation).
	ReserveBudget(ctx context.Context, req BudgetRequest) (BudgetGrant, error)
	// RenewBudget moves the expiry of reservation id. A reservation no
	// longer held (settled, or expired and cleared) is not an error.
	RenewBudget(ctx context.Context, runID, budget, id string, expires time.Time) error
	// SettleBudget ends reservation id and adds used to the budget's
	// settled usage, in one transaction, and returns the totals after
	// it. A reservation that expired and was cleared meanwhile is
	// settled all the same: the usage was spent.
	SettleBudget(ctx context.Context, runID, budget, id string, used BudgetAmount) (BudgetTotals, error)
	// ResetBudgets replaces every budget of the run with settled usage
	// used (by budget name) and no reservation: what a run that was
	// stopped starts again from (its recorded usage).
	ResetBudgets(ctx context.Context, runID string, used map[string]BudgetAmount) error
	// BudgetTotals is a budget's settled usage and live reservations at
	// now.
	BudgetTotals(ctx context.Context, runID, budget string, now time.Time) (BudgetTotals, error)
}

// BudgetTTL is how long a reservation lives without renewal; its holder
// renews it every BudgetTTL/3. A holder killed with kill -9 keeps its
// reservations from other hosts at most this long.
const BudgetTTL = 10 * time.Second

// BudgetUSDEpsilon absorbs float rounding when dollars are compared: sums
// of prices like 0.15 / 1e6 are not exact.
const BudgetUSDEpsilon = 1e-9

// BudgetAmount is tokens and US dollars.
type BudgetAmount struct {
	Tokens int64
	USD    float64
}

// Plus is a + b.
func (a BudgetAmount) Plus(b BudgetAmount) BudgetAmount {
	return BudgetAmount{a.Tokens + b.Tokens, a.USD + b.USD}
}

// BudgetTotals is a budget's settled usage and what live reservations
// hold.
type BudgetTotals struct {
	Used     BudgetAmount
	Reserved BudgetAmount
}

// BudgetRequest asks for one reservation of a run's budget.
type BudgetRequest struct {
	RunID  string
	Budget string // "run", "pool NAME", "provider NAME"
	ID     string // unique per reservation
	Amount BudgetAmount
	// Limit is the budget's limits; 0 in a unit means no limit in it.
	Limit BudgetAmount
	// Holder names the process holding the reservation; Expires is when
	// it stops counting unless renewed.
	Holder Lease
	// Now is the taker's clock: it decides which reservations expired.
	Now time.Time
}

// BudgetGrant is ReserveBudget's answer: OK when the reservation was
// taken, and the totals it was decided on (before it).
type BudgetGrant struct {
	OK     bool
	Totals BudgetTotals
}

// BudgetRow is one row of a budget in the ledger: the settled usage (ID
// "", no holder) or one reservation.
type BudgetRow struct {
	ID     string
	Amount BudgetAmount
	Holder Lease
}

// CheckBudgetRequest rejects a request a store cannot key or judge.
func CheckBudgetRequest(req BudgetRequest) error {
	switch {
	case req.RunID == "" || req.Budget == "" || req.ID == "":
		return errors.New("reserve budget: empty run, budget or reservation id")
	case req.Amount.Tokens < 0 || req.Amount.USD < 0 || math.IsNaN(req.Amount.USD) || math.IsInf(req.Amount.USD, 0),
		req.Limit.Tokens < 0 || req.Limit.USD < 0 || math.IsNaN(req.Limit.USD) || math.IsInf(req.Limit.USD, 0):
		return fmt.Errorf("reserve budget %s of run %s: bad amount %+v or limit %+v", req.Budget, req.RunID, req.Amount, req.Limit)
	}
	return nil
}

// SumBudget adds up a budget's rows at now: the settled usage, the live
// reservations, and the ids of reservations whose holder is gone (a store
// may delete them).
func SumBudget(rows []BudgetRow, now time.Time) (t BudgetTotals, dead []string) {
	for i := range rows {
		r := &rows[i]
		switch {
		case r.ID == "":
			t.Used = t.Used.Plus(r.Amount)
		case r.Holder.Alive(now):
			t.Reserved = t.Reserved.Plus(r.Amount)
		default:
			dead = append(dead, r.ID)
		}
	}
	return t, dead
}

// BudgetFits reports whether n fits under limit next to used (0 in a unit
// of limit: no limit in it).
func BudgetFits(limit, used, n BudgetAmount) bool {
	if limit.Tokens > 0 && used.Tokens+n.Tokens > limit.Tokens {
		return false
	}
	return limit.USD <= 0 || used.USD+n.USD <= limit.USD+BudgetUSDEpsilon
}

// PlanBudget decides a ReserveBudget from the budget's rows, the same way
// for every store: the grant, and the dead reservations to delete.
func PlanBudget(req BudgetRequest, rows []BudgetRow) (BudgetGrant, []string) {
	t, dead := SumBudget(rows, req.Now)
	return BudgetGrant{OK: BudgetFits(req.Limit, t.Used.Plus(t.Reserved), req.Amount), Totals: t}, dead
}
