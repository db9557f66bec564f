package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// call is one invocation in flight: its expression environment, the
// nodes.Invocation handed to the type, and the nodes.Host it sees,
// allocated together.
type call struct {
	r *run
	// quiet, when set, keeps the invocation's events instead of sending
	// them: a subgraph invocation run step by step (see inChildMode).
	quiet *childMode
	n     *node
	caps  *caps
	step  int
	index int
	// path names the invocation (SPEC §9.1); "" until something needs it
	// (see pathOf).
	path string
	env  exprEnv
	inv  nodes.Invocation
	buf  []write // reusable writes buffer
	// checked holds the writes of the attempt that succeeded when attempts
	// already evaluated the node's output (retry.on names a kind an
	// output can fail with: see retryPolicy.outputs); nil otherwise.
	checked []write
	// toolOut is a tool call's `output` when its attempts evaluate it
	// (as checked is a node's; tool calls only, see runTool).
	toolOut *toolOutput
	ac      *attemptCtx // the calling goroutine's; nil: a context per attempt
	// kcaps is caps with this invocation's pool key (keyed pools only).
	kcaps caps
	// genai are the reports of the model calls made so far (only when
	// events are sent).
	genai []nodes.GenAIInfo
	// llm is an llm_call's usage and budgets; provider the provider that
	// answered (recorded with the writes, see LLMRecord).
	llm      llmCharges
	provider string
	// started is when the invocation began (node_start), set when events
	// are sent; acquired is set once its first attempt holds its caps.
	started  time.Time
	acquired bool
	// held are the caps of the last attempt, released once node_end is
	// sent, so that in the event stream no invocation acquires a slot
	// before the one that freed it has ended.
	held *caps
	// top: the call is an invocation of the graph (made by invoke), not
	// a tool call; only those send acquired and keep held.
	top bool
	// attempt counts the invocation's attempts over all its providers,
	// for attempt_start and attempt_end.
	attempt int
	// turn is the invocation's place among its for_each's items, passed
	// once it holds its caps or ends (see turnstile).
	turn turn
	// alone: the invocation is the only one of its step, of an instant
	// type (no tool calls, no children), in a top-level run (whose limits
	// no parent's invocations share). Nothing else can then take a slot
	// of the run's global cap while it runs, so it takes none (the only
	// caps skipped: a node cap or a pool is taken as always).
	alone bool
}

// callPool recycles calls: a node type must not keep its Host after Run
// returned.
var callPool = sync.Pool{New: func() any { return new(call) }}

// invoke runs one invocation (a node, or one for_each item) to completion:
// `with` evaluated, attempts under caps with timeout and retry, `output`
// evaluated and type-checked, the outcome recorded and reported.
func (r *run) invoke(ctx context.Context, ac *attemptCtx, n *node, index int, item any, res *invResult) {
	c := callPool.Get().(*call)
	r.invokeOn(ctx, c, ac, n, index, item, res, false)
	callPool.Put(c)
}

// reset prepares c, used before, for an invocation of n. Assigning a whole
// call (800 bytes) cost a set node's invocation a fifth of its CPU, most
// of it in write barriers while the GC marks; so the fields every
// invocation sets are assigned one by one, and the ones only some
// invocations set (keyed caps, an llm_call's charges and reports, events'
// bookkeeping) are cleared only when set. inv is not touched: call.run
// assigns all of it before anything reads it. TestCallReset checks that
// reset leaves every other field as a new call would have it.
func (c *call) reset(r *run, n *node, index int, buf []write, ac *attemptCtx) {
	c.r, c.n, c.caps, c.step, c.index, c.buf, c.ac, c.top = r, n, r.caps[n.idx], r.step, index, buf, ac, true
	if c.quiet != nil {
		c.quiet = nil
	}
	if c.path != "" {
		c.path = ""
	}
	if c.kcaps.pools != nil { // set by call.run with keyAt > 0, so with a pool
		c.kcaps = caps{}
	}
	if c.genai != nil {
		c.genai = nil
	}
	if c.llm.used { // llmCharges.charge, its only writer, sets used
		c.llm = llmCharges{}
	}
	if c.provider != "" {
		c.provider = ""
	}
	if !c.started.IsZero() {
		c.started = time.Time{}
	}
	if c.held != nil {
		c.held = nil
	}
	c.acquired, c.attempt, c.alone = false, 0, false
	if c.checked != nil {
		c.checked = nil
	}
	if c.toolOut != nil {
		c.toolOut = nil
	}
	if c.turn.ts != nil || c.turn.ord != 0 {
		c.turn = turn{}
	}
}

// setEnv sets the expression environment of the invocation. Assigned
// field by field for the reason reset gives; Budget, budget and
// stateCopy are per evaluation (progVal.eval resets them), Result,
// Error and Args are cleared when a previous invocation set them.
func (c *call) setEnv(ctx context.Context, r *run, n *node, item any, index int) {
	e := &c.env
	e.State, e.vals, e.Item, e.Index, e.Env, e.Secrets, e.Run, e.ctx, e.timeout = r.state, r.vals, item, max(index, 0), r.env, r.secrets, r.runInfo, ctx, n.timeout
	if e.Result != nil {
		e.Result = nil
	}
	if e.Error != nil {
		e.Error = nil
	}
	if e.Args != nil {
		e.Args = nil
	}
	if e.Budget != nil {
		e.Budget = nil
	}
	if e.stateCopy != nil {
		e.stateCopy = nil
	}
}

// clear makes ir a zero result that keeps its writes buffer for reuse
// (writes[:0]; wbuf keeps the earlier values until overwritten). Field by
// field, for the reason call.reset gives: a 10,000-branch step cleared 2
// MB of results this way. TestInvResultClear checks it.
func (ir *invResult) clear() {
	if ir.writes != nil {
		ir.writes = ir.writes[:0]
	}
	if ir.status != "" {
		ir.status = ""
	}
	if ir.err != nil {
		ir.err = nil
	}
	if ir.kind != "" {
		ir.kind = ""
	}
	if ir.intrs != nil {
		ir.intrs = nil
	}
	ir.child, ir.attempts, ir.reused, ir.repeats = false, 0, false, false
	if ir.resumeVal != nil {
		ir.resumeVal = nil
	}
	if ir.llm != nil {
		ir.llm = nil
	}
	if ir.turn.ts != nil || ir.turn.ord != 0 {
		ir.turn = turn{}
	}
}

// childRepeats reports whether err is the failure of a subgraph's child
// that a resume would meet again: the child's own failure repeats (its
// state comes from this node's input, which the resume restores), or the
// child was nested too deep.
func childRepeats(err error) bool {
	var ne *NodeError
	return errors.Is(err, errTooDeep) || (errors.As(err, &ne) && ne.Repeats)
}

// failureRepeats reports whether an invocation's failure of this kind
// depends only on what a resume restores, the state and the workflow
// (not env or secrets, which the resuming process gives anew), so
// that resuming would fail the same way (SPEC §9.6: such a failure does
// not suggest lgx resume): inputs a node refused (they come from `with`,
// evaluated on the state), an expression, limit or type failure before
// any attempt (`with` itself), and any failure of a pure node except a
// timeout or a cancellation. A failure that depends on what an effect
// returned (a status, a response's shape) may not repeat.
func failureRepeats(n *node, kind nodes.Kind, attempts int) bool {
	if n.readsEnv { // a resume may run with other env or secrets
		return false
	}
	switch kind {
	case nodes.KindInput:
		return true
	case nodes.KindTimeout, nodes.KindCancelled:
		return false
	case nodes.KindExpr, nodes.KindLimit, nodes.KindType:
		if attempts == 0 {
			return true
		}
	}
	return n.pure
}

// invokeOn is invoke on a call the caller owns (a dispatcher's goroutine
// reuses one, without the pool's cost); c is free again once it returns.
func (r *run) invokeOn(ctx context.Context, c *call, ac *attemptCtx, n *node, index int, item any, res *invResult, alone bool) {
	defer func() {
		c.releaseHeld() // after node_end: see call.held
		c.passTurn()
	}()
	buf := res.writes
	if cap(buf) == 0 {
		buf = res.wbuf[:0]
	}
	c.reset(r, n, index, buf, ac)
	c.alone = alone
	if r.sink != nil {
		if cm := childModeOf(ctx); cm != nil && cm.top == r {
			c.quiet = cm
		}
	}
	if res.turn.ts != nil {
		c.turn, res.turn = res.turn, turn{}
		c.turn.wait(ctx)
	}
	c.setEnv(ctx, r, n, item, index)
	var started time.Time
	var held *waited
	if r.rec != nil || r.sink != nil {
		started = time.Now()
		if held = waitedOf(ctx, r); held != nil && held.since.Before(started) {
			// An engine held it back for its caps: it started when a
			// local run would have, and waited from then.
			started = held.since
		}
		if r.stepCalls != nil {
			// Its tool calls ran before it, as invocations of their own.
			started = r.stepCalls.firstStart(invocationPath(r.prefix, c.step, n.name, c.index), started)
		}
	}
	if r.sink != nil || n.caps.none || (r.rec != nil && !n.pure) {
		// Built before the attempts: the tool calls and children of a
		// type that holds no slot read it from their own goroutines. A
		// pure node has neither; its record may need no path (below).
		c.pathOf()
	}
	var idxp *int
	if index >= 0 && r.sink != nil {
		idxp = new(int)
		*idxp = index
	}
	if r.sink != nil {
		c.started = started
		c.emit(Event{Event: EventNodeStart, Node: n.name, Index: idxp, Path: c.path, TS: started})
		if held != nil {
			for _, what := range held.what {
				c.emit(Event{Event: EventWait, Node: n.name, Index: idxp, Path: c.path, Step: c.step, Waiting: what, TS: started})
			}
		}
	}

	var result any
	var err error
	if res.resumeVal != nil {
		// An answered interrupt: the answer completes the one attempt
		// that paused (recorded as attempt 1 while it waited), so it ran
		// once, not never.
		result = res.resumeVal
		res.attempts = 1
	} else if stub, ok := r.stubbed(c); ok {
		result, res.attempts = stub, 1
	} else {
		actx := ctx
		if r.opts.InvocationContext != nil && r.opts.parent == nil {
			actx = r.opts.InvocationContext(ctx, r.id, c.pathOf())
		}
		result, res.attempts, err = c.run(actx, item)
		c.flushTokens() // streamed text held back in case it began a secret
	}
	if err == nil {
		if c.checked != nil {
			res.writes = c.checked
		} else {
			res.writes, err = c.outputs(result, nil)
		}
	}
	if r.rec != nil {
		if ex := exhaustedBudget(err); c.llm.used || c.provider != "" || ex != "" {
			res.llm = c.llm.record(c.provider, ex)
		}
	}
	var intr *nodes.Interrupt
	if err != nil {
		intr = asInterrupt(err)
	}
	switch {
	case err == nil:
		res.status = store.InvocationOK
	case intr != nil:
		res.status = store.InvocationInterrupted
		if list, ok := childInterrupts(err); ok {
			res.intrs, res.child = list, true
		} else {
			res.intrs = []Interrupt{{Path: c.pathOf(), Node: n.name, Index: index, Message: intr.Message, Budget: exhaustedBudget(err)}}
		}
	case ctx.Err() != nil:
		// Cancelled: by the run, its deadline, or a failing sibling.
		res.err, res.kind = err, nodes.KindCancelled
	case n.continue_:
		kind := nodes.KindOf(err)
		errObj := map[string]any{"message": r.red.str(err.Error()), "kind": string(kind)}
		ws, oerr := c.outputs(nil, errObj)
		if oerr != nil {
			res.status, res.err, res.kind = store.InvocationFailed, oerr, nodes.KindOf(oerr)
		} else {
			res.status, res.writes, res.err, res.kind = store.InvocationContinued, ws, err, kind
		}
	default:
		res.status, res.err, res.kind = store.InvocationFailed, err, nodes.KindOf(err)
		res.repeats = failureRepeats(n, res.kind, res.attempts) || (!n.readsEnv && childRepeats(err))
	}

	var ended time.Time
	if r.rec != nil || r.sink != nil {
		ended = time.Now()
	}
	// A subgraph paused inside is not recorded: its interrupt invocations
	// are, under their own paths, and resume runs the subgraph again.
	if r.rec != nil && res.status != "" && !res.child {
		alone := r.stepSize == 1 && index < 0 && (res.status == store.InvocationOK || res.status == store.InvocationContinued)
		// The record of a top-level invocation alone in its step is kept
		// with its step's checkpoint, where the store derives its path
		// from its step and node; the journal may lend a record to reuse.
		path := c.path
		if path == "" && !(alone && r.prefix == "") {
			path = c.pathOf()
		}
		inv := r.invocation(r.reusable(alone), n, path, index, res, started, ended)
		r.finished(inv, alone && (res.status == store.InvocationOK || res.status == store.InvocationContinued))
	}
	if r.sink != nil {
		ev := Event{Event: EventNodeEnd, Node: n.name, Index: idxp, Path: c.path, Attempt: res.attempts, Step: c.step,
			DurationMS: ended.Sub(started).Milliseconds(), TS: ended}
		switch res.status {
		case store.InvocationInterrupted:
			for _, in := range res.intrs {
				var ip *int
				if in.Index >= 0 {
					ip = &in.Index
				}
				c.emit(Event{Event: EventInterrupt, Node: in.Node, Index: ip, Path: in.Path, Step: c.step, Message: in.Message, Budget: in.Budget})
			}
			return
		case store.InvocationFailed, "":
			ev.Event = EventNodeError
		}
		if res.err != nil {
			ev.Error, ev.Kind = res.err.Error(), string(res.kind)
		}
		ev.GenAI = c.genai
		if len(res.writes) > 0 {
			ev.Writes = make(map[string]any, len(res.writes))
			for _, w := range res.writes {
				ev.Writes[w.key.name] = r.red.value(w.val)
			}
		}
		c.emit(ev)
	}
}

// stubbed returns the result Options.Stubs gives c, if any.
func (r *run) stubbed(c *call) (any, bool) {
	if r.opts.Stubs == nil {
		return nil, false
	}
	v, ok := r.opts.Stubs(c.pathOf(), c.n.name, c.index)
	if !ok {
		return nil, false
	}
	return normalize(v), true
}

// setInv sets the nodes.Invocation handed to the type, except With and
// Data (cleared; call.run sets them) and Attempt (set by attempts). Field
// by field, for the reason call.reset gives.
func (c *call) setInv() {
	r, n, inv := c.r, c.n, &c.inv
	inv.RunID, inv.Workflow, inv.Node, inv.Step, inv.Index = r.id, r.g.wf.Name, n.name, c.step, c.index
	inv.Prepared, inv.ResultFields, inv.MaxValueBytes, inv.Host, inv.Tools = n.prep, n.resultFields, r.g.wf.Config.MaxValueBytes, c, (*toolSource)(c)
	if inv.Attempt != 0 {
		inv.Attempt = 0
	}
	if inv.With != nil {
		inv.With = nil
	}
	if inv.Data != nil {
		inv.Data = nil
	}
}

// run evaluates `with` and performs the attempts.
func (c *call) run(ctx context.Context, item any) (any, int, error) {
	r, n := c.r, c.n
	c.setInv()
	if n.with != nil {
		w, err := n.with.evalMap(&c.env)
		if err != nil {
			return nil, 0, &nodes.Error{Kind: exprKind(err), Err: fmt.Errorf("with.%w", err)}
		}
		c.inv.With = w
	}
	if n.wantsData {
		var index any
		if c.index >= 0 {
			index = c.index
		}
		c.inv.Data = map[string]any{"state": c.env.State, "item": item, "index": index,
			"run": map[string]any{"id": r.id, "step": c.step, "workflow": r.g.wf.Name}}
	}
	cp := c.caps
	if cp.keyAt > 0 {
		key, err := evalString(n.poolKey, &c.env)
		if err != nil {
			return nil, 0, &nodes.Error{Kind: exprKind(err), Err: fmt.Errorf("pool.key: %w", err)}
		}
		c.kcaps = *cp
		c.kcaps.key = key
		cp = &c.kcaps
	}
	return c.withFallbacks(ctx, cp)
}

// attempts runs inv under caps until it succeeds, fails for good, or the
// retry policy gives up. Caps are held per attempt only: never while
// backing off. Each attempt's context ends after the node's timeout (from
// ac when the caller has one).
func (r *run) attempts(ctx context.Context, ac *attemptCtx, n *node, cp *caps, inv *nodes.Invocation, onWait func(string)) (any, int, error) {
	for attempt := 1; ; attempt++ {
		inv.Attempt = attempt
		if err := ctx.Err(); err != nil {
			return nil, attempt - 1, &nodes.Error{Kind: nodes.KindCancelled, Err: err}
		}
		// A call alone in its run takes only its global slot, which nothing
		// else can hold meanwhile (see call.alone): taking and giving it
		// back would change nothing, at two locked operations per node.
		took := !(cp.node == nil && len(cp.pools) == 0 && isAlone(inv))
		if took {
			if err := r.lim.acquire(ctx, cp, onWait, attempt == 1 && r.opts.tokensGiven); err != nil {
				return nil, attempt - 1, &nodes.Error{Kind: nodes.KindCancelled, Err: err}
			}
		}
		if c, _ := inv.Host.(*call); c != nil && c.top && !c.acquired {
			c.onAcquired(cp)
		}
		if !n.pure {
			// Nothing with an effect starts unless the run is still this
			// process's (SPEC §9.3): one that was stopped past its lease
			// may find another owner executing it.
			if err := r.heldLease().confirm(); err != nil {
				if took {
					r.lim.release(cp)
				}
				return nil, attempt - 1, &nodes.Error{Kind: nodes.KindCancelled, Err: err}
			}
		}
		c, _ := inv.Host.(*call)
		var began time.Time
		if r.sink != nil && c != nil && c.top {
			began = c.onAttemptStart()
		}
		res, timedOut, err := attemptOnce(ctx, ac, n, inv)
		if err != nil && ctx.Err() == nil && timedOut {
			var ne *nodes.Error
			if !errors.As(err, &ne) || ne.Kind != nodes.KindTimeout {
				err = &nodes.Error{Kind: nodes.KindTimeout, Err: fmt.Errorf("attempt %d timed out after %s: %w", attempt, n.timeout, err)}
			}
		}
		if err == nil && n.retry.outputs && c != nil && c.top && attempt < n.retry.attempts {
			// The output is part of the attempt when `on` names a kind
			// it can fail with (SPEC §3.2: a type error in its output
			// fails the node, and is retried when `on` names type): a
			// model's answer of the wrong shape is asked again.
			res = normalize(res)
			ws, oerr := c.outputs(res, nil)
			if oerr != nil && n.retry.retryable(oerr) {
				err = oerr
			} else if oerr == nil {
				c.checked = ws
				if c.checked == nil {
					c.checked = []write{}
				}
			}
		} else if err == nil && n.retry.outputs && c != nil && c.toolOut != nil && attempt < n.retry.attempts {
			// The same for a tool's own `output`: a call whose result
			// it cannot read is made again, not answered with the error.
			res = normalize(res)
			if oerr := c.toolOut.eval(&c.env, res); oerr != nil && n.retry.retryable(oerr) {
				err = oerr
			}
		}
		if !began.IsZero() {
			c.onAttemptEnd(began, err)
		}
		switch {
		case !took:
		case c != nil && c.top && (err == nil || asInterrupt(err) != nil || ctx.Err() != nil || attempt >= n.retry.attempts || !n.retry.retryable(err)):
			c.held = cp // the last attempt: see call.held
		default:
			r.lim.release(cp)
		}
		if err == nil {
			return normalize(res), attempt, nil
		}
		if asInterrupt(err) != nil {
			return nil, attempt, err
		}
		if ctx.Err() != nil {
			return nil, attempt, &nodes.Error{Kind: nodes.KindCancelled, Err: ctx.Err()}
		}
		if attempt >= n.retry.attempts || !n.retry.retryable(err) {
			return nil, attempt, err
		}
		d, werr := n.retry.delay(attempt, err)
		if werr != nil {
			return nil, attempt, werr
		}
		if r.sink != nil {
			ev := Event{Event: EventRetry, Node: n.name, Path: pathOf(inv), Step: inv.Step, Attempt: attempt, Error: err.Error(),
				Kind: string(nodes.KindOf(err)), DelayMS: d.Milliseconds()}
			if inv.Index >= 0 {
				i := inv.Index
				ev.Index = &i
			}
			r.emit(ev)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, attempt, &nodes.Error{Kind: nodes.KindCancelled, Err: ctx.Err()}
		}
	}
}

// isAlone reports whether inv is a call marked alone.
func isAlone(inv *nodes.Invocation) bool {
	c, _ := inv.Host.(*call)
	return c != nil && c.alone
}

// attemptOnce runs one attempt in a context that ends after the node's
// timeout and reports whether that timeout ended it.
func attemptOnce(ctx context.Context, ac *attemptCtx, n *node, inv *nodes.Invocation) (res any, timedOut bool, err error) {
	switch {
	case n.timeout <= 0:
		res, err = runAttempt(ctx, n.typ, inv)
		return res, false, err
	case ac != nil:
		res, err = runAttempt(ac.begin(ctx, n.timeout), n.typ, inv)
		return res, ac.end(), err
	default:
		actx, cancel := context.WithTimeoutCause(ctx, n.timeout, &nodes.TimeoutCause{After: n.timeout})
		defer cancel()
		res, err = runAttempt(actx, n.typ, inv)
		return res, actx.Err() == context.DeadlineExceeded, err
	}
}

// runAttempt runs one attempt of the type and, when it asks for a child
// workflow (a *nodes.ChildRun), runs the child in the same attempt: the
// child's final state is the attempt's result.
func runAttempt(ctx context.Context, t nodes.Type, inv *nodes.Invocation) (any, error) {
	res, err := safeRun(ctx, t, inv)
	if err != nil {
		locateField(inv, err)
	}
	cr, ok := res.(*nodes.ChildRun)
	if !ok || err != nil {
		return res, err
	}
	c, _ := inv.Host.(*call)
	if c == nil {
		return nil, nodes.Errorf(nodes.KindInput, "%s: a child workflow needs the runner's host", inv.Node)
	}
	st, err := c.runChild(ctx, cr)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// locateField completes a failure inside a with field's text (a
// template's line:col) with where that text is in the file.
func locateField(inv *nodes.Invocation, err error) {
	var fe *nodes.FieldError
	if c, _ := inv.Host.(*call); c != nil && errors.As(err, &fe) && fe.At == "" {
		if pos := withFieldPos(c.n.spec, fe.Field); pos.Line > 0 {
			fe.At = fmt.Sprintf("%s:%d:%d", c.r.g.wf.File, pos.Line, pos.Col)
		}
	}
}

// safeRun runs one attempt, turning a panic into a KindPanic error.
func safeRun(ctx context.Context, t nodes.Type, inv *nodes.Invocation) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &nodes.Error{Kind: nodes.KindPanic, Err: fmt.Errorf("panic: %v", p)}
		}
	}()
	return t.Run(ctx, inv)
}

// outputs evaluates the node's `output` with result and error set, and
// type-checks every write against its key.
func (c *call) outputs(result any, errObj map[string]any) ([]write, error) {
	n := c.n
	if len(n.output) == 0 {
		return nil, nil
	}
	c.env.Result = result
	if errObj != nil {
		c.env.Error = errObj
	} else {
		c.env.Error = nil
	}
	ws := c.buf[:0]
	if cap(ws) < len(n.output) {
		ws = make([]write, 0, len(n.output))
	}
	for i, o := range n.output {
		v, err := o.val.eval(&c.env)
		if err != nil {
			if t, ok := nonStringKey(o.val, err); ok {
				// A map literal with a computed key that is not a string
				// (SPEC §9.6: a write of a map with non-string keys fails
				// with kind type): expr reports it as a Go conversion.
				return nil, &nodes.Error{Kind: nodes.KindType, Err: fmt.Errorf("node %s: write to state key %q (%s): the value is not JSON: a map key is %s, not a string (JSON keys are strings: write string(KEY))",
					n.name, o.key.name, c.r.outputPos(n, i), t)}
			}
			return nil, &nodes.Error{Kind: exprKind(err), Err: fmt.Errorf("output.%s: %w", o.key.name, err)}
		}
		if o.key.fitsAsIs(v) { // never for a messages key
			if f, ok := v.(float64); !ok || (!math.IsNaN(f) && !math.IsInf(f, 0)) {
				ws = append(ws, write{key: o.key, val: v}) // JSON, and fits as it is
				continue
			}
		}
		// Only JSON is written (SPEC §9.6): what the record could not hold
		// fails here, naming the write, never stored as null.
		v, problem := jsonValue(v)
		if problem != "" {
			return nil, &nodes.Error{Kind: nodes.KindType, Err: fmt.Errorf("node %s: write to state key %q (%s): the value is not JSON: %s",
				n.name, o.key.name, c.r.outputPos(n, i), problem)}
		}
		fitted, bad := fitWrite(o.key, v)
		if bad != "" {
			return nil, &nodes.Error{Kind: nodes.KindType, Err: fmt.Errorf("node %s: write to state key %q: expected %s, got %s",
				n.name, o.key.name, expectedType(o.key), bad)}
		}
		if o.key.reducerName == spec.ReducerMessages {
			fitted = withMessageIDs(fitted, c.pathOf())
		}
		ws = append(ws, write{key: o.key, val: fitted})
	}
	return ws, nil
}

// onWait reports that the invocation waits for a cap.
func (c *call) onWait(what string) {
	if c.r.sink == nil {
		return
	}
	ev := Event{Event: EventWait, Node: c.n.name, Path: c.pathOf(), Step: c.step, Waiting: what}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	c.emit(ev)
}

// releaseHeld releases the caps the last attempt kept, if any.
func (c *call) releaseHeld() {
	if c.held != nil {
		c.r.lim.release(c.held)
		c.held = nil
	}
}

// passTurn lets the next item of the for_each take its caps; only the
// first call counts.
func (c *call) passTurn() {
	if c.turn.ts != nil {
		c.turn.pass()
		c.turn = turn{}
	}
}

// onAcquired reports that the invocation's first attempt holds its caps.
// The turn passes only after the acquired event is sent, so the stream
// shows the items of a for_each acquiring in index order too.
func (c *call) onAcquired(cp *caps) {
	c.acquired = true
	if c.r.sink == nil || cp.none {
		c.passTurn()
		return
	}
	defer c.passTurn()
	now := time.Now()
	if c.callsFirst() {
		now = c.started
	}
	ev := Event{Event: EventAcquired, Node: c.n.name, Path: c.pathOf(), Step: c.step, TS: now,
		DurationMS: now.Sub(c.started).Milliseconds()}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	c.emit(ev)
}

// onAttemptStart reports that an attempt of the invocation begins, its
// caps held, and returns when.
func (c *call) onAttemptStart() time.Time {
	c.attempt++
	now := time.Now()
	if c.callsFirst() {
		now = c.started
	}
	ev := Event{Event: EventAttemptStart, Node: c.n.name, Path: c.pathOf(), Step: c.step, TS: now, Attempt: c.attempt}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	c.emit(ev)
	return now
}

// onAttemptEnd reports that the attempt begun at began ended with err
// (nil: it succeeded); emit redacts the error's message.
func (c *call) onAttemptEnd(began time.Time, err error) {
	now := time.Now()
	ev := Event{Event: EventAttemptEnd, Node: c.n.name, Path: c.pathOf(), Step: c.step, TS: now, Attempt: c.attempt,
		DurationMS: now.Sub(began).Milliseconds()}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	if err != nil && asInterrupt(err) == nil { // a pause is no failure: the interrupt event follows
		ev.Error, ev.Kind = err.Error(), string(nodes.KindOf(err))
	}
	c.emit(ev)
}

// invocation builds the store record of a finished invocation and its
// writes (secrets redacted). An interrupted invocation keeps its message
// in Error, so that resume can show what it waits for.
func (r *run) invocation(dst *store.Invocation, n *node, path string, index int, res *invResult, started, ended time.Time) *store.Invocation {
	var buf []byte
	if dst != nil { // its writes' buffer is free too
		buf = dst.Writes[:0]
	}
	b, err := r.encodeWrites(buf, res.writes)
	if err != nil {
		// outputs lets only JSON through, so this is a bug; but a write
		// recorded as null would let a resume complete the run without
		// it (SPEC §9.6). The invocation fails instead.
		res.status, res.kind, res.writes = store.InvocationFailed, nodes.KindType, nil
		res.err = &nodes.Error{Kind: nodes.KindType, Err: fmt.Errorf("node %s: %w", n.name, err)}
		b = []byte("{}")
	}
	if res.llm != nil {
		if withLLM, err := appendLLMRecord(b, res.llm); err == nil {
			b = withLLM
		}
	}
	if dst == nil {
		dst = new(store.Invocation)
	}
	inv := dst
	*inv = store.Invocation{RunID: r.id, Path: path, Step: r.recordStep(), Node: n.name, Index: index, Status: res.status,
		Writes: b, Attempts: res.attempts, StartedAt: started, EndedAt: ended}
	if res.err != nil {
		inv.Error = r.red.str(res.err.Error())
		inv.ErrorKind = string(res.kind)
	}
	if res.status == store.InvocationInterrupted && len(res.intrs) == 1 {
		inv.Error = r.red.str(res.intrs[0].Message)
		if res.intrs[0].Budget != "" {
			inv.ErrorKind = string(nodes.KindBudget)
		}
	}
	return inv
}

// encodeWrites appends writes to dst (nil: a new buffer) as the JSON
// object of an invocation record (secrets redacted); a value that does
// not encode is an error, never null.
func (r *run) encodeWrites(dst []byte, ws []write) ([]byte, error) {
	b := dst
	if b == nil {
		b = make([]byte, 0, 64)
	}
	b = append(b, '{')
	for i, w := range ws {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, w.key.jsonName...)
		b = append(b, ':')
		switch v := w.val.(type) { // the common scalars without reflection
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case bool:
			b = strconv.AppendBool(b, v)
		case nil:
			b = append(b, "null"...)
		default:
			j, err := json.Marshal(r.red.value(v))
			if err != nil {
				return nil, fmt.Errorf("record the write to state key %q: %w", w.key.name, err)
			}
			b = append(b, j...)
		}
	}
	return append(b, '}'), nil
}

// decodeWrites turns recorded writes back into writes, in output order.
func (r *run) decodeWrites(n *node, raw json.RawMessage) ([]write, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("recorded writes: %w", err)
	}
	var ws []write
	for _, o := range n.output {
		v, ok := m[o.key.name]
		if !ok {
			continue
		}
		fitted, bad := fitWrite(o.key, value.NormalizeDeep(v))
		if bad != "" {
			return nil, fmt.Errorf("recorded write to %s: expected %s, got %s", o.key.name, o.key.typ, bad)
		}
		ws = append(ws, write{key: o.key, val: fitted})
	}
	return ws, nil
}

// pathOf returns the invocation's path, building it on first use.
func (c *call) pathOf() string {
	if c.path == "" {
		c.path = invocationPath(c.r.prefix, c.step, c.n.name, c.index)
	}
	return c.path
}

// pathOf returns the path of the invocation inv belongs to.
func pathOf(inv *nodes.Invocation) string {
	if c, ok := inv.Host.(*call); ok {
		return c.pathOf()
	}
	return ""
}

// recordStep is the top-level step the run's invocations are recorded
// under: its own step, or for a subgraph's run the parent's.
func (r *run) recordStep() int {
	if r.prefix != "" {
		return r.topStep
	}
	return r.step
}

// withMessageIDs gives every message of a messages write that has no id a
// deterministic one from the invocation's path and the message's position
// in the write (SPEC §9.6). Messages are copied, never modified in place:
// they may be shared with the state or a result.
func withMessageIDs(v any, path string) any {
	switch x := v.(type) {
	case map[string]any:
		if nm, changed := withMessageID(x, path, 0); changed {
			return nm
		}
	case []any:
		var out []any
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			if nm, changed := withMessageID(m, path, i); changed {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = nm
			}
		}
		if out != nil {
			return out
		}
	}
	return v
}

// withMessageID returns m with an id added when it has none (changed), or
// m itself.
func withMessageID(m map[string]any, path string, position int) (map[string]any, bool) {
	if id, ok := m["id"]; ok && id != nil {
		return m, false
	}
	if rm, _ := m["remove"].(bool); rm {
		return m, false // the reducer reports the missing id
	}
	nm := maps.Clone(m)
	nm["id"] = messageID(path, position)
	return nm, true
}

// asInterrupt returns the *nodes.Interrupt in err's chain, or nil.
func asInterrupt(err error) *nodes.Interrupt {
	var intr *nodes.Interrupt
	if errors.As(err, &intr) {
		return intr
	}
	return nil
}
