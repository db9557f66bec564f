package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// Subgraph tools, step by step. Locally a call of a tool whose node is a
// subgraph runs the tool's child inside the call, under the path
// PARENT/tool:ID, the child's invocations taking the run's caps. A
// distributed engine dispatches that child as it dispatches a subgraph
// invocation's (stepchild.go), the call standing for the subgraph
// invocation:
//
//	InvokeToolCall of the call replays its child from the records up to
//	    the first child step with unrecorded invocations and returns that
//	    step (InvokeResult.Child); once every child invocation is
//	    recorded, the child runs to its end and the call is recorded, its
//	    result or its failure, like any call
//	Invoke (or ToolCalls, InvokeToolCall) with Invocation.Tool naming
//	    the call (or ChildRef.Tool inside a child) and a Child runs that
//	    invocation of the call's child
//
// A call names the tools invocation's call by its path segment: its
// index is fixed only by evaluating the invocation's `with` again.

// viaCall runs what in names inside the child of the subgraph tool call
// in.Tool of the tools invocation in.Node[in.Index] (toolOp, when set, is
// done on in.Child, a tools invocation there; see childMode.toolOp).
func (s *StepRun) viaCall(ctx context.Context, in Invocation, toolOp func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error)) (*InvokeResult, error) {
	r := s.r
	c, calls, _, err := s.toolsCall(ctx, in)
	if err != nil {
		return nil, err
	}
	k := callIndex(c.path, calls, in.Tool)
	if k < 0 {
		return nil, fmt.Errorf("run %s: step %d: %s has no tool call %s", r.id, r.step, c.path, in.Tool)
	}
	return s.inCall(ctx, c, calls, k, in.Child, toolOp, in)
}

// inCall runs the subgraph tool call k of the tools invocation c with its
// child in a childMode steered by target and toolOp (see intoCall), the
// child's records read from the store, and flushes what it recorded.
func (s *StepRun) inCall(ctx context.Context, c *call, calls []nodes.PlannedToolCall, k int, target *ChildRef,
	toolOp func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error), in Invocation) (*InvokeResult, error) {
	r := s.r
	tcall := calls[k].Call
	path := toolCallPath(c.path, tcall.ID, tcall.Position)
	cm, err := s.childModeAt(ctx, path, true, target, toolOp, in)
	if err != nil {
		return nil, err
	}
	// The child's tools invocations read their calls from the records.
	r.stepCalls.load(cm.recorded)
	s.openRecorder()
	out, err := c.r.intoCall(ctx, c, calls, k, cm)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", r.id, err)
	}
	if err := r.journal.barrier(r.step); err != nil {
		return nil, err
	}
	if target != nil && toolOp == nil {
		if p := r.stepCalls.missed(target.path(path + "/")); p != "" {
			return nil, fmt.Errorf("run %s: tool call %s was not recorded before its invocation ran", r.id, p)
		}
	}
	return out, nil
}

// callIndex is the index among calls of the call of the tools invocation
// at parent whose path ends in segment tool, -1 when none does.
func callIndex(parent string, calls []nodes.PlannedToolCall, tool string) int {
	for k, pc := range calls {
		if pc.Run && toolCallPath(parent, pc.Call.ID, pc.Call.Position) == parent+"/"+tool {
			return k
		}
	}
	return -1
}

// childTool reports whether tool name is a declared tool whose node runs
// a child workflow.
func (r *run) childTool(name string) bool {
	t, ok := r.g.tools[name]
	return ok && nodes.CapabilitiesOf(t.node.typ).ChildField != ""
}

// intoCall runs call k of the tools invocation c, a subgraph tool's, with
// its child in the childMode cm (whose records hold the call's and its
// child's): the child's next step to dispatch (cm.target nil), the outcome
// of the child invocation cm.target names, or, once the child ran to its
// end from the records, the call's own outcome, recorded like any call's.
//
// Its tool_start event is sent when its child has no record yet (the
// first call that forms its first step), tool_end when it ends: a call
// that only runs a child invocation or plans a child step does not end
// it.
func (r *run) intoCall(ctx context.Context, c *call, calls []nodes.PlannedToolCall, k int, cm *childMode) (*InvokeResult, error) {
	if k < 0 || k >= len(calls) || !calls[k].Run {
		return nil, fmt.Errorf("step %d: %s has no tool call %d to run", r.step, c.path, k)
	}
	tcall := calls[k].Call
	path := toolCallPath(c.path, tcall.ID, tcall.Position)
	if !r.childTool(tcall.Name) {
		return nil, fmt.Errorf("%s: tool %s runs no child workflow", path, tcall.Name)
	}
	if inv := cm.recorded[path]; inv != nil && !(cm.resumed && inv.Status == store.InvocationFailed) {
		// The call ended before (a retried or repeated call): so did
		// everything in its child.
		if cm.target == nil {
			return cm.recordedResult(path), nil
		}
		tpath := cm.target.path(path + "/")
		if out := cm.recordedResult(tpath); out != nil {
			return out, nil
		}
		return nil, fmt.Errorf("%s was asked for, but tool call %s ended without it", tpath, path)
	}
	// Only the call itself (no target) starts or ends it: the calls that
	// run one of its child's invocations send none of its events.
	first := cm.target == nil
	for p := range cm.recorded {
		if first && strings.HasPrefix(p, path+"/") {
			first = false
			break
		}
	}
	ev := Event{Event: EventToolStart, Node: c.n.name, Path: path, Step: c.step, Tool: tcall.Name, ToolCallID: tcall.ID}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	started := time.Now()
	if r.sink != nil && first {
		ev.TS = started
		r.emit(ev)
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	cm.cancel = cancel
	_, genai, err := c.runTool(context.WithValue(ictx, childModeKey{}, cm), tcall, path, nil)
	end := func(err error) {
		if r.sink == nil {
			return
		}
		ev.Event, ev.TS, ev.GenAI = EventToolEnd, time.Now(), genai
		ev.DurationMS = ev.TS.Sub(r.stepCallsStart(path, started)).Milliseconds()
		if err != nil {
			ev.Kind, ev.Error = string(nodes.KindOf(err)), err.Error()
		}
		r.emit(ev)
	}
	if err == nil && cm.err == nil {
		// Its child ran to its end, and runTool recorded the call: it
		// ended in this call, even one that ran the child's last
		// invocation (the child then ends before it is stopped).
		end(nil)
	}
	if out, ok, serr := cm.steered(path); ok {
		return out, serr
	}
	if err == nil {
		return &InvokeResult{Path: path, Status: store.InvocationOK}, nil
	}
	var paused *pausedChild
	if errors.As(err, &paused) && ctx.Err() == nil {
		// Its child paused at interrupts: the call did not end and is
		// not recorded; the tools invocation pauses on its child's
		// records (stepCalls.result), and an answer runs it again.
		return &InvokeResult{Path: path, Status: store.InvocationInterrupted}, nil
	}
	// The child failed on its records: the call ends here.
	kind := nodes.KindOf(err)
	if kind == nodes.KindCancelled || ctx.Err() != nil {
		return &InvokeResult{Path: path, Status: InvocationCancelled, Kind: string(kind)}, nil
	}
	out := &InvokeResult{Path: path, Status: store.InvocationFailed, Kind: string(kind), Error: r.red.str(err.Error())}
	// Recorded failed, as any call on the engine is (docs/decisions.md),
	// so that the invocation writes its message from the record.
	r.finished(&store.Invocation{RunID: r.id, Path: path, Step: r.recordStep(), Node: tcall.Name, Index: -1,
		Status: store.InvocationFailed, ErrorKind: out.Kind, Error: out.Error, StartedAt: r.stepCallsStart(path, started), EndedAt: time.Now()}, false)
	end(err)
	return out, nil
}

// stepCallsStart is when the first recorded invocation under path
// started, if before t; else t: a call's duration is its child's.
func (r *run) stepCallsStart(path string, t time.Time) time.Time {
	if r.stepCalls == nil {
		return t
	}
	return r.stepCalls.firstStart(path, t)
}

// viaCallIn runs the target of cm, the subgraph tool call cm.target.Tool
// of the tools invocation nr[index] of a child run step by step, in a
// childMode of its own steered by the rest of cm's chain.
func (cr *run) viaCallIn(ctx context.Context, cm *childMode, nr *nodeRun, index int, item any) (*InvokeResult, error) {
	c, calls, _, err := cr.toolsCallOf(ctx, nr.n, index, item)
	if err != nil {
		return nil, err
	}
	k := callIndex(c.path, calls, cm.target.Tool)
	if k < 0 {
		return nil, fmt.Errorf("%s has no tool call %s", c.path, cm.target.Tool)
	}
	nested := &childMode{recorded: cm.recorded, answers: cm.answers, target: cm.target.Child, toolOp: cm.toolOp, resumed: cm.resumed, raised: cm.raised}
	cm.toolOp = nil
	return cr.intoCall(ctx, c, calls, k, nested)
}
