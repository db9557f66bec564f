package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Invocation batches (schema version 6): the SQLite store records the
// invocations one write hands it (a parallel step's items that finished
// together, or the invocations of the steps CommitSteps records with their
// checkpoints) as one row of invocation_batches, not one row each. A row
// of the invocations table cost three b-tree operations (the row, its
// (run_id, path) key index, the foreign-key probe of runs) and twelve bound
// arguments; that was most of a durable step's cost and of a durable
// for_each item's. A batch row costs the same once per batch.
//
// The batch is encoded in Go (below), so readers decode it: Invocations
// merges the rows of the invocations table (written by earlier versions,
// all older than any batch) with the batches in the order they were
// written, keeps the last record of each path (a re-recorded path replaces
// the earlier one and moves to the end of its step, as INSERT OR REPLACE
// did) and orders by step.

// invBatchVersion is the first byte of an encoded batch; a reader refuses
// any other, so the format can change later without being misread.
const invBatchVersion = 1

// errBadBatch is wrapped by the error of a batch that cannot be decoded.
var errBadBatch = errors.New("malformed invocation batch")

// appendInvBatch appends the encoding of invs (all of one run, whose id
// the row holds) to dst: the version byte, then per invocation its path,
// step, node, index, status, writes (nil kept apart from empty), error,
// error kind, attempts and start and end times (zero kept as zero).
func appendInvBatch(dst []byte, invs []*Invocation) []byte {
	// Sized once: a batch holds up to hundreds of records, and growing it
	// by doubling showed in profiles.
	size := 1
	for _, inv := range invs {
		size += len(inv.Path) + len(inv.Node) + len(inv.Status) + len(inv.Writes) + len(inv.Error) + len(inv.ErrorKind) + invRecordOverhead
		if inv.Path == "" {
			size += len(inv.Node) + 24 // the path made of step, node and index
		}
	}
	dst = slices.Grow(dst, size)
	dst = append(dst, invBatchVersion)
	for _, inv := range invs {
		dst = appendInvRecord(dst, inv)
	}
	return dst
}

// appendInvRecord appends one invocation's record to a batch being built.
func appendInvRecord(dst []byte, inv *Invocation) []byte {
	dst = appendString(dst, pathOf(inv))
	dst = binary.AppendVarint(dst, int64(inv.Step))
	dst = appendString(dst, inv.Node)
	dst = binary.AppendVarint(dst, int64(inv.Index))
	dst = appendString(dst, inv.Status)
	if inv.Writes == nil {
		dst = binary.AppendUvarint(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(inv.Writes))+1)
		dst = append(dst, inv.Writes...)
	}
	dst = appendString(dst, inv.Error)
	dst = appendString(dst, inv.ErrorKind)
	dst = binary.AppendVarint(dst, int64(inv.Attempts))
	dst = appendTime(dst, inv.StartedAt)
	return appendTime(dst, inv.EndedAt)
}

// invRecordOverhead bounds the bytes of a record besides its strings:
// seven lengths and numbers of up to 10 bytes each, two times of up to 11.
const invRecordOverhead = 7*binary.MaxVarintLen32 + 2*(1+binary.MaxVarintLen64)

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendTime encodes the zero time as 0 and any other as 1 and its Unix
// nanoseconds, the range the invocations table's INTEGER columns had.
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return binary.AppendVarint(append(dst, 1), t.UnixNano())
}

// invBatchReader decodes one batch; the first error sticks.
type invBatchReader struct {
	b   []byte
	err error
}

func (r *invBatchReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d from the end", errBadBatch, what, len(r.b))
	}
	r.b = nil
}

func (r *invBatchReader) varint(what string) int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// int reads a varint that must fit an int32: steps, indexes and attempts
// are small, and a larger value means the bytes are not a batch.
func (r *invBatchReader) int(what string) int {
	v := r.varint(what)
	if v < -1<<31 || v > 1<<31-1 {
		r.fail(what + " out of range")
		return 0
	}
	return int(v)
}

// bytes reads n bytes; it never slices past the end.
func (r *invBatchReader) bytes(n uint64, what string) []byte {
	if n > uint64(len(r.b)) {
		r.fail(what + " longer than the batch")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *invBatchReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *invBatchReader) string(what string) string {
	return string(r.bytes(r.uvarint(what), what))
}

func (r *invBatchReader) time(what string) time.Time {
	if len(r.b) == 0 {
		r.fail(what)
		return time.Time{}
	}
	flag := r.b[0]
	r.b = r.b[1:]
	switch flag {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, r.varint(what)).UTC()
	}
	r.fail(what + " flag")
	return time.Time{}
}

// decodeInvBatch appends the invocations of run runID encoded in b to out.
// The Writes of each are copied out of b, which the caller may reuse.
func decodeInvBatch(out []*Invocation, runID string, b []byte) ([]*Invocation, error) {
	if len(b) == 0 || b[0] != invBatchVersion {
		return out, fmt.Errorf("%w: unknown version", errBadBatch)
	}
	r := invBatchReader{b: b[1:]}
	for len(r.b) > 0 && r.err == nil {
		inv := &Invocation{RunID: runID}
		inv.Path = r.string("path")
		inv.Step = r.int("step")
		inv.Node = r.string("node")
		inv.Index = r.int("index")
		inv.Status = r.string("status")
		if n := r.uvarint("writes"); n > 0 {
			inv.Writes = slices.Clone(r.bytes(n-1, "writes"))
		}
		inv.Error = r.string("error")
		inv.ErrorKind = r.string("error kind")
		inv.Attempts = r.int("attempts")
		inv.StartedAt = r.time("start time")
		inv.EndedAt = r.time("end time")
		if r.err == nil {
			out = append(out, inv)
		}
	}
	return out, r.err
}

// mergeInvocations orders a run's invocations as Invocations returns them:
// invs holds them in the order they were written (the invocations table's
// rows first, then each batch's); a path written again keeps only its last
// record, at that record's place; then a stable sort by step.
func mergeInvocations(invs []*Invocation) []*Invocation {
	last := make(map[string]int, len(invs))
	dup := false
	for i, inv := range invs {
		if _, ok := last[inv.Path]; ok {
			dup = true
		}
		last[inv.Path] = i
	}
	if dup {
		kept := invs[:0]
		for i, inv := range invs {
			if last[inv.Path] == i {
				kept = append(kept, inv)
			}
		}
		clear(invs[len(kept):])
		invs = kept
	}
	slices.SortStableFunc(invs, func(a, b *Invocation) int { return a.Step - b.Step })
	return invs
}

// Checkpoint batches: the checkpoints CommitSteps (or WriteCheckpoint)
// records in one write are one row of checkpoint_batches, each stored as
// its encoded columns (EncodedCheckpoint, with the step and time). The row
// holds the batch's first and last steps, so that readers can tell whether
// the rows, in the order written, give the steps in order without
// decoding them (scanCheckpoints).

// cpEntry is one checkpoint of a batch, as encoded.
type cpEntry struct {
	step int
	at   time.Time
	enc  EncodedCheckpoint
}

// appendCPEntry appends one checkpoint's encoding to a batch being built
// (which starts with invBatchVersion): its step, time and the four
// encoded columns, each keeping nil apart from empty.
func appendCPEntry(dst []byte, step int, at time.Time, enc EncodedCheckpoint) []byte {
	dst = slices.Grow(dst, cpEntrySize(enc))
	dst = binary.AppendVarint(dst, int64(step))
	dst = appendTime(dst, at)
	for _, col := range [...][]byte{enc.Changed, enc.Deltas, enc.Next, enc.Joins} {
		dst = appendNullable(dst, col)
	}
	return dst
}

// cpEntrySize bounds the size of a checkpoint's encoding in a batch.
func cpEntrySize(enc EncodedCheckpoint) int {
	return len(enc.Changed) + len(enc.Deltas) + len(enc.Next) + len(enc.Joins) + 5*binary.MaxVarintLen64 + 1
}

// appendNullable encodes b as 0 when nil, else its length + 1 and b.
func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

func (r *invBatchReader) nullable(what string) []byte {
	n := r.uvarint(what)
	if n == 0 {
		return nil
	}
	return slices.Clone(r.bytes(n-1, what))
}

// decodeCPBatch appends the checkpoints encoded in b to out, copied out
// of b.
func decodeCPBatch(out []cpEntry, b []byte) ([]cpEntry, error) {
	if len(b) == 0 || b[0] != invBatchVersion {
		return out, fmt.Errorf("%w: unknown version", errBadBatch)
	}
	r := invBatchReader{b: b[1:]}
	for len(r.b) > 0 && r.err == nil {
		var e cpEntry
		e.step = r.int("step")
		e.at = r.time("time")
		e.enc.Changed = r.nullable("changed keys")
		e.enc.Deltas = r.nullable("deltas")
		e.enc.Next = r.nullable("next nodes")
		e.enc.Joins = r.nullable("joins")
		if r.err == nil {
			out = append(out, e)
		}
	}
	return out, r.err
}

// lastPerStep keeps, of entries in the order they were written, the last
// one of each step (a rewritten step replaces the earlier checkpoint, as
// INSERT OR REPLACE did), in step order.
func lastPerStep(entries []cpEntry) []cpEntry {
	last := make(map[int]int, len(entries))
	for i, e := range entries {
		last[e.step] = i
	}
	kept := entries[:0]
	for i, e := range entries {
		if last[e.step] == i {
			kept = append(kept, e)
		}
	}
	slices.SortFunc(kept, func(a, b cpEntry) int { return a.step - b.step })
	return kept
}

// Lone invocations (schema version 9): the record of an invocation that
// was alone in its step, finished ok and has its step's default path is
// stored in its checkpoint's batch row (checkpoint_batches.invs), not in
// an invocation batch. Most of its record follows from where it is: its
// run, its path (step/node), index -1, status ok, no error. What remains
// is written with small numbers: the step as the difference to the
// previous lone record's of the row, the end time as the difference to
// the previous one's end (the first's from zero) and the start as the
// duration. For a run of pure steps that was 55 of the 101 bytes a step
// wrote and a second statement per batch; now about 15 bytes.
//
// Readers (Invocations) take the lone records after the invocation
// batches, in the order their rows were written: a lone record is written
// with its step's checkpoint, and the runner never records a path of a
// step whose checkpoint was written again, so nothing written later can
// replace it (mergeInvocations still keeps the last record of a path).

// loneInvVersion is the first byte of a row's lone records.
const loneInvVersion = 1

// lone reports whether inv, recorded with checkpoint cp, can be stored as
// a lone record: everything the encoding leaves out must be what the
// reader puts back.
func lone(inv *Invocation, cp *Checkpoint) bool {
	return inv.RunID == cp.RunID && inv.Step == cp.Step && inv.Step >= 0 && inv.Index == -1 &&
		inv.Status == InvocationOK && inv.Error == "" && inv.ErrorKind == "" &&
		!inv.StartedAt.IsZero() && !inv.EndedAt.IsZero() &&
		isDefaultPath(inv.Path, inv.Step, inv.Node)
}

// isDefaultPath reports whether path is "" or InvocationPath(step, node,
// -1), without building the latter.
func isDefaultPath(path string, step int, node string) bool {
	if path == "" {
		return true
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(step), 10)
	return len(path) == len(d)+1+len(node) && path[:len(d)] == string(d) &&
		path[len(d)] == '/' && path[len(d)+1:] == node
}

// loneRow is the state of a row's lone records being appended: the
// previous record's step and end time, which the next is written against.
type loneRow struct {
	b        []byte
	prevStep int
	prevEnd  int64
}

// add appends inv's lone record (lone(inv, its checkpoint) holds); start
// gives an empty buffer for the row's first.
func (l *loneRow) add(inv *Invocation, start func() []byte) {
	if l.b == nil {
		l.b = append(start(), loneInvVersion)
	}
	end := inv.EndedAt.UnixNano()
	l.b = binary.AppendVarint(l.b, int64(inv.Step-l.prevStep))
	l.b = appendString(l.b, inv.Node)
	l.b = binary.AppendVarint(l.b, int64(inv.Attempts))
	l.b = appendNullable(l.b, inv.Writes)
	l.b = binary.AppendVarint(l.b, end-l.prevEnd)
	l.b = binary.AppendVarint(l.b, end-inv.StartedAt.UnixNano())
	l.prevStep, l.prevEnd = inv.Step, end
}

// decodeLoneInvs appends the lone records of run runID encoded in b (a
// row's invs) to out, with everything the encoding left out put back.
func decodeLoneInvs(out []*Invocation, runID string, b []byte) ([]*Invocation, error) {
	if len(b) == 0 || b[0] != loneInvVersion {
		return out, fmt.Errorf("%w: unknown version of lone invocations", errBadBatch)
	}
	r := invBatchReader{b: b[1:]}
	var step int
	var end int64
	for len(r.b) > 0 && r.err == nil {
		step += r.int("step")
		inv := &Invocation{RunID: runID, Step: step, Index: -1, Status: InvocationOK}
		inv.Node = r.string("node")
		inv.Attempts = r.int("attempts")
		inv.Writes = r.nullable("writes")
		end += r.varint("end time")
		dur := r.varint("duration")
		if r.err != nil {
			break
		}
		if step < 0 {
			r.fail("negative step")
			break
		}
		inv.Path = InvocationPath(step, inv.Node, -1)
		inv.StartedAt, inv.EndedAt = time.Unix(0, end-dur).UTC(), time.Unix(0, end).UTC()
		out = append(out, inv)
	}
	return out, r.err
}
