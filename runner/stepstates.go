package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// StepStates follows, from the store, the state after each step of a run
// that other processes execute (an engine's workers), so that a client
// sends the step_end events with State a local run sends with
// Options.StepState (--stream values): the same steps, in order, with the
// same values. The state is rebuilt from each step's checkpoint as a
// resume replays it, starting from the workflow's defaults. The
// checkpoints hold the state redacted by the process that ran the step,
// with its secrets: the client needs none.
//
// Checkpoints are read forward from the last one read
// (store.ReadCheckpoints), so following a run costs what it commits, not
// its history at every step. Only top-level steps have checkpoints (a
// subgraph's child state is never stored), as only they send step_end
// locally. Step 0, the inputs, is not a step that ran: it sends nothing.
type StepStates struct {
	g     *Graph
	st    store.Store
	runID string
	cur   *store.CheckpointCursor
	state map[string]any
	sent  int // the last step sent (or skipped)
}

// NewStepStates returns a StepStates of run runID, whose workflow is read
// from the store with cfg applied (as the workers read it).
func NewStepStates(ctx context.Context, st store.Store, runID string, cfg *spec.UserConfig) (*StepStates, error) {
	_, g, _, err := loadRecorded(ctx, st, runID, cfg)
	if err != nil {
		return nil, err
	}
	s := &StepStates{g: g, st: st, runID: runID}
	s.reset()
	return s, nil
}

// reset starts over: the defaults, before any checkpoint.
func (s *StepStates) reset() {
	s.cur = store.NewCheckpointCursor(s.runID)
	s.state = make(map[string]any, len(s.g.keys))
	for _, k := range s.g.keys {
		s.state[k.name] = k.def
	}
}

// Skip reads what is committed now without sending it: a resumed run's
// earlier steps are not sent again (a local resume sends the steps it
// runs).
func (s *StepStates) Skip(ctx context.Context) error {
	return s.Poll(ctx, nil)
}

// Poll sends to sink (nil: nowhere) a step_end event with the state of
// each step committed since the last Poll, in step order.
func (s *StepStates) Poll(ctx context.Context, sink Sink) error {
	err := store.ReadCheckpoints(ctx, s.st, s.cur, func(cp *store.Checkpoint) error {
		return s.apply(cp, sink)
	})
	var ce *checkpointError
	if err == nil || errors.As(err, &ce) {
		return err
	}
	// A step's checkpoint written again meanwhile may no longer fit what
	// the cursor decoded before: read the whole run again, once, sending
	// only the steps not sent yet.
	s.reset()
	if err := store.ReadCheckpoints(ctx, s.st, s.cur, func(cp *store.Checkpoint) error {
		return s.apply(cp, sink)
	}); err != nil {
		return fmt.Errorf("run %s: the state of its steps: %w", s.runID, err)
	}
	return nil
}

// checkpointError is a checkpoint that does not fit the workflow: reading
// it again would not help.
type checkpointError struct{ err error }

func (e *checkpointError) Error() string { return e.err.Error() }
func (e *checkpointError) Unwrap() error { return e.err }

// apply folds cp into the state and sends the state after its step when
// that step was not sent before.
func (s *StepStates) apply(cp *store.Checkpoint, sink Sink) error {
	if err := replayValues(s.g, s.state, cp); err != nil {
		return &checkpointError{fmt.Errorf("run %s: %w", s.runID, err)}
	}
	if cp.Step <= s.sent {
		return nil // step 0, or a step written again
	}
	s.sent = cp.Step
	if sink != nil {
		// A copy: the next checkpoint changes s.state, and a sink may
		// keep what it was given.
		sink.Emit(Event{Event: EventStepEnd, Run: s.runID, Step: cp.Step, TS: cp.At, State: maps.Clone(s.state)})
	}
	return nil
}

// replayValues sets the keys a checkpoint changed in state, decoded and
// fitted to their types as a resume replays them.
func replayValues(g *Graph, state map[string]any, cp *store.Checkpoint) error {
	for name, raw := range cp.Changed {
		ki, ok := g.keyIdx[name]
		if !ok {
			return fmt.Errorf("checkpoint %d: unknown state key %q", cp.Step, name)
		}
		var v any
		if err := decodeJSON(raw, &v); err != nil {
			return fmt.Errorf("checkpoint %d: key %s: %w", cp.Step, name, err)
		}
		fitted, bad := fitType(g.keys[ki].typ, v)
		if bad != "" {
			return fmt.Errorf("checkpoint %d: key %s: expected %s, got %s", cp.Step, name, g.keys[ki].typ, bad)
		}
		state[name] = fitted
	}
	return nil
}
