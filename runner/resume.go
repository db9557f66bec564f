package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Resume continues a recorded run (SPEC §6): it reloads the workflow text
// recorded with the run, rebuilds the state by replaying its checkpoints,
// and continues with the step after the last checkpoint, reusing every
// invocation of that step whose writes were recorded. values are the
// `result` of the interrupt node(s) the run paused at (nil = {}).
// opts.Store and opts.RunID are ignored (st and runID are used); a fresh
// config.timeout deadline starts. Errors are as for Run; an unknown or
// completed run is an *InputError.
func Resume(ctx context.Context, st store.Store, runID string, values map[string]any, opts Options) (*Result, error) {
	if st == nil {
		return nil, &InputError{Msg: "resume needs a store"}
	}
	rec, err := st.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &InputError{Msg: fmt.Sprintf("no run %q in the store", runID)}
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if !rec.Status.Resumable() {
		return nil, &InputError{Msg: fmt.Sprintf("run %s already %s; nothing to resume", runID, rec.Status)}
	}
	w, ds := spec.Load(rec.File, rec.Source)
	if ds.HasErrors() {
		return nil, fmt.Errorf("recorded workflow of run %s: %w", runID, &InvalidWorkflowError{File: rec.File, Diagnostics: ds.Errors()})
	}
	g, err := compileValid(w)
	if err != nil {
		return nil, fmt.Errorf("recorded workflow of run %s: %w", runID, err)
	}
	opts.Store, opts.RunID = st, runID
	r, err := newRun(g, opts)
	if err != nil {
		return nil, err
	}
	cps, err := st.Checkpoints(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if len(cps) == 0 {
		// The run died before its first checkpoint: start over.
		var inputs map[string]any
		if len(rec.Inputs) > 0 {
			var v any
			if err := decodeJSON(rec.Inputs, &v); err != nil {
				return nil, fmt.Errorf("recorded inputs: %w", err)
			}
			inputs, _ = v.(map[string]any)
		}
		if err := st.SetStatus(ctx, runID, store.StatusRunning); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if err := r.initState(inputs); err != nil {
			return nil, err
		}
		return r.begin(ctx)
	}
	if err := r.replay(cps); err != nil {
		return nil, fmt.Errorf("resume run %s: %w", runID, err)
	}
	invs, err := st.Invocations(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	r.resumeStep = r.step + 1
	r.recorded = map[invKey]*store.Invocation{}
	for _, inv := range invs {
		if inv.Step == r.resumeStep {
			r.recorded[invKey{inv.Node, inv.Index}] = inv
		}
	}
	if rec.Status == store.StatusInterrupted {
		r.resumeValues = values
		if r.resumeValues == nil {
			r.resumeValues = map[string]any{}
		}
	}
	if err := st.SetStatus(ctx, runID, store.StatusRunning); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	r.emit(Event{Event: EventRunStart, Workflow: g.wf.Name})
	return r.loop(ctx)
}

// replay rebuilds state, step, next set and join progress from checkpoints.
func (r *run) replay(cps []*store.Checkpoint) error {
	r.state = make(map[string]any, len(r.g.keys))
	for _, k := range r.g.keys {
		r.state[k.name] = k.def
	}
	for _, cp := range cps {
		for name, raw := range cp.Changed {
			ki, ok := r.g.keyIdx[name]
			if !ok {
				return fmt.Errorf("checkpoint %d: unknown state key %q", cp.Step, name)
			}
			var v any
			if err := decodeJSON(raw, &v); err != nil {
				return fmt.Errorf("checkpoint %d: key %s: %w", cp.Step, name, err)
			}
			fitted, bad := fitType(r.g.keys[ki].typ, v)
			if bad != "" {
				return fmt.Errorf("checkpoint %d: key %s: expected %s, got %s", cp.Step, name, r.g.keys[ki].typ, bad)
			}
			r.state[name] = fitted
		}
	}
	last := cps[len(cps)-1]
	r.step = last.Step
	r.runInfo.Step = r.step
	r.next = r.next[:0]
	for _, name := range last.Next {
		i, ok := r.g.byName[name]
		if !ok {
			return fmt.Errorf("checkpoint %d: unknown node %q", last.Step, name)
		}
		r.next = append(r.next, i)
	}
	if len(last.Joins) > 0 {
		var joins map[string][]bool
		if err := json.Unmarshal(last.Joins, &joins); err != nil {
			return fmt.Errorf("checkpoint %d: joins: %w", last.Step, err)
		}
		for k, done := range joins {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(r.joinDone) || len(done) != len(r.joinDone[i]) {
				return fmt.Errorf("checkpoint %d: joins do not match the workflow", last.Step)
			}
			copy(r.joinDone[i], done)
		}
	}
	return nil
}

// decodeJSON decodes with numbers as int when integral, float64 otherwise.
func decodeJSON(raw []byte, into *any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		return err
	}
	*into = deepNormalize(*into)
	return nil
}
