package store

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Pruner is a store that can delete old runs (`lgx runs prune`). It is a
// separate interface so that a store without deletion still satisfies
// Store.
type Pruner interface {
	// PruneRuns deletes every finished run (completed, failed or
	// cancelled) that ended before before, with all it recorded, and
	// returns the ids it deleted in ascending order. Running and
	// interrupted runs are never deleted: one is owned by a live process,
	// the other waits for a person.
	PruneRuns(ctx context.Context, before time.Time) ([]string, error)
}

var (
	_ Pruner = (*Memory)(nil)
	_ Pruner = (*SQLite)(nil)
)

// prunable reports whether a run with this stored status may be pruned.
func prunable(s Status) bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// PruneRuns implements Pruner.
func (m *Memory) PruneRuns(ctx context.Context, before time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, mr := range m.runs {
		r := mr.run
		if prunable(r.Status) && !r.EndedAt.IsZero() && r.EndedAt.Before(before) {
			ids = append(ids, id)
			delete(m.runs, id)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// PruneRuns implements Pruner. The rows of the run's invocations,
// checkpoints and sources go with it (ON DELETE CASCADE).
func (s *SQLite) PruneRuns(ctx context.Context, before time.Time) ([]string, error) {
	if s.readOnly != nil {
		return nil, s.errReadOnly()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ctx = context.WithoutCancel(ctx)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("prune runs: %w", s.readOnlyErr(err))
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id FROM runs
		WHERE status IN (?, ?, ?) AND ended_at IS NOT NULL AND ended_at < ? ORDER BY id`,
		string(StatusCompleted), string(StatusFailed), string(StatusCancelled), before.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("prune runs: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id = ?`, id); err != nil {
			return nil, fmt.Errorf("prune run %s: %w", id, s.readOnlyErr(err))
		}
		s.enc.Forget(id)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("prune runs: %w", s.readOnlyErr(err))
	}
	return ids, nil
}
