package postgres

import (
	"context"
	"fmt"

	"github.com/lgx-run/lgx/store"
)

var _ store.CheckpointFollower = (*Store)(nil)

// ReadCheckpoints implements store.CheckpointFollower: the run's
// checkpoints from step cur.Pos on, in step order (a step written again
// replaces its row, so rows are in the order their steps were written).
// cur.Pos becomes the step after the last one read.
func (s *Store) ReadCheckpoints(ctx context.Context, cur *store.CheckpointCursor, each func(*store.Checkpoint) error) error {
	runID := cur.RunID
	if cur.Pos == 0 {
		if err := s.mustExist(ctx, runID, "checkpoints of run"); err != nil {
			return err
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT step, changed, deltas, next, joins, at FROM checkpoints WHERE run_id = $1 AND step >= $2 ORDER BY step`, runID, cur.Pos)
	if err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			enc store.EncodedCheckpoint
			at  *int64
		)
		cp := &store.Checkpoint{RunID: runID}
		if err := rows.Scan(&cp.Step, &enc.Changed, &enc.Deltas, &enc.Next, &enc.Joins, &at); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cp.At = fromNanos(at)
		if err := cur.Decode(cp, enc); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		if err := each(cp); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cur.Pos = int64(cp.Step) + 1
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	return nil
}
