package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Answers to a run an engine drives (SPEC §9.4 on a distributed engine).
// The answer's values never travel through the engine (its history is
// stored and shown in clear): the resume records them in the store under
// a nonce, the engine accepts the nonce (or refuses it: a second answer,
// a run that no longer waits), and the worker that runs the interrupt
// again reads the values back by that nonce. Two resumes racing on one
// interrupt each record their own nonce, so the one the engine accepts is
// the one that runs; the other's record is marked refused.

// InvocationPath is the path of a top-level invocation: node's item index
// (-1 without for_each) at step (SPEC §9.1).
func InvocationPath(step int, node string, index int) string {
	return invocationPath("", step, node, index)
}

// AnswerRecord is an answer RecordAnswer recorded, for the engine to
// accept by Path and Nonce.
type AnswerRecord struct {
	Path  string // the interrupt answered
	Nonce string
	inv   *store.Invocation
}

// answerSep separates an interrupt's path from an answer's nonce in the
// answer's record path: never part of a node name or an index.
const answerSep = "@"

// AnswerFlags is the -i flags an answer of these declared fields takes
// ("-i approved=BOOLEAN -i note=STRING", sorted), or the generic
// -i key=value when none are declared: the hint of a paused run and of a
// resume that gave no answer.
func AnswerFlags(types map[string]string) string {
	if len(types) == 0 {
		return "-i key=value"
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(types)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "-i %s=%s", k, strings.ToUpper(types[k]))
	}
	return b.String()
}

// AnswerTypes returns the types declared (with.answer) by the interrupt a
// resume with a would answer, for reading -i values by them; nil when it
// declares none, or when a answers no waiting interrupt (Resume and
// RecordAnswer say why).
func AnswerTypes(ctx context.Context, st store.Store, runID string, a Answer, cfg *spec.UserConfig) map[string]string {
	_, g, read, err := loadRecorded(ctx, st, runID, cfg)
	if err != nil {
		return nil
	}
	waiting, err := Waiting(ctx, st, runID)
	if err != nil {
		return nil
	}
	target, err := pickInterrupt(runID, waiting, a)
	if err != nil || target == nil {
		return nil
	}
	subs, err := loadSubgraphs(g, read)
	if err != nil {
		return nil
	}
	return answerSchema(g, subs)(target)
}

// RecordAnswer records a's answer to one interrupt that run runID waits
// at, for an engine to accept (see above). Which interrupt, and whether a
// is a valid answer, is decided as Resume decides it (*InputError when
// not). Secrets of the workflow, as environ gives them, are redacted from
// the recorded values as SubmitRun redacts inputs.
func RecordAnswer(ctx context.Context, st store.Store, runID string, a Answer, environ []string, cfg *spec.UserConfig) (*AnswerRecord, error) {
	rec, g, read, err := loadRecorded(ctx, st, runID, cfg)
	if err != nil {
		return nil, err
	}
	if rec.Status != store.StatusInterrupted {
		return nil, &InputError{Msg: fmt.Sprintf("run %s is %s; it waits at no interrupt", runID, rec.Status)}
	}
	waiting, err := Waiting(ctx, st, runID)
	if err != nil {
		return nil, err
	}
	// An answer to a budget interrupt is the budget's new limits, checked
	// here as a local resume checks them; the engine then runs the paused
	// calls again under them (Invocation.Raise).
	bt, err := budgetAnswerTo(ctx, st, g, runID, waiting, a)
	if err != nil {
		return nil, err
	}
	var target Interrupt
	values := a.Values
	if bt != nil {
		target = *bt
	} else {
		subs, err := loadSubgraphs(g, read)
		if err != nil {
			return nil, err
		}
		m, err := answers(runID, waiting, a, answerSchema(g, subs))
		if err != nil {
			return nil, err
		}
		if len(m) != 1 {
			return nil, &InputError{Msg: fmt.Sprintf("run %s waits at no interrupt", runID)}
		}
		for _, w := range waiting {
			if _, ok := m[w.Path]; ok {
				target = w
			}
		}
		values = m[target.Path]
	}
	env := environMap(environ)
	var secretVals []string
	for _, s := range g.wf.Secrets {
		secretVals = append(secretVals, env[s.Value])
	}
	raw, err := json.Marshal(newRedactor(secretVals).value(values))
	if err != nil {
		return nil, &InputError{Msg: fmt.Sprintf("answer: %v", err)}
	}
	now := time.Now()
	nonce := ulid.Make().String()
	inv := &store.Invocation{RunID: runID, Path: target.Path + answerSep + nonce, Step: pathStep(target.Path), Node: target.Node,
		Index: target.Index, Status: store.InvocationAnswered, Writes: raw, Attempts: 0, StartedAt: now, EndedAt: now}
	if err := st.RecordInvocation(ctx, inv); err != nil {
		return nil, fmt.Errorf("store: record the answer: %w", err)
	}
	return &AnswerRecord{Path: target.Path, Nonce: nonce, inv: inv}, nil
}

// RefuseAnswer marks a recorded answer the engine refused, so that the
// run's history does not show it as given.
func RefuseAnswer(ctx context.Context, st store.Store, a *AnswerRecord) error {
	inv := *a.inv
	inv.Status = store.InvocationRefused
	if err := st.RecordInvocation(context.WithoutCancel(ctx), &inv); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// answer reads the values of the answer with nonce to the interrupt at
// path.
func (s *StepRun) answer(ctx context.Context, path, nonce string) (map[string]any, error) {
	inv, err := s.recorded(ctx, path+answerSep+nonce)
	if err != nil {
		return nil, err
	}
	if inv == nil || inv.Status != store.InvocationAnswered {
		return nil, fmt.Errorf("run %s: no answer %s to %s in the store", s.r.id, nonce, path)
	}
	var v any
	if err := decodeJSON(inv.Writes, &v); err != nil {
		return nil, fmt.Errorf("run %s: answer to %s: %w", s.r.id, path, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("run " + s.r.id + ": answer to " + path + " is not an object")
	}
	return m, nil
}

// pathStep is the step a top-level invocation path starts with.
func pathStep(path string) int {
	n := 0
	for _, c := range path {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// environMap is environ (KEY=VALUE entries) as a map.
func environMap(environ []string) map[string]string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// ReopenRun hands a stopped run (failed, cancelled, or killed while
// running) to the engine, to be driven on from its last checkpoint as
// Resume would continue it: the engine takes the run's lease (refused
// with a *store.LeaseError while a live process executes it) and the run
// is running again. A run paused at interrupts is answered, not reopened.
func ReopenRun(ctx context.Context, st store.Store, runID string, cfg *spec.UserConfig) error {
	rec, g, _, err := loadRecorded(ctx, st, runID, cfg)
	if err != nil {
		return err
	}
	switch {
	case !rec.Status.Resumable():
		return &InputError{Msg: fmt.Sprintf("run %s already %s; nothing to resume", runID, rec.Status)}
	case rec.Status == store.StatusInterrupted:
		return &InputError{Msg: fmt.Sprintf("run %s waits at an interrupt; answer it with lgx resume %s -i key=value (without --engine)", runID, runID)}
	case EngineDriven(rec):
		return &InputError{Msg: fmt.Sprintf("run %s is executing on the engine already", runID)}
	}
	if err := Distributable(g); err != nil {
		return err
	}
	if err := claim(ctx, st, runID); err != nil {
		return err
	}
	if err := resetLedger(ctx, st, g, runID); err != nil {
		return err
	}
	if err := st.SetStatus(ctx, runID, store.StatusRunning); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
