package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/nodes/llm"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Options configure one run.
type Options struct {
	// Inputs are the run's inputs; every key must be a declared state key
	// and every required key must be present. JSON numbers (float64) are
	// accepted for integer keys when integral.
	Inputs map[string]any
	// Store records the run durably; nil records nothing (not resumable).
	Store store.Store
	// Sink receives events; nil discards them.
	Sink Sink
	// Concurrency overrides config.concurrency when > 0.
	Concurrency int
	// RunID names the run; "" generates a new sortable ULID.
	RunID string
	// Environ is the process environment as KEY=VALUE pairs, captured for
	// `env`, `secrets` and providers; nil means os.Environ().
	Environ []string
	// HTTPClient is shared by the run's nodes; nil builds one with
	// nodes.NewHTTPClient.
	HTTPClient *http.Client
	// MCPTransport, when set, connects MCP servers instead of their
	// declarations (in-process servers in tests).
	MCPTransport MCPTransportFunc
	// StepState attaches a copy of the full state to every step_end event
	// (for `--stream values`); it costs a map copy per step.
	StepState bool

	// Answer answers the interrupts a resumed run waits at (Resume only).
	Answer Answer
	// Stubs, when set, is asked before each invocation of the run runs:
	// ok means result is the invocation's result and the node type does
	// not run (`lgx test` stubs). The result goes through the node's
	// `output` as a real one would. A subgraph's invocations ask it with
	// node SUBGRAPH/NODE (see childStubs).
	Stubs func(path, node string, index int) (result any, ok bool)
	// InvocationContext, when set, derives the context of each invocation
	// of the run (not of its subgraphs) before its attempts, after its
	// node_start event: tracing puts the invocation's span there so the
	// HTTP requests it makes are its children.
	InvocationContext func(ctx context.Context, run, path string) context.Context

	// Machine takes the slots and rate tokens of the workflow's
	// machine-wide pools (those of the user's config); a workflow that
	// names one fails to start without it. Resume applies its config to
	// the recorded workflow.
	Machine *MachinePools

	// dispatcher, when set (tests), replaces the local dispatcher.
	dispatcher func(*run) dispatcher
	// tokensGiven: the engine that dispatches each invocation took its
	// first attempt's rate tokens (a distributed engine's scheduler holds
	// the pools' rates); only retries take them here.
	tokensGiven bool
	// leaseTTL, when set (tests), replaces store.LeaseTTL.
	leaseTTL time.Duration
	// limits, set for subgraphs, are the parent's caps.
	limits *limits
	// parent, set for subgraphs, links the child run to the invocation
	// that runs it.
	parent *parentLink
}

// Result is the outcome of Run or Resume. It is returned (non-nil) whenever
// the run started, alongside the error for failed and cancelled runs.
type Result struct {
	RunID    string
	Workflow string
	// Status is completed, failed, cancelled or interrupted.
	Status store.Status
	// State is the final state: after the last step applied (for a failed,
	// cancelled or interrupted run, as of its last checkpoint), with
	// declared secrets replaced by `***`.
	State map[string]any
	// Output holds the workflow's `output` keys (every key when the
	// workflow has no `output:`), taken from State.
	Output map[string]any
	// Steps is the number of the last super-step started (for a completed
	// run: the number of steps that ran).
	Steps int
	// Interrupts lists every interrupt the run waits at when Status is
	// interrupted, in file and index order (inside subgraphs too).
	Interrupts []Interrupt
	// InterruptNode, InterruptIndex (-1 without for_each) and
	// InterruptMessage (secrets redacted) describe the first of them.
	InterruptNode    string
	InterruptIndex   int
	InterruptMessage string
	// Budgets are the token budgets' usage against their limits (SPEC
	// §9.9), the run's first; nil when the workflow declares none.
	Budgets []BudgetUsage
}

// Interrupt is one interrupt a run waits at (SPEC §9.4).
type Interrupt struct {
	// Path is the interrupt invocation's path, e.g. "2/review" or
	// "3/approve_each[1]/2/review" inside a subgraph.
	Path string `json:"path"`
	// Node is the interrupt node's name, Index its for_each item (-1: none).
	Node    string `json:"node"`
	Index   int    `json:"index"`
	Message string `json:"message"`
	// Budget names the budget an llm_call paused for (on_exhausted:
	// interrupt); "" for an interrupt node.
	Budget string `json:"budget,omitempty"`
	// Answer is what the interrupt's with.answer declares (field → type),
	// for the CLI's resume hint; nil when it declares none or is not
	// known (not part of events or records).
	Answer map[string]string `json:"-"`
}

// run is the state of one execution of a Graph.
type run struct {
	g        *Graph
	id       string
	opts     Options
	sink     Sink
	lim      *limits
	caps     []*caps // per node; nodes without caps of their own share Graph.noCaps
	tcaps    map[string]*caps
	http     *http.Client // nil until a node asks (see call.HTTPClient)
	httpOnce sync.Once
	// httpRec, for a run recorded on an engine, records its invocations'
	// requests (steprecord.go); nil otherwise.
	httpRec *httpRecorder
	// httpClosed is closed once the goroutine startClosingHTTP started
	// has closed http's connections; nil when none was started.
	httpClosed chan struct{}
	// ownHTTP is http once the run built it (not a client from Options),
	// for a worker that has not used it to read.
	ownHTTP atomic.Pointer[http.Client]

	red       redactor
	providers map[string]*nodes.Provider
	startedAt time.Time
	deadline  time.Duration
	parentCtx context.Context

	// disp runs each step's invocations (dispatch.go).
	disp dispatcher

	// core holds the state and the super-step bookkeeping (core.go), and
	// journal what makes the run durable (journal.go); their fields are
	// the run's (r.state, r.step, r.st, …).
	core
	journal

	stepEnd  time.Time   // when the step's barrier was passed (shared by its events)
	pool     []*nodeRun  // nodeRuns reused from step to step
	slab     []nodeRun   // fresh nodeRuns, allocated in bulk
	slabs    [][]nodeRun // every slab the run took, handed back to Graph.slabs when its loop ends
	stepSize int         // nodes in the current step

	// prefix is "" for a top-level run and "PARENT/" for a subgraph's run:
	// its invocations' paths start with it (SPEC §9.1).
	prefix string
	// topStep is the top-level step a subgraph's run belongs to (its
	// invocations are recorded under it); a top-level run uses step.
	topStep int
	// depth counts subgraph nesting: 0 for a top-level run.
	depth int
	// subs are the child workflows the run can call, shared by the tree.
	subs *subgraphs

	// resume: the recorded invocations of the step a resume continues,
	// keyed by path (shared with subgraphs run in that step; nil once the
	// step has passed), and the answers to its waiting interrupts.
	recorded map[string]*store.Invocation
	answers  map[string]map[string]any

	// mcp holds the MCP servers the run started (see mcp.go).
	mcp     *mcpRun
	mcpOnce sync.Once

	// stepCalls, for a run driven step by step (StepRun), are the tool
	// calls the engine ran: tools invocations read them, not call tools.
	stepCalls *stepCalls
}

// write is one state write of an invocation.
type write struct {
	key *keyInfo
	val any
}

// nodeRun is one node of a step and its invocations (one, or one per item).
type nodeRun struct {
	n     *node
	items []any // nil when the node has no for_each
	res   []invResult
	one   [1]invResult // res of a node without for_each
}

// invResult is the outcome of one invocation.
type invResult struct {
	writes []write
	wbuf   [2]write // backing store of writes for small outputs
	status string   // a store.Invocation* status
	err    error    // failure (status failed) or cancellation
	kind   nodes.Kind
	// repeats: the failure depends only on what a resume restores (see
	// failureRepeats), so a resume would meet it again.
	repeats bool
	// intrs are the interrupts the invocation waits at: its own, or those
	// of the subgraph it runs (child is then true: only the interrupt
	// invocations themselves are recorded).
	intrs     []Interrupt
	child     bool
	attempts  int
	reused    bool
	resumeVal map[string]any // feed as result instead of running (resume of an interrupt)
	llm       *LLMRecord     // an llm_call's provider and usage, recorded with its writes
	turn      turn           // the item's place in its for_each's turnstile, if it has one
}

func (ir *invResult) failed() bool { return ir.status == store.InvocationFailed }

func (ir *invResult) interrupted() bool { return ir.status == store.InvocationInterrupted }

// Run executes a compiled graph (SPEC §4.1) until no node is triggered, a
// node fails, an interrupt pauses it, the recursion limit or config.timeout
// is reached, or ctx is cancelled. The error is an *InputError (nothing
// ran), *NodeError, *ConflictError, *RecursionError, *TimeoutError,
// ErrCancelled (wrapped) or a store error; an interrupt is not an error
// (Result.Status is interrupted).
func Run(ctx context.Context, g *Graph, opts Options) (*Result, error) {
	r, err := newRun(g, opts)
	if err != nil {
		return nil, err
	}
	defer r.closeMCP()
	if err := r.initState(opts.Inputs); err != nil {
		return nil, err
	}
	if r.subs == nil {
		// A top-level run: every child workflow is loaded and checked now,
		// and recorded with the run.
		if r.subs, err = loadSubgraphs(g, os.ReadFile); err != nil {
			return nil, err
		}
	}
	if r.st != nil {
		inputs, byKey, err := marshalInputs(opts.Inputs, r.red)
		if err != nil {
			return nil, &InputError{Msg: fmt.Sprintf("inputs: %v", err)}
		}
		r.journal.cpEnc.inputs = byKey
		var values map[string]json.RawMessage
		if byKey != nil {
			values = make(map[string]json.RawMessage, len(byKey))
			for k, in := range byKey {
				values[k] = in.b
			}
		}
		err = r.journal.create(ctx, &store.Run{ID: r.id, Workflow: g.wf.Name, File: g.wf.File, Source: g.wf.Source,
			Inputs: inputs, InputValues: values, Status: store.StatusRunning, StartedAt: r.startedAt, Subgraphs: r.subs.sources})
		if err != nil {
			return nil, err
		}
	}
	return r.begin(ctx)
}

// begin emits run_start, triggers the nodes START leads to, writes the
// step-0 checkpoint (the whole initial state) and runs the loop.
func (r *run) begin(ctx context.Context) (*Result, error) {
	g := r.g
	r.emit(Event{Event: EventRunStart, Workflow: g.wf.Name})
	if err := r.core.begin(ctx); err != nil {
		return r.finish(ctx, store.StatusFailed, err)
	}
	if w := r.firstStepWorkers(); w > 0 {
		// Started while the step-0 checkpoint is written, on the core
		// that writing leaves idle, rather than in the first step's wave
		// (BenchmarkHTTPThroughput/alternate: +0.026 median, 9 of 10
		// sets better; see localDispatcher.work).
		if d, ok := r.disp.(*localDispatcher); ok {
			d.startWorkers(w)
		}
	}
	if err := r.checkpoint(ctx); err != nil {
		r.disp.close() // the loop, which closes it, does not run
		return r.finish(ctx, store.StatusFailed, err)
	}
	r.changed = r.changed[:0]
	return r.loop(ctx)
}

// firstStepWorkers is how many workers the run's first step can use: as
// many as its invocations that do work, a for_each counting as many as
// the global cap lets run at once (its items are not known yet); 0 when
// it has one invocation, which runs on the loop's goroutine.
func (r *run) firstStepWorkers() int {
	n := 0
	for _, ni := range r.next {
		switch nd := r.g.nodes[ni]; {
		case nd.instant:
		case nd.each != nil:
			return r.lim.global.capacity() // 0 without a cap (never for a run: it defaults)
		default:
			n++
		}
	}
	if n < 2 {
		return 0
	}
	return n
}

// newRun prepares a run's shared parts: id, environment, secrets, caps.
func newRun(g *Graph, opts Options) (*run, error) {
	r := &run{g: g, opts: opts, sink: opts.Sink, id: opts.RunID, startedAt: time.Now()}
	r.st, r.leaseTTL = opts.Store, opts.leaseTTL
	if r.sink == Discard {
		r.sink = nil
	}
	if p := opts.parent; p != nil {
		r.prefix, r.topStep, r.depth, r.subs = p.prefix, p.topStep, p.depth, p.subs
		r.rec, r.recorded, r.answers, r.stepCalls = p.rec, p.recorded, p.answers, p.stepCalls
		r.httpRec = p.httpRec
		r.st, r.sink = nil, nil // the parent records the run
	}
	if r.id == "" {
		r.id = ulid.Make().String()
	}
	r.runID = r.id
	r.disp = &localDispatcher{r: r}
	if opts.dispatcher != nil {
		r.disp = opts.dispatcher(r)
	}
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	r.env = make(map[string]any, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			r.env[k] = v
		}
	}
	if err := checkSecrets(g.wf, r.env); err != nil {
		return nil, err
	}
	r.secrets = make(map[string]any, len(g.wf.Secrets))
	var secretVals []string
	for _, s := range g.wf.Secrets {
		v, _ := r.env[s.Value].(string)
		r.secrets[s.Value] = v
		secretVals = append(secretVals, v)
	}
	// Providers: resolved once; their API keys count as secrets.
	r.providers = make(map[string]*nodes.Provider, len(g.providers))
	var penv *exprEnv // built for the first provider: a run without any allocates none
	for name, p := range g.providers {
		rp := &nodes.Provider{Name: name, Kind: p.kind}
		if penv == nil {
			penv = &exprEnv{Env: r.env, Secrets: r.secrets}
		}
		var err error
		if rp.Model, err = evalString(p.model, penv); err == nil {
			if rp.BaseURL, err = evalString(p.baseURL, penv); err == nil {
				rp.APIKey, err = evalString(p.key, penv)
			}
		}
		if err != nil {
			// The failing expression's text may quote a secret's value (or
			// the default key env var's): redact it like any output.
			keys := secretVals
			for _, kind := range llm.Kinds {
				k, _ := r.env[llm.KeyEnv(kind)].(string)
				keys = append(keys, k)
			}
			red := newRedactor(keys)
			return nil, &InputError{Msg: red.str(fmt.Sprintf("provider %s: %v", name, err))}
		}
		for _, f := range []struct {
			name string
			c    cval
			got  string
		}{{"model", p.model, rp.Model}, {"base_url", p.baseURL, rp.BaseURL}, {"api_key", p.key, rp.APIKey}} {
			if err := emptyProviderField(name, f.name, f.c, f.got, r.env); err != nil {
				return nil, err
			}
		}
		if rp.APIKey == "" {
			rp.APIKey, _ = r.env[llm.KeyEnv(p.kind)].(string)
		}
		secretVals = append(secretVals, rp.APIKey)
		r.providers[name] = rp
	}
	if opts.parent != nil { // a secret handed to a child stays one there
		secretVals = append(secretVals, opts.parent.red.secrets...)
	}
	r.red = newRedactor(secretVals)
	r.runInfo = spec.ExprRun{ID: r.id, Workflow: g.wf.Name}

	conc := g.concurrency
	if opts.Concurrency > 0 {
		conc = opts.Concurrency
	}
	r.lim = opts.limits
	if r.lim == nil {
		r.lim = newLimits(conc, g.wf.Pools)
		if err := r.lim.attachMachine(opts.Machine, g.wf.Pools, r.id); err != nil {
			return nil, err
		}
	} else {
		r.lim = r.lim.child(g.wf.Pools, opts.parent.prefix)
	}
	r.lim.setBudgets(g.wf)
	r.caps = g.caps // read-only; copied when some node needs caps of its own
	if g.ownCaps > 0 {
		r.caps = make([]*caps, len(g.nodes))
		copy(r.caps, g.caps)
		owned := make([]caps, 0, g.ownCaps) // one allocation for the nodes with caps of their own
		for i, n := range g.nodes {
			if n.ownCaps() {
				owned = append(owned, r.nodeCaps(n))
				r.caps[i] = &owned[len(owned)-1]
			}
		}
	}
	r.tcaps = make(map[string]*caps, len(g.tools))
	for name, t := range g.tools {
		c := r.nodeCaps(t.node)
		r.tcaps[name] = &c
	}
	r.http = opts.HTTPClient
	r.core.init(g)
	if g.timeout > 0 {
		r.deadline = g.timeout
	}
	return r, nil
}

func (r *run) nodeCaps(n *node) caps {
	c := caps{node: newSemaphore(n.spec.Concurrency), none: n.caps.none}
	for _, name := range n.poolNames {
		if p, ok := r.lim.pools[name]; ok {
			c.pools = append(c.pools, p)
			if name == n.keyPool && n.poolKey != nil {
				c.keyAt = len(c.pools)
			}
		}
	}
	return c
}

func evalString(c cval, env *exprEnv) (string, error) {
	if c == nil {
		return "", nil
	}
	v, err := c.eval(env)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	appendText(&b, v)
	return b.String(), nil
}

// emit sends an event, stamping run id and time.
func (r *run) emit(e Event) {
	if r.sink == nil {
		return
	}
	e.Run = r.id
	if e.TS.IsZero() {
		e.TS = time.Now()
	}
	if e.Step == 0 {
		e.Step = r.step
	}
	if e.Error != "" {
		e.Error = r.red.str(e.Error)
	}
	if e.Message != "" {
		e.Message = r.red.str(e.Message)
	}
	if e.Waiting != "" { // a pool key may be computed from a secret
		e.Waiting = r.red.str(e.Waiting)
	}
	r.sink.Emit(e)
}

// loop runs super-steps until none is triggered.
func (r *run) loop(ctx context.Context) (*Result, error) {
	runCtx := ctx
	r.parentCtx = ctx
	defer r.recycleSlabs() // last: after the workers, nothing reads a nodeRun then
	defer r.closeHTTP()    // after the workers: none is using the client then
	defer r.disp.close()
	r.journal.open()
	defer r.journal.close()
	if r.deadline > 0 {
		elapsed := time.Since(r.startedAt)
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, r.deadline-elapsed)
		defer cancel()
	}
	if r.lease != nil {
		// Another process took the run (SPEC §9.3): stop its invocations
		// at once, not only at the next step.
		var cancel context.CancelFunc
		runCtx, cancel = context.WithCancel(runCtx)
		defer cancel()
		lost := r.lease.lostCh()
		go func() {
			select {
			case <-lost:
				cancel()
			case <-runCtx.Done():
			}
		}()
	}
	var runs []*nodeRun
	var cur []int
	for len(r.next) > 0 {
		if err := r.ctxErr(runCtx); err != nil {
			return r.finish(ctx, r.ctxStatus(), err)
		}
		if r.leaseLost() {
			return r.finish(ctx, store.StatusFailed, nil)
		}
		var err error
		if cur, err = r.plan(cur); err != nil {
			return r.finish(ctx, store.StatusFailed, err)
		}
		runs = runs[:0]
		r.stepSize = len(cur)
		for _, ni := range cur {
			nr, err := r.prepare(ctx, ni)
			if err != nil {
				return r.finish(ctx, store.StatusFailed, err)
			}
			runs = append(runs, nr)
		}
		if err := r.planConflicts(runs); err != nil {
			return r.finish(ctx, store.StatusFailed, err)
		}
		pure := true
		for _, nr := range runs {
			pure = pure && nr.n.pure
		}
		if err := r.beginStep(ctx, pure, r.step); err != nil {
			return r.finish(ctx, store.StatusFailed, err)
		}
		if r.sink != nil {
			ev := Event{Event: EventStepStart, Nodes: r.nodeNames(cur)}
			for _, nr := range runs {
				if nr.items != nil {
					if ev.Items == nil {
						ev.Items = make(map[string]int, 1)
					}
					ev.Items[nr.n.name] = len(nr.items)
				}
			}
			r.emit(ev)
		}
		r.disp.dispatch(runCtx, runs)
		if lastStep(runs) {
			r.startClosingHTTP() // while the step is recorded
		}
		if err := r.barrier(r.step); err != nil {
			return r.finish(ctx, store.StatusFailed, err)
		}

		out := r.outcome(runs)
		if out.failure != nil {
			return r.finish(ctx, store.StatusFailed, out.failure)
		}
		if out.cancelled {
			if err := r.ctxErr(runCtx); err != nil {
				return r.finish(ctx, r.ctxStatus(), err)
			}
		}
		if intrs := out.intrs; len(intrs) > 0 {
			res, err := r.finish(ctx, store.StatusInterrupted, nil)
			schema := answerSchema(r.g, r.subs)
			for i := range intrs {
				intrs[i].Message = r.red.str(intrs[i].Message)
				if intrs[i].Budget == "" {
					intrs[i].Answer = schema(&intrs[i])
				}
			}
			res.Interrupts = intrs
			res.InterruptNode, res.InterruptIndex, res.InterruptMessage = intrs[0].Node, intrs[0].Index, intrs[0].Message
			return res, err
		}
		if err := r.commit(ctx, runs); err != nil {
			return r.finish(ctx, store.StatusFailed, err)
		}
		if len(r.next) == 0 {
			r.startClosingHTTP() // the last step is over (its conditions led nowhere)
		}
		r.stepEnd = time.Time{}
		if r.sink != nil {
			r.stepEnd = time.Now()
			ev := Event{Event: EventStepEnd, TS: r.stepEnd}
			if r.opts.StepState {
				ev.State = r.red.value(maps.Clone(r.state)).(map[string]any)
			}
			r.emit(ev)
		}
		if err := r.checkpoint(ctx); err != nil {
			return r.finish(ctx, store.StatusFailed, err)
		}
		r.pool = append(r.pool, runs...)
		if r.prefix == "" {
			r.recorded, r.answers = nil, nil // the resumed step has passed
		}
	}
	return r.finish(ctx, store.StatusCompleted, nil)
}

// resize returns res with length n, every element zero except that each
// keeps its writes buffer for reuse.
func resize(res []invResult, n int) []invResult {
	if cap(res) < n {
		return make([]invResult, n)
	}
	res = res[:n]
	for i := range res {
		res[i].clear()
	}
	return res
}

// ctxErr reports the run's cancellation or deadline as an error.
func (r *run) ctxErr(runCtx context.Context) error {
	if runCtx.Err() == nil {
		return nil
	}
	if r.leaseLost() {
		return r.lease.lostReason()
	}
	if r.parentCtx.Err() != nil {
		return fmt.Errorf("%w at step %d: %w", ErrCancelled, r.step, r.parentCtx.Err())
	}
	return &TimeoutError{Timeout: r.deadline}
}

func (r *run) ctxStatus() store.Status {
	if r.parentCtx.Err() != nil {
		return store.StatusCancelled
	}
	return store.StatusFailed
}

// prepare builds a step's nodeRun: for_each items evaluated against the
// snapshot, recorded invocations reused on resume.
func (r *run) prepare(ctx context.Context, ni int) (*nodeRun, error) {
	n := r.g.nodes[ni]
	var nr *nodeRun
	if k := len(r.pool); k > 0 {
		nr = r.pool[k-1]
		r.pool = r.pool[:k-1]
		res := nr.res
		if len(res) > 0 && &res[0] == &nr.one[0] {
			res = nil
		}
		nr.n, nr.items, nr.res = n, nil, res[:0]
	} else {
		if len(r.slab) == 0 {
			r.slab = r.g.takeSlab(max(1, r.stepSize-len(r.pool)))
			r.slabs = append(r.slabs, r.slab)
		}
		nr = &r.slab[0]
		r.slab = r.slab[1:]
		nr.n = n
	}
	if n.each != nil {
		items, err := r.items(ctx, n)
		if err != nil {
			return nil, err
		}
		nr.items = items
		nr.res = resize(nr.res, len(items))
	} else {
		nr.one[0].clear()
		nr.res = nr.one[:]
	}
	if r.recorded != nil {
		for i := range nr.res {
			path := invocationPath(r.prefix, r.step, n.name, itemIndex(nr, i))
			rec, ok := r.recorded[path]
			if !ok {
				continue
			}
			switch rec.Status {
			case store.InvocationOK, store.InvocationContinued:
				ws, err := r.decodeWrites(n, rec.Writes)
				if err != nil {
					return nil, fmt.Errorf("resume: %s: %w", path, err)
				}
				nr.res[i] = invResult{writes: ws, status: rec.Status, reused: true, attempts: rec.Attempts}
			case store.InvocationInterrupted:
				if v, ok := r.answers[path]; ok {
					nr.res[i].resumeVal = v
				}
			}
		}
	}
	return nr, nil
}

// closeHTTP closes the keep-alive connections of a client the run built
// itself: each holds two transport goroutines, which must not outlive the
// run. A client from Options belongs to the caller.
func (r *run) closeHTTP() {
	if r.httpClosed != nil {
		<-r.httpClosed // started by startClosingHTTP
		return
	}
	if r.opts.HTTPClient == nil && r.http != nil {
		r.http.CloseIdleConnections()
	}
}

// lastStep reports whether a step is the run's last whatever its
// outcome: none of its nodes leads to another.
func lastStep(runs []*nodeRun) bool {
	for _, nr := range runs {
		if !nr.n.terminal {
			return false
		}
	}
	return true
}

// closeIdleHTTP closes the idle connections of the client the run built,
// if it built one, from a worker, once every invocation of the run's last
// step has started: none will be reused. net/http's transport then also
// closes each connection that comes back from a request until another
// request starts (its closeIdle), on that connection's own goroutine,
// while the last invocations run, so that startClosingHTTP finds almost
// none left (BenchmarkHTTPThroughput, in one process: +0.012 and +0.021
// of plain's throughput, 8 and 11 of 12 sets better). Without that
// transport behaviour only the connections idle now would close early.
func (r *run) closeIdleHTTP() {
	if c := r.ownHTTP.Load(); c != nil {
		c.CloseIdleConnections()
	}
}

// startClosingHTTP closes the run's connections, as closeHTTP does, on
// another goroutine, which closeHTTP waits for: once the run's last step
// is over nothing sends a request, and closing 64 connections (a close
// and a FIN each, then their goroutines' exit) takes about 0.8 ms, which
// then overlaps recording the run's end, its last checkpoint and its
// outcome (BenchmarkHTTPThroughput, in one process: +0.011 and +0.016 of
// plain's throughput, 7 and 11 of 12 sets better).
func (r *run) startClosingHTTP() {
	c := r.ownHTTP.Load()
	if c == nil || r.httpClosed != nil {
		return
	}
	closed := make(chan struct{})
	r.httpClosed = closed
	go func() {
		defer close(closed)
		c.CloseIdleConnections()
	}()
}

// checkpoint records the step boundary (changed keys, next nodes, joins)
// in the journal and reports it.
func (r *run) checkpoint(ctx context.Context) error {
	if r.st == nil && r.sink == nil {
		return nil
	}
	names := r.nodeNames(r.next)
	if r.st != nil {
		if err := r.journal.checkpoint(ctx, &r.core, names, r.red); err != nil {
			return err
		}
	}
	r.emit(Event{Event: EventCheckpoint, Nodes: names, TS: r.stepEnd})
	return nil
}

// finish ends the run: records the status and emits run_end.
func (r *run) finish(ctx context.Context, status store.Status, err error) (*Result, error) {
	res := &Result{RunID: r.id, Workflow: r.g.wf.Name, Status: status, Steps: r.step, InterruptIndex: -1}
	res.Budgets = r.lim.budgetUsage()
	if r.state != nil {
		res.State = r.red.value(r.state).(map[string]any)
	}
	res.Output = r.output(res.State)
	msg := ""
	if err != nil {
		msg = r.red.str(err.Error())
		var ne *NodeError
		if r.red.r != nil && errors.As(err, &ne) && ne.Err != nil {
			ne.Err = &redactedError{msg: r.red.str(ne.Err.Error()), err: ne.Err}
		}
		err = r.red.err(err) // any other error (a store's) is printed too
	}
	if r.lease != nil {
		_ = r.lease.confirm() // a lease this process lost while stopped is found lost now
	}
	if r.leaseLost() {
		// Another process executes the run now: record nothing more.
		if err == nil {
			err = r.lease.lostReason()
		}
		return res, fmt.Errorf("run %s: stopped: %w", r.id, err)
	}
	if r.st != nil {
		defer r.releaseLease() // once the outcome is recorded and reported
		if ferr := r.journal.drain(ctx, r.step); ferr != nil && err == nil {
			status, err = store.StatusFailed, ferr
			res.Status = status
		}
		if ferr := r.journal.finish(ctx, status, msg); ferr != nil && err == nil {
			err = ferr
		}
	}
	if r.sink != nil {
		r.emit(Event{Event: EventRunEnd, Status: string(status), Error: msg, State: res.Output})
	}
	return res, err
}

// output returns the workflow's output keys from a state.
func (r *run) output(state map[string]any) map[string]any {
	if state == nil {
		return nil
	}
	if r.g.wf.Output == nil {
		return maps.Clone(state)
	}
	out := make(map[string]any, len(r.g.wf.Output))
	for _, k := range r.g.wf.Output {
		out[k.Value] = state[k.Value]
	}
	return out
}

// asNodeErr returns the *nodes.Error in err's chain, or nil.
func asNodeErr(err error) *nodes.Error {
	var e *nodes.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// redactedError shows an error's message with secrets replaced, and still
// unwraps to the original for errors.Is/As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
