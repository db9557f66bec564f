package runner

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Answer is what a resume says to the interrupts a run waits at (SPEC
// §9.4).
type Answer struct {
	// Values are the `result` of the interrupt answered; nil when none
	// were given.
	Values map[string]any
	// Node picks the interrupt to answer, by path or, when unambiguous,
	// by node name; "" answers the only one waiting.
	Node string
	// Empty says that the empty answer {} is meant when Values is nil.
	Empty bool
}

// Resume continues a recorded run (SPEC §6): it reloads the workflow text
// (and its subgraphs' texts) recorded with the run, rebuilds the state by
// replaying its checkpoints, and continues with the step after the last
// checkpoint, reusing every invocation of that step whose writes were
// recorded — subgraph children and tool calls included, by path. opts.Answer
// answers one waiting interrupt: an *InputError when it is ambiguous or
// missing (SPEC §9.4). opts.Store and opts.RunID are ignored (st and runID
// are used); a fresh config.timeout deadline starts. Errors are as for Run;
// an unknown or completed run is an *InputError.
func Resume(ctx context.Context, st store.Store, runID string, opts Options) (*Result, error) {
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
	opts.Machine.apply(w) // the config's pools, as for `lgx run`
	if ds.HasErrors() {
		return nil, fmt.Errorf("recorded workflow of run %s: %w", runID, &InvalidWorkflowError{File: rec.File, Diagnostics: ds.Errors()})
	}
	read := func(path string) ([]byte, error) {
		src, ok := rec.Subgraphs[path]
		if !ok {
			return nil, fmt.Errorf("its text was not recorded with run %s", runID)
		}
		return src, nil
	}
	if rec.Subgraphs == nil {
		read = os.ReadFile // recorded before lgx recorded subgraphs
	}
	g, err := compileValid(w, read)
	if err != nil {
		return nil, fmt.Errorf("recorded workflow of run %s: %w", runID, err)
	}
	opts.Store, opts.RunID = st, runID
	// A run submitted to an engine with a cassette goes on replaying it
	// here: its requests were never meant for the network.
	if opts.HTTPClient, err = replayClient(rec, g, opts.Environ, opts.HTTPClient); err != nil {
		return nil, err
	}
	r, err := newRun(g, opts)
	if err != nil {
		return nil, err
	}
	defer r.closeMCP()
	if r.subs, err = loadSubgraphs(g, read); err != nil {
		return nil, fmt.Errorf("recorded workflow of run %s: %w", runID, err)
	}
	// One owner per run (SPEC §9.3): a run another live process executes
	// is refused, naming it; two resumes at once, one wins.
	if r.lease, err = r.acquireLease(ctx); err != nil {
		return nil, fmt.Errorf("resume: %w", err)
	}
	started := false
	defer func() {
		if !started {
			r.releaseLease()
		}
	}()
	// Another process may have finished the run between GetRun and now.
	if now, err := st.GetRun(ctx, runID); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	} else if !now.Status.Resumable() {
		return nil, &InputError{Msg: fmt.Sprintf("run %s already %s; nothing to resume", runID, now.Status)}
	}
	cps, err := store.ResumeCheckpoints(ctx, st, runID) // merged: memory proportional to the state, not state × steps
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if len(cps) == 0 {
		// The run died before its first checkpoint: start over. Nothing
		// waits, so an answer (-i, --node, --empty) is refused here as
		// for any run that waits at no interrupt.
		if _, err := answers(runID, nil, opts.Answer, nil); err != nil {
			return nil, err
		}
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
		started = true
		return r.begin(ctx)
	}
	if err := r.replay(cps); err != nil {
		return nil, fmt.Errorf("resume run %s: %w", runID, err)
	}
	invs, err := st.Invocations(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	r.recorded = map[string]*store.Invocation{}
	for _, inv := range invs {
		if inv.Step == r.step+1 {
			r.recorded[inv.Path] = inv
		}
	}
	r.lim.seedBudgets(invs) // a budget spans the run (SPEC §9.9)
	waiting := waitingAt(invs, r.step+1)
	if raised, err := r.lim.budgetAnswer(runID, waiting, opts.Answer); err != nil {
		return nil, err
	} else if raised {
		waiting, opts.Answer = nil, Answer{} // the paused calls run again under the raised budget
	}
	if r.answers, err = answers(runID, waiting, opts.Answer, answerSchema(r.g, r.subs)); err != nil {
		return nil, err
	}
	if err := st.SetStatus(ctx, runID, store.StatusRunning); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	r.emit(Event{Event: EventRunStart, Workflow: g.wf.Name})
	started = true
	return r.loop(ctx)
}

// Waiting returns the interrupts a recorded run waits at, in the order
// they were recorded (SPEC §9.4): the interrupt invocations of the step
// after its last checkpoint that are still paused.
func Waiting(ctx context.Context, st store.Store, runID string) ([]Interrupt, error) {
	cps, err := store.ResumeCheckpoints(ctx, st, runID) // merged: memory proportional to the state, not state × steps
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	step := 1
	if len(cps) > 0 {
		step = cps[len(cps)-1].Step + 1
	}
	invs, err := st.Invocations(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return waitingAt(invs, step), nil
}

// waitingAt lists the paused interrupt invocations of one step, by path.
func waitingAt(invs []*store.Invocation, step int) []Interrupt {
	var out []Interrupt
	for _, inv := range invs {
		if inv.Step == step && inv.Status == store.InvocationInterrupted {
			out = append(out, recordedInterrupt(inv.Path, inv))
		}
	}
	slices.SortFunc(out, func(a, b Interrupt) int { return comparePaths(a.Path, b.Path) })
	return out
}

// recordedInterrupt is the interrupt that inv, an interrupted
// invocation's record at path, waits at.
func recordedInterrupt(path string, inv *store.Invocation) Interrupt {
	return Interrupt{Path: path, Node: inv.Node, Index: inv.Index, Message: inv.Error, Budget: recordedExhausted(inv)}
}

// comparePaths orders paths as a run forms them: numbers (steps, item
// indexes) by value, so "2/a[10]" comes after "2/a[9]".
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		na, ra := leadingDigits(a)
		nb, rb := leadingDigits(b)
		switch {
		case na != "" && nb != "":
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return cmp.Compare(a[0], b[0])
		default:
			a, b = a[1:], b[1:]
		}
	}
	return cmp.Compare(len(a), len(b))
}

// leadingDigits splits s into its leading decimal digits (leading zeros
// dropped) and the rest.
func leadingDigits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return strings.TrimLeft(s[:i], "0"), s[i:]
}

// named reports whether --node name names the interrupt: its path, the
// end of its path at a "/" (ask[0] for 1/ask[0]), or its node's name.
// Interrupt nodes and budget interrupts are matched alike, so that a name
// answering one kind never reaches the other.
func (in *Interrupt) named(name string) bool {
	return in.Path == name || in.Node == name || strings.HasSuffix(in.Path, "/"+name)
}

// answers turns a resume's Answer into values by interrupt path: exactly
// one waiting interrupt is answered, and never by accident — several
// waiting need a Node, and no values need Empty. schema, when not nil,
// gives the types an interrupt declares for its answer (checkAnswer).
func answers(runID string, waiting []Interrupt, a Answer, schema func(in *Interrupt) map[string]string) (map[string]map[string]any, error) {
	if schema != nil && len(waiting) > 1 {
		// Listed when the answer must say which: each with its fields.
		for i := range waiting {
			if waiting[i].Answer == nil && waiting[i].Budget == "" {
				waiting[i].Answer = schema(&waiting[i])
			}
		}
	}
	target, err := pickInterrupt(runID, waiting, a)
	if target == nil || err != nil {
		return nil, err
	}
	values := a.Values
	if values == nil {
		if !a.Empty {
			var types map[string]string
			if schema != nil {
				types = schema(target)
			}
			return nil, &InputError{Msg: fmt.Sprintf("run %s waits at %s: %s\nanswer with %s (or --empty to answer with no values)",
				runID, target.Path, target.Message, AnswerFlags(types))}
		}
		values = map[string]any{}
	}
	if schema != nil {
		if types := schema(target); types != nil {
			if values, err = checkAnswer(target, values, types); err != nil {
				return nil, err
			}
		}
	}
	return map[string]map[string]any{target.Path: values}, nil
}

// checkAnswer reads an answer by the types its interrupt declares
// (with.answer): every name must be declared and every value fit.
func checkAnswer(target *Interrupt, values map[string]any, types map[string]string) (map[string]any, error) {
	names := slices.Sorted(maps.Keys(types))
	out := make(map[string]any, len(values))
	for _, k := range slices.Sorted(maps.Keys(values)) { // the first wrong one in name order, every time
		v := values[k]
		typ, ok := types[k]
		if !ok {
			msg := fmt.Sprintf("%s takes no answer %q (the run stays paused)", target.Path, k)
			if len(names) == 0 {
				msg += "; it takes no values (resume with --empty)"
			} else {
				msg += fmt.Sprintf("; it takes %s", strings.Join(names, ", "))
				if s := spec.Suggest(k, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
			}
			return nil, &InputError{Msg: msg}
		}
		fitted, bad := fitType(typ, v)
		if bad != "" {
			if s, ok := v.(string); ok && len(s) <= 40 {
				bad += fmt.Sprintf(" %q", s)
			}
			msg := fmt.Sprintf("%s: answer %q: expected %s, got %s", target.Path, k, typ, bad)
			if h := asJSONHint(k, typ, v); h != "" {
				msg += " (" + h + ")"
			}
			return nil, &InputError{Msg: msg + " (the run stays paused)"}
		}
		out[k] = fitted
	}
	return out, nil
}

// pickInterrupt is the waiting interrupt a answers: the one --node names
// (a.Node), else the only one; nil, nil when none waits and a says
// nothing.
func pickInterrupt(runID string, waiting []Interrupt, a Answer) (*Interrupt, error) {
	if len(waiting) == 0 {
		switch {
		case a.Node != "":
			return nil, &InputError{Msg: fmt.Sprintf("run %s waits at no interrupt; --node %s answers nothing", runID, a.Node)}
		case a.Values != nil:
			return nil, &InputError{Msg: fmt.Sprintf("run %s waits at no interrupt; the -i values would answer nothing (resume it without them)", runID)}
		case a.Empty:
			return nil, &InputError{Msg: fmt.Sprintf("run %s waits at no interrupt; --empty would answer nothing (resume it without it)", runID)}
		}
		return nil, nil
	}
	var target *Interrupt
	switch {
	case a.Node != "":
		// A full path names one interrupt; a node name, or a path with its
		// leading parts left out (ask[0] for 1/ask[0], as a user copies it
		// from "paused at 1/ask[0]"), names those it fits, if just one.
		var matches []*Interrupt
		for i := range waiting {
			if waiting[i].Path == a.Node {
				matches = []*Interrupt{&waiting[i]}
				break
			}
			if waiting[i].named(a.Node) {
				matches = append(matches, &waiting[i])
			}
		}
		switch len(matches) {
		case 0:
			return nil, &InputError{Msg: fmt.Sprintf("run %s does not wait at %q; it waits at:\n%s", runID, a.Node, listInterrupts(waiting))}
		case 1:
			target = matches[0]
		default:
			// Only those the name fits: the others are not what the
			// user is choosing between.
			named := make([]Interrupt, len(matches))
			for i, m := range matches {
				named[i] = *m
			}
			return nil, &InputError{Msg: fmt.Sprintf("run %s waits at %d interrupts that %q names; name one by its whole path with --node:\n%s",
				runID, len(matches), a.Node, listInterrupts(named))}
		}
	case len(waiting) > 1:
		return nil, &InputError{Msg: fmt.Sprintf("run %s waits at %d interrupts; answer one at a time with --node PATH:\n%s",
			runID, len(waiting), listInterrupts(waiting))}
	default:
		target = &waiting[0]
	}
	return target, nil
}

// answerSchema returns the answer types an interrupt declares, by its
// path in g's run (nil when it declares none).
func answerSchema(g *Graph, subs *subgraphs) func(in *Interrupt) map[string]string {
	return func(in *Interrupt) map[string]string {
		n := nodeAt(g, subs, in.Path, in.Node)
		if n == nil {
			return nil
		}
		if s, ok := n.prep.(nodes.AnswerSchema); ok {
			return s.AnswerTypes()
		}
		return nil
	}
}

// nodeAt returns the node an invocation path names ("2/review",
// "1/sub[3]/2/ask"): each step/node pair after the first is in the child
// workflow its predecessor runs. A path that ends in a tool call
// ("1/act/tool:c1") names the call, not its tool: its node is that of
// tool, the name recorded with the call. nil when the path names none.
func nodeAt(g *Graph, subs *subgraphs, path, tool string) *node {
	segs := strings.Split(path, "/")
	for i := 1; i < len(segs); i += 2 {
		name, _, _ := strings.Cut(segs[i], "[")
		idx, ok := g.byName[name]
		if !ok {
			return nil
		}
		n := g.nodes[idx]
		if i+1 < len(segs) && strings.HasPrefix(segs[i+1], "tool:") {
			if i+2 == len(segs) {
				if t, ok := g.tools[tool]; ok {
					return t.node
				}
				return nil
			}
			// A tool call's child (a subgraph tool): the path names the
			// call, not the tool, so the node is the one some subgraph
			// tool's child has at the rest of the path, when they agree.
			return toolChildNodeAt(g, subs, strings.Join(segs[i+2:], "/"), tool)
		}
		if i+2 >= len(segs) {
			return n
		}
		comp, ok := n.typ.(nodes.Composite)
		if !ok || subs == nil {
			return nil
		}
		rel := comp.Subworkflow(n.prep)
		if rel == "" {
			return nil
		}
		if g = subs.graphs[resolveSubgraph(g.wf.File, rel)]; g == nil {
			return nil
		}
	}
	return nil
}

// toolChildNodeAt is nodeAt in the child workflows of g's subgraph tools:
// the node every one that has a node at path has there, nil when none
// has, or when they differ.
func toolChildNodeAt(g *Graph, subs *subgraphs, path, tool string) *node {
	if subs == nil {
		return nil
	}
	var found *node
	for _, t := range g.tools {
		comp, ok := t.node.typ.(nodes.Composite)
		if !ok {
			continue
		}
		rel := comp.Subworkflow(t.node.prep)
		if rel == "" {
			continue
		}
		cg := subs.graphs[resolveSubgraph(g.wf.File, rel)]
		if cg == nil {
			continue
		}
		if n := nodeAt(cg, subs, path, tool); n != nil {
			if found != nil && found != n {
				return nil
			}
			found = n
		}
	}
	return found
}

// listInterrupts renders waiting interrupts one per line: "  PATH: MESSAGE",
// then "(answer: -i k=TYPE …)" when the answer's fields are known.
func listInterrupts(list []Interrupt) string {
	var b strings.Builder
	for i, in := range list {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "  %s: %s", in.Path, in.Message)
		if len(in.Answer) > 0 {
			fmt.Fprintf(&b, " (answer: %s)", AnswerFlags(in.Answer))
		}
	}
	return b.String()
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
	r.syncVals()
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
			r.joinLeft[i] = len(done)
			for _, d := range done {
				if d {
					r.joinLeft[i]--
				}
			}
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
	*into = value.NormalizeDeep(*into)
	return nil
}
