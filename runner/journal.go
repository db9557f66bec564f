package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/lgx-run/lgx/store"
)

// journal owns a run's durability (DESIGN.md, "Executor"): the run's
// record and lease, the invocations that finished (recorded as they
// finish, durable by the step's barrier), and the checkpoints, batched
// for steps without side effects. The loop tells it when a step starts,
// when its barrier is reached and when the step is committed; it never
// decides anything about the run's course. A subgraph's run has no store
// of its own: it shares the parent's recorder (rec) and records nothing
// else.
type journal struct {
	st       store.Store
	runID    string
	leaseTTL time.Duration // 0: store.LeaseTTL
	// rec records the invocations of parallel steps; nil without a store.
	rec *recorder
	// lease is this process's claim to execute the run (SPEC §9.3), held
	// from start (or resume) to finish; nil without a store.
	lease *heldLease
	// ended: FinishRun recorded the outcome, which clears the lease.
	ended bool

	// pending is the invocation of a step that has only one, recorded
	// with the step's checkpoint in one transaction (store.CommitSteps):
	// the barrier follows at once, so it is as durable, at half the cost.
	pending *store.Invocation
	// stepPure is true when every node of the current step is pure
	// (nodes.Capabilities.Pure). Such steps are recorded in batches of up to
	// maxBatchSteps steps, one transaction each; a step with any other node
	// first makes the batch durable, so no side effect starts before the
	// steps that led to it are recorded. A crash loses at most the batch,
	// which resume re-runs with the same result.
	stepPure bool
	batch    []store.StepRecord
	// sb, for a store that is a StepBatcher, replaces batch (see
	// stepBatch); allocated at the first checkpoint, so that a run without
	// a store pays nothing for it.
	sb   *stepBatch
	noSB bool // the store is no StepBatcher

	// lone is the record of the invocation alone in its step, reused
	// from step to step (with its writes' buffer) when the store is a
	// StepBatcher, which retains nothing of a record (see reusable).
	lone store.Invocation

	// cpEnc encodes checkpoint values and sizes the batch (maxBatchBytes).
	cpEnc cpEncoder
}

// stepBatch is the journal's batch for a store that is a StepBatcher:
// each step is encoded into b as it is checkpointed, so the journal reuses
// one checkpoint (cp, its map and its values' bytes) for every step
// instead of holding a batch of them until the flush.
type stepBatch struct {
	b    store.StepBatch
	cp   store.Checkpoint
	invs []*store.Invocation // cp's step's invocation, reused like cp
	ext  bool                // the store WritesExtensions
}

// maxBatchSteps bounds how many pure steps are recorded in one transaction
// (and so how many a crash can make resume run again). maxBatchBytes bounds
// the encoded values (checkpoint keys, invocation writes) a batch holds
// before it is written: without it, 64 steps of a state that grows by a
// megabyte a step held 64 copies of that state, gigabytes for a 100 MB
// one. With it a pending batch costs at most this plus its last step, and
// a step whose record alone exceeds it is written at once.
const (
	maxBatchSteps = 256
	maxBatchBytes = 4 << 20
)

// create records a new run and takes its lease.
func (j *journal) create(ctx context.Context, rec *store.Run) error {
	ttl := j.leaseTTL
	if ttl <= 0 {
		ttl = store.LeaseTTL
	}
	// The run is created with its lease: nobody else can hold the lease
	// of a run that did not exist.
	h, l := newLease(ctx, j.st, j.runID, ttl)
	rec.Lease = &l
	if err := j.st.CreateRun(ctx, rec); err != nil {
		return fmt.Errorf("store: create run: %w", err)
	}
	j.lease = h
	go h.renew()
	return nil
}

// open starts the recorder of the run's invocations; close ends it.
func (j *journal) open() {
	if j.st != nil {
		j.rec = newRecorder(j.st, recordLinger, j.lease)
	}
}

func (j *journal) close() {
	if j.st != nil && j.rec != nil {
		j.rec.close()
	}
}

// beginStep is told whether every node of the step about to start is
// pure; a step that is not first makes the batched steps durable.
func (j *journal) beginStep(ctx context.Context, pure bool, step int) error {
	j.stepPure = pure
	if pure {
		return nil
	}
	return j.flush(ctx, step)
}

// finished takes the record of an invocation that ended. alone says the
// invocation is the only one of its step and succeeded: it is then kept
// for the step's checkpoint transaction (pending), which is safe because
// the dispatcher runs a step of one invocation on the loop's goroutine;
// any other goes to the recorder, durable by the barrier.
func (j *journal) finished(inv *store.Invocation, alone bool) {
	if alone && j.st != nil {
		j.pending = inv
		return
	}
	if inv == &j.lone { // built to be alone, then it failed: the recorder keeps it
		c := *inv
		c.Writes = slices.Clone(inv.Writes)
		inv = &c
	}
	j.rec.add(inv)
}

// reusable returns the record to build the invocation of a step of one
// invocation in (see lone), or nil when a new one is needed: the
// invocation is not alone, or the store may retain its records (they
// outlive the step: Memory keeps them, the batch of other stores holds
// them until written).
func (j *journal) reusable(alone bool) *store.Invocation {
	if !alone || j.pending != nil || !j.batcher() {
		return nil
	}
	return &j.lone
}

// batcher reports whether the store is a StepBatcher, starting the
// journal's batch (sb) the first time it is.
func (j *journal) batcher() bool {
	if j.sb == nil && !j.noSB {
		if b, ok := j.st.(store.StepBatcher); ok {
			j.sb = &stepBatch{b: b.NewStepBatch(), ext: store.WritesExtensions(j.st)}
		} else {
			j.noSB = true
		}
	}
	return j.sb != nil
}

// barrier makes every invocation of the step that finished durable,
// before anything about the step is decided.
func (j *journal) barrier(step int) error {
	if j.rec == nil {
		return nil
	}
	if err := j.rec.flush(); err != nil {
		return fmt.Errorf("store: record invocations of step %d: %w", step, err)
	}
	return nil
}

// flush makes the batched step records durable, in one transaction.
func (j *journal) flush(ctx context.Context, step int) error {
	if j.sb != nil {
		if j.sb.b.Len() == 0 {
			return nil
		}
		if err := j.confirmLease(); err != nil {
			return err
		}
		if err := j.sb.b.Commit(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("store: record steps up to %d: %w", step, err)
		}
		return nil
	}
	if len(j.batch) == 0 {
		return nil
	}
	if err := j.confirmLease(); err != nil {
		return err
	}
	err := store.CommitSteps(context.WithoutCancel(ctx), j.st, j.batch)
	clear(j.batch)
	j.batch, j.cpEnc.batchBytes = j.batch[:0], 0
	if err != nil {
		return fmt.Errorf("store: record steps up to %d: %w", step, err)
	}
	return nil
}

// checkpoint records the core's step boundary: the keys the step changed
// (secrets redacted), the next step's nodes and the joins' progress, with
// the step's pending invocation. Pure steps are batched.
func (j *journal) checkpoint(ctx context.Context, c *core, next []string, red redactor) error {
	if j.batcher() {
		return j.checkpointBatched(ctx, c, next, red)
	}
	cp := &store.Checkpoint{RunID: j.runID, Step: c.step, Next: next, At: time.Now(),
		Changed: make(map[string]json.RawMessage, len(c.changed)), Encoded: true}
	j.cpEnc.buf = nil                   // cp keeps its values' bytes until the batch is written
	ext := store.WritesExtensions(j.st) // a growing key is given as what it gained
	for _, k := range c.changed {
		name := c.g.keys[k].name
		if err := j.cpEnc.put(cp, k, name, c.state[name], red, ext); err != nil {
			return fmt.Errorf("checkpoint: state key %s: %w", name, err)
		}
	}
	j.cpEnc.inputs = nil // the step-0 checkpoint's only
	cp.Joins = encodeJoins(c.joinDone)
	rec := store.StepRecord{Checkpoint: cp}
	if j.pending != nil {
		rec.Invocations = []*store.Invocation{j.pending}
		j.cpEnc.batchBytes += len(j.pending.Writes)
		j.pending = nil
	}
	j.batch = append(j.batch, rec)
	if !j.stepPure || len(j.batch) >= maxBatchSteps || j.cpEnc.batchBytes >= maxBatchBytes {
		return j.flush(ctx, c.step)
	}
	return nil
}

// checkpointBatched is checkpoint for a StepBatcher: the step is encoded
// into the batch at once, from a checkpoint the journal reuses (the batch
// retains nothing of it), so a pure step allocates no map, record or
// value bytes of its own; the batch's encoded size bounds it.
func (j *journal) checkpointBatched(ctx context.Context, c *core, next []string, red redactor) error {
	sb := j.sb
	cp := &sb.cp
	if cp.Changed == nil {
		cp.Changed = make(map[string]json.RawMessage, len(c.changed))
	}
	clear(cp.Changed)
	clear(cp.Extended)
	cp.RunID, cp.Step, cp.Next, cp.At, cp.Encoded = j.runID, c.step, next, time.Now(), true
	j.cpEnc.buf = j.cpEnc.buf[:0]
	for _, k := range c.changed {
		name := c.g.keys[k].name
		if err := j.cpEnc.put(cp, k, name, c.state[name], red, sb.ext); err != nil {
			return fmt.Errorf("checkpoint: state key %s: %w", name, err)
		}
	}
	j.cpEnc.inputs = nil // the step-0 checkpoint's only
	cp.Joins = encodeJoins(c.joinDone)
	rec := store.StepRecord{Checkpoint: cp}
	if j.pending != nil {
		sb.invs = append(sb.invs[:0], j.pending)
		rec.Invocations = sb.invs
	}
	err := sb.b.Add(rec)
	clear(sb.invs)
	cp.Next, cp.Joins = nil, nil
	if err != nil {
		// The invocation stays pending: drain records it on its own.
		return fmt.Errorf("store: record step %d: %w", c.step, err)
	}
	j.pending = nil
	if !j.stepPure || sb.b.Len() >= maxBatchSteps || sb.b.Size() >= maxBatchBytes {
		return j.flush(ctx, c.step)
	}
	return nil
}

// noJoins is the joins' progress of a graph without joins, as
// encodeJoins gives it: shared, since most steps of most graphs have it.
var noJoins = json.RawMessage(`{}`)

// encodeJoins encodes the joins' progress as a JSON object from the join's
// index to its sources' done flags. Written by hand: json.Marshal of a map
// built for it cost a map, its keys and reflection every step.
func encodeJoins(done [][]bool) json.RawMessage {
	if len(done) == 0 {
		return noJoins
	}
	// The keys in json.Marshal's order (sorted as strings: "10" < "2"),
	// so the bytes stored are those earlier versions stored.
	keys := make([]string, len(done))
	for i := range done {
		keys[i] = strconv.Itoa(i)
	}
	slices.Sort(keys)
	b := make([]byte, 0, 2+len(done)*16)
	b = append(b, '{')
	for n, k := range keys {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, `":`...)
		i, _ := strconv.Atoi(k)
		if done[i] == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '[')
		for j, d := range done[i] {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendBool(b, d)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// drain makes everything still queued or batched durable, even when ctx
// was cancelled: the first step of finishing the run.
func (j *journal) drain(ctx context.Context, step int) error {
	fctx := context.WithoutCancel(ctx)
	var err error
	if j.rec != nil {
		err = j.rec.flush()
	}
	if ferr := j.flush(fctx, step); err == nil {
		err = ferr
	}
	if j.pending != nil { // the step ended the run before its checkpoint
		if j.confirmLease() == nil {
			_ = j.st.RecordInvocation(fctx, j.pending)
		}
		j.pending = nil
	}
	return err
}

// finish records the run's outcome, even when ctx was cancelled.
func (j *journal) finish(ctx context.Context, status store.Status, msg string) error {
	if err := j.confirmLease(); err != nil {
		return err
	}
	if err := j.st.FinishRun(context.WithoutCancel(ctx), j.runID, status, msg, time.Now()); err != nil {
		return fmt.Errorf("store: finish run: %w", err)
	}
	j.ended = true
	return nil
}

// acquireLease takes the run's lease (SPEC §9.3).
func (j *journal) acquireLease(ctx context.Context) (*heldLease, error) {
	if j.leaseTTL > 0 {
		return acquireLeaseTTL(ctx, j.st, j.runID, j.leaseTTL)
	}
	return acquireLease(ctx, j.st, j.runID)
}

// releaseLease gives the run's lease back once its outcome is recorded.
// A failed release only delays the next resume (the lease expires).
func (j *journal) releaseLease() {
	if j.lease != nil {
		if j.ended {
			j.lease.drop() // FinishRun cleared it
		} else {
			_ = j.lease.release()
		}
		j.lease = nil
	}
}

// leaseLost reports whether another process took the run.
func (j *journal) leaseLost() bool { return j.lease != nil && j.lease.lost() }

// confirmLease returns nil when the run is still this process's to
// record (heldLease.confirm): nothing is written for a run another
// process took over.
func (j *journal) confirmLease() error {
	if err := j.lease.confirm(); err != nil {
		return fmt.Errorf("store: not recorded: %w", err)
	}
	return nil
}
