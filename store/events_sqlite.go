package store

import (
	"context"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"
)

var _ EventLog = (*SQLite)(nil)

// appendEventsSQL appends a batch numbered one more than the run's last.
// One statement, which SQLite runs in a transaction of its own: a write
// statement takes the file's write lock before it reads, so the number is
// read and used under the lock, and batches are numbered in commit order.
// (An explicit transaction around it cost three times as much.)
const appendEventsSQL = `INSERT INTO run_events (run_id, seq, events)
SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2 FROM run_events WHERE run_id = ?1`

// AppendEvents appends the batch with appendEventsSQL.
func (s *SQLite) AppendEvents(ctx context.Context, runID string, events [][]byte) error {
	what := "append events of run " + runID
	data, err := EncodeEvents(events)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_, err = s.write(ctx, s.appendEvents, runID, data)
	if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Events reads the batches after `after`.
func (s *SQLite) Events(ctx context.Context, runID string, after int64) ([]EventBatch, error) {
	rows, err := s.events.QueryContext(ctx, runID, after, EventBatchLimit)
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
