package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

var _ BudgetLedger = (*SQLite)(nil)

// ReserveBudget takes a reservation in one immediate transaction, which
// holds the file's write lock: processes racing for the last tokens of a
// budget are serialized, and no two both fit where one would not.
func (s *SQLite) ReserveBudget(ctx context.Context, req BudgetRequest) (BudgetGrant, error) {
	if err := CheckBudgetRequest(req); err != nil {
		return BudgetGrant{}, err
	}
	if err := ctx.Err(); err != nil {
		return BudgetGrant{}, err
	}
	var g BudgetGrant
	what := fmt.Sprintf("reserve budget %s of run %s", req.Budget, req.RunID)
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.inTx(wctx, what, func(tx *sql.Tx) error {
		rows, err := readBudget(wctx, tx, req.RunID, req.Budget)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var dead []string
		g, dead = PlanBudget(req, rows)
		for _, id := range dead {
			if _, err := tx.ExecContext(wctx, `DELETE FROM budget_ledger WHERE run_id = ? AND budget = ? AND id = ?`, req.RunID, req.Budget, id); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if !g.OK {
			return nil
		}
		h := req.Holder
		_, err = tx.ExecContext(wctx, `INSERT OR REPLACE INTO budget_ledger (run_id, budget, id, tokens, usd, owner, pid, host, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			req.RunID, req.Budget, req.ID, req.Amount.Tokens, req.Amount.USD, h.Owner, h.PID, h.Host, h.Expires.UnixNano())
		if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	if err != nil {
		return BudgetGrant{}, err
	}
	return g, nil
}

func readBudget(ctx context.Context, q querier, runID, budget string) ([]BudgetRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, tokens, usd, owner, pid, host, expires FROM budget_ledger WHERE run_id = ? AND budget = ?`, runID, budget)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BudgetRow
	for rows.Next() {
		var (
			r       BudgetRow
			expires int64
		)
		if err := rows.Scan(&r.ID, &r.Amount.Tokens, &r.Amount.USD, &r.Holder.Owner, &r.Holder.PID, &r.Holder.Host, &expires); err != nil {
			return nil, err
		}
		r.Holder.Expires = time.Unix(0, expires).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// RenewBudget moves the expiry of one reservation.
func (s *SQLite) RenewBudget(ctx context.Context, runID, budget, id string, expires time.Time) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.readOnly != nil {
		return fmt.Errorf("renew budget %s of run %s: %w", budget, runID, s.errReadOnly())
	}
	_, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE budget_ledger SET expires = ? WHERE run_id = ? AND budget = ? AND id = ? AND id != ''`,
		expires.UnixNano(), runID, budget, id)
	if err != nil {
		return fmt.Errorf("renew budget %s of run %s: %w", budget, runID, s.readOnlyErr(err))
	}
	return nil
}

// SettleBudget ends a reservation and adds its usage to the settled sum.
func (s *SQLite) SettleBudget(ctx context.Context, runID, budget, id string, used BudgetAmount) (BudgetTotals, error) {
	var t BudgetTotals
	what := fmt.Sprintf("settle budget %s of run %s", budget, runID)
	if id == "" {
		return t, fmt.Errorf("%s: empty reservation id", what)
	}
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.inTx(wctx, what, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(wctx, `DELETE FROM budget_ledger WHERE run_id = ? AND budget = ? AND id = ?`, runID, budget, id); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		_, err := tx.ExecContext(wctx, `INSERT INTO budget_ledger (run_id, budget, id, tokens, usd) VALUES (?, ?, '', ?, ?)
ON CONFLICT (run_id, budget, id) DO UPDATE SET tokens = tokens + excluded.tokens, usd = usd + excluded.usd`, runID, budget, used.Tokens, used.USD)
		if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		rows, err := readBudget(wctx, tx, runID, budget)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		t, _ = SumBudget(rows, time.Now())
		return nil
	})
	return t, err
}

// ResetBudgets replaces the run's budgets with settled usage only.
func (s *SQLite) ResetBudgets(ctx context.Context, runID string, used map[string]BudgetAmount) error {
	what := "reset budgets of run " + runID
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.inTx(wctx, what, func(tx *sql.Tx) error {
		var one int
		switch err := tx.QueryRowContext(wctx, `SELECT 1 FROM runs WHERE id = ?`, runID).Scan(&one); {
		case err == sql.ErrNoRows:
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := tx.ExecContext(wctx, `DELETE FROM budget_ledger WHERE run_id = ?`, runID); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		for name, u := range used {
			_, err := tx.ExecContext(wctx, `INSERT INTO budget_ledger (run_id, budget, id, tokens, usd) VALUES (?, ?, '', ?, ?)`, runID, name, u.Tokens, u.USD)
			if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
				return fmt.Errorf("%s: %w", what, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
}

// BudgetTotals sums a budget's rows at now.
func (s *SQLite) BudgetTotals(ctx context.Context, runID, budget string, now time.Time) (BudgetTotals, error) {
	rows, err := readBudget(ctx, s.db, runID, budget)
	if err != nil {
		return BudgetTotals{}, fmt.Errorf("budget %s of run %s: %w", budget, runID, err)
	}
	t, _ := SumBudget(rows, now)
	return t, nil
}
