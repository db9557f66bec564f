package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// This file exports what a Store in another package (store/postgres) shares
// with the SQLite store: argument checks, lease decisions and the checkpoint
// codec, so that every SQL dialect keys, validates and encodes alike.

// ErrRunExists is wrapped by CreateRun's error for an id already in use.
var ErrRunExists = errRunExists

// CheckRun rejects a run a store cannot key.
func CheckRun(r *Run) error { return checkRun(r) }

// CheckInvocation rejects an invocation a store cannot key.
func CheckInvocation(inv *Invocation) error { return checkInvocation(inv) }

// CheckCheckpoint rejects a checkpoint whose values are not JSON.
func CheckCheckpoint(cp *Checkpoint) error { return checkCheckpoint(cp) }

// CheckLease rejects a lease a store cannot key.
func CheckLease(runID string, l Lease) error { return checkLease(runID, l) }

// LeaseHeld returns a *LeaseError when cur is a live lease of an owner
// other than owner: AcquireLease must not take it.
func LeaseHeld(runID string, cur *Lease, owner string, now time.Time) error {
	return leaseHeld(runID, cur, owner, now)
}

// EffectiveStatus reports a stored status as readers see it: running with
// no live owner is stale.
func EffectiveStatus(s Status, l *Lease, now time.Time) Status { return effectiveStatus(s, l, now) }

// PathOf returns inv's identity within its run: its Path, or the path of
// (Step, Node, Index) when the caller left Path empty.
func PathOf(inv *Invocation) string { return pathOf(inv) }

// Rows is what ReadSources needs of a query's rows (*sql.Rows, pgx.Rows).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ReadSources reads the (path, source) rows of a run's subgraph texts into
// Run.Subgraphs' form; nil when there are none.
func ReadSources(rows Rows) (map[string][]byte, error) {
	var out map[string][]byte
	for rows.Next() {
		var (
			p   string
			src []byte
		)
		if err := rows.Scan(&p, &src); err != nil {
			return nil, err
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[p] = src
	}
	return out, rows.Err()
}

// EncodedCheckpoint is a checkpoint as an SQL store keeps it: Changed is a
// JSON object of the keys stored whole (nil for none), Deltas the binary
// records of the keys stored relative to an earlier step (sqlite_delta.go),
// Next a JSON array of names.
type EncodedCheckpoint struct {
	Changed, Deltas, Next, Joins []byte
}

// CheckpointEncoder stores growing checkpoint values as deltas against the
// run's previous checkpoint that changed the key, from a per-run cache of
// what this process wrote. It is not safe for concurrent use: the caller
// serializes Encode, the write and the commit function it returns.
type CheckpointEncoder struct {
	cache map[string]map[string]cachedValue
	// tops holds, per run in cache, a step no earlier than any its cache
	// holds: a checkpoint after it replaces no cached value, so the
	// cache need not be searched for values to drop (every step, for a
	// run whose steps come in order).
	tops map[string]int
	// inputs holds, per run this process created, the values of its
	// inputs (Run.InputValues) long enough to be a delta's base: a key
	// whose value is its input's is stored as a delta against the run's
	// inputs (base step inputStep), not whole again.
	inputs map[string]map[string][]byte
}

// NewCheckpointEncoder returns an encoder with an empty cache.
func NewCheckpointEncoder() *CheckpointEncoder {
	return &CheckpointEncoder{cache: make(map[string]map[string]cachedValue), tops: make(map[string]int),
		inputs: make(map[string]map[string][]byte)}
}

// SeedInputs makes the inputs of a run just created (Run.Inputs and
// Run.InputValues) the bases its checkpoints' values may be stored
// against. Values that do not make up inputs exactly are ignored.
func (e *CheckpointEncoder) SeedInputs(runID string, inputs []byte, values map[string]json.RawMessage) {
	if len(values) == 0 || !inputsMatch(inputs, values) {
		return
	}
	var m map[string][]byte
	for k, v := range values {
		if len(v) < minDeltaPrefix {
			continue
		}
		if m == nil {
			m = make(map[string][]byte, len(values))
		}
		m[k] = v
	}
	if m != nil {
		e.inputs[runID] = m
	}
}

// Encode returns cp's columns and the function that updates the cache; call
// it once cp is stored (and before encoding the run's next checkpoint).
// On a failed write call Forget instead. It fails, wrapping
// ErrExtensionBase, when cp extends a value the cache does not hold.
//
// An extended key whose cached value is summarized (large) becomes a delta
// at once, from the summary: no byte of the value before the tail is read,
// so a growing key costs what was added. A small one is rebuilt whole and
// stored like any changed key.
func (e *CheckpointEncoder) Encode(cp *Checkpoint) (EncodedCheckpoint, func(), error) {
	enc, up, err := e.encode(cp, &encScratch{})
	if err != nil {
		return EncodedCheckpoint{}, nil, err
	}
	return enc, up.apply, nil
}

// encScratch holds the buffers a checkpoint is encoded in. Encode uses a
// fresh one per checkpoint (the caller owns the columns); a step batch
// reuses one (stepbatch.go), since it copies the columns into its rows at
// once: a durable step then allocates nothing for its encoding.
type encScratch struct {
	keys               []string
	full, deltas, next []byte
	ext                []delta
}

// cacheUpdate is what Encode's commit function does: remember the values
// of checkpoint step of a run as the bases of later deltas.
type cacheUpdate struct {
	e       *CheckpointEncoder
	runID   string
	step    int
	cache   map[string]cachedValue
	changed map[string]json.RawMessage
	keys    []string // changed's keys
	ext     []delta
}

// encode is Encode with its columns built in sc's buffers (valid until sc
// is used again) and the cache update returned, not yet applied.
func (e *CheckpointEncoder) encode(cp *Checkpoint, sc *encScratch) (EncodedCheckpoint, cacheUpdate, error) {
	cache := e.cache[cp.RunID]
	if top, ok := e.tops[cp.RunID]; cache != nil && (!ok || cp.Step <= top) {
		for k, c := range cache {
			if c.step >= cp.Step { // being replaced, or later than a rewritten step
				delete(cache, k)
			}
		}
		e.tops[cp.RunID] = cp.Step - 1
	}
	changed, copied := cp.Changed, false
	ext := sc.ext[:0]
	var extKeys []string
	if len(cp.Extended) > 0 { // ranging over an empty map still costs an iterator, every step
		extKeys = sortedKeys(cp.Extended)
	}
	for _, k := range extKeys {
		x := cp.Extended[k]
		c, ok := cache[k]
		if !ok {
			return EncodedCheckpoint{}, cacheUpdate{}, fmt.Errorf("write checkpoint of run %s step %d: key %q: %w", cp.RunID, cp.Step, k, ErrExtensionBase)
		}
		if c.sum == nil {
			v, err := extendValue(k, c.val, x)
			if err != nil {
				return EncodedCheckpoint{}, cacheUpdate{}, fmt.Errorf("write checkpoint of run %s step %d: %w", cp.RunID, cp.Step, err)
			}
			if !copied { // never change the caller's map
				changed, copied = make(map[string]json.RawMessage, len(cp.Changed)+len(cp.Extended)), true
				maps.Copy(changed, cp.Changed)
			}
			changed[k] = v
			continue
		}
		sm := c.sum
		suf, err := extSuffix(k, sm.first, sm.n, sm.emptyList, x)
		if err != nil {
			return EncodedCheckpoint{}, cacheUpdate{}, fmt.Errorf("write checkpoint of run %s step %d: %w", cp.RunID, cp.Step, err)
		}
		ext = append(ext, delta{key: k, baseStep: c.step, prefix: sm.n - 1, sum: sm.end.crc, tail: suf})
	}
	sc.ext = ext
	full, deltas := splitChanged(changed, cp.Step, cache, e.inputs[cp.RunID], sc)
	for _, d := range ext {
		deltas = appendDelta(deltas, d)
	}
	if full == nil && len(ext) > 0 {
		full = []byte("{}") // as for a checkpoint given full values
	}
	sc.deltas = deltas
	var next []byte
	if cp.Next != nil {
		next = appendNames(sc.next[:0], cp.Next)
		sc.next = next
	}
	if len(deltas) == 0 {
		deltas = nil // no deltas is NULL, as it always was
	}
	enc := EncodedCheckpoint{Changed: full, Deltas: deltas, Next: next, Joins: cp.Joins}
	return enc, cacheUpdate{e: e, runID: cp.RunID, step: cp.Step, cache: cache, changed: changed, keys: sc.keys, ext: ext}, nil
}

// apply updates the cache once the checkpoint is stored (or, in a step
// batch, once it is encoded: the batch forgets the run if it fails).
func (u cacheUpdate) apply() {
	cache := u.cache
	if cache == nil {
		cache = make(map[string]cachedValue, len(u.changed)+len(u.ext))
		u.e.cache[u.runID] = cache
	}
	if top, ok := u.e.tops[u.runID]; !ok || u.step > top {
		u.e.tops[u.runID] = u.step
	}
	for _, k := range u.keys {
		v := u.changed[k]
		// Even a value too short to be a delta's base: a later
		// checkpoint may extend it.
		v = bytes.TrimSpace(v)
		if old, ok := cache[k]; ok && old.sum == nil && len(v) < bigCached && cap(old.val) >= len(v) {
			// The old copy is the cache's own: reused, one allocation
			// less per key and durable step.
			cache[k] = cachedValue{step: u.step, val: append(old.val[:0], v...)}
			continue
		}
		cache[k] = newCachedValue(u.step, v)
	}
	for _, d := range u.ext {
		c := cache[d.key]
		c.sum.extend(d.tail)
		c.step = u.step
		cache[d.key] = c
	}
}

// sortedKeys returns m's keys in order: deltas are encoded in key order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Forget drops the run's cache: its later values are stored whole. Call it
// when the run finishes (a resume starts from full values) or a write of
// an encoded checkpoint failed.
func (e *CheckpointEncoder) Forget(runID string) {
	delete(e.cache, runID)
	delete(e.tops, runID)
	delete(e.inputs, runID)
}

// CheckpointDecoder rebuilds a run's checkpoints, read in step order, from
// their encoded columns.
type CheckpointDecoder struct {
	rb rebuilder
}

// SetInputs gives the decoder the run's inputs (Run.Inputs), which the
// values of checkpoints written by the process that created the run may
// be stored against; inputs is called once, when one first is.
func (d *CheckpointDecoder) SetInputs(inputs func() ([]byte, error)) { d.rb.inputs = inputs }

// Decode fills cp's Changed, Next and Joins from the columns of its row.
func (d *CheckpointDecoder) Decode(cp *Checkpoint, enc EncodedCheckpoint) error {
	if enc.Changed != nil {
		if err := json.Unmarshal(enc.Changed, &cp.Changed); err != nil {
			return fmt.Errorf("step %d: changed keys: %w", cp.Step, err)
		}
	}
	var err error
	if cp.Changed, err = d.rb.apply(cp.Step, cp.Changed, enc.Deltas); err != nil {
		return fmt.Errorf("step %d: %w", cp.Step, err)
	}
	if enc.Next != nil {
		if err := json.Unmarshal(enc.Next, &cp.Next); err != nil {
			return fmt.Errorf("step %d: next nodes: %w", cp.Step, err)
		}
	}
	cp.Joins = enc.Joins
	return nil
}

// CheckpointMerge folds a run's checkpoints, read in step order, into one
// (see MergedCheckpoint): the latest step's Step, Next, Joins and At, and
// every key's latest value. A growing key is rebuilt in one buffer, so it
// takes memory proportional to the state, where decoding every checkpoint
// holds every step's value (5 GB for 100 steps growing a list to 100 MiB).
type CheckpointMerge struct {
	dec CheckpointDecoder
	out *Checkpoint
}

// SetInputs gives the merge the run's inputs (CheckpointDecoder.SetInputs).
func (m *CheckpointMerge) SetInputs(inputs func() ([]byte, error)) { m.dec.SetInputs(inputs) }

// Add folds in the checkpoint whose RunID, Step and At are in cp and
// whose columns are enc.
func (m *CheckpointMerge) Add(cp *Checkpoint, enc EncodedCheckpoint) error {
	m.dec.rb.inPlace = true
	if err := m.dec.Decode(cp, enc); err != nil {
		return err
	}
	if m.out == nil {
		m.out = &Checkpoint{Changed: make(map[string]json.RawMessage, len(cp.Changed))}
	}
	maps.Copy(m.out.Changed, cp.Changed)
	m.out.RunID, m.out.Step, m.out.Next, m.out.Joins, m.out.At = cp.RunID, cp.Step, cp.Next, cp.Joins, cp.At
	return nil
}

// Result returns the merged checkpoint, nil when none was added.
func (m *CheckpointMerge) Result() *Checkpoint { return m.out }

// CheckpointFolder is implemented by stores that can return a run's
// checkpoints merged into one (see ResumeCheckpoints).
type CheckpointFolder interface {
	// MergedCheckpoint returns the run's checkpoints folded into one, as a
	// CheckpointMerger's Checkpoints does; nil when the run has none.
	MergedCheckpoint(ctx context.Context, runID string) (*Checkpoint, error)
}

// ResumeCheckpoints returns what resume replays of a run's checkpoints:
// the merged checkpoint when st is a CheckpointFolder (none, or one), else
// every checkpoint. Replaying either gives the same state; the merged one
// in memory proportional to the state.
func ResumeCheckpoints(ctx context.Context, st Store, runID string) ([]*Checkpoint, error) {
	f, ok := st.(CheckpointFolder)
	if !ok {
		return st.Checkpoints(ctx, runID)
	}
	cp, err := f.MergedCheckpoint(ctx, runID)
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return []*Checkpoint{}, nil
	}
	return []*Checkpoint{cp}, nil
}

// ScanInvocations reads rows of the invocation columns (run_id, path,
// step, node, idx, status, writes, error, error_kind, attempts,
// started_at, ended_at; times as Unix nanoseconds or NULL), as every SQL
// store selects them, into invocations. An error names the run.
func ScanInvocations(rows Rows, runID string) ([]*Invocation, error) {
	var out []*Invocation
	for rows.Next() {
		var (
			inv            Invocation
			writes         []byte
			started, ended *int64
		)
		if err := rows.Scan(&inv.RunID, &inv.Path, &inv.Step, &inv.Node, &inv.Index, &inv.Status, &writes,
			&inv.Error, &inv.ErrorKind, &inv.Attempts, &started, &ended); err != nil {
			return nil, fmt.Errorf("invocations of run %s: %w", runID, err)
		}
		inv.Writes = writes
		inv.StartedAt, inv.EndedAt = unixNanos(started), unixNanos(ended)
		out = append(out, &inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("invocations of run %s: %w", runID, err)
	}
	return out, nil
}

// unixNanos is the UTC time of n nanoseconds since the epoch; zero for NULL.
func unixNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
