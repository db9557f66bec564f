package store

import (
	"bytes"
	"encoding/json"
	"fmt"
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
}

// NewCheckpointEncoder returns an encoder with an empty cache.
func NewCheckpointEncoder() *CheckpointEncoder {
	return &CheckpointEncoder{cache: make(map[string]map[string]cachedValue)}
}

// Encode returns cp's columns and the function that updates the cache; call
// it once cp is stored (and before encoding the run's next checkpoint).
// On a failed write call Forget instead.
func (e *CheckpointEncoder) Encode(cp *Checkpoint) (EncodedCheckpoint, func()) {
	cache := e.cache[cp.RunID]
	for k, c := range cache {
		if c.step >= cp.Step { // being replaced, or later than a rewritten step
			delete(cache, k)
		}
	}
	full, deltas := splitChanged(cp.Changed, cp.Step, cache)
	enc := EncodedCheckpoint{Changed: encodeChanged(full), Deltas: deltas, Next: encodeNames(cp.Next), Joins: cp.Joins}
	return enc, func() {
		if cache == nil {
			cache = make(map[string]cachedValue, len(cp.Changed))
			e.cache[cp.RunID] = cache
		}
		for k, v := range cp.Changed {
			if v = bytes.TrimSpace(v); len(v) < minDeltaPrefix {
				delete(cache, k) // too short to be a delta's base
				continue
			}
			cache[k] = newCachedValue(cp.Step, v)
		}
	}
}

// Forget drops the run's cache: its later values are stored whole. Call it
// when the run finishes (a resume starts from full values) or a write of
// an encoded checkpoint failed.
func (e *CheckpointEncoder) Forget(runID string) { delete(e.cache, runID) }

// CheckpointDecoder rebuilds a run's checkpoints, read in step order, from
// their encoded columns.
type CheckpointDecoder struct {
	rb rebuilder
}

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
