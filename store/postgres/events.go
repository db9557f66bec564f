package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lgx-run/lgx/store"
)

var _ store.EventLog = (*Store)(nil)

// eventLock is the first key of the advisory lock that serializes the
// AppendEvents transactions of one run (the second is a hash of the run
// id). Holding it until commit numbers the batches in commit order: a
// reader that saw batch n never misses a batch numbered below a later
// one, which concurrent sequence draws would allow.
const eventLock = 0x6c677804

// AppendEvents numbers the batch under the run's advisory lock.
func (s *Store) AppendEvents(ctx context.Context, runID string, events [][]byte) error {
	what := "append events of run " + runID
	data, err := store.EncodeEvents(events)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return s.inTx(ctx, what, func(tx pgx.Tx) error {
		wctx := context.WithoutCancel(ctx)
		if _, err := tx.Exec(wctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(eventLock), runID); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		_, err := tx.Exec(wctx, `INSERT INTO run_events (run_id, seq, events)
SELECT $1, COALESCE(MAX(seq), 0) + 1, $2 FROM run_events WHERE run_id = $1`, runID, data)
		if isCode(err, foreignKeyViolation) {
			return fmt.Errorf("%s: %w", what, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// Events reads the batches after `after`.
func (s *Store) Events(ctx context.Context, runID string, after int64) ([]store.EventBatch, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, events FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, runID, after, store.EventBatchLimit)
	if err != nil {
		return nil, fmt.Errorf("events of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []store.EventBatch
	for rows.Next() {
		var b store.EventBatch
		var data []byte
		if err := rows.Scan(&b.Seq, &data); err != nil {
			return nil, fmt.Errorf("events of run %s: %w", runID, err)
		}
		b.Events = store.DecodeEvents(data)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of run %s: %w", runID, err)
	}
	return out, nil
}
