package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lgx-run/lgx/store"
)

var _ store.SlotLeaser = (*Store)(nil)

// slotLock is the first key of the advisory lock that serializes the
// AcquireSlot transactions of one pool (the second is the pool name's
// hash): the slot rows of a free pool do not exist yet, so there is no row
// to lock FOR UPDATE.
const slotLock = 0x6c677802

// AcquireSlot takes a slot and a rate token of a machine-wide pool in one
// transaction holding the pool's advisory lock: processes on any machine
// racing for the last slot or token are serialized, and exactly one wins.
func (s *Store) AcquireSlot(ctx context.Context, req store.SlotRequest) (store.SlotGrant, error) {
	if err := store.CheckSlotRequest(req); err != nil {
		return store.SlotGrant{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.SlotGrant{}, err
	}
	var g store.SlotGrant
	what := "acquire slot of pool " + req.Pool
	err := s.inTx(ctx, what, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		if _, err := tx.Exec(wctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(slotLock), req.Pool); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		slots, err := readSlots(wctx, tx, req.Pool)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		var b store.TokenBucket
		if req.Rate > 0 {
			var (
				tokens float64
				at     int64
			)
			err := tx.QueryRow(wctx, `SELECT tokens, at FROM machine_buckets WHERE pool = $1`, req.Pool).Scan(&tokens, &at)
			switch {
			case err == nil:
				b = store.TokenBucket{Tokens: tokens, At: time.Unix(0, at), Known: true}
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		var take, write bool
		g, b, take, write = store.PlanSlot(req, slots, b)
		if take {
			h := req.Holder
			if _, err := tx.Exec(wctx, `INSERT INTO machine_slots (pool, slot, owner, pid, host, run_id, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (pool, slot) DO UPDATE SET owner = EXCLUDED.owner, pid = EXCLUDED.pid, host = EXCLUDED.host, run_id = EXCLUDED.run_id, expires = EXCLUDED.expires`,
				req.Pool, g.Slot, h.Owner, int64(h.PID), h.Host, req.RunID, h.Expires.UnixNano()); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if write {
			if _, err := tx.Exec(wctx, `INSERT INTO machine_buckets (pool, tokens, at) VALUES ($1, $2, $3)
ON CONFLICT (pool) DO UPDATE SET tokens = EXCLUDED.tokens, at = EXCLUDED.at`, req.Pool, b.Tokens, b.At.UnixNano()); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.SlotGrant{}, err
	}
	return g, nil
}

// querier is what readSlots needs of a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readSlots(ctx context.Context, q querier, pool string) ([]store.SlotLease, error) {
	rows, err := q.Query(ctx, `SELECT slot, owner, pid, host, run_id, expires FROM machine_slots WHERE pool = $1 ORDER BY slot`, pool)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SlotLease
	for rows.Next() {
		var (
			sl           = store.SlotLease{Pool: pool}
			slot         int32
			pid, expires int64
		)
		if err := rows.Scan(&slot, &sl.Lease.Owner, &pid, &sl.Lease.Host, &sl.RunID, &expires); err != nil {
			return nil, err
		}
		sl.Slot, sl.Lease.PID, sl.Lease.Expires = int(slot), int(pid), time.Unix(0, expires).UTC()
		out = append(out, sl)
	}
	return out, rows.Err()
}

// RenewSlots moves the expiry of owner's slots.
func (s *Store) RenewSlots(ctx context.Context, owner string, expires time.Time) (int, error) {
	tag, err := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE machine_slots SET expires = $1 WHERE owner = $2`, expires.UnixNano(), owner)
	if err != nil {
		return 0, fmt.Errorf("renew slots of %s: %w", owner, err)
	}
	return int(tag.RowsAffected()), nil
}

// ReleaseSlot frees one slot of owner.
func (s *Store) ReleaseSlot(ctx context.Context, pool string, slot int, owner string) error {
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM machine_slots WHERE pool = $1 AND slot = $2 AND owner = $3`, pool, slot, owner); err != nil {
		return fmt.Errorf("release slot of pool %s: %w", pool, err)
	}
	return nil
}

// ReleaseSlots frees every slot of owner.
func (s *Store) ReleaseSlots(ctx context.Context, owner string) error {
	if _, err := s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM machine_slots WHERE owner = $1`, owner); err != nil {
		return fmt.Errorf("release slots of %s: %w", owner, err)
	}
	return nil
}

// Slots lists pool's slot leases.
func (s *Store) Slots(ctx context.Context, pool string) ([]store.SlotLease, error) {
	out, err := readSlots(ctx, s.pool, pool)
	if err != nil {
		return nil, fmt.Errorf("slots of pool %s: %w", pool, err)
	}
	return out, nil
}
