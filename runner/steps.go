package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// Step-at-a-time execution for a distributed engine (DESIGN.md, "Scaling
// out"). A run recorded with SubmitRun is driven from outside, one
// super-step at a time, by three calls that each open the run from the
// store and share nothing in memory:
//
//	Plan        forms the next step from the last checkpoint (names, item
//	            counts, caps); the first Plan begins the run (checkpoint 0)
//	InvokeOne   runs one invocation of the planned step, as the local
//	            engine does (with, attempts and retries, output), and
//	            records it through the journal
//	CommitStep  applies the step's recorded invocations with the step core
//	            and writes its checkpoint
//
// The barrier is the step core applied to recorded writes, so a repeated
// call (a retried or replayed activity) gives the same checkpoint: Plan
// writes nothing once checkpoint 0 exists, InvokeOne returns the record of
// an invocation already recorded instead of running it again, CommitStep of
// a committed step returns what it returned the first time. State values
// never leave the store: the calls return names, counts and statuses.

// Distributable reports why g cannot run step by step (Plan, InvokeOne,
// CommitStep) yet: nil when it can. Everything listed is refused before
// anything runs rather than run differently from a local run.
func Distributable(g *Graph) error {
	var why []string
	wf := g.wf
	// Budgets are shared through the store's ledger, and a budget
	// interrupt's answer reaches every worker through the engine
	// (Invocation.Raise): neither is refused. Nor is a key on a
	// machine-wide pool: the scheduler holds its keys' caps, which are
	// the run's (planPools), the workers take its total from the store.
	for _, name := range slices.Sorted(maps.Keys(g.tools)) {
		n := g.tools[name].node
		c := nodes.CapabilitiesOf(n.typ)
		if c.CallsField != "" {
			why = append(why, fmt.Sprintf("tool %s: type %s (tool calls)", name, n.spec.Type))
		}
		// A tool whose node is a subgraph runs: its calls' children are
		// dispatched a step at a time (steptoolchild.go), and its
		// workflow is checked by distributableChildren. A tool's node
		// takes no keyed pool (spec: "keyed pools are for workflow
		// nodes").
	}
	for _, n := range g.nodes {
		c := nodes.CapabilitiesOf(n.typ)
		kind := n.spec.Type
		switch {
		case c.CallsField != "":
			// Tool calls are planned and run as invocations of their own.
		case c.ChildField != "":
			// A child's steps are dispatched by the scheduler (its
			// workflow is checked by distributableChildren).
		case c.HoldsNoSlot:
			why = append(why, fmt.Sprintf("node %s: type %s (holds no slot)", n.name, kind))
		}
	}
	if len(why) == 0 {
		return nil
	}
	return &UnsupportedError{Workflow: wf.Name, What: why}
}

// UnsupportedError lists what a workflow uses that the step-at-a-time
// engine does not support yet.
type UnsupportedError struct {
	Workflow string
	What     []string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("workflow %s cannot run on Temporal yet; it uses:\n  %s\n(run it without --engine temporal)",
		e.Workflow, strings.Join(e.What, "\n  "))
}

// SubmitRun records a new run of g, to be driven by Plan, InvokeOne and
// CommitStep: inputs are checked as Run checks them (an *InputError when
// refused), and recorded with secrets from environ redacted. Nothing runs:
// the first Plan begins the run, in the environment of the process that
// executes it (its env and secrets are the workers', not the submitter's).
func SubmitRun(ctx context.Context, g *Graph, st store.Store, runID string, inputs map[string]any, environ []string) error {
	return SubmitReplay(ctx, g, st, runID, inputs, environ, nil)
}

// SubmitReplay is SubmitRun for a run whose HTTP requests are answered
// from cassette replay (nil: sent), recorded with the run for its workers.
func SubmitReplay(ctx context.Context, g *Graph, st store.Store, runID string, inputs map[string]any, environ []string, replay *ReplayCassette) error {
	return SubmitCassette(ctx, g, st, runID, inputs, environ, EngineCassette{Replay: replay})
}

// SubmitCassette is SubmitRun for a run whose HTTP requests are replayed
// or recorded as c says.
func SubmitCassette(ctx context.Context, g *Graph, st store.Store, runID string, inputs map[string]any, environ []string, c EngineCassette) error {
	if err := Distributable(g); err != nil {
		return err
	}
	var co core
	co.init(g)
	if err := co.initState(inputs); err != nil {
		return err
	}
	env := environMap(environ)
	var secretVals []string
	for _, s := range g.wf.Secrets {
		secretVals = append(secretVals, env[s.Value])
	}
	red := newRedactor(secretVals)
	raw, err := json.Marshal(red.value(inputs))
	if err != nil {
		return &InputError{Msg: fmt.Sprintf("inputs: %v", err)}
	}
	if inputs == nil {
		raw = []byte("{}")
	}
	// The children's texts are recorded with the run: the workers read
	// them from the store.
	subs, err := loadSubgraphs(g, os.ReadFile)
	if err != nil {
		return err
	}
	if err := distributableChildren(g, subs); err != nil {
		return err
	}
	err = st.CreateRun(ctx, &store.Run{ID: runID, Workflow: g.wf.Name, File: g.wf.File, Source: g.wf.Source,
		Inputs: raw, Status: store.StatusRunning, StartedAt: time.Now(), Subgraphs: withCassettes(subs.sources, c)})
	if err != nil {
		return fmt.Errorf("store: create run: %w", err)
	}
	return claim(ctx, st, runID)
}

// stepLeaseTTL is how long a step-by-step run's lease lives unrenewed:
// every Plan and CommitStep renews it, and ending the run
// releases it. Its holder is the engine, not a process: no pid is
// checked, so the run reads as running (not stale) while the engine
// drives it, and a local `lgx resume` is refused until it expires.
const stepLeaseTTL = time.Hour

// stepLeaseHost is the Host of a step-by-step run's lease: the run is
// executed by the engine's workers, not by one machine.
const stepLeaseHost = "temporal"

// engineOwner is the owner of the engine's lease of a run.
func engineOwner(runID string) string { return "engine:" + runID }

// EngineDriven reports whether a distributed engine drives run rec (it
// holds the run's lease), so that a resume must go through the engine.
func EngineDriven(rec *store.Run) bool {
	return rec.Lease != nil && rec.Lease.Owner == engineOwner(rec.ID) && rec.Lease.Host == stepLeaseHost &&
		rec.Lease.Expires.After(time.Now())
}

// claim takes or renews the engine's lease of a run.
func claim(ctx context.Context, st store.Store, runID string) error {
	l := store.Lease{Owner: engineOwner(runID), Host: stepLeaseHost, Expires: time.Now().Add(stepLeaseTTL)}
	if err := st.AcquireLease(ctx, runID, l); err != nil {
		return fmt.Errorf("store: lease of run %s: %w", runID, err)
	}
	return nil
}

// StepOptions configure the process that executes a run's steps.
type StepOptions struct {
	// Environ is the executing process's environment (env, secrets,
	// providers); nil means os.Environ().
	Environ []string
	// Concurrency overrides config.concurrency when > 0.
	Concurrency int
	// Options' HTTPClient is used when set.
	Options Options
	// MCP, when set, keeps the run's MCP sessions across its steps (a
	// worker's); nil: the StepRun starts servers of its own, stopped by
	// its Close.
	MCP *MCPSessions
}

// StepRun is a run opened from the store at its last checkpoint, with the
// next step formed (see Open): what Plan, InvokeOne and CommitStep work on.
type StepRun struct {
	r      *run
	st     store.Store
	status store.Status // the run record's status when opened
	errMsg string       // the run record's error
	fresh  bool         // no checkpoint yet: the run has not begun
	inputs map[string]any
	// lastCP is the step of the last checkpoint, lastNext its next nodes.
	lastCP   int
	lastNext []string
	recOnce  sync.Once
	runs     []*nodeRun // the planned step's nodes, file order; nil when none is planned
	// planErr is why the next step could not be formed (recursion limit,
	// for_each, conflict): Plan fails the run with it.
	planErr error
	// raised are the nonces of the budget answers applied to the run's
	// budgets (Invocation.Raise), each once whatever the invocations.
	raiseMu sync.Mutex
	raised  map[string]bool
	// events sends the run's events to the store's event log (nil when
	// the store keeps none).
	events *logSink
}

// OpenStep loads run runID from st: the recorded workflow text compiled,
// the merged checkpoints replayed, the next step formed against that state
// (for_each items evaluated, replace conflicts checked). It writes nothing.
func OpenStep(ctx context.Context, st store.Store, runID string, so StepOptions) (*StepRun, error) {
	var cfg *spec.UserConfig
	if so.Options.Machine != nil {
		cfg = so.Options.Machine.Config()
	}
	rec, g, read, err := loadRecorded(ctx, st, runID, cfg)
	if err != nil {
		return nil, err
	}
	if err := Distributable(g); err != nil {
		return nil, err
	}
	opts := so.Options
	opts.Store, opts.RunID, opts.Environ, opts.Concurrency = st, runID, so.Environ, so.Concurrency
	if opts.HTTPClient, err = replayClient(rec, g, so.Environ, opts.HTTPClient); err != nil {
		return nil, err
	}
	opts.Sink = nil
	var events *logSink
	if log, ok := st.(store.EventLog); ok {
		// The client that follows the run reads its events from the log.
		events = newLogSink(log, runID)
		opts.Sink = events
	}
	opts.tokensGiven = true // the engine's scheduler holds the pools' rates
	r, err := newRun(g, opts)
	if err != nil {
		return nil, err
	}
	if recordsRequests(rec) {
		if r.httpRec, err = newHTTPRecorder(rec, g, so.Environ, events); err != nil {
			return nil, err
		}
	}
	r.useMCPSessions(so.MCP)
	if err := r.lim.shareBudgets(st, runID); err != nil {
		return nil, err
	}
	r.stepCalls = &stepCalls{}
	if r.subs, err = loadSubgraphs(g, read); err != nil {
		return nil, fmt.Errorf("recorded workflow of run %s: %w", runID, err)
	}
	if err := distributableChildren(g, r.subs); err != nil {
		return nil, err
	}
	if err := r.raisedLimits(ctx, st); err != nil {
		return nil, err
	}
	status := rec.Status
	if status == store.StatusStale { // the engine's lease expired: it still drives the run
		status = store.StatusRunning
	}
	s := &StepRun{r: r, st: st, status: status, errMsg: rec.Error, events: events}
	cps, err := store.ResumeCheckpoints(ctx, st, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if len(cps) == 0 {
		s.fresh = true
		if len(rec.Inputs) > 0 {
			var v any
			if err := decodeJSON(rec.Inputs, &v); err != nil {
				return nil, fmt.Errorf("recorded inputs: %w", err)
			}
			s.inputs, _ = v.(map[string]any)
		}
		return s, nil
	}
	if err := r.replay(cps); err != nil {
		return nil, fmt.Errorf("run %s: %w", runID, err)
	}
	s.lastCP, s.lastNext = r.step, cps[len(cps)-1].Next
	s.form(ctx)
	return s, nil
}

// loadRecorded reads run runID's record and compiles the workflow text
// recorded with it; read serves the recorded subgraph texts.
//
// cfg, the user config of the process (nil: none), is applied as for a
// local run: a workflow may name its pools and providers.
func loadRecorded(ctx context.Context, st store.Store, runID string, cfg *spec.UserConfig) (*store.Run, *Graph, func(string) ([]byte, error), error) {
	rec, err := st.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, &InputError{Msg: fmt.Sprintf("no run %q in the store", runID)}
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("store: %w", err)
	}
	w, ds := spec.Load(rec.File, rec.Source)
	if ds.HasErrors() {
		return nil, nil, nil, fmt.Errorf("recorded workflow of run %s: %w", runID, &InvalidWorkflowError{File: rec.File, Diagnostics: ds.Errors()})
	}
	cfg.Apply(w)
	read := func(path string) ([]byte, error) {
		src, ok := rec.Subgraphs[path]
		if !ok {
			return nil, fmt.Errorf("its text was not recorded with run %s", runID)
		}
		return src, nil
	}
	g, err := compileValid(w, read)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("recorded workflow of run %s: %w", runID, err)
	}
	return rec, g, read, nil
}

// form plans the next step against the current state, if one is
// triggered: the step number advances, items are evaluated.
func (s *StepRun) form(ctx context.Context) {
	r := s.r
	s.runs = nil
	if len(r.next) == 0 {
		return
	}
	cur, err := r.plan(nil)
	if err != nil {
		s.planErr = err
		return
	}
	for _, ni := range cur {
		nr, err := r.prepare(ctx, ni)
		if err != nil {
			s.planErr = err
			return
		}
		s.runs = append(s.runs, nr)
	}
	if err := r.planConflicts(s.runs); err != nil {
		s.planErr = err
	}
}

// Close releases what the run holds: its recorder's goroutine and its
// HTTP client's idle connections.
func (s *StepRun) Close() {
	s.closeEvents()
	s.r.journal.close()
	s.r.closeHTTP()
	s.r.closeMCP() // its own servers only (not StepOptions.MCP's)
}

// RunID is the run's id.
func (s *StepRun) RunID() string { return s.r.id }

// Step is the planned step's number (the step after the last checkpoint).
func (s *StepRun) Step() int { return s.r.step }

// StepPlan is a formed step, as a scheduler needs it: names, counts, caps.
type StepPlan struct {
	// Done is true when the run has ended (no step is planned): Status
	// says how, Error why it failed.
	Done   bool
	Status store.Status
	Error  string
	Step   int
	// Global is the run's global cap on invocations in flight (0: none).
	Global int
	// Timeout is the run's config.timeout (0: none): a deadline for the
	// scheduler to hold, from the run's start (or resume).
	Timeout time.Duration `json:",omitempty"`
	Nodes   []PlannedNode
	// Pools are the concurrency caps of the pools the step's nodes (and
	// their tool calls) take, sorted by name.
	Pools []PoolCap
	// Tools are the caps of the tool calls the step's tools nodes may
	// make, when it has one.
	Tools []PlannedTool `json:",omitempty"`
}

// PlannedNode is one node of a step.
type PlannedNode struct {
	Name string
	// Items is the for_each's item count, -1 for a node without for_each
	// (one invocation).
	Items int
	// Cap is the node's concurrency cap (0: none); Pools names the pools
	// each invocation takes, sorted.
	Cap   int
	Pools []string
	// Slot is false for invocations that hold no cap slot.
	Slot bool
	// Pure invocations have no effect outside the run and need no
	// network (set, template): a scheduler may run them next to itself
	// rather than send them to a worker.
	Pure bool `json:",omitempty"`
	// KeyPool names the pool the node takes with a key (`pool: {name,
	// key}`); Keys gives each invocation's key as a class: invocations
	// with equal keys share a number (-1: the key could not be
	// evaluated; the invocation fails on it). Key values never leave the
	// store's side: a scheduler needs only which invocations share one.
	KeyPool string `json:",omitempty"`
	Keys    []int  `json:",omitempty"`
	// KeyIDs gives each key class (by number) a stable id: a hash of
	// the pool's name and the key's value, equal in every plan of the
	// run, so that a scheduler can count a key of a pool the parent and
	// a subgraph's child share across both plans' invocations. It is not
	// the value, which may be a secret.
	KeyIDs []string `json:",omitempty"`
	// Calls: the node's invocations make tool calls (a tools node), which
	// a scheduler plans (ToolCalls) and runs (InvokeToolCall), each
	// under its tool's caps (StepPlan.Tools), before the invocation.
	Calls bool `json:",omitempty"`
	// Child: the node's invocations run a child workflow (a subgraph),
	// whose steps a scheduler dispatches itself: Invoke returns each
	// child step to dispatch (InvokeResult.Child), with Invocation.Child
	// naming its invocations, until the child has run.
	Child bool `json:",omitempty"`
	// Recorded, when the plan was asked for it (PlanRecorded), is a
	// bitset of the invocations (by item index; bit 0 without for_each)
	// recorded as done, whose writes the commit reuses: a scheduler
	// continuing a step need not dispatch them again.
	Recorded []byte `json:",omitempty"`
}

// Done reports whether invocation k (item index; 0 without for_each)
// is recorded as done (see Recorded).
func (p PlannedNode) Done(k int) bool {
	return k/8 < len(p.Recorded) && p.Recorded[k/8]&(1<<(k%8)) != 0
}

// PoolCap is one pool's concurrency cap (0: none) and rate limit: Rate
// tokens a second (0: none) with bucket size Burst, one token taken per
// invocation. PerKey are the caps of each key, for nodes that take the
// pool with one; the pool's own caps bound those takers too when
// KeyedTotal, which every plan now sets (SPEC §9.9: keys are "bounded by
// the pool's total"). It stays a field so that the histories of runs
// planned before, without it for pools lacking per_key, replay as they ran.
type PoolCap struct {
	Name string
	// Scope is the path prefix of the subgraph invocation whose child
	// declared the pool ("" for the run's own pools): a pool a child
	// declares and its ancestors do not is that child's alone, as in a
	// local run, so a scheduler counts it per scope.
	Scope      string `json:",omitempty"`
	Cap        int
	Rate       float64 `json:",omitempty"`
	Burst      int     `json:",omitempty"`
	PerKey     *KeyCap `json:",omitempty"`
	KeyedTotal bool    `json:",omitempty"`
}

// KeyCap is the caps of one key of a keyed pool (0: none).
type KeyCap struct {
	Cap   int
	Rate  float64 `json:",omitempty"`
	Burst int     `json:",omitempty"`
}

// Invocations is how many invocations the node has in the step.
func (p PlannedNode) Invocations() int {
	if p.Items < 0 {
		return 1
	}
	return p.Items
}

// Plan begins a run that has not begun (writing checkpoint 0) and returns
// its next step; a run that ended, or whose next step cannot be formed
// (recursion limit, for_each, conflict: the run is then failed in the
// store), is Done.
func (s *StepRun) Plan(ctx context.Context) (*StepPlan, error) {
	return s.plan(ctx, nil)
}

// PlanRecorded is Plan with each node's Recorded bitset filled from the
// store: for a scheduler that continues a step begun before (a new
// execution of its workflow), at the cost of reading the run's
// invocations.
func (s *StepRun) PlanRecorded(ctx context.Context) (*StepPlan, error) {
	return s.plan(ctx, &recordedAs{})
}

// PlanContinued is PlanRecorded for a scheduler that continues a step in
// a new execution with no answer pending: invocations recorded paused at
// interrupts count as done too (the commit reads their records; sent
// again they would only return them), except, when raised, the calls
// paused on a budget, which run again under the raise (Invocation.Raise).
// Otherwise a step with more paused invocations than one execution's
// history holds would send them again in every execution and never reach
// the rest.
func (s *StepRun) PlanContinued(ctx context.Context, raised bool) (*StepPlan, error) {
	return s.plan(ctx, &recordedAs{paused: true, raised: raised})
}

// recordedAs says which recorded invocations a plan marks done: those
// that ended ok or continued, and with paused those paused (but with
// raised not those paused on a budget).
type recordedAs struct{ paused, raised bool }

// plan forms the plan of the next step; recorded, when not nil, marks
// the invocations recorded as done.
func (s *StepRun) plan(ctx context.Context, recorded *recordedAs) (*StepPlan, error) {
	r := s.r
	if s.status != store.StatusRunning {
		return &StepPlan{Done: true, Status: s.status, Error: s.errMsg, Step: r.step}, nil
	}
	if err := claim(ctx, s.st, r.id); err != nil {
		return nil, err
	}
	if s.fresh {
		if err := r.initState(s.inputs); err != nil {
			return s.end(ctx, store.StatusFailed, err)
		}
		if err := r.core.begin(ctx); err != nil {
			return s.end(ctx, store.StatusFailed, err)
		}
		if err := r.journal.checkpoint(ctx, &r.core, r.nodeNames(r.next), r.red); err != nil {
			return nil, err
		}
		s.stepEnded(0, r.nodeNames(r.next))
		r.changed = r.changed[:0]
		s.fresh = false
		s.form(ctx)
	}
	if s.planErr != nil {
		return s.end(ctx, store.StatusFailed, s.planErr)
	}
	if s.runs == nil {
		return s.end(ctx, store.StatusCompleted, nil)
	}
	p := &StepPlan{Step: r.step, Status: store.StatusRunning, Global: r.lim.global.capacity(), Timeout: r.g.timeout}
	pools := map[string]PoolCap{}
	for _, nr := range s.runs {
		n := nr.n
		pn := r.plannedNode(nr, pools)
		if n.keyPool != "" {
			pn.KeyPool = n.keyPool
			pn.Keys, pn.KeyIDs = r.keyClasses(nr)
		}
		if pn.Calls && p.Tools == nil {
			p.Tools = r.plannedTools(pools)
		}
		p.Nodes = append(p.Nodes, pn)
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p.Pools = append(p.Pools, pools[name])
	}
	if recorded != nil {
		if err := s.markRecorded(ctx, p, *recorded); err != nil {
			return nil, err
		}
	}
	s.stepStarted(p)
	return p, nil
}

// plannedNode is nr as a scheduler sees it (no key classes), the caps
// of the pools it takes added to pools.
func (r *run) plannedNode(nr *nodeRun, pools map[string]PoolCap) PlannedNode {
	n := nr.n
	c := nodes.CapabilitiesOf(n.typ)
	pn := PlannedNode{Name: n.name, Items: -1, Cap: n.spec.Concurrency, Pools: slices.Clone(n.poolNames), Slot: !n.caps.none,
		Pure: c.Pure, Calls: c.CallsField != "", Child: c.ChildField != ""}
	if nr.items != nil {
		pn.Items = len(nr.items)
	}
	r.planPools(n, pools)
	return pn
}

// planPools adds the caps of the pools n takes to pools, by name.
func (r *run) planPools(n *node, pools map[string]PoolCap) {
	for _, name := range n.poolNames {
		// A machine-wide pool is taken by each attempt from the
		// store, across runs: the scheduler holds none of it but the
		// caps of its keys, which are the run's (a local run holds them
		// in its process, and the total in the store).
		if pl, ok := r.lim.pools[name]; ok && pl.machine != nil && n.keyPool == name {
			k := pl.keyed
			pools[name] = PoolCap{Name: name, Scope: pl.scope,
				PerKey: &KeyCap{Cap: k.conc, Rate: float64(k.limit), Burst: k.burst}}
		}
		if pl, ok := r.lim.pools[name]; ok && pl.machine == nil {
			pc := PoolCap{Name: name, Scope: pl.scope, Cap: pl.sem.capacity()}
			if pl.limiter != nil {
				pc.Rate, pc.Burst = float64(pl.limiter.Limit()), pl.limiter.Burst()
			}
			if n.keyPool == name {
				k := pl.keyed
				pc.PerKey, pc.KeyedTotal = &KeyCap{Cap: k.conc, Rate: float64(k.limit), Burst: k.burst}, true
			} else if prev, ok := pools[name]; ok {
				pc.PerKey, pc.KeyedTotal = prev.PerKey, prev.KeyedTotal
			}
			pools[name] = pc
		}
	}
}

// Continue takes a run paused at interrupts back to running, once the
// engine accepted an answer (RecordAnswer): the paused step is planned
// again, its recorded invocations reused and the answered interrupt fed
// its answer. A run not paused is left as it is.
func (s *StepRun) Continue(ctx context.Context) error {
	if s.status != store.StatusInterrupted {
		return nil
	}
	if err := s.st.SetStatus(ctx, s.r.id, store.StatusRunning); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.status = store.StatusRunning
	return nil
}

// keyClasses evaluates the pool key of each of nr's invocations against
// the step's state, as the invocation will, and numbers the distinct keys
// in order of first use (-1 where the key does not evaluate), giving each
// number its key's stable id (keyID).
func (r *run) keyClasses(nr *nodeRun) (classes []int, ids []string) {
	n := nr.n
	count := 1
	if nr.items != nil {
		count = len(nr.items)
	}
	classes = make([]int, count)
	seen := map[string]int{}
	for i := range classes {
		var item any
		if nr.items != nil {
			item = nr.items[i]
		}
		env := exprEnv{State: r.state, Item: item, Index: i, Env: r.env, Secrets: r.secrets, Run: r.runInfo, ctx: context.Background(), timeout: n.timeout}
		key, err := evalString(n.poolKey, &env)
		if err != nil {
			classes[i] = -1
			continue
		}
		id, ok := seen[key]
		if !ok {
			id = len(seen)
			seen[key] = id
			ids = append(ids, keyID(n.keyPool, key))
		}
		classes[i] = id
	}
	return classes, ids
}

// keyID is the stable id of key on pool: 64 bits of a SHA-256 of both,
// which a scheduler's history may hold where the key's value (perhaps a
// secret) may not. Two keys of a step sharing an id by chance (about one
// in 10^7 for a million keys) would share their caps: slower, never over
// a cap.
func keyID(pool, key string) string {
	sum := sha256.Sum256([]byte("lgx pool key\x00" + pool + "\x00" + key))
	return hex.EncodeToString(sum[:8])
}

// markRecorded fills the Recorded bitsets of p's nodes: the step's
// invocations recorded ok or continued, and those paused as rec says.
func (s *StepRun) markRecorded(ctx context.Context, p *StepPlan, rec recordedAs) error {
	invs, err := s.st.Invocations(ctx, s.r.id)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	done := map[string]bool{}
	for _, inv := range invs {
		paused := rec.paused && inv.Status == store.InvocationInterrupted && !(rec.raised && pausedOnBudget(inv))
		if inv.Step == p.Step && (inv.Status == store.InvocationOK || inv.Status == store.InvocationContinued || paused) {
			done[inv.Path] = true
		}
	}
	for i := range p.Nodes {
		pn := &p.Nodes[i]
		for k := range pn.Invocations() {
			idx := k
			if pn.Items < 0 {
				idx = -1
			}
			if done[invocationPath("", p.Step, pn.Name, idx)] {
				if pn.Recorded == nil {
					pn.Recorded = make([]byte, (pn.Invocations()+7)/8)
				}
				pn.Recorded[k/8] |= 1 << (k % 8)
			}
		}
	}
	return nil
}

// Cancel records that the run was cancelled at its current step (as a
// local run cancelled by a signal is: resumable), unless it already
// ended; it returns how the run ended.
func (s *StepRun) Cancel(ctx context.Context) (*StepPlan, error) {
	if s.status != store.StatusRunning {
		if s.status == store.StatusInterrupted {
			// The engine no longer waits for the answer: a local
			// resume may give it.
			_ = s.st.ReleaseLease(context.WithoutCancel(ctx), s.r.id, engineOwner(s.r.id))
		}
		return &StepPlan{Done: true, Status: s.status, Error: s.errMsg, Step: s.r.step}, nil
	}
	return s.end(ctx, store.StatusCancelled, fmt.Errorf("%w at step %d: %w", ErrCancelled, s.r.step, context.Canceled))
}

// TimeOut records that the run passed its config.timeout deadline, as a
// local run does: failed (resumable), unless it already ended.
func (s *StepRun) TimeOut(ctx context.Context) (*StepPlan, error) {
	if s.status != store.StatusRunning {
		return &StepPlan{Done: true, Status: s.status, Error: s.errMsg, Step: s.r.step}, nil
	}
	return s.end(ctx, store.StatusFailed, &TimeoutError{Timeout: s.r.g.timeout})
}

// end records the run's outcome (status, redacted error) and returns it
// as a Done plan.
func (s *StepRun) end(ctx context.Context, status store.Status, err error) (*StepPlan, error) {
	msg := ""
	if err != nil {
		msg = s.r.red.str(err.Error())
	}
	if ferr := s.r.journal.finish(ctx, status, msg); ferr != nil {
		return nil, ferr
	}
	_ = s.st.ReleaseLease(context.WithoutCancel(ctx), s.r.id, engineOwner(s.r.id)) // else it expires
	s.status, s.errMsg = status, msg
	return &StepPlan{Done: true, Status: status, Error: msg, Step: s.r.step}, nil
}

// InvokeResult is how one invocation ended: no state, no body.
type InvokeResult struct {
	Path string
	// Status is a store.Invocation* status, or "cancelled" when the
	// invocation was stopped before it ended (nothing is recorded).
	Status   string
	Kind     string
	Error    string // redacted
	Attempts int
	// Recorded is true when the invocation had been recorded before this
	// call (a retried activity): it did not run again.
	Recorded bool
	// Child, for a subgraph invocation whose child has unrecorded
	// invocations, is the child's step to dispatch; the subgraph
	// invocation itself did not end (Status cancelled, nothing recorded).
	Child *StepPlan `json:",omitempty"`
}

// InvocationCancelled is InvokeResult.Status for an invocation stopped
// before it ended.
const InvocationCancelled = "cancelled"

// InvokeOne runs one invocation of the planned step — node's item index
// (-1 without for_each) — exactly as the local engine runs it (with,
// attempts under its retry policy and timeout, output), records it, and
// says how it ended. An invocation already recorded (a retried call) is
// not run again. s may serve concurrent InvokeOne calls of its step.
func (s *StepRun) InvokeOne(ctx context.Context, node string, index int) (*InvokeResult, error) {
	return s.Invoke(ctx, Invocation{Node: node, Index: index, Lookup: true})
}

// InvokeFirst is InvokeOne for a caller that knows no earlier call ran
// this invocation (a first activity attempt): it skips looking for a
// record, which reads the run's invocations.
func (s *StepRun) InvokeFirst(ctx context.Context, node string, index int) (*InvokeResult, error) {
	return s.Invoke(ctx, Invocation{Node: node, Index: index})
}

// Invocation names one invocation of the planned step for Invoke.
type Invocation struct {
	Node  string
	Index int // -1 without for_each
	// Lookup says an earlier call may have recorded it (a retried or
	// repeated call): its record is returned instead of running it again.
	Lookup bool
	// Answer is the nonce of the answer (RecordAnswer) the engine
	// accepted for this invocation, an interrupt: it runs with that
	// answer as its result instead of pausing again.
	Answer string
	// Resumed: the run was reopened (ReopenRun), so a recorded failure is
	// run again, as Resume runs it, rather than returned.
	Resumed bool
	// Child names an invocation of the child of the subgraph invocation
	// Node[Index], to run instead of it (see PlannedNode.Child); with
	// Tool, of the child of that tool call.
	Child *ChildRef
	// Tool, when set, is the path segment ("tool:ID") of a call of the
	// tools invocation Node[Index] whose tool is a subgraph (see
	// ChildRef.Tool): the call's child is dispatched like a subgraph
	// invocation's, and Child names an invocation of it (nil: the call
	// itself, asked for its child's next step).
	Tool string
	// Answers are the nonces of the answers the engine accepted for
	// interrupts inside the child of the subgraph invocation Node[Index],
	// by path: those run with their answers instead of pausing again.
	Answers map[string]string
	// Waited names the caps the engine held the invocation back for
	// ("node", "pool P", "rate P", "global"), from Since: a local run
	// would have started it then and reported each wait, and so does
	// Invoke (its node_start at Since, a wait event for each).
	Waited []string
	Since  time.Time
	// Raise is the answer the engine accepted to a budget interrupt of
	// the step (StepResult.Budgets): the budget's new limits hold for
	// this invocation, and one that paused on a budget runs again under
	// them, as a local resume that raises a budget runs every paused
	// call again. An interrupt node paused in the step stays paused.
	Raise *BudgetRaise `json:",omitempty"`
}

// BudgetRaise names an answer to a budget interrupt: the interrupt's
// path, the budget it waited for, and the nonce its values (tokens, usd:
// the new limits) are recorded under (RecordAnswer). The budget is named
// here because the interrupt's record is replaced once its call runs
// again, while other invocations may still need the raise.
type BudgetRaise struct {
	Path   string
	Budget string
	Nonce  string
}

// Invoke runs one invocation of the planned step (see InvokeOne).
func (s *StepRun) Invoke(ctx context.Context, in Invocation) (*InvokeResult, error) {
	if in.Tool != "" {
		return s.viaCall(ctx, in, nil)
	}
	node, index := in.Node, in.Index
	r := s.r
	nr, item, err := s.find(node, index)
	if err != nil {
		return nil, err
	}
	path := invocationPath("", r.step, node, index)
	var res invResult
	if in.Answer != "" {
		v, err := s.answer(ctx, path, in.Answer)
		if err != nil {
			return nil, err
		}
		res.resumeVal = v
	}
	if err := s.raise(ctx, in.Raise); err != nil {
		return nil, err
	}
	if in.Lookup && in.Child == nil {
		inv, err := s.recorded(ctx, path)
		if err != nil {
			return nil, err
		}
		// A paused interrupt that was answered runs again, with the
		// answer; a call paused on a budget, once it was raised; a
		// failure, when the run was reopened.
		rerun := res.resumeVal != nil && inv != nil && inv.Status == store.InvocationInterrupted ||
			in.Raise != nil && pausedOnBudget(inv) ||
			in.Resumed && inv != nil && inv.Status == store.InvocationFailed
		if inv != nil && !rerun {
			return &InvokeResult{Path: path, Status: inv.Status, Kind: inv.ErrorKind, Error: inv.Error, Attempts: inv.Attempts, Recorded: true}, nil
		}
	}
	if nodes.CapabilitiesOf(nr.n.typ).ChildField != "" {
		return s.invokeChild(ctx, nr, index, item, path, in)
	}
	calls := nodes.CapabilitiesOf(nr.n.typ).CallsField != ""
	if calls {
		// Its tool calls ran as invocations of their own: it reads them.
		recs, err := s.toolRecords(ctx, path)
		if err != nil {
			return nil, err
		}
		r.stepCalls.load(recs)
	}
	s.openRecorder()
	r.invoke(in.waitedContext(ctx, r), nil, nr.n, index, item, &res)
	if err := r.journal.barrier(r.step); err != nil {
		return nil, err
	}
	if calls {
		if p := r.stepCalls.missed(path); p != "" {
			return nil, fmt.Errorf("run %s: tool call %s was not recorded before its invocation ran", r.id, p)
		}
	}
	return resultOf(path, &res, r.red.str), nil
}

// find returns the planned step's node and the item of its invocation
// index (-1 without for_each).
func (s *StepRun) find(node string, index int) (*nodeRun, any, error) {
	r := s.r
	if s.planErr != nil || s.runs == nil {
		return nil, nil, fmt.Errorf("run %s has no step %d to invoke (its last checkpoint is step %d)", r.id, r.step, r.step-1)
	}
	var nr *nodeRun
	for _, x := range s.runs {
		if x.n.name == node {
			nr = x
		}
	}
	if nr == nil {
		return nil, nil, fmt.Errorf("run %s: node %s is not in step %d", r.id, node, r.step)
	}
	switch {
	case nr.items == nil && index != -1, nr.items != nil && (index < 0 || index >= len(nr.items)):
		return nil, nil, fmt.Errorf("run %s: step %d: node %s has no invocation %d", r.id, r.step, node, index)
	case nr.items != nil:
		return nr, nr.items[index], nil
	}
	return nr, nil, nil
}

// openRecorder starts the recorder InvokeOne records through (once).
func (s *StepRun) openRecorder() {
	s.recOnce.Do(s.r.journal.open)
}

// recorded returns the record of the invocation at path, nil when none.
func (s *StepRun) recorded(ctx context.Context, path string) (*store.Invocation, error) {
	invs, err := s.st.Invocations(ctx, s.r.id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	for _, inv := range invs {
		if inv.Path == path {
			return inv, nil
		}
	}
	return nil, nil
}

// StepResult is what committing a step gave.
type StepResult struct {
	Step int
	// Status is running when another step follows, else how the run
	// ended; Error why it failed (redacted).
	Status store.Status
	Error  string
	Next   []string
	// Waiting are the paths of the interrupts the run waits at, when it
	// paused (Status interrupted).
	Waiting []string
	// Budgets, when a call paused on a budget, name the budget each
	// interrupt of Waiting waits for ("" for an interrupt node): an
	// answer to one of those raises the budget (Invocation.Raise).
	Budgets []string `json:",omitempty"`
}

// CommitStep ends the planned step from its recorded invocations: the
// first failure in file and item order fails the run; otherwise their
// writes are applied by the step core and the checkpoint is written (the
// run completes when no node follows). Committing a step already
// committed returns the same result and writes nothing.
func (s *StepRun) CommitStep(ctx context.Context, step int) (*StepResult, error) {
	r := s.r
	switch {
	case s.fresh:
		return nil, fmt.Errorf("run %s has not begun; nothing to commit", r.id)
	case s.lastCP >= step || s.status != store.StatusRunning:
		// Committed before (or ended): the step's checkpoint exists.
		if s.status == store.StatusInterrupted {
			return s.paused(ctx, step)
		}
		res := &StepResult{Step: step, Status: s.status, Error: s.errMsg, Next: []string{}}
		if s.status == store.StatusRunning {
			res.Next = slices.Clone(s.lastNext)
		}
		return res, nil
	case r.step != step:
		return nil, fmt.Errorf("run %s: cannot commit step %d: its last checkpoint is step %d", r.id, step, s.lastCP)
	case s.planErr != nil:
		p, err := s.end(ctx, store.StatusFailed, s.planErr)
		if err != nil {
			return nil, err
		}
		return &StepResult{Step: step, Status: p.Status, Error: p.Error, Next: []string{}}, nil
	}
	if err := claim(ctx, s.st, r.id); err != nil {
		return nil, err
	}
	invs, err := s.st.Invocations(ctx, r.id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	byPath := map[string]*store.Invocation{}
	for _, inv := range invs {
		if inv.Step == step {
			byPath[inv.Path] = inv
		}
	}
	missing := "" // the first invocation without a record
	for _, nr := range s.runs {
		for i := range nr.res {
			path := invocationPath("", step, nr.n.name, itemIndex(nr, i))
			inv, ok := byPath[path]
			res := &nr.res[i]
			switch {
			case !ok && (nodes.CapabilitiesOf(nr.n.typ).ChildField != "" || nodes.CapabilitiesOf(nr.n.typ).CallsField != "") &&
				len(childPaused(invs, step, path)) > 0:
				// Its child (or its interrupt tools' calls) paused at
				// interrupts: it did not end.
				*res = invResult{status: store.InvocationInterrupted, intrs: childPaused(invs, step, path)}
			case !ok:
				res.err = fmt.Errorf("invocation %s was not recorded", path)
				if missing == "" {
					missing = path
				}
			case inv.Status == store.InvocationOK || inv.Status == store.InvocationContinued:
				ws, err := r.decodeWrites(nr.n, inv.Writes)
				if err != nil {
					return nil, fmt.Errorf("run %s: %s: %w", r.id, path, err)
				}
				*res = invResult{writes: ws, status: inv.Status, reused: true, attempts: inv.Attempts}
			case inv.Status == store.InvocationFailed:
				*res = invResult{status: inv.Status, kind: nodes.Kind(inv.ErrorKind), err: errors.New(inv.Error)}
			case inv.Status == store.InvocationInterrupted:
				*res = invResult{status: inv.Status, attempts: inv.Attempts,
					intrs: []Interrupt{{Path: path, Node: inv.Node, Index: inv.Index, Message: inv.Error, Budget: recordedExhausted(inv)}}}
			default:
				return nil, fmt.Errorf("run %s: %s: status %s is not supported here", r.id, path, inv.Status)
			}
		}
	}
	out := r.outcome(s.runs)
	var fail error
	switch {
	case out.failure != nil:
		fail = out.failure
	case out.cancelled:
		fail = fmt.Errorf("step %d: invocation %s ended without a record (it failed on the workers: see the engine's history)", step, missing)
	case len(out.intrs) > 0:
		// Paused: no checkpoint; the engine keeps the run's lease and
		// waits for an answer (RecordAnswer), then plans the step again.
		if err := r.journal.finish(ctx, store.StatusInterrupted, ""); err != nil {
			return nil, err
		}
		// Finishing cleared the lease: the engine takes it back, so that a
		// resume answers through it (EngineDriven).
		if err := claim(ctx, s.st, r.id); err != nil {
			return nil, err
		}
		s.status = store.StatusInterrupted
		return s.paused(ctx, step)
	default:
		fail = r.commit(ctx, s.runs)
	}
	if fail != nil {
		p, err := s.end(ctx, store.StatusFailed, fail)
		if err != nil {
			return nil, err
		}
		return &StepResult{Step: step, Status: p.Status, Error: p.Error, Next: []string{}}, nil
	}
	next := r.nodeNames(r.next)
	if err := r.journal.checkpoint(ctx, &r.core, next, r.red); err != nil {
		return nil, err
	}
	s.stepEnded(step, next)
	res := &StepResult{Step: step, Status: store.StatusRunning, Next: slices.Clone(next)}
	if len(next) == 0 {
		if _, err := s.end(ctx, store.StatusCompleted, nil); err != nil {
			return nil, err
		}
		res.Status = store.StatusCompleted
	}
	return res, nil
}

// paused is the result of a step that paused at interrupts: the paths
// of the paused invocations, in file and item order.
func (s *StepRun) paused(ctx context.Context, step int) (*StepResult, error) {
	invs, err := s.st.Invocations(ctx, s.r.id)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	res := &StepResult{Step: step, Status: store.StatusInterrupted, Next: []string{}, Waiting: []string{}}
	waiting := waitingAt(invs, step)
	for i, in := range waiting {
		res.Waiting = append(res.Waiting, in.Path)
		if in.Budget != "" && res.Budgets == nil {
			res.Budgets = make([]string, len(waiting))
		}
		if res.Budgets != nil {
			res.Budgets[i] = in.Budget
		}
	}
	return res, nil
}

// Outcome reads a run's result from the store as Run would have returned
// it (cfg: the user config, as for loadRecorded): status, final state (as of its last checkpoint, secrets redacted as
// recorded), output keys, and the recorded error of a failed run.
func Outcome(ctx context.Context, st store.Store, runID string, cfg *spec.UserConfig) (*Result, error) {
	rec, g, read, err := loadRecorded(ctx, st, runID, cfg)
	if err != nil {
		return nil, err
	}
	// Only the core's replay is needed: no environment, secrets or
	// providers (the submitter need not hold the workers' secrets).
	r := &run{g: g, id: runID}
	r.core.init(g)
	cps, err := store.ResumeCheckpoints(ctx, st, runID)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if len(cps) > 0 {
		if err := r.replay(cps); err != nil {
			return nil, fmt.Errorf("run %s: %w", runID, err)
		}
	}
	res := &Result{RunID: runID, Workflow: g.wf.Name, Status: rec.Status, Steps: r.step, InterruptIndex: -1, State: r.state}
	res.Output = r.output(res.State)
	if err := budgetOutcome(ctx, st, g, res); err != nil {
		return nil, err
	}
	if rec.Status == store.StatusInterrupted {
		if res.Interrupts, err = Waiting(ctx, st, runID); err != nil {
			return nil, err
		}
		if len(res.Interrupts) > 0 {
			in := res.Interrupts[0]
			res.InterruptNode, res.InterruptIndex, res.InterruptMessage = in.Node, in.Index, in.Message
		}
		if subs, err := loadSubgraphs(g, read); err == nil { // only for the resume hint
			schema := answerSchema(g, subs)
			for i := range res.Interrupts {
				if res.Interrupts[i].Budget == "" {
					res.Interrupts[i].Answer = schema(&res.Interrupts[i])
				}
			}
		}
	}
	if rec.Error != "" {
		return res, &RecordedError{Msg: rec.Error}
	}
	return res, nil
}

// RecordedError is a run's failure as the store recorded it (redacted).
type RecordedError struct{ Msg string }

func (e *RecordedError) Error() string { return e.Msg }

// Unopenable reports whether err, from OpenStep, says that this process
// cannot run the recorded workflow at all (it is invalid here: the
// process's user config lacks a pool or provider it names; or it uses
// what the engine refuses), as opposed to a store that failed for now.
func Unopenable(err error) bool {
	var iw *InvalidWorkflowError
	var ue *UnsupportedError
	return errors.As(err, &iw) || errors.As(err, &ue)
}

// FailRun records run runID failed with msg (redacted by the caller) and
// releases the engine's lease, for an engine whose worker cannot open it
// (Unopenable): the run is resumable once the workers can.
func FailRun(ctx context.Context, st store.Store, runID, msg string) (*StepPlan, error) {
	if err := st.FinishRun(ctx, runID, store.StatusFailed, msg, time.Now()); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	_ = st.ReleaseLease(context.WithoutCancel(ctx), runID, engineOwner(runID))
	return &StepPlan{Done: true, Status: store.StatusFailed, Error: msg}, nil
}
