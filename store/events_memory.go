package store

import (
	"context"
	"fmt"
	"slices"
)

var _ EventLog = (*Memory)(nil)

// AppendEvents appends a batch under the store's lock.
func (m *Memory) AppendEvents(ctx context.Context, runID string, events [][]byte) error {
	data, err := EncodeEvents(events)
	if err != nil {
		return fmt.Errorf("append events of run %s: %w", runID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mr, ok := m.runs[runID]
	if !ok {
		return fmt.Errorf("append events of run %s: %w", runID, ErrNotFound)
	}
	mr.events = append(mr.events, EventBatch{Seq: int64(len(mr.events) + 1), Events: DecodeEvents(data)})
	return nil
}

// Events returns copies of the batches after `after`.
func (m *Memory) Events(ctx context.Context, runID string, after int64) ([]EventBatch, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mr, ok := m.runs[runID]
	if !ok {
		return nil, nil
	}
	if after < 0 {
		after = 0
	}
	if after >= int64(len(mr.events)) {
		return nil, nil
	}
	return slices.Clone(mr.events[after:min(int64(len(mr.events)), after+EventBatchLimit)]), nil
}
