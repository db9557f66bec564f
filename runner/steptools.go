package runner

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// Tool calls, step by step (DESIGN.md, "Executor": tool calls are
// invocations the executor schedules). Locally a `tools` invocation runs
// its calls itself, each under its tool's caps. A distributed engine holds
// the caps in its scheduler instead, so it runs a tools invocation in
// three parts:
//
//	ToolCalls       plans the invocation's calls (names and whether each
//	                reaches its tool; the arguments stay in the store's
//	                snapshot, from which every part evaluates them again)
//	InvokeToolCall  runs one call, as the local engine runs it, and
//	                records it, failed or not
//	Invoke          runs the tools invocation itself, which reads its
//	                calls' results from the records (stepCalls) and never
//	                calls a tool
//
// Every part evaluates the invocation's `with` against the step's state,
// which the store fixes: they agree on the calls without passing them.

// PlannedTool is the caps of the calls of one tool: a declared tool's
// node's, or an MCP server's (Name "mcp:SERVER").
type PlannedTool struct {
	Name  string
	Cap   int      `json:",omitempty"`
	Pools []string `json:",omitempty"`
	Slot  bool
	// Child: the tool's node is a subgraph; a call's child is
	// dispatched a step at a time, as a subgraph invocation's is
	// (steptoolchild.go), and the call itself holds no slot.
	Child bool `json:",omitempty"`
}

// mcpToolPrefix names an MCP server's entry among the planned tools; a
// declared tool's name cannot contain a colon.
const mcpToolPrefix = "mcp:"

// ToolCallsPlan is the calls of one tools invocation, for a scheduler.
type ToolCallsPlan struct {
	// Recorded: the tools invocation itself is recorded; nothing is to be
	// dispatched but the invocation (which returns its record).
	Recorded bool `json:",omitempty"`
	// Limit is the invocation's with.concurrency: at most this many of
	// its calls in flight (0: no limit).
	Limit int    `json:",omitempty"`
	Calls []Call `json:",omitempty"`
}

// Call is one call of a tools invocation.
type Call struct {
	// Tool names the PlannedTool whose caps the call takes; "" when the
	// call reaches no tool (an unknown tool, invalid arguments: its
	// message is written by the invocation).
	Tool string `json:",omitempty"`
	// Done: the call is recorded; it is not dispatched again.
	Done bool `json:",omitempty"`
}

// plannedTools lists the caps of the calls the run's tools invocations
// may make: every declared tool, and every MCP server, by name.
func (r *run) plannedTools(pools map[string]PoolCap) []PlannedTool {
	var out []PlannedTool
	add := func(name string, n *node) {
		pt := PlannedTool{Name: name, Cap: n.spec.Concurrency, Pools: slices.Clone(n.poolNames), Slot: !n.caps.none,
			Child: nodes.CapabilitiesOf(n.typ).ChildField != ""}
		r.planPools(n, pools)
		out = append(out, pt)
	}
	for _, name := range slices.Sorted(maps.Keys(r.g.tools)) {
		add(name, r.g.tools[name].node)
	}
	for _, s := range r.g.wf.MCP {
		if n, _, err := r.mcpNode(s.Name, "*"); err == nil {
			add(mcpToolPrefix+s.Name, n)
		}
	}
	return out
}

// toolOf is the PlannedTool name of a call of tool name.
func (r *run) toolOf(name string) string {
	if server, _, ok := r.g.mcpRef(name); ok {
		return mcpToolPrefix + server
	}
	return name
}

// toolsCall builds the tools invocation node[index] of the planned step
// (evaluating its with) and plans its calls (see callOf).
func (s *StepRun) toolsCall(ctx context.Context, in Invocation) (*call, []nodes.PlannedToolCall, int, error) {
	nr, item, err := s.find(in.Node, in.Index)
	if err != nil {
		return nil, nil, 0, err
	}
	return s.r.toolsCallOf(ctx, nr.n, in.Index, item)
}

// toolsCallOf builds r's tools invocation n[index] of its current step
// and plans its calls. A with that does not evaluate plans no call: the
// invocation fails on it when it runs.
func (r *run) toolsCallOf(ctx context.Context, n *node, index int, item any) (*call, []nodes.PlannedToolCall, int, error) {
	if nodes.CapabilitiesOf(n.typ).CallsField == "" {
		return nil, nil, 0, fmt.Errorf("run %s: node %s does not make tool calls", r.id, n.name)
	}
	c := &call{r: r, n: n, caps: r.caps[n.idx], step: r.step, index: index, top: true}
	c.env = exprEnv{State: r.state, Item: item, Index: max(index, 0), Env: r.env, Secrets: r.secrets, Run: r.runInfo, ctx: ctx, timeout: n.timeout}
	c.pathOf()
	if n.with == nil {
		return c, nil, 0, nil
	}
	with, err := n.with.evalMap(&c.env)
	if err != nil {
		return c, nil, 0, nil
	}
	calls, limit, err := nodes.PlanToolCalls(with, (*toolSource)(c))
	if err != nil {
		return c, nil, 0, nil
	}
	return c, calls, limit, nil
}

// ToolCalls plans the calls of the tools invocation in.Node[in.Index]
// (see the comment at the top of this file), or with in.Child of that
// invocation of the child of the subgraph invocation in.Node[in.Index].
// Calls and the invocation recorded before are marked; in.Resumed runs
// recorded failures again.
func (s *StepRun) ToolCalls(ctx context.Context, in Invocation) (*ToolCallsPlan, error) {
	if in.Child != nil {
		var p *ToolCallsPlan
		op := func(c *call, calls []nodes.PlannedToolCall, limit int) (*InvokeResult, error) {
			var err error
			p, err = s.planCalls(ctx, c, calls, limit, in)
			return nil, err
		}
		var err error
		if in.Tool != "" {
			_, err = s.viaCall(ctx, in, op)
		} else {
			_, err = s.onChildTools(ctx, in, op)
		}
		if err == nil && p == nil {
			// Not replayed up to it: it is recorded (a retried call).
			p = &ToolCallsPlan{Recorded: true}
		}
		return p, err
	}
	c, calls, limit, err := s.toolsCall(ctx, in)
	if err != nil {
		return nil, err
	}
	return s.planCalls(ctx, c, calls, limit, in)
}

// planCalls is the plan of the calls of the tools invocation c: a
// recorded call is done, unless it failed and in.Resumed, or paused at
// an interrupt and in.Answers answers it.
func (s *StepRun) planCalls(ctx context.Context, c *call, calls []nodes.PlannedToolCall, limit int, in Invocation) (*ToolCallsPlan, error) {
	resumed := in.Resumed
	recs, err := s.toolRecords(ctx, c.path)
	if err != nil {
		return nil, err
	}
	if inv := recs[c.path]; inv != nil && !(resumed && inv.Status == store.InvocationFailed) {
		return &ToolCallsPlan{Recorded: true}, nil
	}
	s.callsBegin(c)
	p := &ToolCallsPlan{Limit: limit, Calls: make([]Call, len(calls))}
	for i, pc := range calls {
		if !pc.Run {
			continue
		}
		p.Calls[i].Tool = c.r.toolOf(pc.Call.Name)
		path := toolCallPath(c.path, pc.Call.ID, pc.Call.Position)
		if inv := recs[path]; inv != nil {
			answered := inv.Status == store.InvocationInterrupted && in.Answers[path] != ""
			p.Calls[i].Done = inv.Status == store.InvocationOK || !resumed && !answered
		}
	}
	return p, nil
}

// InvokeToolCall runs call k of the tools invocation in.Node[in.Index]
// (with in.Child: of that invocation of the subgraph invocation's child)
// as the local engine runs it (under its tool's node's timeout, retry
// policy and fallbacks) and records it: its result, or its failure, which
// the invocation turns into the call's error message. A call recorded
// before (in.Lookup) is not run again, unless it failed and in.Resumed.
func (s *StepRun) InvokeToolCall(ctx context.Context, in Invocation, k int) (*InvokeResult, error) {
	if in.Child != nil {
		op := func(c *call, calls []nodes.PlannedToolCall, _ int) (*InvokeResult, error) {
			return s.runCall(ctx, c, calls, k, in)
		}
		if in.Tool != "" {
			return s.viaCall(ctx, in, op)
		}
		return s.onChildTools(ctx, in, op)
	}
	if in.Tool != "" {
		return nil, fmt.Errorf("run %s: %s names a tool call without the child invocation to run", s.r.id, in.Tool)
	}
	c, calls, _, err := s.toolsCall(ctx, in)
	if err != nil {
		return nil, err
	}
	return s.runCall(ctx, c, calls, k, in)
}

// runCall runs and records call k of the tools invocation c.
func (s *StepRun) runCall(ctx context.Context, c *call, calls []nodes.PlannedToolCall, k int, in Invocation) (*InvokeResult, error) {
	r := c.r
	if k < 0 || k >= len(calls) || !calls[k].Run {
		return nil, fmt.Errorf("run %s: step %d: %s has no tool call %d to run", r.id, r.step, c.path, k)
	}
	tcall := calls[k].Call
	path := toolCallPath(c.path, tcall.ID, tcall.Position)
	var answer map[string]any
	if in.Lookup {
		inv, err := s.recorded(ctx, path)
		if err != nil {
			return nil, err
		}
		switch nonce := in.Answers[path]; {
		case inv != nil && inv.Status == store.InvocationInterrupted && nonce != "":
			// An interrupt tool's call, answered: it runs with the answer.
			if answer, err = s.answer(ctx, path, nonce); err != nil {
				return nil, err
			}
		case inv != nil && !(in.Resumed && inv.Status == store.InvocationFailed):
			return &InvokeResult{Path: path, Status: inv.Status, Kind: inv.ErrorKind, Error: inv.Error, Attempts: inv.Attempts, Recorded: true}, nil
		}
	}
	if r.childTool(tcall.Name) {
		// A subgraph tool's call: its child is dispatched a step at a
		// time (steptoolchild.go); this forms its next step or ends it.
		return s.inCall(ctx, c, calls, k, nil, nil, in)
	}
	s.openRecorder()
	started := time.Now()
	_, _, err := c.reportedTool(ctx, tcall, path, answer)
	out := &InvokeResult{Path: path, Status: store.InvocationOK}
	var paused *pausedChild
	switch {
	case err != nil && errors.As(err, &paused) && ctx.Err() == nil:
		// An interrupt tool paused (toolPaused recorded it): the tools
		// invocation pauses on its record, and the run with it.
		out.Status = store.InvocationInterrupted
	case err != nil:
		kind := nodes.KindOf(err)
		if kind == nodes.KindCancelled || ctx.Err() != nil {
			return &InvokeResult{Path: path, Status: InvocationCancelled, Kind: string(kind)}, nil
		}
		out.Status, out.Kind, out.Error = store.InvocationFailed, string(kind), r.red.str(err.Error())
		r.finished(&store.Invocation{RunID: r.id, Path: path, Step: r.recordStep(), Node: tcall.Name, Index: -1,
			Status: store.InvocationFailed, ErrorKind: out.Kind, Error: out.Error, StartedAt: started, EndedAt: time.Now()}, false)
	}
	if err := s.r.journal.barrier(s.r.step); err != nil {
		return nil, err
	}
	return out, nil
}

// toolRecords reads the records of the invocation at path and of its
// tool calls, by path.
func (s *StepRun) toolRecords(ctx context.Context, path string) (map[string]*store.Invocation, error) {
	invs, err := s.st.Invocations(ctx, s.r.id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	out := map[string]*store.Invocation{}
	for _, inv := range invs {
		if inv.Path == path || strings.HasPrefix(inv.Path, path+"/tool:") {
			out[inv.Path] = inv
		}
	}
	return out, nil
}

// stepCalls are the recorded tool calls that tools invocations run step
// by step read their results from (toolSource.Call): the engine ran the
// calls (InvokeToolCall), so the invocation calls no tool.
type stepCalls struct {
	mu      sync.Mutex
	recs    map[string]*store.Invocation
	missing map[string]bool // calls asked for that were not recorded
}

// load adds the records of the tool calls of the invocation at path.
func (sc *stepCalls) load(recs map[string]*store.Invocation) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.recs == nil {
		sc.recs = map[string]*store.Invocation{}
	}
	for p, inv := range recs {
		sc.recs[p] = inv
	}
}

// firstStart is when the first recorded call under the invocation at
// path started, if before t; else t.
func (sc *stepCalls) firstStart(path string, t time.Time) time.Time {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for p, inv := range sc.recs {
		if strings.HasPrefix(p, path+"/") && !inv.StartedAt.IsZero() && inv.StartedAt.Before(t) {
			t = inv.StartedAt
		}
	}
	return t
}

// childPaused lists the interrupts the child of the call at path waits
// at, by path.
func (sc *stepCalls) childPaused(path string) []Interrupt {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var out []Interrupt
	for p, inv := range sc.recs {
		if inv.Status == store.InvocationInterrupted && strings.HasPrefix(p, path+"/") {
			out = append(out, recordedInterrupt(p, inv))
		}
	}
	slices.SortFunc(out, func(a, b Interrupt) int { return comparePaths(a.Path, b.Path) })
	return out
}

// errNotDispatched is a call the engine did not run: the invocation
// cannot be completed from the records (see Invoke).
var errNotDispatched = errors.New("the engine did not run this tool call")

// result is the recorded result of the call at path: its value, or its
// recorded failure as an error.
func (sc *stepCalls) result(path string) (any, error) {
	sc.mu.Lock()
	inv := sc.recs[path]
	sc.mu.Unlock()
	switch {
	case inv == nil:
		if list := sc.childPaused(path); len(list) > 0 {
			// A subgraph tool's call whose child paused: so does the
			// invocation.
			return nil, &pausedChild{intr: nodes.Interrupt{Message: list[0].Message}, list: list}
		}
		sc.mu.Lock()
		if sc.missing == nil {
			sc.missing = map[string]bool{}
		}
		sc.missing[path] = true
		sc.mu.Unlock()
		return nil, errNotDispatched
	case inv.Status == store.InvocationInterrupted:
		// An interrupt tool's call that paused: so does the invocation.
		return nil, &pausedChild{intr: nodes.Interrupt{Message: inv.Error},
			list: []Interrupt{{Path: path, Node: inv.Node, Index: -1, Message: inv.Error}}}
	case inv.Status != store.InvocationOK:
		return nil, &nodes.Error{Kind: nodes.Kind(inv.ErrorKind), Err: errors.New(inv.Error)}
	}
	var v any
	if err := decodeJSON(inv.Writes, &v); err != nil {
		return nil, fmt.Errorf("recorded tool call %s: %w", path, err)
	}
	return v, nil
}

// missed reports a call under the invocation at path that was asked for
// and not recorded.
func (sc *stepCalls) missed(path string) string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for p := range sc.missing {
		if strings.HasPrefix(p, path+"/") {
			return p
		}
	}
	return ""
}
