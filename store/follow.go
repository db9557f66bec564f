package store

import (
	"context"
	"fmt"
)

// Following a run's checkpoints as another process commits them.
//
// A client that shows a run the workers of an engine execute (lgx run
// --engine temporal --stream values) needs each step's state as the step
// is committed. Checkpoints returns the whole history: read at every step
// it costs the run's history per step, quadratic over a run. A
// CheckpointCursor reads forward from where it stopped instead, and its
// decoder keeps the latest value of each key, which the deltas of later
// checkpoints are built on (sqlite_delta.go): memory proportional to the
// state, reads proportional to what was committed since.

// CheckpointCursor is a position in a run's checkpoints, for
// ReadCheckpoints. Its zero position is before the first checkpoint. Not
// safe for concurrent use.
type CheckpointCursor struct {
	RunID string
	// Pos is the store's position after the last checkpoint read: the
	// last batch id read for SQLite, the next step to read for the others.
	Pos int64
	// legacyRead: SQLite has read the run's rows of the checkpoints table
	// (written by earlier versions, before any batch).
	legacyRead bool
	dec        CheckpointDecoder
}

// NewCheckpointCursor returns a cursor before run runID's first checkpoint.
func NewCheckpointCursor(runID string) *CheckpointCursor {
	return &CheckpointCursor{RunID: runID}
}

// Decode fills cp from the columns of its row (as CheckpointDecoder.Decode
// does) with the values of the checkpoints the cursor read before: a store
// implementing CheckpointFollower decodes every row it reads through it,
// in the order the rows were written.
func (c *CheckpointCursor) Decode(cp *Checkpoint, enc EncodedCheckpoint) error {
	return c.dec.Decode(cp, enc)
}

// CheckpointFollower is implemented by stores that read a run's
// checkpoints forward from a cursor.
type CheckpointFollower interface {
	// ReadCheckpoints calls each with the run's checkpoints written since
	// cur's position, with full values (as Checkpoints gives them), in
	// the order they were written, and moves cur past them. A step
	// written again (a retried commit) may come again. After an error
	// cur is unusable (its decoder may hold part of a batch): read with
	// a new cursor.
	ReadCheckpoints(ctx context.Context, cur *CheckpointCursor, each func(*Checkpoint) error) error
}

// ReadCheckpoints calls each with the checkpoints of cur's run written
// since cur's position, and moves cur past them. For a store that is not
// a CheckpointFollower it reads every checkpoint and skips the steps up to
// cur's (a store that merges its checkpoints, Memory, gives only the
// latest step).
func ReadCheckpoints(ctx context.Context, st Store, cur *CheckpointCursor, each func(*Checkpoint) error) error {
	if f, ok := st.(CheckpointFollower); ok {
		return f.ReadCheckpoints(ctx, cur, each)
	}
	cps, err := st.Checkpoints(ctx, cur.RunID)
	if err != nil {
		return err
	}
	for _, cp := range cps {
		if int64(cp.Step) < cur.Pos {
			continue
		}
		if err := each(cp); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", cur.RunID, err)
		}
		cur.Pos = int64(cp.Step) + 1
	}
	return nil
}

// ReadCheckpoints implements CheckpointFollower: the run's checkpoint
// batches whose id is above cur's position, in the order written (the
// rows of the checkpoints table, written by earlier versions, first).
func (s *SQLite) ReadCheckpoints(ctx context.Context, cur *CheckpointCursor, each func(*Checkpoint) error) error {
	runID := cur.RunID
	emit := func(e cpEntry) error {
		cp := &Checkpoint{RunID: runID, Step: e.step, At: e.at}
		if err := cur.Decode(cp, e.enc); err != nil {
			return err
		}
		return each(cp)
	}
	if !cur.legacyRead {
		if err := s.mustExist(ctx, runID, "checkpoints of run"); err != nil {
			return err
		}
		// Read before the rows, not while they are open: the step-0
		// checkpoint may be stored against them.
		inputs, err := runInputs(ctx, s.db, runID)
		if err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cur.dec.SetInputs(func() ([]byte, error) { return inputs, nil })
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		err = s.scanLegacyCheckpoints(ctx, tx, runID, emit)
		_ = tx.Rollback()
		if err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cur.legacyRead = true
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, cps FROM checkpoint_batches WHERE run_id = ? AND id > ? ORDER BY id`, runID, cur.Pos)
	if err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	defer rows.Close()
	var entries []cpEntry
	for rows.Next() {
		var (
			id int64
			b  []byte
		)
		if err := rows.Scan(&id, &b); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		if entries, err = emitCPBatch(entries, b, emit); err != nil {
			return fmt.Errorf("checkpoints of run %s: %w", runID, err)
		}
		cur.Pos = id // past a batch only once all of it was handed on
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("checkpoints of run %s: %w", runID, err)
	}
	return nil
}

var _ CheckpointFollower = (*SQLite)(nil)

// emitCPBatch decodes the checkpoint batch b into entries (reused) and
// hands each entry to emit, in order; it returns entries for reuse.
func emitCPBatch(entries []cpEntry, b []byte, emit func(cpEntry) error) ([]cpEntry, error) {
	entries, err := decodeCPBatch(entries[:0], b)
	if err != nil {
		return entries, err
	}
	for _, e := range entries {
		if err := emit(e); err != nil {
			return entries, err
		}
	}
	return entries, nil
}
