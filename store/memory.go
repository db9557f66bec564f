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
	invs    map[string]*memInv // by path
	events  []EventBatch       // the event log; events[i].Seq == i+1
	// The run's checkpoints, merged (see CheckpointMerger): base holds the
	// latest value of every key changed before last's step, last the
	// latest checkpoint as written. Keeping last apart lets a rewrite of
	// the latest step drop keys its first version changed.
	base map[string]json.RawMessage
	last *Checkpoint
	// inPlace lists the keys whose value in last was built by extending
	// their value in base in its own buffer (see WriteCheckpoint).
	inPlace []string
	// budgets is the run's BudgetLedger: rows by budget, then id.
	budgets map[string]map[string]BudgetRow
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
		run:     copyRunSources(r),
		created: m.seq,
		invs:    make(map[string]*memInv),
	}
	return nil
}

// AcquireLease makes l the run's lease when it has none, its holder is
// dead or its holder is l.Owner; otherwise it returns a *LeaseError.
func (m *Memory) AcquireLease(ctx context.Context, runID string, l Lease) error {
	if err := checkLease(runID, l); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[runID]
	if !ok {
		return fmt.Errorf("acquire lease of run %s: %w", runID, ErrNotFound)
	}
	if err := leaseHeld(runID, mr.run.Lease, l.Owner, time.Now()); err != nil {
		return err
	}
	l.Expires = normTime(l.Expires)
	mr.run.Lease = &l
	return nil
}

// RenewLease moves owner's lease expiry; ErrLeaseLost when owner no
// longer holds it.
func (m *Memory) RenewLease(ctx context.Context, runID, owner string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[runID]
	if !ok {
		return fmt.Errorf("renew lease of run %s: %w", runID, ErrNotFound)
	}
	if l := mr.run.Lease; l == nil || l.Owner != owner {
		return fmt.Errorf("renew lease of run %s by %s: %w", runID, owner, ErrLeaseLost)
	}
	mr.run.Lease.Expires = normTime(expires)
	return nil
}

// ReleaseLease clears owner's lease; a no-op when another owner holds it.
func (m *Memory) ReleaseLease(ctx context.Context, runID, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[runID]
	if !ok {
		return fmt.Errorf("release lease of run %s: %w", runID, ErrNotFound)
	}
	if l := mr.run.Lease; l != nil && l.Owner == owner {
		mr.run.Lease = nil
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
	mr.run.Lease = nil // the run stopped: nobody executes it
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
// (RunID, Path). A replaced record moves to the end of its step's
// finishing order.
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
	c := copyInvocation(inv)
	c.Path = pathOf(inv)
	mr.invs[c.Path] = &memInv{inv: c, seq: m.seq}
	return nil
}

// WriteCheckpoint folds cp into the run's merged checkpoint: a later step
// moves the latest checkpoint's values into the merged base and becomes
// the latest; the latest step again replaces it. A step older than the
// latest fails with ErrCheckpointOrder: its successors' values are already
// merged, so there is nothing to rewrite it in.
//
// An extended key's new value is built from its value in base, in that
// value's buffer when it has room: base's value then loses its closing
// byte to the new one, which shadows it. Only a rewrite of the latest
// step can show it again, so such a rewrite first puts the byte back.
// That keeps a growing key's writes proportional to what was added.
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
	switch last := mr.last; {
	case last == nil:
	case cp.Step == last.Step:
		for _, k := range mr.inPlace {
			v := mr.base[k]
			v[len(v)-1] = closingByte(v[0])
		}
		mr.inPlace = nil
	case cp.Step > last.Step:
		if mr.base == nil {
			mr.base = make(map[string]json.RawMessage, len(last.Changed))
		}
		for k, v := range last.Changed {
			mr.base[k] = v
		}
		mr.inPlace = nil
	default:
		return fmt.Errorf("write checkpoint of run %s step %d: the latest is step %d: %w", cp.RunID, cp.Step, last.Step, ErrCheckpointOrder)
	}
	// Check every extension before building any: a failed write changes
	// nothing.
	sufs := make(map[string][]byte, len(cp.Extended))
	for k, e := range cp.Extended {
		prev := mr.base[k]
		if len(prev) < 2 {
			return fmt.Errorf("write checkpoint of run %s step %d: key %q: %w", cp.RunID, cp.Step, k, ErrExtensionBase)
		}
		suf, err := extSuffix(k, prev[0], len(prev), isEmptyList(prev), e)
		if err != nil {
			return fmt.Errorf("write checkpoint of run %s step %d: %w", cp.RunID, cp.Step, err)
		}
		sufs[k] = suf
	}
	c := copyCheckpoint(cp)
	c.Extended = nil
	if len(sufs) > 0 && c.Changed == nil {
		c.Changed = make(map[string]json.RawMessage, len(sufs))
	}
	for k, suf := range sufs {
		prev := mr.base[k]
		c.Changed[k] = append(prev[:len(prev)-1], suf...)
		mr.inPlace = append(mr.inPlace, k)
	}
	mr.last = &c
	return nil
}

// closingByte returns the last byte of a JSON list or string starting
// with first.
func closingByte(first byte) byte {
	if first == '[' {
		return ']'
	}
	return '"'
}

// WritesExtensions reports true: Memory builds extended values itself.
func (m *Memory) WritesExtensions() bool { return true }

// MergesCheckpoints reports true: Memory keeps one merged checkpoint per
// run (see CheckpointMerger), so `--store memory` holds state, not steps.
func (m *Memory) MergesCheckpoints() bool { return true }

// GetRun returns a copy of the run with the given id, or ErrNotFound.
func (m *Memory) GetRun(ctx context.Context, id string) (*Run, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mr, ok := m.runs[id]
	if !ok {
		return nil, fmt.Errorf("get run %s: %w", id, ErrNotFound)
	}
	r := copyRun(&mr.run)
	r.Subgraphs = copySources(mr.run.Subgraphs)
	r.Status = effectiveStatus(r.Status, r.Lease, time.Now())
	return &r, nil
}

// ListRuns returns runs newest first (by StartedAt, then by ID, which is
// sortable); limit <= 0 means all.
func (m *Memory) ListRuns(ctx context.Context, limit int) ([]*Run, error) {
	m.mu.RLock()
	all := make([]*Run, 0, len(m.runs))
	now := time.Now()
	for _, mr := range m.runs {
		r := copyRun(&mr.run)
		r.Status = effectiveStatus(r.Status, r.Lease, now)
		all = append(all, &r)
	}
	m.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool { return newerRun(all[i], all[j]) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// Checkpoints returns the run's merged checkpoint (none before the first
// is written), or ErrNotFound for an unknown run.
func (m *Memory) Checkpoints(ctx context.Context, runID string) ([]*Checkpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mr, ok := m.runs[runID]
	if !ok {
		return nil, fmt.Errorf("checkpoints of run %s: %w", runID, ErrNotFound)
	}
	if mr.last == nil {
		return []*Checkpoint{}, nil
	}
	c := copyCheckpoint(mr.last)
	if len(mr.base) > 0 {
		if c.Changed == nil {
			c.Changed = make(map[string]json.RawMessage, len(mr.base))
		}
		for k, v := range mr.base {
			if _, ok := c.Changed[k]; !ok {
				c.Changed[k] = copyBytes(v)
			}
		}
	}
	return []*Checkpoint{&c}, nil
}

// MergedCheckpoint returns the run's merged checkpoint (what Checkpoints
// returns), nil when none was written.
func (m *Memory) MergedCheckpoint(ctx context.Context, runID string) (*Checkpoint, error) {
	cps, err := m.Checkpoints(ctx, runID)
	if err != nil || len(cps) == 0 {
		return nil, err
	}
	return cps[0], nil
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
		if !cp.Encoded && !validJSON(v) {
			return fmt.Errorf("write checkpoint of run %s step %d: key %q: value is not valid JSON", cp.RunID, cp.Step, k)
		}
	}
	for k, e := range cp.Extended {
		if err := checkExtension(cp, k, e); err != nil {
			return err
		}
	}
	if len(cp.Joins) > 0 && !cp.Encoded && !validJSON(cp.Joins) {
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

// copyRun copies r without its subgraph sources, which only GetRun
// returns (resume needs them; listings do not).
func copyRun(r *Run) Run {
	c := *r
	c.Subgraphs = nil
	if r.Lease != nil {
		l := *r.Lease
		l.Expires = normTime(l.Expires)
		c.Lease = &l
	}
	c.Source = copyBytes(r.Source)
	c.Inputs = copyBytes(r.Inputs)
	c.StartedAt = normTime(r.StartedAt)
	c.EndedAt = normTime(r.EndedAt)
	return c
}

// copyRunSources copies r with its subgraph sources.
func copyRunSources(r *Run) Run {
	c := copyRun(r)
	c.Subgraphs = copySources(r.Subgraphs)
	return c
}

func copySources(m map[string][]byte) map[string][]byte {
	if m == nil {
		return nil
	}
	c := make(map[string][]byte, len(m))
	for k, v := range m {
		c[k] = copyBytes(v)
	}
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
