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
	"time"

	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

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
	// DefaultTaskQueue is the task queue of `lgx worker` and `lgx run
	// --engine temporal` when none is given.
	DefaultTaskQueue = "lgx"
)

// RunInput starts lgx.run: the run (recorded in the store by the client)
// and the --concurrency override (0: the workflow's config.concurrency).
type RunInput struct {
	RunID       string
	Concurrency int
}

// RunOutput is how the run ended: a store status and the redacted error.
type RunOutput struct {
	Status store.Status
	Error  string
	Steps  int
}

// PlanInput and CommitInput name the run (and step) a local activity works on.
type PlanInput struct {
	RunID       string
	Concurrency int
}

// InvokeInput names one invocation: node and item index (-1 without
// for_each) of a run's step.
type InvokeInput struct {
	RunID       string
	Concurrency int
	Step        int
	Node        string
	Index       int
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
// heartbeat instead.
const (
	localTimeout     = time.Minute
	invokeTimeout    = 24 * time.Hour
	heartbeatTimeout = 10 * time.Second
)

// Options the workflow gives its activities. lgx's own failures come back
// as results (status failed), so Temporal retries only what failed around
// them — a worker that died, a store that was unreachable — and InvokeOne
// does not run an invocation that was already recorded.
func activityOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: invokeTimeout,
		HeartbeatTimeout:    heartbeatTimeout,
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
	out, err := steps(ctx, in)
	if ctx.Err() == nil {
		return out, err
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	dctx = workflow.WithLocalActivityOptions(dctx, localActivityOptions())
	var p runner.StepPlan
	if err := workflow.ExecuteLocalActivity(dctx, CancelActivity, PlanInput(in)).Get(dctx, &p); err != nil {
		return nil, fmt.Errorf("record the cancellation: %w", err)
	}
	return &RunOutput{Status: p.Status, Error: p.Error, Steps: p.Step}, nil
}

// steps runs the run's steps until it ends or ctx is cancelled.
func steps(ctx workflow.Context, in RunInput) (*RunOutput, error) {
	lctx := workflow.WithLocalActivityOptions(ctx, localActivityOptions())
	actx := workflow.WithActivityOptions(ctx, activityOptions())
	for {
		var p runner.StepPlan
		if err := workflow.ExecuteLocalActivity(lctx, PlanActivity, PlanInput(in)).Get(ctx, &p); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		if p.Done {
			return &RunOutput{Status: p.Status, Error: p.Error, Steps: p.Step}, nil
		}
		if err := dispatch(actx, in, &p); err != nil {
			return nil, err
		}
		var res runner.StepResult
		if err := workflow.ExecuteLocalActivity(lctx, CommitActivity, CommitInput{RunID: in.RunID, Concurrency: in.Concurrency, Step: p.Step}).Get(ctx, &res); err != nil {
			return nil, fmt.Errorf("commit step %d: %w", p.Step, err)
		}
		if res.Status != store.StatusRunning {
			return &RunOutput{Status: res.Status, Error: res.Error, Steps: res.Step}, nil
		}
	}
}

// caps are the counters the workflow holds for one step: invocations
// outstanding in total, per node and per pool, against their caps (0: no
// cap). They live in workflow code, so they are exact across any number
// of workers, and deterministic on replay.
type caps struct {
	global, globalCap int
	node, nodeCap     []int
	pool, poolCap     map[string]int
}

func newCaps(p *runner.StepPlan) *caps {
	c := &caps{globalCap: p.Global, node: make([]int, len(p.Nodes)), nodeCap: make([]int, len(p.Nodes)),
		pool: map[string]int{}, poolCap: map[string]int{}}
	for i, n := range p.Nodes {
		c.nodeCap[i] = n.Cap
	}
	for _, pc := range p.Pools {
		c.poolCap[pc.Name] = pc.Cap
	}
	return c
}

func (c *caps) free(p *runner.PlannedNode, ni int) bool {
	if !p.Slot {
		return true
	}
	if c.globalCap > 0 && c.global >= c.globalCap || c.nodeCap[ni] > 0 && c.node[ni] >= c.nodeCap[ni] {
		return false
	}
	for _, name := range p.Pools {
		if cp := c.poolCap[name]; cp > 0 && c.pool[name] >= cp {
			return false
		}
	}
	return true
}

func (c *caps) take(p *runner.PlannedNode, ni int, d int) {
	if !p.Slot {
		return
	}
	c.global += d
	c.node[ni] += d
	for _, name := range p.Pools {
		c.pool[name] += d
	}
}

// dispatch runs the step's invocations as activities, in file then item
// order, each once its caps are free; the first failure stops the rest
// (the local engine cancels a failing step's other invocations too). It
// returns once every started activity has ended; the outcome is in the
// store, where commit reads it.
func dispatch(ctx workflow.Context, in RunInput, p *runner.StepPlan) error {
	sctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	c := newCaps(p)
	outstanding, failed := 0, false
	var engineErr error
	for ni := range p.Nodes {
		pn := &p.Nodes[ni]
		for k := range pn.Invocations() {
			idx := k
			if pn.Items < 0 {
				idx = -1
			}
			if err := workflow.Await(ctx, func() bool { return failed || c.free(pn, ni) }); err != nil {
				return err
			}
			if failed {
				break
			}
			c.take(pn, ni, 1)
			outstanding++
			f := workflow.ExecuteActivity(sctx, InvokeActivity, InvokeInput{RunID: in.RunID, Concurrency: in.Concurrency,
				Step: p.Step, Node: pn.Name, Index: idx})
			workflow.Go(ctx, func(gctx workflow.Context) {
				var r runner.InvokeResult
				err := f.Get(gctx, &r)
				c.take(pn, ni, -1)
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
		if failed {
			break
		}
	}
	if err := workflow.Await(ctx, func() bool { return outstanding == 0 }); err != nil {
		return err
	}
	if engineErr != nil {
		workflow.GetLogger(ctx).Warn("invoke activity failed", "run", in.RunID, "step", p.Step, "error", engineErr)
	}
	return nil
}
