package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lgx-run/lgx/store"
)

var _ store.BudgetLedger = (*Store)(nil)

// budgetLock is the first key of the advisory lock that serializes the
// ReserveBudget transactions of one run's budget (the second is a hash of
// the run id and budget name): the rows of a budget nobody reserved from
// yet do not exist, so there is no row to lock FOR UPDATE.
const budgetLock = 0x6c677803

// ReserveBudget takes a reservation in one transaction holding the
// budget's advisory lock: workers on any machine racing for the last
// tokens of a budget are serialized, and no two both fit where one would
// not.
func (s *Store) ReserveBudget(ctx context.Context, req store.BudgetRequest) (store.BudgetGrant, error) {
	if err := store.CheckBudgetRequest(req); err != nil {
		return store.BudgetGrant{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.BudgetGrant{}, err
	}
	var g store.BudgetGrant
	what := fmt.Sprintf("reserve budget %s of run %s", req.Budget, req.RunID)
	err := s.inTx(ctx, what, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		if _, err := tx.Exec(wctx, `SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(1) || $3))`, int32(budgetLock), req.RunID, req.Budget); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		rows, err := readBudget(wctx, tx, req.RunID, req.Budget)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var dead []string
		g, dead = store.PlanBudget(req, rows)
		if len(dead) > 0 {
			if _, err := tx.Exec(wctx, `DELETE FROM budget_ledger WHERE run_id = $1 AND budget = $2 AND id = ANY($3)`, req.RunID, req.Budget, dead); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if !g.OK {
			return nil
		}
		h := req.Holder
		_, err = tx.Exec(wctx, `INSERT INTO budget_ledger (run_id, budget, id, tokens, usd, owner, pid, host, expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (run_id, budget, id) DO UPDATE SET tokens = EXCLUDED.tokens, usd = EXCLUDED.usd, owner = EXCLUDED.owner, pid = EXCLUDED.pid, host = EXCLUDED.host, expires = EXCLUDED.expires`,
			req.RunID, req.Budget, req.ID, req.Amount.Tokens, req.Amount.USD, h.Owner, int64(h.PID), h.Host, h.Expires.UnixNano())
		if isCode(err, foreignKeyViolation) {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	if err != nil {
		return store.BudgetGrant{}, err
	}
	return g, nil
}

func readBudget(ctx context.Context, q querier, runID, budget string) ([]store.BudgetRow, error) {
	rows, err := q.Query(ctx, `SELECT id, tokens, usd, owner, pid, host, expires FROM budget_ledger WHERE run_id = $1 AND budget = $2`, runID, budget)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.BudgetRow
	for rows.Next() {
		var (
			r            store.BudgetRow
			pid, expires int64
		)
		if err := rows.Scan(&r.ID, &r.Amount.Tokens, &r.Amount.USD, &r.Holder.Owner, &pid, &r.Holder.Host, &expires); err != nil {
			return nil, err
		}
		r.Holder.PID, r.Holder.Expires = int(pid), time.Unix(0, expires).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// RenewBudget moves the expiry of one reservation.
func (s *Store) RenewBudget(ctx context.Context, runID, budget, id string, expires time.Time) error {
	_, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE budget_ledger SET expires = $1 WHERE run_id = $2 AND budget = $3 AND id = $4 AND id <> ''`,
		expires.UnixNano(), runID, budget, id)
	if err != nil {
		return fmt.Errorf("renew budget %s of run %s: %w", budget, runID, err)
	}
	return nil
}

// SettleBudget ends a reservation and adds its usage to the settled sum.
// It takes the budget's lock too, so that the totals it returns are
// those of one moment between reservations.
func (s *Store) SettleBudget(ctx context.Context, runID, budget, id string, used store.BudgetAmount) (store.BudgetTotals, error) {
	var t store.BudgetTotals
	what := fmt.Sprintf("settle budget %s of run %s", budget, runID)
	if id == "" {
		return t, fmt.Errorf("%s: empty reservation id", what)
	}
	err := s.inTx(ctx, what, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		if _, err := tx.Exec(wctx, `SELECT pg_advisory_xact_lock($1, hashtext($2 || chr(1) || $3))`, int32(budgetLock), runID, budget); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := tx.Exec(wctx, `DELETE FROM budget_ledger WHERE run_id = $1 AND budget = $2 AND id = $3`, runID, budget, id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		_, err := tx.Exec(wctx, `INSERT INTO budget_ledger (run_id, budget, id, tokens, usd) VALUES ($1, $2, '', $3, $4)
ON CONFLICT (run_id, budget, id) DO UPDATE SET tokens = budget_ledger.tokens + EXCLUDED.tokens, usd = budget_ledger.usd + EXCLUDED.usd`,
			runID, budget, used.Tokens, used.USD)
		if isCode(err, foreignKeyViolation) {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		rows, err := readBudget(wctx, tx, runID, budget)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		t, _ = store.SumBudget(rows, time.Now())
		return nil
	})
	return t, err
}

// ResetBudgets replaces the run's budgets with settled usage only.
func (s *Store) ResetBudgets(ctx context.Context, runID string, used map[string]store.BudgetAmount) error {
	what := "reset budgets of run " + runID
	return s.inTx(ctx, what, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		var one int
		switch err := tx.QueryRow(wctx, `SELECT 1 FROM runs WHERE id = $1`, runID).Scan(&one); {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := tx.Exec(wctx, `DELETE FROM budget_ledger WHERE run_id = $1`, runID); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for name, u := range used {
			_, err := tx.Exec(wctx, `INSERT INTO budget_ledger (run_id, budget, id, tokens, usd) VALUES ($1, $2, '', $3, $4)`, runID, name, u.Tokens, u.USD)
			if isCode(err, foreignKeyViolation) {
				return fmt.Errorf("%s: %w", what, store.ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
}

// BudgetTotals sums a budget's rows at now.
func (s *Store) BudgetTotals(ctx context.Context, runID, budget string, now time.Time) (store.BudgetTotals, error) {
	rows, err := readBudget(ctx, s.pool, runID, budget)
	if err != nil {
		return store.BudgetTotals{}, fmt.Errorf("budget %s of run %s: %w", budget, runID, err)
	}
	t, _ := store.SumBudget(rows, now)
	return t, nil
}
