package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

var _ BudgetLedger = (*Memory)(nil)

// budgetRows is the run's rows of budget, created when create is set; m.mu
// is held.
func (m *Memory) budgetRows(what, runID, budget string, create bool) (map[string]BudgetRow, error) {
	mr, ok := m.runs[runID]
	if !ok {
		return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	rows := mr.budgets[budget]
	if rows == nil && create {
		if mr.budgets == nil {
			mr.budgets = map[string]map[string]BudgetRow{}
		}
		rows = map[string]BudgetRow{}
		mr.budgets[budget] = rows
	}
	return rows, nil
}

// ReserveBudget takes a reservation under the store's lock.
func (m *Memory) ReserveBudget(ctx context.Context, req BudgetRequest) (BudgetGrant, error) {
	if err := CheckBudgetRequest(req); err != nil {
		return BudgetGrant{}, err
	}
	if err := ctx.Err(); err != nil {
		return BudgetGrant{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, err := m.budgetRows(fmt.Sprintf("reserve budget %s of run %s", req.Budget, req.RunID), req.RunID, req.Budget, true)
	if err != nil {
		return BudgetGrant{}, err
	}
	g, dead := PlanBudget(req, slices.Collect(maps.Values(rows)))
	for _, id := range dead {
		delete(rows, id)
	}
	if g.OK {
		rows[req.ID] = BudgetRow{ID: req.ID, Amount: req.Amount, Holder: req.Holder}
	}
	return g, nil
}

// RenewBudget moves the expiry of one reservation.
func (m *Memory) RenewBudget(ctx context.Context, runID, budget, id string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, err := m.budgetRows("renew budget "+budget, runID, budget, false)
	if err != nil {
		return err
	}
	if r, ok := rows[id]; ok && id != "" {
		r.Holder.Expires = expires
		rows[id] = r
	}
	return nil
}

// SettleBudget ends a reservation and adds its usage to the settled sum.
func (m *Memory) SettleBudget(ctx context.Context, runID, budget, id string, used BudgetAmount) (BudgetTotals, error) {
	what := fmt.Sprintf("settle budget %s of run %s", budget, runID)
	if id == "" {
		return BudgetTotals{}, fmt.Errorf("%s: empty reservation id", what)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rows, err := m.budgetRows(what, runID, budget, true)
	if err != nil {
		return BudgetTotals{}, err
	}
	delete(rows, id)
	sum := rows[""]
	sum.Amount = sum.Amount.Plus(used)
	rows[""] = sum
	t, _ := SumBudget(slices.Collect(maps.Values(rows)), time.Now())
	return t, nil
}

// ResetBudgets replaces the run's budgets with settled usage only.
func (m *Memory) ResetBudgets(ctx context.Context, runID string, used map[string]BudgetAmount) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[runID]
	if !ok {
		return fmt.Errorf("reset budgets of run %s: %w", runID, ErrNotFound)
	}
	mr.budgets = map[string]map[string]BudgetRow{}
	for name, u := range used {
		mr.budgets[name] = map[string]BudgetRow{"": {Amount: u}}
	}
	return nil
}

// BudgetTotals sums a budget's rows at now.
func (m *Memory) BudgetTotals(ctx context.Context, runID, budget string, now time.Time) (BudgetTotals, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	rows, err := m.budgetRows("budget "+budget, runID, budget, false)
	if err != nil {
		return BudgetTotals{}, err
	}
	t, _ := SumBudget(slices.Collect(maps.Values(rows)), now)
	return t, nil
}
