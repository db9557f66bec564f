package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Memory is a Store that keeps everything in process memory. It backs
// `--store memory` and tests: nothing survives the process. Data is copied
// in and out, so callers may reuse or mutate their buffers freely.
type Memory struct {
	mu   sync.RWMutex
	runs map[string]*memRun
	seq  int64 // orders runs created at the same instant and invocations by finish
}

// memRun is one run and everything recorded for it.
type memRun struct {
	run     Run
	created int64
	invs    map[invKey]*memInv
	cps     map[int]*Checkpoint
}

type invKey struct {
	step  int
	node  string
	index int
}

type memInv struct {
	inv Invocation
	seq int64 // when it was (last) recorded: the finishing order
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{runs: make(map[string]*memRun)}
}

var _ Store = (*Memory)(nil)

// CreateRun records a new run. Its ID must be non-empty and unused.
func (m *Memory) CreateRun(ctx context.Context, r *Run) error {
	if err := checkRun(r); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.runs[r.ID]; ok {
		return fmt.Errorf("create run %s: %w", r.ID, errRunExists)
	}
	m.seq++
	m.runs[r.ID] = &memRun{
		run:     copyRun(r),
		created: m.seq,
		invs:    make(map[invKey]*memInv),
		cps:     make(map[int]*Checkpoint),
	}
	return nil
}

// FinishRun sets a run's final status, error text and end time.
func (m *Memory) FinishRun(ctx context.Context, id string, status Status, errMsg string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[id]
	if !ok {
		return fmt.Errorf("finish run %s: %w", id, ErrNotFound)
	}
	mr.run.Status = status
	mr.run.Error = errMsg
	mr.run.EndedAt = normTime(at)
	return nil
}

// SetStatus changes a run's status and marks it live again: the error text
// and end time of an earlier finish are cleared, since a resumed run has
// not ended.
func (m *Memory) SetStatus(ctx context.Context, id string, status Status) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[id]
	if !ok {
		return fmt.Errorf("set status of run %s: %w", id, ErrNotFound)
	}
	mr.run.Status = status
	mr.run.Error = ""
	mr.run.EndedAt = time.Time{}
	return nil
}

// RecordInvocation stores inv, replacing any earlier record with the same
// (RunID, Step, Node, Index). A replaced record moves to the end of its
// step's finishing order.
func (m *Memory) RecordInvocation(ctx context.Context, inv *Invocation) error {
	if err := checkInvocation(inv); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[inv.RunID]
	if !ok {
		return fmt.Errorf("record invocation of run %s: %w", inv.RunID, ErrNotFound)
	}
	m.seq++
	mr.invs[invKey{inv.Step, inv.Node, inv.Index}] = &memInv{inv: copyInvocation(inv), seq: m.seq}
	return nil
}

// WriteCheckpoint stores cp, replacing an earlier checkpoint of the same
// run and step.
func (m *Memory) WriteCheckpoint(ctx context.Context, cp *Checkpoint) error {
	if err := checkCheckpoint(cp); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[cp.RunID]
	if !ok {
		return fmt.Errorf("write checkpoint of run %s: %w", cp.RunID, ErrNotFound)
	}
	c := copyCheckpoint(cp)
	mr.cps[cp.Step] = &c
	return nil
}

// GetRun returns a copy of the run with the given id, or ErrNotFound.
func (m *Memory) GetRun(ctx context.Context, id string) (*Run, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mr, ok := m.runs[id]
	if !ok {
		return nil, fmt.Errorf("get run %s: %w", id, ErrNotFound)
	}
	r := copyRun(&mr.run)
	return &r, nil
}

// ListRuns returns runs newest first (by StartedAt, then by ID, which is
// sortable); limit <= 0 means all.
func (m *Memory) ListRuns(ctx context.Context, limit int) ([]*Run, error) {
	m.mu.RLock()
	all := make([]*Run, 0, len(m.runs))
	for _, mr := range m.runs {
		r := copyRun(&mr.run)
		all = append(all, &r)
	}
	m.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool { return newerRun(all[i], all[j]) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// Checkpoints returns a run's checkpoints in step order, or ErrNotFound
// for an unknown run.
func (m *Memory) Checkpoints(ctx context.Context, runID string) ([]*Checkpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mr, ok := m.runs[runID]
	if !ok {
		return nil, fmt.Errorf("checkpoints of run %s: %w", runID, ErrNotFound)
	}
	out := make([]*Checkpoint, 0, len(mr.cps))
	for _, cp := range mr.cps {
		c := copyCheckpoint(cp)
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out, nil
}

// Invocations returns a run's invocations ordered by step, then by the
// order they were recorded (finishing order), or ErrNotFound for an
// unknown run.
func (m *Memory) Invocations(ctx context.Context, runID string) ([]*Invocation, error) {
	m.mu.RLock()
	mr, ok := m.runs[runID]
	if !ok {
		m.mu.RUnlock()
		return nil, fmt.Errorf("invocations of run %s: %w", runID, ErrNotFound)
	}
	recs := make([]*memInv, 0, len(mr.invs))
	for _, mi := range mr.invs {
		recs = append(recs, &memInv{inv: copyInvocation(&mi.inv), seq: mi.seq})
	}
	m.mu.RUnlock()
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].inv.Step != recs[j].inv.Step {
			return recs[i].inv.Step < recs[j].inv.Step
		}
		return recs[i].seq < recs[j].seq
	})
	out := make([]*Invocation, len(recs))
	for i, r := range recs {
		out[i] = &r.inv
	}
	return out, nil
}

// Close releases nothing; the data stays readable until the Memory is
// garbage collected.
func (m *Memory) Close() error { return nil }

// errRunExists reports a CreateRun with an id already in use.
var errRunExists = errors.New("run id already exists")

// newerRun orders runs newest first: later StartedAt, then larger ID.
func newerRun(a, b *Run) bool {
	if !a.StartedAt.Equal(b.StartedAt) {
		return a.StartedAt.After(b.StartedAt)
	}
	return a.ID > b.ID
}

// checkRun rejects a run the store cannot key.
func checkRun(r *Run) error {
	if r == nil || r.ID == "" {
		return fmt.Errorf("create run: empty run id")
	}
	return nil
}

// checkInvocation rejects an invocation the store cannot key.
func checkInvocation(inv *Invocation) error {
	if inv == nil || inv.RunID == "" {
		return fmt.Errorf("record invocation: empty run id")
	}
	if inv.Node == "" {
		return fmt.Errorf("record invocation of run %s step %d: empty node name", inv.RunID, inv.Step)
	}
	return nil
}

// checkCheckpoint rejects a checkpoint whose values are not JSON: Changed
// values are stored inside one JSON object, so each must be a JSON value.
func checkCheckpoint(cp *Checkpoint) error {
	if cp == nil || cp.RunID == "" {
		return fmt.Errorf("write checkpoint: empty run id")
	}
	for k, v := range cp.Changed {
		if !json.Valid(v) {
			return fmt.Errorf("write checkpoint of run %s step %d: key %q: value is not valid JSON", cp.RunID, cp.Step, k)
		}
	}
	if len(cp.Joins) > 0 && !json.Valid(cp.Joins) {
		return fmt.Errorf("write checkpoint of run %s step %d: joins are not valid JSON", cp.RunID, cp.Step)
	}
	return nil
}

// normTime drops the monotonic reading and location so times compare and
// print the same whichever store they came from. The zero time stays zero.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

func copyBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func copyRun(r *Run) Run {
	c := *r
	c.Source = copyBytes(r.Source)
	c.Inputs = copyBytes(r.Inputs)
	c.StartedAt = normTime(r.StartedAt)
	c.EndedAt = normTime(r.EndedAt)
	return c
}

func copyInvocation(inv *Invocation) Invocation {
	c := *inv
	c.Writes = copyBytes(inv.Writes)
	c.StartedAt = normTime(inv.StartedAt)
	c.EndedAt = normTime(inv.EndedAt)
	return c
}

// copyCheckpoint deep-copies cp. Changed values lose surrounding
// whitespace, as they do in a store that keeps them in one JSON object.
func copyCheckpoint(cp *Checkpoint) Checkpoint {
	c := *cp
	if cp.Changed != nil {
		c.Changed = make(map[string]json.RawMessage, len(cp.Changed))
		for k, v := range cp.Changed {
			c.Changed[k] = copyBytes(bytes.TrimSpace(v))
		}
	}
	if cp.Next != nil {
		c.Next = append(make([]string, 0, len(cp.Next)), cp.Next...)
	}
	c.Joins = copyBytes(cp.Joins)
	c.At = normTime(cp.At)
	return c
}
