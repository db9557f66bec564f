package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// call implements nodes.Host for its invocation.
var _ nodes.Host = (*call)(nil)

// HTTPClient returns the run's shared client (Options.HTTPClient, or one
// built on first use); when the run's requests are recorded on an engine,
// one that records them as this invocation's.
func (c *call) HTTPClient() *http.Client {
	r := c.r
	if r.httpRec != nil {
		return r.httpRec.client(r.baseHTTP(), r.recordStep(), c.pathOf())
	}
	return r.baseHTTP()
}

// baseHTTP is the run's shared client, unrecorded.
func (r *run) baseHTTP() *http.Client {
	r.httpOnce.Do(func() {
		if r.http == nil {
			r.http = nodes.NewHTTPClient("lgx")
			r.ownHTTP.Store(r.http)
		}
	})
	return r.http
}

// IdempotencyKey derives from the run id and the invocation's path (SPEC
// §9.1), so it is the same across retries and resumes and different for
// every other invocation.
func (c *call) IdempotencyKey() string {
	return idempotencyKey(c.r.id, c.pathOf())
}

// Token streams model output as a token event.
// Secrets are redacted through the invocation's token stream, which holds
// back text that may be the start of a secret split across tokens
// (flushTokens emits the rest when the invocation ends).
func (c *call) Token(text string) {
	if c.r.sink == nil {
		return
	}
	if text = c.redactToken(text); text != "" {
		c.emitToken(text)
	}
}

// emitToken sends a token event of already redacted text.
func (c *call) emitToken(text string) {
	ev := Event{Event: EventToken, Node: c.n.name, Path: c.pathOf(), Step: c.step, Token: text}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	c.r.emit(ev)
}

// ReportGenAI keeps a model call's report for the invocation's node_end
// event, its prompt and completion redacted. Without a sink it is dropped.
func (c *call) ReportGenAI(g nodes.GenAIInfo) {
	if c.r.sink == nil {
		return
	}
	g.Prompt, g.Completion, g.Error = c.r.red.str(g.Prompt), c.r.red.str(g.Completion), c.r.red.str(g.Error)
	c.genai = append(c.genai, g)
}

// Provider returns a provider resolved at run start (env and secret
// expressions evaluated, the kind's API key env var as default).
func (c *call) Provider(name string) (*nodes.Provider, error) {
	if name == "" {
		name = "default"
	}
	p, ok := c.r.providers[name]
	if !ok {
		return nil, nodes.Errorf(nodes.KindInput, "unknown provider %q", name)
	}
	cp := *p
	return &cp, nil
}

// toolSource is a call seen as the nodes.ToolSource of its invocation:
// the workflow's declared tools and its MCP servers' tools.
type toolSource call

// List returns the named tools' declarations, in order.
func (ts *toolSource) List(names []string) ([]nodes.ToolSpec, error) {
	c := (*call)(ts)
	out := make([]nodes.ToolSpec, 0, len(names))
	for _, n := range names {
		if server, tool, ok := c.r.g.mcpRef(n); ok {
			// MCP tools are listed by their server (started now if needed).
			specs, err := c.mcpToolSpecs(context.Background(), server, tool)
			if err != nil {
				return nil, err
			}
			out = append(out, specs...)
			continue
		}
		t, ok := c.r.g.tools[n]
		if !ok {
			return nil, nodes.Errorf(nodes.KindInput, "unknown tool %q", n)
		}
		out = append(out, t.spec)
	}
	return out, nil
}

// Call runs one tool call, an invocation of its own with the path
// PARENT/tool:ID: its node with `args` in scope, under the node's caps,
// timeout and retry policy, then the tool's `output` (default: the
// result). A finished call is recorded, and a resume of the tools node
// reuses it instead of calling again. A call that runs is reported as
// tool_start and tool_end events; a reused one is not (it ran, and was
// reported, in the attempt that recorded it).
func (ts *toolSource) Call(ctx context.Context, tcall nodes.ToolCall) (any, error) {
	c := (*call)(ts)
	r := c.r
	path := toolCallPath(c.pathOf(), tcall.ID, tcall.Position)
	if r.stepCalls != nil {
		return r.stepCalls.result(path)
	}
	var answer map[string]any
	if rec, ok := r.recorded[path]; ok {
		switch rec.Status {
		case store.InvocationOK:
			var v any
			if err := decodeJSON(rec.Writes, &v); err == nil {
				return v, nil
			}
		case store.InvocationInterrupted:
			answer = r.answers[path] // nil: not answered, it pauses again
		}
	}
	out, _, err := c.reportedTool(ctx, tcall, path, answer)
	return out, err
}

// reportedTool is runTool, reported as tool_start and tool_end events.
func (c *call) reportedTool(ctx context.Context, tcall nodes.ToolCall, path string, answer map[string]any) (any, []nodes.GenAIInfo, error) {
	r := c.r
	if r.sink == nil {
		return c.runTool(ctx, tcall, path, answer)
	}
	ev := Event{Event: EventToolStart, Node: c.n.name, Path: path, Step: c.step, Tool: tcall.Name, ToolCallID: tcall.ID}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	started := time.Now()
	ev.TS = started
	r.emit(ev)
	if r.opts.InvocationContext != nil && r.opts.parent == nil {
		// The call's HTTP requests are its children in a trace.
		ctx = r.opts.InvocationContext(ctx, r.id, path)
	}
	out, genai, err := c.runTool(ctx, tcall, path, answer)
	ev.Event, ev.TS, ev.GenAI = EventToolEnd, time.Now(), genai
	ev.DurationMS = ev.TS.Sub(started).Milliseconds()
	if err != nil {
		ev.Kind, ev.Error = string(nodes.KindOf(err)), err.Error()
	}
	r.emit(ev)
	return out, genai, err
}

// runTool runs a tool call at path that the record does not hold, and
// returns with its result the reports of the model calls its node made
// (an llm_call tool), if any. answer, when not nil, is the resume's
// answer to the call, which paused the run before (toolPaused): an
// interrupt tool's result.
func (c *call) runTool(ctx context.Context, tcall nodes.ToolCall, path string, answer map[string]any) (any, []nodes.GenAIInfo, error) {
	r := c.r
	name := tcall.Name
	if server, tool, ok := r.g.mcpRef(name); ok {
		out, err := c.runMCPTool(ctx, tcall, server, tool)
		return out, nil, err
	}
	t, ok := r.g.tools[name]
	if !ok {
		return nil, nil, nodes.Errorf(nodes.KindInput, "unknown tool %q", name)
	}
	var started time.Time
	if r.rec != nil {
		started = time.Now()
	}
	tc := &call{r: r, n: t.node, caps: r.tcaps[name], step: c.step, index: c.index, path: path}
	if t.output != nil {
		tc.toolOut = &toolOutput{name: name, output: t.output}
	}
	tc.env = exprEnv{State: c.env.State, Args: tcall.Args, Env: r.env, Secrets: r.secrets, Run: c.env.Run, ctx: ctx, timeout: t.node.timeout}
	tc.inv = nodes.Invocation{RunID: r.id, Workflow: r.g.wf.Name, Node: c.n.name + "." + name, Step: c.step,
		Index: c.index, Prepared: t.node.prep, MaxValueBytes: r.g.wf.Config.MaxValueBytes, Host: tc, Tools: (*toolSource)(tc)}
	if t.node.with != nil {
		w, err := t.node.with.evalMap(&tc.env)
		if err != nil {
			return nil, nil, &nodes.Error{Kind: exprKind(err), Err: fmt.Errorf("tool %s: with.%w", name, err)}
		}
		tc.inv.With = w
	}
	if t.node.wantsData {
		// A template tool renders from its call's arguments, as the tool's
		// expressions read `args` (SPEC §5.5), and from the state.
		tc.inv.Data = map[string]any{"state": c.env.State, "args": tcall.Args,
			"run": map[string]any{"id": r.id, "step": c.step, "workflow": r.g.wf.Name}}
	}
	var res any
	var attempts int
	var err error
	if answer != nil && nodes.CapabilitiesOf(t.node.typ).Pauses {
		// The answer is an interrupt tool's result, as it is an
		// interrupt node's (SPEC §5.7).
		res, attempts = answer, 1
	} else {
		res, attempts, err = tc.withFallbacks(ctx, tc.caps) // an llm_call tool falls back as a node does
	}
	if err != nil {
		if p := c.toolPaused(path, name, t.node, started, err); p != nil {
			return nil, tc.genai, p
		}
		return nil, tc.genai, err
	}
	out := res
	if o := tc.toolOut; o != nil {
		if !o.done {
			if err := o.eval(&tc.env, res); err != nil {
				return nil, tc.genai, err
			}
		}
		out = o.value
	}
	if r.rec != nil {
		b, err := json.Marshal(r.red.value(out))
		if err != nil {
			return nil, tc.genai, &nodes.Error{Kind: nodes.KindType, Err: fmt.Errorf("tool %s: result is not JSON: %w", name, err)}
		}
		// Run step by step, a subgraph tool's call ends in a call that
		// replays its child: its record starts when its child's first
		// invocation started, so that it takes its child's time.
		started = r.stepCallsStart(path, started)
		r.finished(&store.Invocation{RunID: r.id, Path: path, Step: r.recordStep(), Node: name, Index: -1,
			Status: store.InvocationOK, Writes: b, Attempts: attempts, StartedAt: started, EndedAt: time.Now()}, false)
	}
	return out, tc.genai, nil
}

// toolOutput is a tool's `output` for one call: evaluated by the call's
// attempt when the tool's retry.on names a kind it can fail with (so that
// such a failure is retried, as a node's output is), else once the
// attempts ended.
type toolOutput struct {
	name   string
	output cval
	value  any  // the value of the evaluation that succeeded
	done   bool // value is set
}

// eval evaluates the output with result res; on success the value is kept.
func (o *toolOutput) eval(env *exprEnv, res any) error {
	env.Result = res
	v, err := o.output.eval(env)
	if err != nil {
		return &nodes.Error{Kind: exprKind(err), Err: fmt.Errorf("tool %s: output: %w", o.name, err)}
	}
	o.value, o.done = v, true
	return nil
}

// toolPaused turns the pause of an interrupt tool's call (a tool whose
// node is an `interrupt`: "any catalog node", SPEC §5.5) into a pause of
// the run at the call's path, recorded as an interrupt invocation is, so
// that a resume lists it, checks its answer against its with.answer and
// gives the call its answer (runTool). nil when err is no such pause:
// a subgraph tool's paused child is passed on as it is.
func (c *call) toolPaused(path, name string, n *node, started time.Time, err error) error {
	r := c.r
	var pc *pausedChild
	intr := asInterrupt(err)
	if intr == nil || errors.As(err, &pc) || !nodes.CapabilitiesOf(n.typ).Pauses {
		return nil
	}
	if r.rec != nil {
		r.finished(&store.Invocation{RunID: r.id, Path: path, Step: r.recordStep(), Node: name, Index: -1,
			Status: store.InvocationInterrupted, Error: r.red.str(intr.Message), Writes: []byte("{}"), Attempts: 1,
			StartedAt: started, EndedAt: time.Now()}, false)
	}
	return &pausedChild{intr: *intr, list: []Interrupt{{Path: path, Node: name, Index: -1, Message: intr.Message}}}
}

// runChild runs the child workflow a composite type's attempt asked for
// (loaded, checked and recorded when the run started; its path is
// relative to the file naming it) with its input, within that attempt,
// sharing
// the parent's global cap, pools and recorder. The child's invocations
// live under this invocation's path: they are recorded as they finish, and
// a resume reuses them while the child runs again. A child paused at
// interrupts pauses this invocation (and the run).
func (c *call) runChild(ctx context.Context, child *nodes.ChildRun) (map[string]any, error) {
	r := c.r
	path, input := child.Workflow, child.Input
	if r.depth >= MaxSubgraphDepth {
		return nil, &nodes.Error{Kind: nodes.KindLimit, Err: fmt.Errorf("subgraph %s: %w", path, errTooDeep)}
	}
	key := resolveSubgraph(r.g.wf.File, path)
	var g *Graph
	if r.subs != nil {
		g = r.subs.graphs[key]
	}
	if g == nil {
		return nil, &nodes.Error{Kind: nodes.KindInput, Err: fmt.Errorf("subgraph %s was not loaded when the run started", key)}
	}
	opts := Options{Inputs: input, Environ: r.opts.Environ, HTTPClient: r.baseHTTP(), limits: r.lim, RunID: r.id,
		parent: &parentLink{prefix: c.pathOf() + "/", topStep: r.recordStep(), depth: r.depth + 1, subs: r.subs,
			rec: r.rec, lease: r.heldLease(), recorded: r.recorded, answers: r.answers, red: r.red, mcp: r.mcpTreeOf(), httpRec: r.httpRec},
		Stubs: childStubs(r.opts.Stubs, c.n.name, c.index)}
	cm := childModeOf(ctx)
	if cm != nil && r.stepCalls != nil {
		// Run step by step: the child runs from its records up to the
		// invocations the engine dispatches (stepchild.go).
		opts.parent.recorded, opts.parent.answers, opts.parent.stepCalls = cm.recorded, cm.answers, r.stepCalls
		opts.dispatcher = func(cr *run) dispatcher { return &frontierDispatcher{r: cr, cm: cm} }
	} else {
		cm = nil
	}
	res, err := Run(ctx, g, opts)
	if err != nil && cm != nil {
		err = noRetry{err}
	}
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			// The child refused what its node gave it: the node failed, the
			// run had started (exit 1, not the usage error a refused run
			// input is), so the InputError does not travel on; neither does
			// its -i hint, since with.input is where the child's inputs come from.
			return nil, &nodes.Error{Kind: nodes.KindInput, Err: fmt.Errorf("subgraph %s: %s (from the node's with.input)", path, ie.Msg)}
		}
		return nil, fmt.Errorf("subgraph %s: %w", path, err)
	}
	switch res.Status {
	case store.StatusCompleted:
		return res.State, nil
	case store.StatusInterrupted:
		return nil, &pausedChild{intr: nodes.Interrupt{Message: res.InterruptMessage}, list: res.Interrupts}
	}
	return nil, fmt.Errorf("subgraph %s ended %s", path, res.Status)
}

// LoadGraph loads, validates and compiles a workflow file; validation
// errors are returned as spec.Diagnostics.
func LoadGraph(path string) (*Graph, error) {
	w, ds, err := spec.LoadFile(path)
	if err != nil {
		return nil, err
	}
	if ds.HasErrors() {
		return nil, &InvalidWorkflowError{File: path, Diagnostics: ds.Errors()}
	}
	return compileValid(w, os.ReadFile)
}

// compileValid validates then compiles a loaded workflow, reading the
// files it names (subgraphs) with read.
func compileValid(w *spec.Workflow, read func(string) ([]byte, error)) (*Graph, error) {
	if ds := spec.ValidateReading(w, read); ds.HasErrors() {
		return nil, &InvalidWorkflowError{File: w.File, Diagnostics: ds.Errors()}
	}
	return Compile(w)
}
