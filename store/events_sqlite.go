package store

import (
	"context"
	"database/sql"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"
)

var _ EventLog = (*SQLite)(nil)

// AppendEvents numbers the batch inside the write transaction, which holds
// the file's write lock: batches are numbered in commit order.
func (s *SQLite) AppendEvents(ctx context.Context, runID string, events [][]byte) error {
	what := "append events of run " + runID
	data, err := EncodeEvents(events)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.inTx(wctx, what, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(wctx, `INSERT INTO run_events (run_id, seq, events)
SELECT ?, COALESCE(MAX(seq), 0) + 1, ? FROM run_events WHERE run_id = ?`, runID, data, runID)
		if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
}

// Events reads the batches after `after`.
func (s *SQLite) Events(ctx context.Context, runID string, after int64) ([]EventBatch, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, events FROM run_events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?`, runID, after, EventBatchLimit)
	if err != nil {
		return nil, fmt.Errorf("events of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []EventBatch
	for rows.Next() {
		var b EventBatch
		var data []byte
		if err := rows.Scan(&b.Seq, &data); err != nil {
			return nil, fmt.Errorf("events of run %s: %w", runID, err)
		}
		b.Events = DecodeEvents(data)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of run %s: %w", runID, err)
	}
	return out, nil
}
