package temporaltest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/internal/temporaltest"
)

// fakeTB records a Skip instead of ending the test, so Address's skip path
// is checked without this test itself reporting as skipped.
type fakeTB struct {
	testing.TB
	skipped string
}

func (f *fakeTB) Helper()          {}
func (f *fakeTB) Skip(args ...any) { f.skipped = fmt.Sprint(args...) }

func TestAddress(t *testing.T) {
	tests := []struct {
		name, env, want, skip string
	}{
		{name: "set", env: "127.0.0.1:17233", want: "127.0.0.1:17233"},
		{name: "unset", env: "", skip: "LGX_TEST_TEMPORAL not set: no Temporal dev server (start one with: eval \"$(tools/devtemporal/start.sh)\")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(temporaltest.EnvAddress, tt.env)
			f := &fakeTB{TB: t}
			if got := temporaltest.Address(f); got != tt.want {
				t.Errorf("Address = %q, want %q", got, tt.want)
			}
			if f.skipped != tt.skip {
				t.Errorf("skip message = %q, want %q", f.skipped, tt.skip)
			}
		})
	}
}

const (
	workflowName = "lgx-temporaltest-fanout"
	updateName   = "answer"
	signalName   = "finish"
	// rendezvousWait is how long one activity waits for the other to start:
	// long enough for a loaded CI machine, short enough to fail in seconds
	// when the two calls are not in flight together.
	rendezvousWait = 5 * time.Second
)

// fanOutResult is what the workflow returns: both activity results and the
// answer the update delivered.
type fanOutResult struct {
	A, B   int
	Answer string
}

// fanOut is shaped like the workflow lgx will run on Temporal: two
// invocations of one activity in flight at once, then a wait for an answer
// from outside (an interrupt's answer arrives as an update), answered once.
func fanOut(ctx workflow.Context, a, b int) (fanOutResult, error) {
	var answer string
	finished := false
	err := workflow.SetUpdateHandlerWithOptions(ctx, updateName,
		func(ctx workflow.Context, s string) (string, error) {
			answer = s
			return "accepted " + s, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, s string) error {
			switch {
			case answer != "":
				return fmt.Errorf("already answered %q", answer)
			case s == "":
				return errors.New("empty answer")
			}
			return nil
		}})
	if err != nil {
		return fanOutResult{}, fmt.Errorf("register update handler: %w", err)
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		workflow.GetSignalChannel(ctx, signalName).Receive(ctx, nil)
		finished = true
	})

	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * rendezvousWait,
		// One attempt: a failed rendezvous should fail the test, not retry.
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	fa := workflow.ExecuteActivity(ctx, "Double", a)
	fb := workflow.ExecuteActivity(ctx, "Double", b)
	var res fanOutResult
	if err := fa.Get(ctx, &res.A); err != nil {
		return res, fmt.Errorf("activity a: %w", err)
	}
	if err := fb.Get(ctx, &res.B); err != nil {
		return res, fmt.Errorf("activity b: %w", err)
	}
	if err := workflow.Await(ctx, func() bool { return answer != "" && finished }); err != nil {
		return res, err
	}
	res.Answer = answer
	return res, nil
}

// rendezvous is the activity: each call waits until the other has started,
// so the workflow only completes when the server dispatched both at once.
type rendezvous struct {
	mu      sync.Mutex
	arrived int
	both    chan struct{}
}

func (r *rendezvous) Double(ctx context.Context, n int) (int, error) {
	r.mu.Lock()
	r.arrived++
	if r.arrived == 2 {
		close(r.both)
	}
	r.mu.Unlock()
	timer := time.NewTimer(rendezvousWait)
	defer timer.Stop()
	select {
	case <-r.both:
		return 2 * n, nil
	case <-timer.C:
		return 0, fmt.Errorf("the other call did not start within %s: the activities ran one at a time", rendezvousWait)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// answer sends the update and waits for its outcome; a rejection by the
// validator comes back as the error.
func answer(ctx context.Context, c client.Client, workflowID, s string) (string, error) {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflowID,
		UpdateName:   updateName,
		Args:         []any{s},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return "", err
	}
	var reply string
	err = h.Get(ctx, &reply)
	return reply, err
}

// TestDevServer runs against the server tools/devtemporal/start.sh starts:
// a worker in this process, a workflow with two concurrent activities, an
// update answered once, a signal, and the history read back.
func TestDevServer(t *testing.T) {
	temporaltest.Address(t) // skip before anything else when there is no server
	ignore := goleak.IgnoreCurrent()
	// Registered first, so it runs last: after the worker stops and the
	// client closes (their cleanups run before this one).
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore)
	})

	c := temporaltest.Dial(t)
	suffix := fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	taskQueue := "lgx-temporaltest-" + suffix
	workflowID := "lgx-temporaltest-wf-" + suffix

	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(fanOut, workflow.RegisterOptions{Name: workflowName})
	w.RegisterActivity(&rendezvous{both: make(chan struct{})})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflowID,
		TaskQueue:                taskQueue,
		WorkflowExecutionTimeout: 30 * time.Second,
	}, workflowName, 20, 21)
	if err != nil {
		t.Fatalf("start workflow: %v", err)
	}

	if _, err := answer(ctx, c, workflowID, ""); err == nil || !strings.Contains(err.Error(), "empty answer") {
		t.Errorf("empty answer: err = %v, want the validator's rejection", err)
	}
	reply, err := answer(ctx, c, workflowID, "yes")
	if err != nil || reply != "accepted yes" {
		t.Fatalf("answer: reply %q, err %v; want \"accepted yes\"", reply, err)
	}
	if _, err := answer(ctx, c, workflowID, "no"); err == nil || !strings.Contains(err.Error(), `already answered "yes"`) {
		t.Errorf("second answer: err = %v, want it refused", err)
	}
	if err := c.SignalWorkflow(ctx, workflowID, "", signalName, nil); err != nil {
		t.Fatalf("signal: %v", err)
	}

	var got fanOutResult
	if err := run.Get(ctx, &got); err != nil {
		t.Fatalf("workflow: %v", err)
	}
	if want := (fanOutResult{A: 40, B: 42, Answer: "yes"}); got != want {
		t.Errorf("result = %+v, want %+v", got, want)
	}

	// The history: both activities scheduled before either completed, one
	// accepted update (rejected ones leave no event), the signal, the end.
	iter := c.GetWorkflowHistory(ctx, workflowID, run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	counts := map[enumspb.EventType]int{}
	var order []enumspb.EventType
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		counts[ev.GetEventType()]++
		order = append(order, ev.GetEventType())
	}
	for et, want := range map[enumspb.EventType]int{
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:          1,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:             2,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:             2,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:  1,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED: 1,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:         1,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:        1,
	} {
		if counts[et] != want {
			t.Errorf("history has %d %s events, want %d (history: %v)", counts[et], et, want, order)
		}
	}
	if n := len(order); n == 0 || order[n-1] != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
		t.Errorf("history does not end with the completion: %v", order)
	}
	scheduled := 0
	for _, et := range order {
		if et == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED {
			scheduled++
		}
		if et == enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED && scheduled < 2 {
			t.Errorf("an activity completed before both were scheduled: %v", order)
			break
		}
	}
}
