package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

var _ SlotLeaser = (*SQLite)(nil)

const (
	slotCols       = `slot, owner, pid, host, run_id, expires`
	selectSlotsSQL = `SELECT ` + slotCols + ` FROM machine_slots WHERE pool = ? ORDER BY slot`
)

// AcquireSlot takes a slot and a rate token of a machine-wide pool in one
// immediate transaction, which holds the file's write lock: processes
// racing for the last slot or token are serialized, and exactly one wins.
func (s *SQLite) AcquireSlot(ctx context.Context, req SlotRequest) (SlotGrant, error) {
	if err := CheckSlotRequest(req); err != nil {
		return SlotGrant{}, err
	}
	if err := ctx.Err(); err != nil {
		return SlotGrant{}, err
	}
	var g SlotGrant
	what := "acquire slot of pool " + req.Pool
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.inTx(wctx, what, func(tx *sql.Tx) error {
		slots, err := s.readSlots(wctx, tx, req.Pool)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var b TokenBucket
		if req.Rate > 0 {
			var (
				tokens float64
				at     int64
			)
			err := tx.QueryRowContext(wctx, `SELECT tokens, at FROM machine_buckets WHERE pool = ?`, req.Pool).Scan(&tokens, &at)
			switch {
			case err == nil:
				b = TokenBucket{Tokens: tokens, At: time.Unix(0, at), Known: true}
			case err != sql.ErrNoRows:
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		var take, write bool
		g, b, take, write = PlanSlot(req, slots, b)
		if take {
			h := req.Holder
			if _, err := tx.ExecContext(wctx, `INSERT OR REPLACE INTO machine_slots (pool, `+slotCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				req.Pool, g.Slot, h.Owner, h.PID, h.Host, req.RunID, h.Expires.UnixNano()); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if write {
			if _, err := tx.ExecContext(wctx, `INSERT OR REPLACE INTO machine_buckets (pool, tokens, at) VALUES (?, ?, ?)`,
				req.Pool, b.Tokens, b.At.UnixNano()); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
	if err != nil {
		return SlotGrant{}, err
	}
	return g, nil
}

// querier is what readSlots needs of a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *SQLite) readSlots(ctx context.Context, q querier, pool string) ([]SlotLease, error) {
	rows, err := q.QueryContext(ctx, selectSlotsSQL, pool)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SlotLease
	for rows.Next() {
		sl := SlotLease{Pool: pool}
		var expires int64
		if err := rows.Scan(&sl.Slot, &sl.Lease.Owner, &sl.Lease.PID, &sl.Lease.Host, &sl.RunID, &expires); err != nil {
			return nil, err
		}
		sl.Lease.Expires = time.Unix(0, expires).UTC()
		out = append(out, sl)
	}
	return out, rows.Err()
}

// RenewSlots moves the expiry of owner's slots.
func (s *SQLite) RenewSlots(ctx context.Context, owner string, expires time.Time) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.readOnly != nil {
		return 0, fmt.Errorf("renew slots: %w", s.errReadOnly())
	}
	res, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE machine_slots SET expires = ? WHERE owner = ?`, expires.UnixNano(), owner)
	if err != nil {
		return 0, fmt.Errorf("renew slots of %s: %w", owner, s.readOnlyErr(err))
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ReleaseSlot frees one slot of owner.
func (s *SQLite) ReleaseSlot(ctx context.Context, pool string, slot int, owner string) error {
	return s.deleteSlots(ctx, "release slot of pool "+pool,
		`DELETE FROM machine_slots WHERE pool = ? AND slot = ? AND owner = ?`, pool, slot, owner)
}

// ReleaseSlots frees every slot of owner.
func (s *SQLite) ReleaseSlots(ctx context.Context, owner string) error {
	return s.deleteSlots(ctx, "release slots of "+owner, `DELETE FROM machine_slots WHERE owner = ?`, owner)
}

func (s *SQLite) deleteSlots(ctx context.Context, what, q string, args ...any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.readOnly != nil {
		return fmt.Errorf("%s: %w", what, s.errReadOnly())
	}
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), q, args...); err != nil {
		return fmt.Errorf("%s: %w", what, s.readOnlyErr(err))
	}
	return nil
}

// Slots lists pool's slot leases.
func (s *SQLite) Slots(ctx context.Context, pool string) ([]SlotLease, error) {
	out, err := s.readSlots(ctx, s.db, pool)
	if err != nil {
		return nil, fmt.Errorf("slots of pool %s: %w", pool, err)
	}
	return out, nil
}
