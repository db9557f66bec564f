// Package temporal runs lgx workflows on a Temporal cluster (DESIGN.md,
// "Scaling out"; issue #14): a Temporal workflow, lgx.run, schedules one
// lgx run step by step, and activities do the work against the store.
//
// The Temporal workflow is a thin deterministic scheduler over names,
// counts and statuses. Per super-step it runs
//
//   - a local activity lgx.plan, which opens the run from the store (the
//     recorded workflow text and merged checkpoints) and returns the
//     step's nodes, their item counts and the caps each takes;
//   - one activity lgx.invoke per invocation, gated by the caps the
//     workflow holds (global, per node, per pool: never more invoke
//     activities outstanding than a cap allows, whatever the workers'
//     settings); the activity runs the invocation as the local engine does
//     and records it in the store;
//   - a local activity lgx.commit, which applies the recorded invocations
//     with the step core and writes the checkpoint.
//
// State values, bodies, messages and secrets stay in the store: Temporal
// history holds run ids, node names, counts, statuses and redacted error
// messages only.
package temporal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
	"golang.org/x/time/rate"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// Names registered with Temporal. The workflow and activity names are the
// contract between clients and workers of different lgx versions.
const (
	WorkflowName   = "lgx.run"
	PlanActivity   = "lgx.plan"
	InvokeActivity = "lgx.invoke"
	CommitActivity = "lgx.commit"
	CancelActivity = "lgx.cancel"
	// ToolCallsActivity plans a tools invocation's calls (runner.StepRun.ToolCalls).
	ToolCallsActivity = "lgx.toolcalls"
	// AnswerUpdate answers an interrupt the run waits at (AnswerInput);
	// WaitUpdate returns once the run pauses at interrupts or ends.
	AnswerUpdate = "lgx.answer"
	WaitUpdate   = "lgx.wait"

	// pureLocalChange is the workflow.GetVersion id of running pure
	// invocations as local activities.
	pureLocalChange = "pure-nodes-local"
	// chunkedItemsChange is the workflow.GetVersion id of sending a large
	// for_each's items to workers in chunks (see chunkable).
	chunkedItemsChange = "chunked-items"
	// waitCancelledChange is the workflow.GetVersion id of freeing a
	// cancelled activity's caps only once it has ended.
	waitCancelledChange = "wait-cancelled"
	// budgetRaiseChange is the workflow.GetVersion id of answering a
	// budget interrupt by raising the budget for the paused step's
	// invocations (runner.Invocation.Raise) instead of feeding the
	// answer to the call as its result.
	budgetRaiseChange = "budget-raise"
	// subgraphToolsChange is the workflow.GetVersion id of dispatching
	// the child of a subgraph tool's call a step at a time (childRun),
	// as a subgraph invocation's, instead of refusing such tools.
	subgraphToolsChange = "subgraph-tools"
	// sharedKeysChange is the workflow.GetVersion id of counting a
	// keyed pool's keys by their stable ids (runner.PlannedNode.KeyIDs)
	// across a step and its subgraphs' child steps, with one token
	// bucket per key for them all, so that a key on a pool the parent
	// and a child share is held as one key.
	sharedKeysChange = "shared-pool-keys"
	// waitEventsChange is the workflow.GetVersion id of telling an
	// invocation the workflow held back for its caps what held it and
	// since when (InvokeInput.Waited, Since), so that its worker reports
	// the wait as a local run does.
	waitEventsChange = "wait-events"
	// DefaultTaskQueue is the task queue of `lgx worker` and `lgx run
	// --engine temporal` when none is given.
	DefaultTaskQueue = "lgx"
)

// RunInput starts lgx.run: the run (recorded in the store by the client)
// and the --concurrency override (0: the workflow's config.concurrency).
type RunInput struct {
	RunID       string
	Concurrency int
	// Resumed: the run was reopened (runner.ReopenRun) after it stopped;
	// its first step's recorded invocations are reused, its recorded
	// failures run again.
	Resumed bool `json:",omitempty"`
	// Continued: this execution continues the run's previous one
	// (Continue-As-New, to keep history bounded); its first step may be
	// under way, and what was recorded of it is not dispatched again.
	Continued bool `json:",omitempty"`
	// HistoryLimit is the history length (events) past which the
	// execution continues as new at the next invocation it would
	// dispatch; 0 is defaultHistoryLimit. Tests set it low.
	HistoryLimit int `json:",omitempty"`
	// Deadline (Unix nanoseconds, 0: none) is the run's config.timeout
	// deadline an execution that continued as new keeps.
	Deadline int64 `json:",omitempty"`
	// Raise, in an execution that continued as new while its first step
	// ran again under a raised budget, is that raise: the step's
	// invocations not dispatched yet carry it too.
	Raise *runner.BudgetRaise `json:",omitempty"`
}

// defaultHistoryLimit keeps an execution's history well under the
// server's limits (51,200 events, 50 MiB by default) and its replay cheap;
// the server may suggest continuing as new earlier.
const defaultHistoryLimit = 10_000

// maxOutstanding bounds the invocations in flight from one execution
// whatever the caps (a server refuses more than 2,000 pending
// activities by default).
const maxOutstanding = 1000

// RunOutput is how the run ended: a store status and the redacted error.
type RunOutput struct {
	Status store.Status
	Error  string
	Steps  int
	// Continued (from lgx.wait only): the execution continued as new
	// before the run paused or ended; wait on the next one.
	Continued bool `json:",omitempty"`
}

// PlanInput and CommitInput name the run (and step) a local activity works on.
type PlanInput struct {
	RunID       string
	Concurrency int
	// Resumed: the run paused at interrupts and an answer was accepted;
	// it runs again (runner.StepRun.Continue).
	Resumed bool
	// Recorded asks for the invocations of the step recorded as done
	// (runner.StepRun.PlanRecorded).
	Recorded bool `json:",omitempty"`
	// Paused (with Recorded, in an execution that continued as new with
	// no answer pending) counts the invocations recorded paused as done
	// too, but with Raised not those paused on a budget
	// (runner.StepRun.PlanContinued).
	Paused bool `json:",omitempty"`
	Raised bool `json:",omitempty"`
	// TimedOut (lgx.cancel): the run passed its config.timeout.
	TimedOut bool `json:",omitempty"`
}

// InvokeInput names one invocation: node and item index (-1 without
// for_each) of a run's step.
type InvokeInput struct {
	RunID       string
	Concurrency int
	Step        int
	Node        string
	Index       int
	// Lookup: the step ran before (it paused), so the invocation may be
	// recorded already.
	Lookup bool `json:",omitempty"`
	// Answer is the nonce of the accepted answer when the invocation is
	// the interrupt it answers.
	Answer string `json:",omitempty"`
	// Resumed: the step is the first of a reopened run.
	Resumed bool `json:",omitempty"`
	// Call, when > 0, names tool call Call-1 of the tools invocation
	// (runner.StepRun.InvokeToolCall), not the invocation itself.
	Call int `json:",omitempty"`
	// Items, when set, is a chunk of the node's items (indexes) to run at
	// once (runner.StepRun.InvokeItems); Index is the first.
	Items []int `json:",omitempty"`
	// Child names an invocation of the child of the subgraph invocation
	// Node[Index], to run instead of it (runner.Invocation.Child).
	Child *runner.ChildRef `json:",omitempty"`
	// Tool is the path segment of a subgraph tool's call of the tools
	// invocation Node[Index] whose child Child is in
	// (runner.Invocation.Tool).
	Tool string `json:",omitempty"`
	// Answers are the nonces of accepted answers to interrupts inside
	// the subgraph invocation's child, by path (runner.Invocation.Answers).
	Answers map[string]string `json:",omitempty"`
	// Raise is the accepted answer to a budget interrupt of the step
	// (runner.Invocation.Raise): a budget name, a path and a nonce.
	Raise *runner.BudgetRaise `json:",omitempty"`
	// Waited names the caps the workflow held the invocation back for,
	// in a local run's order ("node", "pool P", "rate P", "global"), and
	// Since (unix nanoseconds) when its step began dispatching
	// (runner.Invocation.Waited): its worker reports the wait.
	Waited []string `json:",omitempty"`
	Since  int64    `json:",omitempty"`
}

// AnswerInput is an answer to an interrupt: its path and the nonce under
// which the answer's values are recorded in the store
// (runner.RecordAnswer). The values themselves never enter the history.
type AnswerInput struct {
	Path  string
	Nonce string
}

// CommitInput names the step to commit.
type CommitInput struct {
	RunID       string
	Concurrency int
	Step        int
}

// Timeouts of the activities. plan and commit read and write the store
// only; invoke runs a node with all of lgx's attempts (its own retry
// policy), so its bound is generous and a dead worker is found by the
// heartbeat instead: within heartbeatTimeout (a worker heartbeats every
// quarter of it, so a loaded worker has slack before its invocations are
// sent elsewhere, which re-sends them with the same idempotency keys).
const (
	localTimeout     = time.Minute
	invokeTimeout    = 24 * time.Hour
	heartbeatTimeout = 5 * time.Second
)

// Options the workflow gives its activities. lgx's own failures come back
// as results (status failed), so Temporal retries only what failed around
// them — a worker that died, a store that was unreachable — and InvokeOne
// does not run an invocation that was already recorded.
//
// waitCancelled: a cancelled activity's future resolves once the activity
// has ended (its worker saw the cancellation at a heartbeat, or it timed
// out), not at once.
func activityOptions(waitCancelled bool) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: invokeTimeout,
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: waitCancelled,
		RetryPolicy: &sdktemporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    10,
		},
	}
}

func localActivityOptions() workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout: localTimeout,
		RetryPolicy: &sdktemporal.RetryPolicy{
			InitialInterval:    100 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Second,
			MaximumAttempts:    10,
		},
	}
}

// Run is the lgx.run workflow: plan, invoke under the caps, commit, until
// the run ends. It returns the run's outcome; an error only when the
// engine itself failed (the store unreachable past the retries). A
// cancelled workflow stops its invocations and records the run as
// cancelled (resumable), as a local run stopped by Ctrl-C is.
func Run(ctx workflow.Context, in RunInput) (*RunOutput, error) {
	f := &flow{}
	if err := f.handle(ctx); err != nil {
		return nil, err
	}
	out, err := f.steps(ctx, in)
	if workflow.IsContinueAsNewError(err) {
		f.continuing = true
	} else {
		f.done = true
		if out != nil {
			f.out = *out
		}
	}
	// The lgx.wait callers get the outcome before the workflow ends.
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	if ctx.Err() == nil {
		return out, err
	}
	return endRun(ctx, in, false)
}

// flow is what the workflow's update handlers see of the run: whether
// it waits at interrupts (and which), the answers accepted, its outcome.
type flow struct {
	// rates are the run's rate-limited pools' token buckets, fed the
	// workflow's clock: deterministic on replay, exact across workers.
	rates map[poolRef]*rate.Limiter

	paused     bool
	waiting    []string          // paths of the interrupts waited at
	answers    map[string]string // path -> nonce, accepted while paused
	done       bool
	out        RunOutput
	continuing bool // the execution continues as new
}

// handle registers lgx.answer and lgx.wait.
func (f *flow) handle(ctx workflow.Context) error {
	err := workflow.SetUpdateHandlerWithOptions(ctx, AnswerUpdate, func(ctx workflow.Context, a AnswerInput) error {
		f.answers[a.Path] = a.Nonce
		f.paused = false
		return nil
	}, workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, a AnswerInput) error {
		switch {
		case !f.paused:
			return errors.New("the run does not wait at an interrupt now (a first answer was accepted, or it is running)")
		case !slices.Contains(f.waiting, a.Path):
			return fmt.Errorf("the run does not wait at %s", a.Path)
		case a.Nonce == "":
			return errors.New("an answer needs its nonce")
		}
		return nil
	}})
	if err != nil {
		return fmt.Errorf("register %s: %w", AnswerUpdate, err)
	}
	err = workflow.SetUpdateHandler(ctx, WaitUpdate, func(ctx workflow.Context) (*RunOutput, error) {
		if err := workflow.Await(ctx, func() bool { return f.paused || f.done || f.continuing }); err != nil {
			return nil, err
		}
		switch {
		case f.done:
			return &f.out, nil
		case f.continuing:
			return &RunOutput{Continued: true}, nil
		}
		return &RunOutput{Status: store.StatusInterrupted}, nil
	})
	if err != nil {
		return fmt.Errorf("register %s: %w", WaitUpdate, err)
	}
	return nil
}

// steps runs the run's steps until it ends or ctx is cancelled. A step
// that paused at interrupts waits for an answer (lgx.answer), then is
// planned and dispatched again: its recorded invocations are looked up,
// not run again, and the answered interrupt runs with its answer.
func (f *flow) steps(ctx workflow.Context, in RunInput) (*RunOutput, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, localActivityOptions())
	rd := redo{lookup: in.Resumed || in.Continued, resumed: in.Resumed, recorded: in.Resumed || in.Continued, raise: in.Raise}
	limit := in.HistoryLimit
	if limit <= 0 {
		limit = defaultHistoryLimit
	}
	// Version 1 runs pure invocations (set, template) as local
	// activities: no task queue round trip, no history events of their
	// own beyond a marker. Executions recorded before it replay as they
	// ran (docs/decisions.md, "Changing the workflow").
	pureLocal := workflow.GetVersion(ctx, pureLocalChange, workflow.DefaultVersion, 1) >= 1
	// Version 1 of chunked-items sends the items of a large for_each in
	// chunks, an activity each.
	// Version 2 leaves half of the free slots to a second chunk when a
	// chunk would take them all (see dispatchOptions.splitChunks).
	chunkVersion := workflow.GetVersion(ctx, chunkedItemsChange, workflow.DefaultVersion, 2)
	chunked := chunkVersion >= 1
	// Version 1 of wait-cancelled waits for a cancelled activity (a step
	// that failed stops its others) to end before its slots are free
	// again, as a local run does: otherwise a sibling child could start a
	// request under the same cap while the cancelled one is still in
	// flight, until its worker next heartbeats.
	waitCancelled := workflow.GetVersion(ctx, waitCancelledChange, workflow.DefaultVersion, 1) >= 1
	waitEvents := workflow.GetVersion(ctx, waitEventsChange, workflow.DefaultVersion, 1) >= 1
	sharedKeys := workflow.GetVersion(ctx, sharedKeysChange, workflow.DefaultVersion, 1) >= 1
	opts := dispatchOptions{pureLocal: pureLocal, sharedKeys: sharedKeys, chunked: chunked, splitChunks: chunkVersion >= 2, waitEvents: waitEvents,
		limit: limit, limiters: f.limiters}
	dl := &deadline{}
	if in.Deadline > 0 {
		dl.at = time.Unix(0, in.Deadline)
	}
	defer dl.disarm()
	for {
		var p runner.StepPlan
		pin := PlanInput{RunID: in.RunID, Concurrency: in.Concurrency, Resumed: rd.answers != nil, Recorded: rd.recorded}
		if rd.recorded && rd.answers == nil {
			// A continued execution: what paused stays paused, unless
			// raised (no command changes; only which the plan marks).
			pin.Paused, pin.Raised = true, rd.raise != nil
		}
		if err := workflow.ExecuteLocalActivity(lctx, PlanActivity, pin).Get(ctx, &p); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		if p.Done {
			return &RunOutput{Status: p.Status, Error: p.Error, Steps: p.Step}, nil
		}
		dctx := dl.arm(ctx, p.Timeout)
		more, err := dispatch(workflow.WithActivityOptions(dctx, activityOptions(waitCancelled)), in, &p, rd, f.limiters(&p), opts)
		if dl.passed {
			return endRun(ctx, in, true)
		}
		if err != nil {
			return nil, err
		}
		if more {
			// History is long: what was dispatched has ended and is
			// recorded; the next execution plans the step again and
			// dispatches the rest (under the step's raise, if any).
			return nil, continueAsNew(ctx, in, dl, rd.raise)
		}
		var res runner.StepResult
		if err := workflow.ExecuteLocalActivity(lctx, CommitActivity, CommitInput{RunID: in.RunID, Concurrency: in.Concurrency, Step: p.Step}).Get(ctx, &res); err != nil {
			return nil, fmt.Errorf("commit step %d: %w", p.Step, err)
		}
		switch res.Status {
		case store.StatusRunning:
			rd = redo{}
			if historyFull(ctx, limit) {
				return nil, continueAsNew(ctx, in, dl, nil)
			}
		case store.StatusInterrupted:
			// A paused run is not executing: its deadline starts afresh
			// once answered, as a local resume's does.
			dl.disarm()
			dl.at = time.Time{}
			f.paused, f.waiting, f.answers = true, res.Waiting, map[string]string{}
			if err := workflow.Await(ctx, func() bool { return len(f.answers) > 0 }); err != nil {
				return nil, err
			}
			rd = redo{lookup: true, answers: f.answers}
			rd.raise = budgetRaise(ctx, &res, rd.answers)
			if historyFull(ctx, limit) {
				rd.recorded = true // each answer's redo dispatches only what is left
			}
		default:
			return &RunOutput{Status: res.Status, Error: res.Error, Steps: res.Step}, nil
		}
	}
}

// limiters returns the token buckets of the plan's rate-limited pools,
// by name, made the first time a pool is seen: a pool's rate spans the
// run's steps, as in a local run.
func (f *flow) limiters(p *runner.StepPlan) map[poolRef]*rate.Limiter {
	for _, pc := range p.Pools {
		ref := poolRef{pc.Scope, pc.Name}
		if pc.Rate > 0 && f.rates[ref] == nil {
			if f.rates == nil {
				f.rates = map[poolRef]*rate.Limiter{}
			}
			f.rates[ref] = rate.NewLimiter(rate.Limit(pc.Rate), max(1, pc.Burst))
		}
	}
	return f.rates
}

// takeTokens waits, on the workflow's clock, until every rate-limited
// pool invocation k of p takes has a token for it, and takes them: the
// run's buckets (rates, by pool) and, for a keyed pool, the key's
// (keyRates, made here: for a step and its children's steps, or, before
// sharedKeysChange, for one step's plan, whose key classes they are). A
// local run takes a token per attempt; here the workflow takes the first
// attempt's, and retries inside the activity take their worker's (see
// docs/decisions.md).
func takeTokens(ctx workflow.Context, rates map[poolRef]*rate.Limiter, keyRates map[keyRef]*rate.Limiter, c *caps, p *runner.PlannedNode, k int) error {
	take := func(lim *rate.Limiter) error { return takeToken(ctx, lim) }
	for _, name := range p.Pools {
		pc := c.pools[name]
		if kr, ok := c.keyOf(p, name, k); ok {
			if pc.PerKey != nil && pc.PerKey.Rate > 0 {
				lim := keyRates[kr]
				if lim == nil {
					lim = rate.NewLimiter(rate.Limit(pc.PerKey.Rate), max(1, pc.PerKey.Burst))
					keyRates[kr] = lim
				}
				if err := take(lim); err != nil {
					return err
				}
			}
			if !pc.KeyedTotal {
				continue
			}
		}
		if lim := rates[c.ref(name)]; lim != nil {
			if err := take(lim); err != nil {
				return err
			}
		}
	}
	return nil
}

// takeToken waits on the workflow's clock for a token of lim and takes it.
func takeToken(ctx workflow.Context, lim *rate.Limiter) error {
	now := workflow.Now(ctx)
	if d := lim.ReserveN(now, 1).DelayFrom(now); d > 0 {
		return workflow.Sleep(ctx, d)
	}
	return nil
}

// historyFull reports whether the execution's history is long enough to
// continue as new.
func historyFull(ctx workflow.Context, limit int) bool {
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() >= limit || info.GetContinueAsNewSuggested()
}

// continueAsNew ends this execution in a new one of the same run, which
// plans from the store: nothing but the run id (and its deadline)
// travels.
func continueAsNew(ctx workflow.Context, in RunInput, dl *deadline, raise *runner.BudgetRaise) error {
	next := RunInput{RunID: in.RunID, Concurrency: in.Concurrency, Continued: true, HistoryLimit: in.HistoryLimit, Raise: raise}
	if !dl.at.IsZero() {
		next.Deadline = dl.at.UnixNano()
	}
	return workflow.NewContinueAsNewError(ctx, WorkflowName, next)
}

// deadline is the run's config.timeout, held by the workflow: a timer
// from the run's start (or an answer's resume) that, when it fires,
// cancels the step's dispatch. Runs without a timeout start no timer.
type deadline struct {
	at     time.Time // zero: not set
	armed  bool
	passed bool
	ctx    workflow.Context    // the dispatch's context, cancelled when the deadline passes
	cancel workflow.CancelFunc // cancels ctx
	stop   workflow.CancelFunc // stops the timer
}

// arm starts the timer the first time a step is dispatched with a
// timeout, and returns the context to dispatch the step in.
func (d *deadline) arm(ctx workflow.Context, timeout time.Duration) workflow.Context {
	if d.armed || timeout <= 0 {
		if d.armed {
			return d.ctx
		}
		return ctx
	}
	if d.at.IsZero() {
		d.at = workflow.Now(ctx).Add(timeout)
	}
	d.armed = true
	d.ctx, d.cancel = workflow.WithCancel(ctx)
	remaining := d.at.Sub(workflow.Now(ctx))
	if remaining <= 0 {
		d.passed = true
		d.cancel()
		return d.ctx
	}
	tctx, stop := workflow.WithCancel(ctx)
	d.stop = stop
	workflow.Go(tctx, func(gctx workflow.Context) {
		if workflow.NewTimer(gctx, remaining).Get(gctx, nil) == nil {
			d.passed = true
			d.cancel()
		}
	})
	return d.ctx
}

// disarm stops the timer.
func (d *deadline) disarm() {
	if d.stop != nil {
		d.stop()
	}
	d.armed, d.stop = false, nil
}

// endRun records how the run ended when the workflow, not a step, ended
// it: cancelled, or (timedOut) failed past its config.timeout.
func endRun(ctx workflow.Context, in RunInput, timedOut bool) (*RunOutput, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = workflow.WithLocalActivityOptions(dctx, localActivityOptions())
	var p runner.StepPlan
	if err := workflow.ExecuteLocalActivity(dctx, CancelActivity, PlanInput{RunID: in.RunID, Concurrency: in.Concurrency, TimedOut: timedOut}).Get(dctx, &p); err != nil {
		return nil, fmt.Errorf("record the end of run %s: %w", in.RunID, err)
	}
	return &RunOutput{Status: p.Status, Error: p.Error, Steps: p.Step}, nil
}

// redo is how a step that paused is dispatched again.
type redo struct {
	lookup   bool              // its invocations may be recorded
	recorded bool              // plan with the recorded invocations, not dispatched again
	resumed  bool              // the run was reopened: recorded failures run again
	answers  map[string]string // interrupt path -> accepted answer's nonce
	// raise is the accepted answer to a budget interrupt, which every
	// invocation of the step carries (see budgetRaise).
	raise *runner.BudgetRaise
}

// budgetRaise takes the answer accepted to a budget interrupt of res (a
// step that paused) out of answers and returns it as the raise the step's
// invocations carry: the answer is the budget's new limits, which every
// call paused on it (on any worker) runs again under, as a local resume
// runs them; it is no call's result. nil when the answer is to an
// interrupt node, or in an execution recorded before budget raises
// (version DefaultVersion of budget-raise: it never paused on a budget).
func budgetRaise(ctx workflow.Context, res *runner.StepResult, answers map[string]string) *runner.BudgetRaise {
	for i, path := range res.Waiting {
		nonce, ok := answers[path]
		if !ok || i >= len(res.Budgets) || res.Budgets[i] == "" {
			continue
		}
		if workflow.GetVersion(ctx, budgetRaiseChange, workflow.DefaultVersion, 1) < 1 {
			return nil
		}
		delete(answers, path)
		return &runner.BudgetRaise{Path: path, Budget: res.Budgets[i], Nonce: nonce}
	}
	return nil
}

// caps are the counters the workflow holds for one step: invocations
// outstanding in total, per node, per pool and per key of a keyed pool,
// against their caps (0: no cap). They live in workflow code, so they are
// exact across any number of workers, and deterministic on replay.
type caps struct {
	// global counts the invocations in flight in the run (shared with
	// the caps of the children of the step's subgraph invocations).
	global        *int
	globalCap     int
	node, nodeCap []int
	pool          map[poolRef]int // in flight per pool instance
	pools         map[string]runner.PoolCap
	key           map[keyRef]int
	// keyRate are the token buckets of the keys, and sharedKeys says
	// whether key, keyRate are shared with the caps of the step's
	// children (forChild): keys are then counted by their stable ids.
	keyRate    map[keyRef]*rate.Limiter
	sharedKeys bool
	// tool counts the tool calls in flight per planned tool (by name).
	tool  map[string]int
	tools map[string]*runner.PlannedTool
}

// poolRef is one instance of a pool: a pool a subgraph's child declares
// and its ancestors do not is that child's own (runner.PoolCap.Scope).
type poolRef struct {
	scope, name string
}

// ref is the instance of pool name that c's invocations take.
func (c *caps) ref(name string) poolRef {
	return poolRef{c.pools[name].Scope, name}
}

// keyRef is one key of a keyed pool's instance: by its stable id
// (runner.PlannedNode.KeyIDs), or by its class in the step's plan when
// the plan gives no ids (one recorded before they were).
type keyRef struct {
	pool  poolRef
	class int
	id    string
}

func newCaps(p *runner.StepPlan) *caps {
	c := &caps{global: new(int), globalCap: p.Global, node: make([]int, len(p.Nodes)), nodeCap: make([]int, len(p.Nodes)),
		pool: map[poolRef]int{}, pools: map[string]runner.PoolCap{}, key: map[keyRef]int{}}
	for i, n := range p.Nodes {
		c.nodeCap[i] = n.Cap
	}
	for _, pc := range p.Pools {
		c.pools[pc.Name] = pc
	}
	if len(p.Tools) > 0 {
		c.tool, c.tools = map[string]int{}, map[string]*runner.PlannedTool{}
		for i := range p.Tools {
			c.tools[p.Tools[i].Name] = &p.Tools[i]
		}
	}
	return c
}

// forChild returns the caps of a step of a subgraph invocation's child
// (p): the child's nodes' own caps, the run's global cap and pools
// shared with c, as a local child shares its parent's.
func (c *caps) forChild(p *runner.StepPlan) *caps {
	cc := newCaps(p)
	cc.global, cc.globalCap, cc.pool = c.global, c.globalCap, c.pool
	if c.sharedKeys {
		// A key of a pool the child shares with its parent is one key
		// across both (a pool the child alone declares has the child's
		// scope in its keyRef).
		cc.key, cc.keyRate, cc.sharedKeys = c.key, c.keyRate, true
	}
	for name, pc := range c.pools {
		if _, ok := cc.pools[name]; !ok {
			cc.pools[name] = pc
		}
	}
	return cc
}

// freeCall reports whether a call of tool t may start: the global cap,
// the tool's node cap and its pools (tool calls take no keys).
func (c *caps) freeCall(t *runner.PlannedTool) bool {
	if !t.Slot {
		return true
	}
	if c.globalCap > 0 && *c.global >= c.globalCap || t.Cap > 0 && c.tool[t.Name] >= t.Cap {
		return false
	}
	for _, name := range t.Pools {
		if pc := c.pools[name]; pc.Cap > 0 && c.pool[c.ref(name)] >= pc.Cap {
			return false
		}
	}
	return true
}

// takeCall counts a call of tool t in (d = 1) or out (-1).
func (c *caps) takeCall(t *runner.PlannedTool, d int) {
	if !t.Slot {
		return
	}
	*c.global += d
	c.tool[t.Name] += d
	for _, name := range t.Pools {
		c.pool[c.ref(name)] += d
	}
}

// keyOf is the key invocation k of p takes pool name with, if it does.
func (c *caps) keyOf(p *runner.PlannedNode, name string, k int) (keyRef, bool) {
	if p.KeyPool != name || k >= len(p.Keys) || p.Keys[k] < 0 {
		return keyRef{}, false
	}
	if class := p.Keys[k]; class < len(p.KeyIDs) {
		return keyRef{pool: c.ref(name), id: p.KeyIDs[class]}, true
	}
	return keyRef{pool: c.ref(name), class: p.Keys[k]}, true
}

// free reports whether invocation k of node p (index ni) may start.
func (c *caps) free(p *runner.PlannedNode, ni, k int) bool {
	if !p.Slot {
		return true
	}
	if c.globalCap > 0 && *c.global >= c.globalCap || c.nodeCap[ni] > 0 && c.node[ni] >= c.nodeCap[ni] {
		return false
	}
	for _, name := range p.Pools {
		pc := c.pools[name]
		if kr, ok := c.keyOf(p, name, k); ok {
			if pc.PerKey != nil && pc.PerKey.Cap > 0 && c.key[kr] >= pc.PerKey.Cap {
				return false
			}
			if !pc.KeyedTotal {
				continue // a plan made before keys were bounded by the total
			}
		}
		if pc.Cap > 0 && c.pool[c.ref(name)] >= pc.Cap {
			return false
		}
	}
	return true
}

// markWaiting records in waited what holds back each invocation of
// pending (node p, index ni) not looked at yet, if its caps are taken
// now: the first full cap in the order a local run takes them (node,
// pools, global). pending is in item order and only the invocations from
// item marked on are looked at, so a large for_each is looked at once;
// it returns the new mark. Keyed invocations are not (their wait names
// the key's value, which the workflow does not know).
func (c *caps) markWaiting(p *runner.PlannedNode, ni int, pending []int, marked int, waited map[int][]string) int {
	if p.KeyPool != "" || !p.Slot || len(pending) == 0 || pending[len(pending)-1] < marked {
		return marked
	}
	what := c.blocker(p, ni)
	if what == "" {
		return marked // its caps are free now: it does not wait
	}
	for i := len(pending) - 1; i >= 0 && pending[i] >= marked; i-- {
		waited[pending[i]] = []string{what}
	}
	return pending[len(pending)-1] + 1
}

// blocker is the first of node p's caps (index ni) that is full, in a
// local run's order: "node", "pool P", "global"; "" when none is.
func (c *caps) blocker(p *runner.PlannedNode, ni int) string {
	if c.nodeCap[ni] > 0 && c.node[ni] >= c.nodeCap[ni] {
		return "node"
	}
	for _, name := range p.Pools {
		if pc := c.pools[name]; pc.Cap > 0 && c.pool[c.ref(name)] >= pc.Cap {
			return "pool " + name
		}
	}
	if c.globalCap > 0 && *c.global >= c.globalCap {
		return "global"
	}
	return ""
}

// firstRated is the first of p's pools with a rate limit.
func (c *caps) firstRated(p *runner.PlannedNode) string {
	for _, name := range p.Pools {
		if c.pools[name].Rate > 0 {
			return name
		}
	}
	return ""
}

// take counts invocation k of node p (index ni) in (d = 1) or out (-1).
func (c *caps) take(p *runner.PlannedNode, ni, k, d int) {
	if !p.Slot {
		return
	}
	*c.global += d
	c.node[ni] += d
	for _, name := range p.Pools {
		if kr, ok := c.keyOf(p, name, k); ok {
			c.key[kr] += d
			if !c.pools[name].KeyedTotal {
				continue
			}
		}
		c.pool[c.ref(name)] += d
	}
}

// dispatch runs the step's invocations as activities, in file then item
// order, each once its caps are free; the first failure stops the rest
// (the local engine cancels a failing step's other invocations too). It
// returns once every started activity has ended; the outcome is in the
// store, where commit reads it.
//
// When the history reaches limit, it dispatches no more and returns more
// = true once the dispatched ones ended: the caller continues as new.
// dispatchOptions are the workflow's versioned choices and its history
// limit.
type dispatchOptions struct {
	pureLocal bool // pure invocations run as local activities
	chunked   bool // a large for_each's items go in chunks
	// splitChunks: a chunk that would take every free slot while no
	// other chunk of its node runs takes half (rounded up), so that a
	// second chunk, on another worker, runs beside it: a worker runs a chunk's items only as fast as its own
	// slots allow (--max-activities), and a chunk holding all of a cap's
	// slots would leave the other workers idle.
	splitChunks bool
	// waitEvents: an invocation held back for its caps is told what held
	// it and since when (markWaiting), for its wait events.
	waitEvents bool
	// sharedKeys: keys are counted by their stable ids across a step
	// and its children's steps (caps.sharedKeys).
	sharedKeys bool
	limit      int // the history length past which to continue as new
	// limiters returns the token buckets of a plan's rate-limited pools
	// (flow.limiters): a child step's pools need theirs too.
	limiters func(p *runner.StepPlan) map[poolRef]*rate.Limiter
}

// chunkMin is the fewest items a for_each must have for its items to be
// sent in chunks, and maxChunk the most items one activity runs. A chunk
// takes a slot of every cap per item for as long as its slowest item
// runs: slots idle at the tail of a chunk, which only pays at scale,
// where a history event per item (and an activity round trip each) is
// what bounds a run.
const (
	chunkMin = 64
	maxChunk = 32
)

// chunkable reports whether node p's items may go in chunks: many items,
// no key (each item's key takes its own caps), no rate-limited pool
// (tokens are taken per item, as each is dispatched), and invocations
// that are one activity each (not a tools node's calls or a subgraph's
// child, which the workflow dispatches itself).
func chunkable(c *caps, p *runner.PlannedNode) bool {
	if p.Items < chunkMin || p.KeyPool != "" || p.Calls || p.Child {
		return false
	}
	for _, name := range p.Pools {
		if c.pools[name].Rate > 0 {
			return false
		}
	}
	return true
}

func dispatch(ctx workflow.Context, in RunInput, p *runner.StepPlan, rd redo, rates map[poolRef]*rate.Limiter, o dispatchOptions) (more bool, err error) {
	pureLocal, limit := o.pureLocal, o.limit
	sctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	lctx := workflow.WithLocalActivityOptions(sctx, localActivityOptions())
	c := newCaps(p)
	keyRates := map[keyRef]*rate.Limiter{}
	c.keyRate, c.sharedKeys = keyRates, o.sharedKeys
	outstanding, failed := 0, false
	var engineErr error
	// A local run starts every invocation of a step at once, and those
	// whose caps are taken report what they wait for: began is when they
	// all would have started, waited what held each back.
	began := workflow.Now(ctx)
	for ni := range p.Nodes {
		pn := &p.Nodes[ni]
		var pending []int // the node's invocations to dispatch, in item order
		for k := range pn.Invocations() {
			if !pn.Done(k) {
				pending = append(pending, k)
			}
		}
		waited := map[int][]string{}
		marked := 0 // the invocations below it were looked at by markWaiting
		for len(pending) > 0 {
			if o.waitEvents && !failed {
				marked = c.markWaiting(pn, ni, pending, marked, waited)
			}
			// The first pending invocation whose caps are free goes next:
			// in item order, except that with a keyed pool an item whose
			// key is busy does not hold back items of other keys (as
			// locally). Without keys all share their caps: only the first
			// need be looked at.
			at := -1
			if err := workflow.Await(ctx, func() bool {
				if failed {
					return true
				}
				if outstanding >= maxOutstanding {
					return false
				}
				for i, k := range pending {
					if c.free(pn, ni, k) {
						at = i
						return true
					}
					if pn.KeyPool == "" {
						break
					}
				}
				return false
			}); err != nil {
				return false, err
			}
			if failed {
				break
			}
			k := pending[at]
			pending = slices.Delete(pending, at, at+1)
			idx := k
			if pn.Items < 0 {
				idx = -1
			}
			if historyFull(ctx, limit) {
				more = true
				break
			}
			// Tokens once the slots are free: a token is not held while
			// waiting for a slot, as in a local run.
			if pn.Slot {
				t0 := workflow.Now(ctx)
				if err := takeTokens(ctx, rates, keyRates, c, pn, k); err != nil {
					return false, err
				}
				if failed {
					break
				}
				if o.waitEvents && workflow.Now(ctx).After(t0) {
					waited[k] = append(waited[k], "rate "+c.firstRated(pn))
				}
			}
			c.take(pn, ni, k, 1)
			outstanding++
			chunk := []int{k}
			if o.chunked && len(rd.answers) == 0 && chunkable(c, pn) {
				// More items while their caps are free, in item order.
				for len(chunk) < maxChunk && len(pending) > 0 && c.free(pn, ni, pending[0]) {
					c.take(pn, ni, pending[0], 1)
					chunk = append(chunk, pending[0])
					pending = pending[1:]
				}
				if o.splitChunks && len(chunk) > 1 && len(chunk) < maxChunk && len(pending) > 0 && c.node[ni] == len(chunk) {
					// It took every free slot, and no other chunk of the
					// node runs: give half back, for a second chunk.
					keep := (len(chunk) + 1) / 2
					for _, k := range chunk[keep:] {
						c.take(pn, ni, k, -1)
					}
					pending = append(slices.Clone(chunk[keep:]), pending...)
					chunk = chunk[:keep]
				}
			}
			ii := InvokeInput{RunID: in.RunID, Concurrency: in.Concurrency, Step: p.Step, Node: pn.Name, Index: idx, Lookup: rd.lookup, Resumed: rd.resumed, Raise: rd.raise}
			if len(chunk) > 1 {
				ii.Items = chunk
				// Planned with the step's records (a continued or
				// reopened execution), a pending item has none: only a
				// retried activity need look its items up, which reads
				// every record of the run.
				ii.Lookup = ii.Lookup && !rd.recorded
			}
			if len(rd.answers) > 0 {
				ii.Answer = rd.answers[runner.InvocationPath(p.Step, pn.Name, idx)]
			}
			if w := waited[k]; len(w) > 0 {
				ii.Waited, ii.Since = w, began.UnixNano()
			}
			if pn.Child || pn.Calls {
				// Answers to interrupts inside it (its child's, or its
				// interrupt tools' calls') go with it.
				for path, nonce := range rd.answers {
					if strings.HasPrefix(path, runner.InvocationPath(p.Step, pn.Name, idx)+"/") {
						if ii.Answers == nil {
							ii.Answers = map[string]string{}
						}
						ii.Answers[path] = nonce
					}
				}
			}
			var f workflow.Future
			switch {
			case pn.Child:
				// Its child's steps, each dispatched here under the run's
				// caps, until the invocation ends.
				ch := &childRun{c: c, o: o, outstanding: &outstanding, failed: &failed, engineErr: &engineErr, cancel: cancel}
				f = ch.run(sctx, lctx, ii)
			case pn.Calls:
				// Its calls first, each an activity under its tool's caps;
				// then the invocation, which reads their records.
				tc := &toolCalls{c: c, o: o, rates: rates, outstanding: &outstanding, failed: &failed, engineErr: &engineErr, cancel: cancel}
				f = tc.run(sctx, lctx, ii)
			case pureLocal && pn.Pure:
				f = workflow.ExecuteLocalActivity(lctx, InvokeActivity, ii)
			default:
				f = workflow.ExecuteActivity(sctx, InvokeActivity, ii)
			}
			workflow.Go(ctx, func(gctx workflow.Context) {
				var r runner.InvokeResult
				err := f.Get(gctx, &r)
				for _, k := range chunk {
					c.take(pn, ni, k, -1)
				}
				outstanding--
				var ce *sdktemporal.CanceledError
				switch {
				case err != nil && errors.As(err, &ce):
				case err != nil:
					// Retried past its policy: commit finds the invocation
					// unrecorded and fails the run.
					if engineErr == nil {
						engineErr = err
					}
					failed = true
					cancel()
				case r.Status == store.InvocationFailed || r.Status == runner.InvocationCancelled:
					failed = true
					cancel()
				}
			})
		}
		if failed || more {
			break
		}
	}
	if err := workflow.Await(ctx, func() bool { return outstanding == 0 }); err != nil {
		return false, err
	}
	if engineErr != nil {
		workflow.GetLogger(ctx).Warn("invoke activity failed", "run", in.RunID, "step", p.Step, "error", engineErr)
	}
	return more && !failed, nil
}

// toolCalls dispatches the calls of one tools invocation: planned by a
// local activity (lgx.toolcalls: which tool each call reaches, none of
// their arguments), each call an activity once its tool's caps, the
// global cap and the invocation's with.concurrency allow, then the
// invocation itself as a local activity that builds its messages from the
// calls' records. A call's failure is its message, not the step's; an
// activity that failed past its retries fails the step as any does.
type toolCalls struct {
	c           *caps
	o           dispatchOptions // for the children of subgraph tools' calls
	rates       map[poolRef]*rate.Limiter
	outstanding *int
	failed      *bool
	engineErr   *error
	cancel      workflow.CancelFunc
}

// run starts the invocation's calls and returns the future of the
// invocation, which is ready once they ended and it ran.
func (t *toolCalls) run(ctx, lctx workflow.Context, in InvokeInput) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		var p runner.ToolCallsPlan
		if err := workflow.ExecuteLocalActivity(lctx, ToolCallsActivity, in).Get(gctx, &p); err != nil {
			set.Set(nil, err)
			return
		}
		if !p.Recorded {
			if err := t.calls(gctx, lctx, in, &p); err != nil {
				set.Set(nil, err)
				return
			}
		}
		if *t.failed {
			set.Set(nil, sdktemporal.NewCanceledError())
			return
		}
		var r runner.InvokeResult
		err := workflow.ExecuteLocalActivity(lctx, InvokeActivity, in).Get(gctx, &r)
		set.Set(&r, err)
	})
	return f
}

// calls dispatches p's calls in order and waits until they ended.
func (t *toolCalls) calls(ctx, lctx workflow.Context, in InvokeInput, p *runner.ToolCallsPlan) error {
	c := t.c
	inFlight := 0
	for k, call := range p.Calls {
		if call.Tool == "" || call.Done {
			continue
		}
		tool := c.tools[call.Tool]
		if tool == nil {
			return fmt.Errorf("run %s: step %d: %s: tool call %d takes the caps of %s, which the plan does not have", in.RunID, in.Step, in.Node, k, call.Tool)
		}
		if err := workflow.Await(ctx, func() bool {
			return *t.failed || *t.outstanding < maxOutstanding && (p.Limit == 0 || inFlight < p.Limit) && c.freeCall(tool)
		}); err != nil {
			return err
		}
		if *t.failed {
			break
		}
		if tool.Slot {
			for _, name := range tool.Pools {
				if lim := t.rates[c.ref(name)]; lim != nil {
					if err := takeToken(ctx, lim); err != nil {
						return err
					}
				}
			}
		}
		c.takeCall(tool, 1)
		*t.outstanding++
		inFlight++
		ci := in
		ci.Call = k + 1
		var f workflow.Future
		if tool.Child && workflow.GetVersion(ctx, subgraphToolsChange, workflow.DefaultVersion, 1) >= 1 {
			// A subgraph tool's call: its child's steps, each dispatched
			// here under the run's caps, as a subgraph invocation's are.
			ch := &childRun{c: c, o: t.o, outstanding: t.outstanding, failed: t.failed, engineErr: t.engineErr, cancel: t.cancel}
			f = ch.run(ctx, lctx, ci)
		} else {
			f = workflow.ExecuteActivity(ctx, InvokeActivity, ci)
		}
		workflow.Go(ctx, func(gctx workflow.Context) {
			var r runner.InvokeResult
			err := f.Get(gctx, &r)
			c.takeCall(tool, -1)
			*t.outstanding--
			inFlight--
			var ce *sdktemporal.CanceledError
			switch {
			case err != nil && errors.As(err, &ce):
			case err != nil:
				if *t.engineErr == nil {
					*t.engineErr = err
				}
				*t.failed = true
				t.cancel()
			case r.Status == runner.InvocationCancelled:
				*t.failed = true
				t.cancel()
			}
		})
	}
	return workflow.Await(ctx, func() bool { return inFlight == 0 })
}

// childRun dispatches the child of one subgraph invocation, step by
// step: the invocation, run as a local activity, returns the child's next
// step (runner.InvokeResult.Child) until every child invocation is
// recorded, then runs to its end from the records and is recorded. Each
// child invocation is an activity of its own (or a local one, when pure)
// under the child's node caps and the run's global cap and pools. A child
// invocation that fails ends the child's dispatch; the subgraph
// invocation then fails on its record, and the step with it.
type childRun struct {
	c           *caps
	o           dispatchOptions
	outstanding *int
	failed      *bool
	engineErr   *error
	cancel      workflow.CancelFunc
}

// run starts the child's dispatch and returns the future of the
// subgraph invocation's result.
func (ch *childRun) run(ctx, lctx workflow.Context, in InvokeInput) workflow.Future {
	f, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		pin := in
		pin.Lookup = true
		for {
			var r runner.InvokeResult
			if err := workflow.ExecuteLocalActivity(lctx, InvokeActivity, pin).Get(gctx, &r); err != nil {
				set.Set(nil, err)
				return
			}
			if r.Child == nil {
				set.Set(&r, nil)
				return
			}
			if *ch.failed {
				set.Set(nil, sdktemporal.NewCanceledError())
				return
			}
			base := in
			if in.Call > 0 {
				// A subgraph tool's call: its child's invocations are
				// named through the call's path segment, which its result
				// gives.
				base = intoCall(in, r.Path)
			}
			dispatched, err := ch.step(gctx, base, r.Child)
			if err != nil {
				set.Set(nil, err)
				return
			}
			if dispatched == 0 && !*ch.failed {
				// Planned again, it would be the same plan: fail rather
				// than loop in one workflow task.
				set.Set(nil, sdktemporal.NewNonRetryableApplicationError(
					fmt.Sprintf("%s: child step %d has no invocation to dispatch", r.Path, r.Child.Step), "lgx", nil))
				return
			}
		}
	})
	return f
}

// intoCall is in, which names tool call in.Call-1 of a tools
// invocation, made to name that call (at path) as the parent of a child
// (runner.Invocation.Tool, runner.ChildRef.Tool): invocations of the
// call's child are appended to its Child.
func intoCall(in InvokeInput, path string) InvokeInput {
	seg := path[strings.LastIndexByte(path, '/')+1:]
	if in.Child == nil {
		in.Tool = seg
	} else {
		in.Child = in.Child.WithTool(seg)
	}
	in.Call = 0
	return in
}

// step dispatches one child step's unrecorded invocations and waits
// until they ended.
func (ch *childRun) step(ctx workflow.Context, in InvokeInput, cp *runner.StepPlan) (dispatched int, err error) {
	rates := ch.o.limiters(cp)
	c := ch.c.forChild(cp)
	keyRates := map[keyRef]*rate.Limiter{}
	if c.sharedKeys {
		keyRates = c.keyRate
	}
	inFlight, stop := 0, false
	// A failing child invocation cancels the rest of its step, as a
	// child run locally does.
	sctx, cancelStep := workflow.WithCancel(ctx)
	defer cancelStep()
	lctx := workflow.WithLocalActivityOptions(sctx, localActivityOptions())
	for ni := range cp.Nodes {
		pn := &cp.Nodes[ni]
		for k := range pn.Invocations() {
			if pn.Done(k) {
				continue
			}
			if err := workflow.Await(ctx, func() bool {
				return *ch.failed || stop || *ch.outstanding < maxOutstanding && c.free(pn, ni, k)
			}); err != nil {
				return dispatched, err
			}
			if *ch.failed || stop {
				break
			}
			if pn.Slot {
				if err := takeTokens(ctx, rates, keyRates, c, pn, k); err != nil {
					return dispatched, err
				}
			}
			c.take(pn, ni, k, 1)
			dispatched++
			*ch.outstanding++
			inFlight++
			idx := k
			if pn.Items < 0 {
				idx = -1
			}
			ci := in
			ci.Lookup, ci.Child = true, in.Child.Append(runner.ChildRef{Step: cp.Step, Node: pn.Name, Index: idx})
			var f workflow.Future
			switch {
			case pn.Child:
				// A subgraph inside the child: its child's steps, each
				// dispatched here in turn, under the same caps.
				nested := &childRun{c: c, o: ch.o, outstanding: ch.outstanding, failed: ch.failed, engineErr: ch.engineErr, cancel: ch.cancel}
				f = nested.run(sctx, lctx, ci)
			case pn.Calls:
				// A tools node of the child: its calls under their tools'
				// caps (the child's declared tools), then the invocation.
				tc := &toolCalls{c: c, o: ch.o, rates: rates, outstanding: ch.outstanding, failed: ch.failed, engineErr: ch.engineErr, cancel: ch.cancel}
				f = tc.run(sctx, lctx, ci)
			case ch.o.pureLocal && pn.Pure:
				f = workflow.ExecuteLocalActivity(lctx, InvokeActivity, ci)
			default:
				f = workflow.ExecuteActivity(sctx, InvokeActivity, ci)
			}
			workflow.Go(ctx, func(gctx workflow.Context) {
				var r runner.InvokeResult
				err := f.Get(gctx, &r)
				c.take(pn, ni, k, -1)
				*ch.outstanding--
				inFlight--
				var ce *sdktemporal.CanceledError
				switch {
				case err != nil && errors.As(err, &ce):
					stop = true
				case err != nil:
					if *ch.engineErr == nil {
						*ch.engineErr = err
					}
					*ch.failed = true
					ch.cancel()
				case r.Status == store.InvocationFailed || r.Status == runner.InvocationCancelled:
					stop = true
					cancelStep()
				}
			})
		}
		if *ch.failed || stop {
			break
		}
	}
	return dispatched, workflow.Await(ctx, func() bool { return inFlight == 0 })
}
