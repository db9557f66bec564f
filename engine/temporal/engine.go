package temporal

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Register registers lgx.run and its activities, served by a, on w.
func Register(w worker.Registry, a *Activities) {
	w.RegisterWorkflowWithOptions(Run, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterActivityWithOptions(a.Plan, activity.RegisterOptions{Name: PlanActivity})
	w.RegisterActivityWithOptions(a.Invoke, activity.RegisterOptions{Name: InvokeActivity})
	w.RegisterActivityWithOptions(a.Commit, activity.RegisterOptions{Name: CommitActivity})
	w.RegisterActivityWithOptions(a.Cancel, activity.RegisterOptions{Name: CancelActivity})
	w.RegisterActivityWithOptions(a.ToolCalls, activity.RegisterOptions{Name: ToolCallsActivity})
}

// WorkerOptions are the settings of one worker process.
type WorkerOptions struct {
	TaskQueue string // "" is DefaultTaskQueue
	// MaxActivities bounds the invocations this process runs at once (0:
	// the SDK's default). It is a per-process limit, not a cap: caps are
	// held by the workflow.
	MaxActivities int
}

// NewWorker returns a worker (not started) serving lgx.run on c. With
// MaxActivities, the worker runs at most that many invocations at once
// (the items of a chunk each count) and polls for activity tasks only
// while it has room for one.
func NewWorker(c client.Client, a *Activities, o WorkerOptions) (worker.Worker, error) {
	q := o.TaskQueue
	if q == "" {
		q = DefaultTaskQueue
	}
	opts := worker.Options{
		// A stopping worker lets its activities finish (an invocation
		// half-done would be re-sent elsewhere, with the same idempotency
		// key, but a finished one costs nothing to keep).
		WorkerStopTimeout: 30 * time.Second,
		// A workflow task waits this long on the queue of the worker that
		// ran the run's last task (its cache) before any worker may take
		// it: short, so a run whose worker died (or whose server
		// restarted) goes on within seconds, not the SDK's 5 s.
		StickyScheduleToStartTimeout: 2 * time.Second,
	}
	if o.MaxActivities > 0 {
		a.slots = newWorkerSlots(o.MaxActivities)
		tuner, err := a.slots.tuner()
		if err != nil {
			return nil, err
		}
		opts.Tuner = tuner
	}
	w := worker.New(c, q, opts)
	Register(w, a)
	return w, nil
}

// Start starts lgx.run for a run the store records (runner.SubmitRun);
// the workflow id is the run id, so a run is executed once.
func Start(ctx context.Context, c client.Client, taskQueue string, in RunInput) (client.WorkflowRun, error) {
	if taskQueue == "" {
		taskQueue = DefaultTaskQueue
	}
	// A run is started once; a reopened run (Resumed) is a new execution
	// of the same workflow id, once the previous one closed.
	reuse := enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
	if in.Resumed {
		reuse = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	}
	wr, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       in.RunID,
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    reuse,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
	}, WorkflowName, in)
	if err != nil {
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &started) {
			return nil, fmt.Errorf("run %s is already executing on Temporal: %w", in.RunID, err)
		}
		return nil, fmt.Errorf("start run %s on Temporal: %w", in.RunID, err)
	}
	return wr, nil
}

// Served reports whether some worker polls the task queue for workflow
// tasks (the server keeps pollers seen in the last minutes): a run
// started on a queue nobody serves waits, silently, until a worker comes.
func Served(ctx context.Context, c client.Client, taskQueue string) (bool, error) {
	if taskQueue == "" {
		taskQueue = DefaultTaskQueue
	}
	resp, err := c.DescribeTaskQueue(ctx, taskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
	if err != nil {
		return false, fmt.Errorf("describe task queue %s: %w", taskQueue, err)
	}
	return len(resp.GetPollers()) > 0, nil
}

// Await waits for lgx.run to end and returns how the run ended.
func Await(ctx context.Context, wr client.WorkflowRun) (*RunOutput, error) {
	var out RunOutput
	if err := wr.Get(ctx, &out); err != nil {
		return nil, fmt.Errorf("run %s on Temporal: %w", wr.GetID(), err)
	}
	return &out, nil
}

// Follow waits until run runID pauses at interrupts (Status interrupted)
// or ends, and says how, following the run's executions as they continue
// as new. A run whose workflow already ended is read from its result.
func Follow(ctx context.Context, c client.Client, runID string) (*RunOutput, error) {
	for tries := 0; ; tries++ {
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   runID,
			UpdateName:   WaitUpdate,
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		var out RunOutput
		if err == nil {
			err = h.Get(ctx, &out)
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err == nil && !out.Continued:
			return &out, nil
		case err == nil:
			continue // the next execution answers
		}
		// The execution closed before it handled the update: a next one
		// may be starting (Continue-As-New), or the run ended.
		d, derr := c.DescribeWorkflow(ctx, runID, "")
		if derr == nil && d.RawResponse.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING && tries < followRetries {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(followRetryWait):
			}
			continue
		}
		return Await(ctx, c.GetWorkflow(ctx, runID, ""))
	}
}

// followRetries bounds how often Follow asks a running execution again
// after its update failed (it closed meanwhile, say), followRetryWait
// apart, before it waits for the workflow's result instead.
const (
	followRetries   = 50
	followRetryWait = 100 * time.Millisecond
)

// RefusedError is an answer the workflow refused: the run does not wait
// at that interrupt (any more).
type RefusedError struct {
	RunID, Path string
	Reason      string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("run %s refused the answer to %s: %s", e.RunID, e.Path, e.Reason)
}

// Answer gives run runID the answer recorded under nonce to the
// interrupt at path. The workflow accepts one answer while the run waits;
// a second, or one for an interrupt it does not wait at, is a
// *RefusedError.
func Answer(ctx context.Context, c client.Client, runID, path, nonce string) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   runID,
		UpdateName:   AnswerUpdate,
		Args:         []any{AnswerInput{Path: path, Nonce: nonce}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err == nil {
		return nil
	}
	var nf *serviceerror.NotFound
	var app *sdktemporal.ApplicationError
	switch {
	case errors.As(err, &nf):
		return &RefusedError{RunID: runID, Path: path, Reason: "its workflow is no longer running"}
	case errors.As(err, &app):
		return &RefusedError{RunID: runID, Path: path, Reason: app.Message()}
	}
	return fmt.Errorf("answer run %s on Temporal: %w", runID, err)
}
