package postgres

import (
	"context"

	"github.com/lgx-run/lgx/store"
)

var _ store.CheckpointFollower = (*Store)(nil)

// ReadCheckpoints implements store.CheckpointFollower: the run's
// checkpoints from step cur.Pos on, in step order (a step written again
// replaces its row, so rows are in the order their steps were written).
// cur.Pos becomes the step after the last one read.
func (s *Store) ReadCheckpoints(ctx context.Context, cur *store.CheckpointCursor, each func(*store.Checkpoint) error) error {
	return s.scanCheckpoints(ctx, cur.RunID, cur.Pos, func(cp *store.Checkpoint, enc store.EncodedCheckpoint) error {
		if err := cur.Decode(cp, enc); err != nil {
			return err
		}
		if err := each(cp); err != nil {
			return err
		}
		cur.Pos = int64(cp.Step) + 1
		return nil
	})
}
