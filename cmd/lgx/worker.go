package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/lgx-run/lgx/engine/temporal"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// temporalFlags say where the Temporal cluster is: shared by lgx worker
// and lgx run --engine temporal.
type temporalFlags struct {
	address   string // --temporal HOST:PORT; "" is $LGX_TEMPORAL_ADDRESS, else 127.0.0.1:7233
	namespace string
	taskQueue string
}

func (f *temporalFlags) add(cmd *cobra.Command) {
	f.addCluster(cmd)
	cmd.Flags().StringVar(&f.taskQueue, "task-queue", temporal.DefaultTaskQueue, "the Temporal task queue lgx's workers serve")
}

// addCluster adds the flags that say where the Temporal cluster is.
func (f *temporalFlags) addCluster(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.address, "temporal", "", "the Temporal frontend `HOST:PORT` (default $LGX_TEMPORAL_ADDRESS, else 127.0.0.1:7233)")
	fl.StringVar(&f.namespace, "namespace", "default", "the Temporal namespace")
}

func (f *temporalFlags) hostPort() string {
	switch {
	case f.address != "":
		return f.address
	case os.Getenv("LGX_TEMPORAL_ADDRESS") != "":
		return os.Getenv("LGX_TEMPORAL_ADDRESS")
	}
	return "127.0.0.1:7233"
}

// dialTimeout bounds the first contact with the Temporal frontend: a
// wrong address fails in seconds, saying which.
const dialTimeout = 10 * time.Second

// dial connects to the Temporal cluster.
func (f *temporalFlags) dial(ctx context.Context) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := client.DialContext(dctx, client.Options{HostPort: f.hostPort(), Namespace: f.namespace, Logger: sdkLogger()})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w", f.hostPort(), f.namespace, err)
	}
	return c, nil
}

// sdkLogger keeps the SDK's routine info lines off stderr; its warnings
// and errors still show.
func sdkLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// workerOptions are lgx worker's flags.
type workerOptions struct {
	temporal      temporalFlags
	store         storeFlag
	maxActivities int
}

func (a *app) workerCmd() *cobra.Command {
	var opts workerOptions
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Execute runs started with --engine temporal, as a Temporal worker",
		Long: `worker serves lgx's Temporal workflow (lgx.run) and its activities on a
task queue: it plans each step of the runs started with lgx run --engine
temporal, runs their node invocations, and commits their steps, all against
the store. Start as many workers, on as many machines, as the work needs;
every worker and client of a run must use the same store (PostgreSQL, or
one SQLite file on one machine) and the same task queue.

A worker executes runs in its own environment: env and secrets are the
worker's. Caps (config.concurrency, node and pool concurrency, pool
rates) are held by the workflow, exact across workers; --max-activities
only bounds this process: the invocations it runs at once, each item of a
large for_each's chunk counted.

The worker runs until SIGINT or SIGTERM, then stops taking work and lets the
invocations it runs finish (up to 30 s).`,
		Example: `  LGX_STORE=postgres://lgx@db/lgx lgx worker --temporal temporal.internal:7233
  lgx worker --store sqlite:/srv/lgx/runs.db --max-activities 16`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runWorker(cmd.Context(), opts)
		},
	}
	opts.temporal.add(cmd)
	f := cmd.Flags()
	f.StringVar(&opts.store.kind, "store", "", "the store runs are recorded in: sqlite:PATH or postgres://… (default $LGX_STORE, else sqlite under $LGX_HOME)")
	f.IntVar(&opts.maxActivities, "max-activities", 0, "invocations this process runs at once (default: the SDK's, 1000)")
	return cmd
}

// runWorker serves lgx.run until a signal.
func (a *app) runWorker(ctx context.Context, opts workerOptions) error {
	if opts.maxActivities < 0 {
		return usageErrf("--max-activities must be positive")
	}
	if opts.store.url() == "memory" {
		return usageErrf("%s: a worker needs the store its clients use (sqlite:PATH or postgres://…)", opts.store.named())
	}
	st, err := opts.store.open()
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := opts.temporal.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// The config's pools are machine-wide: each attempt takes their slots
	// and tokens from the config's store, shared with every other worker
	// and local run using it.
	m, closeMachine, err := workerMachinePools(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeMachine(); err != nil {
			fmt.Fprintf(a.ios.Err, "lgx worker: warning: %v\n", err)
		}
	}()
	acts := &temporal.Activities{Store: st, HTTPClient: nodes.NewHTTPClient(version), Machine: m}
	// MCP servers run next to the worker: their stderr lines (redacted)
	// are the worker's, as a local run's are its events.
	var errMu sync.Mutex
	acts.MCP.Stderr = func(run, server, line string) {
		errMu.Lock()
		defer errMu.Unlock()
		if server == "" {
			fmt.Fprintf(a.ios.Err, "lgx worker: run %s: %s\n", run, line)
			return
		}
		fmt.Fprintf(a.ios.Err, "lgx worker: run %s: mcp server %s: %s\n", run, server, line)
	}
	// After the worker stopped (deferred after w.Stop returns): every MCP
	// server the worker started stops with it.
	defer acts.Close()
	w, err := temporal.NewWorker(c, acts, temporal.WorkerOptions{TaskQueue: opts.temporal.taskQueue, MaxActivities: opts.maxActivities})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	fmt.Fprintf(a.ios.Err, "lgx worker: serving task queue %s on %s (namespace %s)\n", opts.temporal.taskQueue, opts.temporal.hostPort(), opts.temporal.namespace)
	<-ctx.Done()
	fmt.Fprintln(a.ios.Err, "lgx worker: stopping (finishing the invocations in progress)")
	w.Stop()
	return nil
}

// runTemporal is lgx run --engine temporal: the run is validated and
// recorded here, then executed by the workers; this process waits for it
// (unless --detach) and reports it as a local run would.
func (a *app) runTemporal(ctx context.Context, opts runOptions) error {
	out := opts.out
	if err := out.check(); err != nil {
		return err
	}
	switch {
	case opts.concurrency < 0:
		return usageErrf("--concurrency must be positive")
	case opts.cassette.record != "" && opts.cassette.replay == "" && opts.detach:
		return usageErrf("--record cannot be used with --detach: this process writes the cassette when the run ends")
	case opts.store.url() == "memory":
		return usageErrf("%s: with --engine temporal the workers must read the run from the store (sqlite:PATH or postgres://…)", opts.store.named())
	}
	wf, in, g, err := a.loadRun(opts.file, opts.inputFile, opts.inputs)
	if err != nil {
		return err
	}
	if err := runner.DistributableTree(g); err != nil {
		return usageErr(err)
	}
	if opts.cassette.record != "" && opts.cassette.replay == "" {
		if err := runner.RecordableOnEngine(g); err != nil {
			return usageErr(err)
		}
	}
	cas, err := opts.cassette.forEngine(wf)
	if err != nil {
		return err
	}
	st, err := opts.store.open()
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := opts.temporal.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	runID := ulid.Make().String()
	if err := runner.SubmitCassette(ctx, g, st, runID, in, os.Environ(), cas); err != nil {
		return err
	}
	var states *runner.StepStates
	if !opts.detach {
		if states, err = stepStates(ctx, st, runID, out); err != nil {
			_ = st.FinishRun(context.WithoutCancel(ctx), runID, store.StatusFailed, err.Error(), time.Now())
			return err
		}
	}
	_, err = temporal.Start(ctx, c, opts.temporal.taskQueue, temporal.RunInput{RunID: runID, Concurrency: opts.concurrency})
	if err != nil {
		// Recorded but never started: nothing will execute it.
		_ = st.FinishRun(context.WithoutCancel(ctx), runID, store.StatusFailed, err.Error(), time.Now())
		return err
	}
	unserved := a.unserved(ctx, c, opts.temporal)
	if opts.detach {
		fmt.Fprintln(a.ios.Out, runID)
		unserved()
		return nil
	}
	fmt.Fprintln(a.ios.Err, "run "+runID)
	// Asked only if the run is still going after a moment: a worker just
	// started may not have polled yet.
	hint := time.AfterFunc(unservedAfter, unserved)
	defer hint.Stop()
	err = a.followTemporal(ctx, c, st, runID, wf.Name, runner.LogMark{}, states, out, outputKeys(wf))
	if cas.Record {
		// Written once the run ends or pauses, as a local recording is.
		return writeRecorded(ctx, st, runID, opts.cassette.record, err)
	}
	return err
}

// stepStates returns what --stream values reads each step's state with
// (nil without --stream values), positioned after the checkpoints the run
// has now: the steps a resume runs are sent, not those before (as a
// local resume sends them). Made before the run starts or goes on, so
// that no step the workers commit meanwhile is taken for an earlier one.
func stepStates(ctx context.Context, st store.Store, runID string, out outputFlags) (*runner.StepStates, error) {
	if out.stream != "values" {
		return nil, nil
	}
	cfg, err := configOf()
	if err != nil {
		return nil, err
	}
	s, err := runner.NewStepStates(ctx, st, runID, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Skip(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// followTemporal waits for a run on Temporal to end or pause at
// interrupts, and reports it as a local run would (output, exit code).
//
// The live view and --stream events are fed from the run's event log
// (runner.Tail), which the workers write as their invocations run. A
// resumed run's events from before it went on (up to mark from, read
// before the answer or the new execution) are not shown again. With
// --stream values, states (made by stepStates) reads each step's state
// from its checkpoint as the workers commit it.
func (a *app) followTemporal(ctx context.Context, c client.Client, st store.Store, runID, workflow string, from runner.LogMark, states *runner.StepStates, out outputFlags, keys []string) error {
	// Ctrl-C cancels the run as it cancels a local one: the workflow stops
	// its invocations and records the run as cancelled (resumable). A
	// second Ctrl-C quits at once; the cancellation goes on without us.
	sctx, stop := a.signalContext(ctx)
	defer stop()
	var values runner.Sink
	sink, closeView := a.sinks(out)
	if states != nil {
		// The lines come from the checkpoints, not the tail: the view
		// alone follows the records.
		values = newStreamSink(a.ios.Out, "values")
		sink, closeView = a.sinks(outputFlags{output: out.output})
	}
	tail, err := runner.NewTail(st, runID, workflow, sink)
	if err != nil {
		closeView()
		return err
	}
	tail.From(from) // else the view shows the earlier steps again
	poll := func(ctx context.Context) {
		// A busy store: the next poll catches up.
		_ = tail.Poll(ctx)
		if states != nil {
			_ = states.Poll(ctx, values)
		}
	}
	tctx, stopTail := context.WithCancel(ctx)
	tailed := make(chan struct{})
	go func() {
		defer close(tailed)
		runner.PollEvery(tctx, tailEvery, poll)
	}()
	endView := func(status store.Status, errMsg string, output map[string]any) {
		stopTail()
		<-tailed
		poll(context.WithoutCancel(ctx))
		tail.Settle(context.WithoutCancel(ctx)) // the workers' last events
		tail.End(status, errMsg, output, time.Now())
		closeView()
	}
	// Until the run ends, or pauses at interrupts (exit 3; lgx resume
	// answers through the workflow).
	if _, err := temporal.Follow(sctx, c, runID); err != nil {
		if sctx.Err() == nil {
			endView(store.StatusFailed, "", nil)
			return err
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelWait)
		defer cancel()
		if err := c.CancelWorkflow(cctx, runID, ""); err != nil {
			return fmt.Errorf("cancel run %s on Temporal: %w", runID, err)
		}
		if _, err := temporal.Await(cctx, c.GetWorkflow(cctx, runID, "")); err != nil {
			endView(store.StatusCancelled, "", nil)
			return fmt.Errorf("run %s: waiting for its cancellation: %w", runID, err)
		}
	}
	cfg, err := configOf()
	if err != nil {
		endView(store.StatusFailed, "", nil)
		return err
	}
	res, runErr := runner.Outcome(context.WithoutCancel(ctx), st, runID, cfg)
	if res == nil {
		endView(store.StatusFailed, "", nil)
		return runErr
	}
	endView(res.Status, recordedMsg(runErr), res.Output)
	var rec *runner.RecordedError
	switch {
	case runErr != nil && !errors.As(runErr, &rec):
		return runErr
	case res.Status == store.StatusCancelled:
		runErr = fmt.Errorf("%w: %w", runner.ErrCancelled, runErr)
	case res.Status == store.StatusRunning:
		return fmt.Errorf("run %s: the workflow ended but the store says the run is still running", runID)
	}
	return a.finish(res, runErr, out, keys, true)
}

// reopenTemporal continues a stopped run on the Temporal workers: a new
// execution of its workflow, from its last checkpoint, reusing what was
// recorded as a local resume does.
func (a *app) reopenTemporal(ctx context.Context, opts resumeOptions, st store.Store, run *store.Run, keys []string) error {
	if opts.store.url() == "memory" {
		return usageErrf("%s: with --engine temporal the workers must read the run from the store (sqlite:PATH or postgres://…)", opts.store.named())
	}
	c, cfg, err := opts.session(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	from, err := runner.LogEnd(ctx, st, run.ID)
	if err != nil {
		return err
	}
	states, err := stepStates(ctx, st, run.ID, opts.out)
	if err != nil {
		return err
	}
	if err := runner.ReopenRun(ctx, st, run.ID, cfg); err != nil {
		var ue *runner.UnsupportedError
		if errors.As(err, &ue) {
			return usageErr(err)
		}
		return err
	}
	if _, err := temporal.Start(ctx, c, opts.temporal.taskQueue, temporal.RunInput{RunID: run.ID, Resumed: true}); err != nil {
		// Not started: the run stays as it was, resumable.
		_ = st.FinishRun(context.WithoutCancel(ctx), run.ID, run.Status, run.Error, time.Now())
		return err
	}
	fmt.Fprintln(a.ios.Err, "run "+run.ID+" (resumed on Temporal)")
	hint := time.AfterFunc(unservedAfter, a.unserved(ctx, c, opts.temporal))
	defer hint.Stop()
	return a.followTemporal(ctx, c, st, run.ID, run.Workflow, from, states, opts.out, keys)
}

// session is what resuming a run on Temporal needs: a connection to the
// cluster and the user config the recorded workflow is read with.
func (opts resumeOptions) session(ctx context.Context) (client.Client, *spec.UserConfig, error) {
	cfg, err := configOf()
	if err != nil {
		return nil, nil, err
	}
	c, err := opts.temporal.dial(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// unserved returns a check that says so when no worker serves the task
// queue: without a word, a run on such a queue looks hung.
func (a *app) unserved(ctx context.Context, c client.Client, tf temporalFlags) func() {
	return func() {
		if served, err := temporal.Served(ctx, c, tf.taskQueue); err == nil && !served {
			fmt.Fprintf(a.ios.Err, "lgx: no worker serves task queue %s on %s yet; the run starts when one does (lgx worker --task-queue %s)\n",
				tf.taskQueue, tf.hostPort(), tf.taskQueue)
		}
	}
}

// resumeTemporal answers an interrupt of a run the Temporal workers
// drive: the answer is recorded in the store, the workflow accepts it (or
// refuses a second answer), and the run is followed as lgx run follows
// it.
func (a *app) resumeTemporal(ctx context.Context, opts resumeOptions, st store.Store, run *store.Run, keys []string, values map[string]any) error {
	if run.Status == store.StatusRunning || run.Status == store.StatusStale {
		return usageErrf("run %s is executing on the Temporal workers; there is nothing to resume (lgx runs show %s shows where it is)", run.ID, run.ID)
	}
	c, cfg, err := opts.session(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	ans, err := runner.RecordAnswer(ctx, st, run.ID, runner.Answer{Values: values, Node: opts.node, Empty: opts.empty}, os.Environ(), cfg)
	if err != nil {
		return err
	}
	from, err := runner.LogEnd(ctx, st, run.ID)
	if err != nil {
		return err
	}
	states, err := stepStates(ctx, st, run.ID, opts.out)
	if err != nil {
		_ = runner.RefuseAnswer(ctx, st, ans)
		return err
	}
	if err := temporal.Answer(ctx, c, run.ID, ans.Path, ans.Nonce); err != nil {
		_ = runner.RefuseAnswer(ctx, st, ans)
		var ref *temporal.RefusedError
		if errors.As(err, &ref) {
			return usageErr(ref)
		}
		return err
	}
	fmt.Fprintf(a.ios.Err, "run %s (resumed on Temporal: %s answered)\n", run.ID, ans.Path)
	return a.followTemporal(ctx, c, st, run.ID, run.Workflow, from, states, opts.out, keys)
}

// cancelWait bounds how long lgx run waits for a cancelled run to stop
// on the workers; unservedAfter is how long a run may wait before lgx
// run checks that some worker serves its task queue.
const (
	cancelWait    = 30 * time.Second
	unservedAfter = 2 * time.Second
	// tailEvery is how often the live view of a run on Temporal reads the
	// journal.
	tailEvery = 250 * time.Millisecond
)

// recordedMsg is the recorded error of a run's outcome, for run_end.
func recordedMsg(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
