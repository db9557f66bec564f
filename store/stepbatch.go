package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"
)

// StepBatcher is implemented by stores that encode a step's record when it
// is added to a batch, rather than when the batch is written: the caller
// may then reuse the record's memory (its checkpoint's map and values) for
// the next step at once. For a run of pure steps that is most of what a
// durable step allocated: a checkpoint, its map and each value's JSON held
// until the batch was written, then the store's own copies of them.
type StepBatcher interface {
	NewStepBatch() StepBatch
}

// StepBatch is a batch of step records, written in one transaction, as
// CommitSteps writes them. It is not safe for concurrent use.
type StepBatch interface {
	// Add encodes rec and appends it to the batch; nothing of rec is
	// retained. A record that cannot be stored (not JSON, an extension of
	// a value the store does not hold) is refused and leaves the batch as
	// it was.
	Add(rec StepRecord) error
	// Len is the number of steps added since the last Commit.
	Len() int
	// Size is the number of encoded bytes the batch holds.
	Size() int
	// Commit makes the batch durable in one transaction and empties it,
	// also when it fails.
	Commit(ctx context.Context) error
}

var _ StepBatcher = (*SQLite)(nil)

// NewStepBatch returns an empty batch of the store.
func (s *SQLite) NewStepBatch() StepBatch { return &sqliteBatch{s: s} }

// sqliteBatch is a batch being built: per run, one row of invocation
// batches and rows of checkpoint batches (addToCPBatch), encoded as the
// steps are added, in the buffers of the previous batch.
type sqliteBatch struct {
	s       *SQLite
	steps   int
	size    int
	invRows []invRow
	cpRows  []cpBatchRow
	sc      encScratch
	// spare holds the buffers of rows of earlier batches, for new rows.
	spare [][]byte
}

// invRow is the invocation batch of one run (appendInvBatch's encoding).
type invRow struct {
	runID string
	b     []byte
}

func (b *sqliteBatch) Len() int  { return b.steps }
func (b *sqliteBatch) Size() int { return b.size }

// buf returns an empty buffer for a new row, reusing an earlier one's.
func (b *sqliteBatch) buf() []byte {
	if n := len(b.spare); n > 0 {
		r := b.spare[n-1]
		b.spare = b.spare[:n-1]
		return r[:0]
	}
	return nil
}

// Add encodes rec into the batch. The delta cache is updated at once, as
// CommitSteps does before its transaction: the next step's deltas are
// computed against this one; a failed Commit forgets the run.
func (b *sqliteBatch) Add(rec StepRecord) error {
	for _, inv := range rec.Invocations {
		if err := checkInvocation(inv); err != nil {
			return err
		}
	}
	cp := rec.Checkpoint
	if err := checkCheckpoint(cp); err != nil {
		return err
	}
	b.s.wmu.Lock()
	enc, up, err := b.s.enc.encode(cp, &b.sc)
	if err == nil {
		up.apply()
	}
	b.s.wmu.Unlock()
	if err != nil {
		return err
	}
	// An invocation alone in its step goes with its checkpoint, in the
	// same row (see lone); any other in its run's invocation batch.
	var alone *Invocation
	if len(rec.Invocations) == 1 && lone(rec.Invocations[0], cp) {
		alone = rec.Invocations[0]
	} else {
		for _, inv := range rec.Invocations {
			r := b.invRowOf(inv.RunID)
			n := len(r.b)
			r.b = appendInvRecord(r.b, inv)
			b.size += len(r.b) - n
		}
	}
	var i, grown int
	b.cpRows, i, grown = addToCPBatch(b.cpRows, cp, enc, b.buf)
	b.size += grown
	if alone != nil {
		r := &b.cpRows[i].invs
		n := len(r.b)
		r.add(alone, b.buf)
		b.size += len(r.b) - n
	}
	b.steps++
	return nil
}

// invRowOf returns the invocation row of run runID, starting one.
func (b *sqliteBatch) invRowOf(runID string) *invRow {
	for i := range b.invRows {
		if b.invRows[i].runID == runID {
			return &b.invRows[i]
		}
	}
	b.invRows = append(b.invRows, invRow{runID: runID, b: append(b.buf(), invBatchVersion)})
	return &b.invRows[len(b.invRows)-1]
}

// Commit writes the batch's rows in one transaction: the invocations
// first, then the checkpoints, as CommitSteps does.
func (b *sqliteBatch) Commit(ctx context.Context) error {
	defer b.reset()
	if len(b.invRows) == 0 && len(b.cpRows) == 0 {
		return nil
	}
	s := b.s
	wctx := context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	runID := b.runID()
	err := s.inTx(wctx, "commit steps of run "+runID, func(tx *sql.Tx) error {
		if len(b.invRows) > 0 {
			st := tx.StmtContext(wctx, s.insertBatch)
			for _, r := range b.invRows {
				if _, err := st.ExecContext(wctx, r.runID, r.b); err != nil {
					return invocationsErr(r.runID, err)
				}
			}
		}
		st := tx.StmtContext(wctx, s.insertCPs)
		for _, r := range b.cpRows {
			var invs any // NULL when the row has no lone invocation
			if r.invs.b != nil {
				invs = r.invs.b
			}
			if _, err := st.ExecContext(wctx, r.runID, r.first, r.last, r.b, invs); err != nil {
				return stepsErr(r.runID, r.first, err)
			}
		}
		return nil
	})
	if err == nil {
		s.wal.wrote(b.size)
	}
	if err != nil {
		// The delta cache already holds values of these checkpoints, which
		// were not stored: forget it, so later values are stored whole.
		for _, r := range b.cpRows {
			s.enc.Forget(r.runID)
		}
	}
	return err
}

// runID names the batch's (first) run in errors.
func (b *sqliteBatch) runID() string {
	if len(b.cpRows) > 0 {
		return b.cpRows[0].runID
	}
	return b.invRows[0].runID
}

// reset empties the batch, keeping its rows' buffers for the next one
// (the driver copied them when binding).
func (b *sqliteBatch) reset() {
	for _, r := range b.invRows {
		b.spare = append(b.spare, r.b)
	}
	for _, r := range b.cpRows {
		b.spare = append(b.spare, r.b)
		if r.invs.b != nil {
			b.spare = append(b.spare, r.invs.b)
		}
	}
	clear(b.invRows)
	clear(b.cpRows)
	b.invRows, b.cpRows = b.invRows[:0], b.cpRows[:0]
	b.steps, b.size = 0, 0
}

// discard empties the batch without writing it, forgetting the runs whose
// delta cache its steps updated.
func (b *sqliteBatch) discard() {
	if len(b.cpRows) > 0 {
		b.s.wmu.Lock()
		for _, r := range b.cpRows {
			b.s.enc.Forget(r.runID)
		}
		b.s.wmu.Unlock()
	}
	b.reset()
}

// stepsErr describes a failure to insert a checkpoint batch row.
func stepsErr(runID string, first int, err error) error {
	if isCode(err, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY) {
		return fmt.Errorf("write checkpoint of run %s: %w", runID, ErrNotFound)
	}
	return fmt.Errorf("write checkpoint of run %s step %d: %w", runID, first, err)
}

// validJSON is json.Valid, without its scanner for the values most
// checkpoints hold: integers, strings of printable ASCII without escapes,
// and the joins' progress of a graph without joins ({}). Every value of
// every durable step is checked.
func validJSON(b []byte) bool {
	if n := len(b); n > 0 && n <= 64 {
		switch c := b[0]; {
		case n == 2 && (c == '{' && b[1] == '}' || c == '[' && b[1] == ']'):
			return true
		case c == '"':
			if n >= 2 && b[n-1] == '"' && plainJSONBytes(b[1:n-1]) {
				return true
			}
		case c == '-' || ('0' <= c && c <= '9'):
			if isJSONInt(b) {
				return true
			}
		}
	}
	return json.Valid(b)
}

// plainJSONBytes is plainJSON of b: no byte needs escaping.
func plainJSONBytes(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// isJSONInt reports whether b is exactly a JSON integer: an optional minus,
// then 0 or a digit 1-9 followed by digits.
func isJSONInt(b []byte) bool {
	if b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
