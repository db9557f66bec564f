package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// Subgraphs, step by step. Locally a subgraph invocation runs its child
// workflow inside its attempt, the child's invocations taking the run's
// caps. A distributed engine holds the caps in its scheduler, so it
// schedules the child's invocations itself, one child step at a time:
//
//	Invoke of the subgraph invocation runs the child from the records of
//	    its invocations (as a resume does) up to the first child step that
//	    has unrecorded invocations, and returns that step's plan
//	    (InvokeResult.Child) instead of running them; once every child
//	    invocation is recorded, it runs to the end and the subgraph
//	    invocation is recorded like any other
//	Invoke with a Child reference runs one invocation of that child step,
//	    after replaying the child up to it, and records it
//
// The child's state is never stored: each call rebuilds it from the
// records, which the store fixes. A recorded failure of a child
// invocation fails the child as it did when it happened, rather than run
// again (a local resume runs it again; a reopened run on the engine does
// too, see Invocation.Resumed).

// ChildRef names one invocation of a subgraph's child: the child's step,
// node and item index (-1 without for_each). When that invocation is
// itself a subgraph invocation (a subgraph inside a subgraph), Child names
// one invocation of its child in turn, and so on down: the invocation the
// whole chain names is the one to run (nil at the bottom: a subgraph
// invocation there is asked for its child's next step).
//
// Tool, when set, makes the invocation a tools invocation whose tool call
// at path segment Tool ("tool:ID", the end of the call's path) is a
// subgraph tool's: Child then names an invocation of that call's child
// (nil: the call itself is asked for its child's next step).
type ChildRef struct {
	Step  int
	Node  string
	Index int
	Tool  string    `json:",omitempty"`
	Child *ChildRef `json:",omitempty"`
}

// Append returns a copy of the chain r (may be nil) with c at its bottom.
func (r *ChildRef) Append(c ChildRef) *ChildRef {
	if r == nil {
		return &c
	}
	out := *r
	out.Child = r.Child.Append(c)
	return &out
}

// WithTool returns a copy of the chain r (not nil) whose bottom goes
// into the tool call at path segment tool (see ChildRef.Tool).
func (r *ChildRef) WithTool(tool string) *ChildRef {
	out := *r
	if r.Child != nil {
		out.Child = r.Child.WithTool(tool)
	} else {
		out.Tool = tool
	}
	return &out
}

// path is the invocation path of the invocation the chain names, in the
// child whose paths start with prefix.
func (r *ChildRef) path(prefix string) string {
	p := invocationPath(prefix, r.Step, r.Node, r.Index)
	if r.Tool != "" {
		p += "/" + r.Tool
	}
	if r.Child != nil {
		return r.Child.path(p + "/")
	}
	return p
}

// recordedResult is the record of the invocation at path as a result, or
// nil when it has none.
func (cm *childMode) recordedResult(path string) *InvokeResult {
	inv := cm.recorded[path]
	if inv == nil {
		return nil
	}
	return &InvokeResult{Path: path, Status: inv.Status, Kind: inv.ErrorKind, Error: inv.Error, Attempts: inv.Attempts, Recorded: true}
}

// childMode steers the child run of one subgraph invocation run step by
// step (see the comment above); it travels in the invocation's context.
type childMode struct {
	recorded map[string]*store.Invocation // the child's records, by path
	answers  map[string]map[string]any    // accepted answers to its paused interrupts, by path
	target   *ChildRef                    // run this invocation; nil: plan
	// toolOp, when set, is done with the target (a tools invocation,
	// built and its calls planned) instead of running it.
	toolOp  func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error)
	resumed bool               // recorded failures run again
	raised  bool               // a budget was raised: calls paused on budgets run again
	cancel  context.CancelFunc // stops the subgraph invocation

	plan *StepPlan     // out: the child's next step, to dispatch
	ran  *InvokeResult // out: how the target invocation ended
	err  error         // out: the records do not fit the request

	// top is the run whose subgraph invocation this is; its events are
	// kept (call.quiet) until the call ends (sendEvents).
	top    *run
	mu     sync.Mutex
	events []Event
}

type childModeKey struct{}

func childModeOf(ctx context.Context) *childMode {
	cm, _ := ctx.Value(childModeKey{}).(*childMode)
	return cm
}

// frontierDispatcher is the child run's dispatcher in a childMode: it
// runs nothing but the target, and stops the child at the first step with
// unrecorded invocations.
type frontierDispatcher struct {
	r  *run
	cm *childMode
}

func (d *frontierDispatcher) close() {}

func (d *frontierDispatcher) dispatch(ctx context.Context, runs []*nodeRun) {
	cr, cm := d.r, d.cm
	type pendingInv struct {
		nr *nodeRun
		i  int
	}
	var pending []pendingInv
	failed := false
	for _, nr := range runs {
		for i := range nr.res {
			if nr.res[i].reused {
				continue
			}
			path := invocationPath(cr.prefix, cr.step, nr.n.name, itemIndex(nr, i))
			inv := cm.recorded[path]
			switch {
			case inv != nil && inv.Status == store.InvocationFailed && !cm.resumed:
				kind := nodes.Kind(inv.ErrorKind)
				nr.res[i] = invResult{status: store.InvocationFailed, kind: kind, err: &nodes.Error{Kind: kind, Err: errors.New(inv.Error)}, attempts: inv.Attempts}
				failed = true
			case inv != nil && inv.Status == store.InvocationInterrupted && nr.res[i].resumeVal == nil && !(cm.raised && pausedOnBudget(inv)):
				// Paused, and not answered: it pauses the child again.
				nr.res[i] = invResult{status: store.InvocationInterrupted, attempts: inv.Attempts,
					intrs: []Interrupt{{Path: path, Node: inv.Node, Index: inv.Index, Message: inv.Error, Budget: recordedExhausted(inv)}}}
			case cm.target == nil && nodes.CapabilitiesOf(nr.n.typ).ChildField != "":
				// A subgraph inside the child, unrecorded: its own child
				// may have ended or paused on what is recorded.
				more, err := cr.settleNested(ctx, cm, nr, i)
				switch {
				case err != nil:
					cm.err = err
					failed = true
				case more:
					pending = append(pending, pendingInv{nr, i})
				case nr.res[i].status == store.InvocationFailed:
					failed = true
				}
			default:
				pending = append(pending, pendingInv{nr, i})
			}
		}
	}
	switch {
	case cm.err != nil:
		cm.cancel()
		return
	case len(pending) == 0:
		return
	case failed && cm.target == nil:
		// The child fails on its recorded failure; what it cancelled
		// stays cancelled.
		return
	case cm.target == nil:
		cm.plan = cr.childPlan(runs)
	case cm.target.Step < cr.step:
		// The target's step passed: it was recorded (a retried call).
		tpath := cm.target.path(cr.prefix)
		if cm.ran = cm.recordedResult(tpath); cm.ran == nil {
			cm.err = fmt.Errorf("child step %d passed without %s", cm.target.Step, tpath)
		}
	case cm.target.Step != cr.step:
		cm.err = fmt.Errorf("child step %d has unrecorded invocations; %s/%s[%d] of step %d was asked for",
			cr.step, strings.TrimSuffix(cr.prefix, "/"), cm.target.Node, cm.target.Index, cm.target.Step)
	default:
		for _, p := range pending {
			if p.nr.n.name != cm.target.Node || itemIndex(p.nr, p.i) != cm.target.Index {
				continue
			}
			var item any
			if p.nr.items != nil {
				item = p.nr.items[p.i]
			}
			if nodes.CapabilitiesOf(p.nr.n.typ).ChildField != "" {
				// A subgraph inside the child: the rest of the chain
				// names what to do in its child.
				cm.ran, cm.err = cr.invokeNested(ctx, cm, p.nr, p.i, item)
				break
			}
			if cm.target.Tool != "" {
				// Into a subgraph tool's call of this tools invocation:
				// the rest of the chain names what to do in its child.
				cm.ran, cm.err = cr.viaCallIn(ctx, cm, p.nr, cm.target.Index, item)
				break
			}
			if cm.target.Child != nil {
				cm.err = fmt.Errorf("%s runs no child workflow", invocationPath(cr.prefix, cr.step, cm.target.Node, cm.target.Index))
				break
			}
			if cm.toolOp != nil {
				c, calls, limit, err := cr.toolsCallOf(ctx, p.nr.n, cm.target.Index, item)
				if err == nil {
					cm.ran, err = cm.toolOp(c, calls, limit)
				}
				cm.err, cm.toolOp = err, nil
				if cm.ran == nil && cm.err == nil {
					cm.ran = &InvokeResult{Path: c.path, Status: InvocationCancelled}
				}
				break
			}
			c := callPool.Get().(*call)
			var ac attemptCtx
			res := &p.nr.res[p.i]
			cr.invokeOn(ctx, c, &ac, p.nr.n, cm.target.Index, item, res, false)
			ac.release()
			callPool.Put(c)
			cm.ran = resultOf(invocationPath(cr.prefix, cr.step, p.nr.n.name, cm.target.Index), res, cr.red.str)
		}
		if cm.ran != nil || cm.err != nil {
			break
		}
		// Recorded before (a retried call): reused in this step.
		if cm.ran = cm.recordedResult(cm.target.path(cr.prefix)); cm.ran == nil {
			cm.err = fmt.Errorf("child step %d has no unrecorded invocation %s[%d]", cr.step, cm.target.Node, cm.target.Index)
		}
	}
	// Stop the child here: what did not run is cancelled, and so is the
	// subgraph invocation, which is therefore not recorded.
	for _, p := range pending {
		if res := &p.nr.res[p.i]; res.status == "" && res.err == nil {
			res.err, res.kind = &nodes.Error{Kind: nodes.KindCancelled, Err: errChildStopped}, nodes.KindCancelled
		}
	}
	cm.cancel()
}

// invokeNested runs the target of cm, the subgraph invocation nr[i] of a
// child run step by step, in a childMode of its own steered by the rest of
// cm's chain: its child's next step (InvokeResult.Child), the outcome of
// the invocation the chain names further down, or, when its child ran to
// its end from the records, its own outcome.
func (cr *run) invokeNested(ctx context.Context, cm *childMode, nr *nodeRun, i int, item any) (*InvokeResult, error) {
	nested := &childMode{recorded: cm.recorded, answers: cm.answers, target: cm.target.Child, toolOp: cm.toolOp, resumed: cm.resumed, raised: cm.raised}
	cm.toolOp = nil
	cr.invokeIn(ctx, nested, nr, i, item)
	return nested.outcome(invocationPath(cr.prefix, cr.step, nr.n.name, itemIndex(nr, i)), &nr.res[i], cr.red.str)
}

// invokeIn runs nr[i], a subgraph invocation, with its child in the
// childMode cm (whose cancel it sets).
func (cr *run) invokeIn(ctx context.Context, cm *childMode, nr *nodeRun, i int, item any) {
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	cm.cancel = cancel
	c := callPool.Get().(*call)
	var ac attemptCtx
	cr.invokeOn(context.WithValue(ictx, childModeKey{}, cm), c, &ac, nr.n, itemIndex(nr, i), item, &nr.res[i], false)
	ac.release()
	callPool.Put(c)
}

// outcome is how the subgraph invocation at path, run with its child in
// the childMode cm, ended (res): its child's next step to dispatch, the
// outcome of the invocation cm's target names, or its own.
func (cm *childMode) outcome(path string, res *invResult, redact func(string) string) (*InvokeResult, error) {
	if out, ok, err := cm.steered(path); ok {
		return out, err
	}
	return resultOf(path, res, redact), nil
}

// steered is the result cm decides for the invocation at path whose child
// it steered (ok): its records did not fit, the target ran, the child has
// a step to dispatch, or the target had been recorded. ok is false when
// the invocation's own ending decides.
func (cm *childMode) steered(path string) (out *InvokeResult, ok bool, err error) {
	switch {
	case cm.err != nil:
		return nil, true, fmt.Errorf("%s: %w", path, cm.err)
	case cm.ran != nil:
		return cm.ran, true, nil
	case cm.plan != nil:
		return &InvokeResult{Path: path, Status: InvocationCancelled, Child: cm.plan}, true, nil
	case cm.target != nil:
		// The child ran to its end from the records: the invocation the
		// target names had been recorded (a retried call).
		tpath := cm.target.path(path + "/")
		if out := cm.recordedResult(tpath); out != nil {
			return out, true, nil
		}
		return nil, true, fmt.Errorf("%s was asked for, but the child ran to its end without it", tpath)
	}
	return nil, false, nil
}

// resultOf is the result of the invocation at path that ended as res.
func resultOf(path string, res *invResult, redact func(string) string) *InvokeResult {
	out := &InvokeResult{Path: path, Status: res.status, Kind: string(res.kind), Attempts: res.attempts}
	if res.status == "" {
		out.Status = InvocationCancelled
	}
	if res.err != nil {
		out.Error = redact(res.err.Error())
	}
	return out
}

// settleNested replays the subgraph invocation nr[i] of a child run step
// by step from the records of its own child, as planning its next step
// would: when that child ends or pauses on what is recorded, nr[i] ends
// or pauses with it (recorded, as any invocation that ends), and more is
// false; when it has invocations to dispatch, nr[i] stays pending (more),
// for the engine to dispatch (its plan is asked for again then).
func (cr *run) settleNested(ctx context.Context, cm *childMode, nr *nodeRun, i int) (more bool, err error) {
	var item any
	if nr.items != nil {
		item = nr.items[i]
	}
	nested := &childMode{recorded: cm.recorded, answers: cm.answers, resumed: cm.resumed, raised: cm.raised}
	cr.invokeIn(ctx, nested, nr, i, item)
	switch {
	case nested.err != nil:
		return false, nested.err
	case nested.plan != nil:
		nr.res[i] = invResult{}
		return true, nil
	}
	return false, nil
}

// errChildStopped is why a child run step by step stopped: its
// invocations are the engine's to dispatch.
var errChildStopped = errors.New("the child stops here: the engine dispatches its invocations")

// childPlan is the plan of a child run's step, for the scheduler: its
// nodes (the recorded invocations marked), caps and pools.
func (r *run) childPlan(runs []*nodeRun) *StepPlan {
	p := &StepPlan{Step: r.step, Status: store.StatusRunning}
	pools := map[string]PoolCap{}
	for _, nr := range runs {
		pn := r.plannedNode(nr, pools)
		if nr.n.keyPool != "" {
			pn.KeyPool = nr.n.keyPool
			pn.Keys, pn.KeyIDs = r.keyClasses(nr)
		}
		for i := range nr.res {
			// Reused, paused at an interrupt, or a subgraph inside the
			// child that ended on its records (settleNested).
			if nr.res[i].reused || nr.res[i].status != "" {
				if pn.Recorded == nil {
					pn.Recorded = make([]byte, (pn.Invocations()+7)/8)
				}
				pn.Recorded[i/8] |= 1 << (i % 8)
			}
		}
		p.Nodes = append(p.Nodes, pn)
	}
	for _, pn := range p.Nodes {
		if pn.Calls && p.Tools == nil {
			p.Tools = r.plannedTools(pools)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p.Pools = append(p.Pools, pools[name])
	}
	return p
}

// invokeChild runs the subgraph invocation nr[index] in a childMode (see
// the comment at the top of this file): its outcome when the child ran to
// its end from the records, else the child's next step or the target's
// outcome.
func (s *StepRun) invokeChild(ctx context.Context, nr *nodeRun, index int, item any, path string, in Invocation) (*InvokeResult, error) {
	return s.inChildMode(ctx, nr, index, item, path, in, nil)
}

// onChildTools runs op on in.Child, a tools invocation of the child of
// the subgraph invocation in.Node[in.Index], once the child is replayed up
// to it (built, its calls planned), instead of running it.
func (s *StepRun) onChildTools(ctx context.Context, in Invocation, op func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error)) (*InvokeResult, error) {
	nr, item, err := s.find(in.Node, in.Index)
	if err != nil {
		return nil, err
	}
	if nodes.CapabilitiesOf(nr.n.typ).ChildField == "" {
		return nil, fmt.Errorf("run %s: node %s runs no child workflow", s.r.id, in.Node)
	}
	return s.inChildMode(ctx, nr, in.Index, item, invocationPath("", s.r.step, in.Node, in.Index), in, op)
}

// inChildMode runs the subgraph invocation nr[index] in a childMode (see
// invokeChild), with toolOp (may be nil) done on its target.
func (s *StepRun) inChildMode(ctx context.Context, nr *nodeRun, index int, item any, path string, in Invocation,
	toolOp func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error)) (*InvokeResult, error) {
	r := s.r
	cm, err := s.childModeAt(ctx, path, false, in.Child, toolOp, in)
	if err != nil {
		return nil, err
	}
	// Its record starts when its child's first invocation started.
	r.stepCalls.load(cm.recorded)
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	cm.cancel = cancel
	ictx = context.WithValue(ictx, childModeKey{}, cm)
	var res invResult
	s.openRecorder()
	// This call may only run a child invocation or form the child's next
	// step: the subgraph invocation's own events are sent when a call
	// ends it (its start as soon as it starts).
	cm.top = r
	ended := false
	defer func() { cm.sendEvents(r, ended) }()
	r.invoke(ictx, nil, nr.n, index, item, &res)
	if err := r.journal.barrier(r.step); err != nil {
		return nil, err
	}
	if in.Child != nil && toolOp == nil {
		tpath := in.Child.path(path + "/")
		if p := r.stepCalls.missed(tpath); p != "" {
			return nil, fmt.Errorf("run %s: tool call %s was not recorded before its invocation ran", r.id, p)
		}
	}
	out, err := cm.outcome(path, &res, r.red.str)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", r.id, err)
	}
	// It ended in this call (its child ran to its end or paused) unless
	// the call stopped it: then it has no status.
	ended = res.status != ""
	return out, nil
}

// childModeAt is the childMode of the child of the invocation at path
// (with its own record when self), steered by target and toolOp: the
// child's records and the accepted answers to its interrupts read from
// the store, a budget raise in applied.
func (s *StepRun) childModeAt(ctx context.Context, path string, self bool, target *ChildRef,
	toolOp func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error), in Invocation) (*childMode, error) {
	invs, err := s.st.Invocations(ctx, s.r.id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.raise(ctx, in.Raise); err != nil {
		return nil, err
	}
	cm := &childMode{recorded: map[string]*store.Invocation{}, answers: map[string]map[string]any{}, target: target,
		toolOp: toolOp, resumed: in.Resumed, raised: in.Raise != nil}
	for _, inv := range invs {
		if self && inv.Path == path || strings.HasPrefix(inv.Path, path+"/") {
			cm.recorded[inv.Path] = inv
		}
	}
	for p, nonce := range in.Answers {
		if !strings.HasPrefix(p, path+"/") {
			continue
		}
		v, err := s.answer(ctx, p, nonce)
		if err != nil {
			return nil, err
		}
		cm.answers[p] = v
	}
	return cm, nil
}

// distributableChildren reports what the children a workflow calls use
// that subgraphs run step by step do not support yet: nil when they can.
func distributableChildren(g *Graph, subs *subgraphs) error {
	var why []string
	for _, key := range slices.Sorted(maps.Keys(subs.graphs)) {
		cg := subs.graphs[key]
		if err := Distributable(cg); err != nil {
			var ue *UnsupportedError
			if errors.As(err, &ue) {
				for _, w := range ue.What {
					why = append(why, fmt.Sprintf("subgraph %s: %s", key, w))
				}
				continue
			}
			return err
		}
		// A key on a pool that another workflow of the tree declares
		// too runs: the plans give keys stable ids (PlannedNode.KeyIDs),
		// so a scheduler counts them across the parent's and the
		// children's invocations of the one pool.
	}
	if len(why) == 0 {
		return nil
	}
	return &UnsupportedError{Workflow: g.wf.Name, What: why}
}

// errNoRetry marks an error its invocation's retry policy must not retry
// (see noRetry).
var errNoRetry = errors.New("not retried")

// noRetry is a subgraph invocation's failure replayed from its child's
// records: retrying it would replay the same records. Run step by step,
// a child's invocations retry under their own policies, and the subgraph
// invocation is not retried as a whole (docs/decisions.md).
type noRetry struct{ error }

func (e noRetry) Unwrap() error        { return e.error }
func (e noRetry) Is(target error) bool { return target == errNoRetry }

// DistributableTree is Distributable for g and the children it calls,
// read from disk as a local run reads them: what a client checks before
// it submits a run.
func DistributableTree(g *Graph) error {
	if err := Distributable(g); err != nil {
		return err
	}
	subs, err := loadSubgraphs(g, os.ReadFile)
	if err != nil {
		return err
	}
	return distributableChildren(g, subs)
}

// childPaused returns the interrupts a subgraph invocation at path waits
// at: its child's paused invocations (the subgraph invocation itself is
// not recorded while its child is paused).
func childPaused(invs []*store.Invocation, step int, path string) []Interrupt {
	var out []Interrupt
	for _, in := range waitingAt(invs, step) {
		if strings.HasPrefix(in.Path, path+"/") {
			out = append(out, in)
		}
	}
	return out
}
