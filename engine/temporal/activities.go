package temporal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	sdktemporal "go.temporal.io/sdk/temporal"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// Activities are lgx.plan, lgx.invoke and lgx.commit, served by a worker
// from its store and environment.
type Activities struct {
	// Store is where runs are recorded; every worker and client of a run
	// must use the same store.
	Store store.Store
	// Environ is the worker's environment (env, secrets, providers); nil
	// means os.Environ().
	Environ []string
	// HTTPClient is shared by the invocations the worker runs; nil builds
	// one per run.
	HTTPClient *http.Client
	// Machine serves the pools of the worker's user config (machine-wide,
	// shared across runs and processes through their store); nil when it
	// declares none.
	Machine *runner.MachinePools
	// MCP keeps the MCP sessions of the runs this worker executes, across
	// their steps: a run's servers start on the worker's first call and
	// stop when the run ends (or pauses), after MCP.Idle without a call
	// here, or at Close. Set MCP.Stderr to see the servers' stderr.
	MCP runner.MCPSessions

	cache stepCache
	// slots bounds the invocations this worker runs at once
	// (WorkerOptions.MaxActivities); nil: no bound but the SDK's.
	slots *workerSlots
}

// Plan is lgx.plan.
func (a *Activities) Plan(ctx context.Context, in PlanInput) (*runner.StepPlan, error) {
	s, err := runner.OpenStep(ctx, a.Store, in.RunID, a.stepOptions(in.Concurrency))
	if err != nil {
		if runner.Unopenable(err) {
			// This worker cannot run it (its user config lacks a pool
			// the workflow names, say): the run fails, saying why and
			// where, instead of the workflow failing in silence.
			return runner.FailRun(ctx, a.Store, in.RunID, workerCannot(err))
		}
		return nil, nonRetryable(err)
	}
	defer s.Close()
	if in.Resumed {
		if err := s.Continue(ctx); err != nil {
			return nil, err
		}
	}
	var p *runner.StepPlan
	switch {
	case in.Recorded && in.Paused:
		p, err = s.PlanContinued(ctx, in.Raised)
	case in.Recorded:
		p, err = s.PlanRecorded(ctx)
	default:
		p, err = s.Plan(ctx)
	}
	if err == nil && p.Done {
		a.MCP.End(in.RunID)
	}
	return p, err
}

// Cancel is lgx.cancel: the workflow was cancelled, or (TimedOut) the
// run passed its config.timeout.
func (a *Activities) Cancel(ctx context.Context, in PlanInput) (*runner.StepPlan, error) {
	s, err := runner.OpenStep(ctx, a.Store, in.RunID, a.stepOptions(in.Concurrency))
	if err != nil {
		return nil, nonRetryable(err)
	}
	defer s.Close()
	var p *runner.StepPlan
	if in.TimedOut {
		p, err = s.TimeOut(ctx)
	} else {
		p, err = s.Cancel(ctx)
	}
	if err == nil && p.Done {
		a.MCP.End(in.RunID)
	}
	return p, err
}

// Commit is lgx.commit.
func (a *Activities) Commit(ctx context.Context, in CommitInput) (*runner.StepResult, error) {
	s, err := runner.OpenStep(ctx, a.Store, in.RunID, a.stepOptions(in.Concurrency))
	if err != nil {
		return nil, nonRetryable(err)
	}
	defer s.Close()
	a.cache.drop(in.RunID, in.Step)
	res, err := s.CommitStep(ctx, in.Step)
	if err == nil && res.Status != store.StatusRunning {
		// Ended or paused: its servers stop here, as a local run's do;
		// other workers' stop when idle.
		a.MCP.End(in.RunID)
	}
	return res, err
}

// Invoke is lgx.invoke. The step's snapshot is opened once per worker
// and step (cache), shared by the step's invocations this worker runs.
// While the invocation runs, the activity heartbeats, so that a worker
// that dies is noticed in seconds and its invocation sent elsewhere, and
// a cancelled step stops it.
func (a *Activities) Invoke(ctx context.Context, in InvokeInput) (res *runner.InvokeResult, err error) {
	s, release, err := a.step(ctx, in)
	if err != nil {
		return nil, err
	}
	defer release()
	// An invocation that did not end well ends the step (or pauses it),
	// and a tool call's events are not counted by the client (which waits
	// for every invocation's end, runner.Tail): theirs are written before
	// the result, so the client shows them before the step's or the
	// run's end. Others' go with their StepRun's next flush.
	defer func() {
		if res == nil || in.Call > 0 || res.Status != store.InvocationOK && res.Status != store.InvocationContinued {
			_ = s.FlushEvents(ctx) // the view's loss, not the run's
		}
	}()
	stop := heartbeat(ctx)
	defer stop()
	// On a first attempt of a step's first dispatch no earlier call can
	// have recorded the invocation: the lookup is skipped.
	lookup := in.Lookup || !activity.IsActivity(ctx) || activity.GetInfo(ctx).Attempt > 1
	inv := runner.Invocation{Node: in.Node, Index: in.Index, Lookup: lookup, Answer: in.Answer, Resumed: in.Resumed, Child: in.Child, Tool: in.Tool, Answers: in.Answers, Raise: in.Raise}
	if len(in.Waited) > 0 {
		inv.Waited, inv.Since = in.Waited, time.Unix(0, in.Since)
	}
	gate := a.gate(ctx)
	if len(in.Items) > 0 {
		return s.InvokeItems(ctx, inv, in.Items, gate)
	}
	if gate != nil {
		free, err := gate(ctx)
		if err != nil {
			return nil, err
		}
		defer free()
	}
	if in.Call > 0 {
		// A tools invocation's call may have been recorded by an earlier
		// dispatch of its step (which paused, or continued as new).
		inv.Lookup = true
		return s.InvokeToolCall(ctx, inv, in.Call-1)
	}
	return s.Invoke(ctx, inv)
}

// gate is the worker's bound on its invocations at once, for an
// invocation run as an activity (nil without a bound). A local activity
// (a pure node, a tools invocation building its messages from records)
// runs next to the workflow and is instant: it does not wait for one.
func (a *Activities) gate(ctx context.Context) runner.Gate {
	if a.slots == nil || !activity.IsActivity(ctx) || activity.GetInfo(ctx).IsLocalActivity {
		return nil
	}
	return a.slots.acquire
}

// ToolCalls is lgx.toolcalls: which tool each call of a tools invocation
// reaches (runner.StepRun.ToolCalls).
func (a *Activities) ToolCalls(ctx context.Context, in InvokeInput) (*runner.ToolCallsPlan, error) {
	s, release, err := a.step(ctx, in)
	if err != nil {
		return nil, err
	}
	defer release()
	return s.ToolCalls(ctx, runner.Invocation{Node: in.Node, Index: in.Index, Lookup: true, Resumed: in.Resumed, Child: in.Child, Tool: in.Tool, Answers: in.Answers, Raise: in.Raise})
}

// workerCannot is why this worker cannot run a recorded workflow.
func workerCannot(err error) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("worker %s (pid %d) cannot run it: %v", host, os.Getpid(), err)
}

// step returns the snapshot of the step in names, opened once per worker
// and step (cache), and its release; a step other than the run's next is
// refused for good.
func (a *Activities) step(ctx context.Context, in InvokeInput) (*runner.StepRun, func(), error) {
	s, release, err := a.cache.get(ctx, in, func() (*runner.StepRun, error) {
		return runner.OpenStep(ctx, a.Store, in.RunID, a.stepOptions(in.Concurrency))
	})
	if err != nil {
		return nil, nil, err
	}
	if s.Step() != in.Step {
		release()
		return nil, nil, nonRetryable(fmt.Errorf("run %s: step %d was asked for, but its next step is %d", in.RunID, in.Step, s.Step()))
	}
	return s, release, nil
}

// heartbeat records the activity's heartbeat every heartbeatTimeout/4
// until stop is called.
func heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(heartbeatTimeout / 4)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (a *Activities) stepOptions(concurrency int) runner.StepOptions {
	so := runner.StepOptions{Environ: a.Environ, Concurrency: concurrency, MCP: &a.MCP}
	so.Options.HTTPClient, so.Options.Machine = a.HTTPClient, a.Machine
	return so
}

// nonRetryable marks errors that another attempt cannot fix (an unknown
// run, a workflow the engine does not support) as such for Temporal.
func nonRetryable(err error) error {
	var ie *runner.InputError
	var ue *runner.UnsupportedError
	var iw *runner.InvalidWorkflowError
	if errors.As(err, &ie) || errors.As(err, &ue) || errors.As(err, &iw) {
		return sdktemporal.NewNonRetryableApplicationError(err.Error(), "lgx", nil)
	}
	return err
}

// stepCache keeps the opened step of the runs this worker invokes, keyed
// by run and step, so a step's invocations load its snapshot once per
// worker rather than once each. An entry is closed when its step is
// committed here, when a later step of its run is opened, when the cache
// is full, or when no invocation used it for cacheIdle (another worker
// committed the step, or the run stopped: its snapshot must not stay in
// memory) — once no invocation uses it.
type stepCache struct {
	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
	order   []cacheKey       // oldest first
	now     func() time.Time // time.Now; tests move it
}

type cacheKey struct {
	run  string
	step int
}

type cacheEntry struct {
	ready   chan struct{} // closed once s or err is set
	s       *runner.StepRun
	err     error
	refs    int
	evicted bool
	used    time.Time // when an invocation last released it
}

// maxCachedSteps bounds the steps a worker keeps open; cacheIdle is how
// long an unused one stays.
const (
	maxCachedSteps = 64
	cacheIdle      = time.Minute
)

func (c *stepCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// get returns the step in's run is at, opening it with open on first use;
// release must be called when the invocation ends.
func (c *stepCache) get(ctx context.Context, in InvokeInput, open func() (*runner.StepRun, error)) (*runner.StepRun, func(), error) {
	k := cacheKey{in.RunID, in.Step}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[cacheKey]*cacheEntry{}
	}
	e, ok := c.entries[k]
	if !ok {
		e = &cacheEntry{ready: make(chan struct{})}
		c.entries[k] = e
		c.order = append(c.order, k)
	}
	e.refs++
	var stale []*runner.StepRun
	if !ok {
		stale = c.evictLocked(k)
	}
	c.mu.Unlock()
	closeAll(stale)
	release := func() {
		c.mu.Lock()
		e.refs--
		e.used = c.clock()
		closeNow := e.evicted && e.refs == 0 && e.s != nil
		c.mu.Unlock()
		if closeNow {
			e.s.Close()
		}
	}
	if !ok {
		s, err := open()
		c.mu.Lock()
		e.s, e.err = s, nonRetryable(err)
		if err != nil { // not cached: the next attempt opens again
			if c.entries[k] == e {
				delete(c.entries, k)
			}
			e.evicted = true
		}
		c.mu.Unlock()
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if e.err != nil {
		release()
		return nil, nil, e.err
	}
	return e.s, release, nil
}

// evictLocked drops earlier steps of k's run and, past maxCachedSteps,
// the oldest entries; it returns those to close (after unlocking: Close
// waits for the recorder).
func (c *stepCache) evictLocked(k cacheKey) []*runner.StepRun {
	idleSince := c.clock().Add(-cacheIdle)
	return c.evictWhere(func(i int, o cacheKey) bool {
		e := c.entries[o]
		idle := e.refs == 0 && !e.used.IsZero() && e.used.Before(idleSince)
		return o != k && (o.run == k.run && o.step < k.step || len(c.order)-i > maxCachedSteps || idle)
	})
}

// evictWhere drops the entries drop selects and returns the steps no
// invocation uses any more; the others close when released.
func (c *stepCache) evictWhere(drop func(i int, k cacheKey) bool) []*runner.StepRun {
	var closed []*runner.StepRun
	keep := make([]cacheKey, 0, len(c.order))
	for i, o := range c.order {
		if !drop(i, o) {
			keep = append(keep, o)
			continue
		}
		e := c.entries[o]
		delete(c.entries, o)
		e.evicted = true
		if e.refs == 0 && e.s != nil {
			closed = append(closed, e.s)
		}
	}
	c.order = keep
	return closed
}

func closeAll(steps []*runner.StepRun) {
	for _, s := range steps {
		s.Close()
	}
}

// drop closes the cached steps of run up to step (committed).
func (c *stepCache) drop(run string, step int) {
	c.mu.Lock()
	closed := c.evictWhere(func(_ int, o cacheKey) bool { return o.run == run && o.step <= step })
	c.mu.Unlock()
	closeAll(closed)
}

// Close closes every cached step and stops every MCP server; call it
// once the worker has stopped.
func (a *Activities) Close() {
	a.cache.mu.Lock()
	closed := a.cache.evictWhere(func(int, cacheKey) bool { return true })
	a.cache.mu.Unlock()
	closeAll(closed)
	a.MCP.Close()
}
