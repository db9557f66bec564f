package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lgx-run/lgx/internal/tracing"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
	_ "github.com/lgx-run/lgx/store/postgres" // registers postgres:// with store.Open
)

// storeFlag selects where runs are recorded: --store URL, else $LGX_STORE,
// else the SQLite file under $LGX_HOME (SPEC §9.8).
type storeFlag struct {
	kind string // the --store URL as given; "" when the flag was not set
}

// url returns the store URL in effect.
func (f storeFlag) url() string {
	if f.kind != "" {
		return f.kind
	}
	return os.Getenv("LGX_STORE")
}

// open returns the run store the URL names: sqlite:PATH (or sqlite, the
// default file), memory, or postgres://….
func (f storeFlag) open() (store.Store, error) {
	st, err := store.Open(context.Background(), f.url())
	if errors.Is(err, store.ErrBadStoreURL) {
		return nil, usageErr(fmt.Errorf("%s: %w", f.source(), err))
	}
	return st, err
}

// source names where the store URL in effect came from, for messages:
// --store, or LGX_STORE when the flag was not set.
func (f storeFlag) source() string {
	if f.kind != "" {
		return "--store"
	}
	return "LGX_STORE"
}

// named is the store setting as the user gave it, for messages about
// its value: "--store memory" or "LGX_STORE=memory".
func (f storeFlag) named() string {
	if f.kind != "" {
		return "--store " + f.kind
	}
	return "LGX_STORE=" + f.url()
}

// samePress is how close two interrupts must be to count as one Ctrl-C.
const samePress = 250 * time.Millisecond

// signalContext returns a context cancelled by the first SIGINT, SIGTERM
// or SIGHUP, so a run stops cleanly and stays resumable: a closed terminal
// or a CI runner stopping a job must not leave a run that looks alive until
// its lease expires. A second such signal quits at once with code 130
// (a.quit): the user asked twice, and a run that does not stop promptly (a
// node deaf to its context) must not keep the terminal.
//
// SIGPIPE (stdout or stderr closed by its reader: `lgx run … --stream
// events | head`) cancels the run the same way instead of killing the
// process mid-step; later writes fail with EPIPE and do not count as a
// second request. After the run the default disposition is back, so a
// result written to a closed pipe ends lgx the conventional way.
func (a *app) signalContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		var first time.Time
		select {
		case sig := <-sigs:
			first = time.Now()
			if sig == syscall.SIGPIPE {
				fmt.Fprintln(a.ios.Err, "lgx: output closed by its reader; cancelling")
			} else {
				fmt.Fprintln(a.ios.Err, "lgx: cancelling (press Ctrl-C again to quit at once)")
			}
			cancel()
		case <-done:
			return
		}
		for {
			select {
			case sig := <-sigs:
				// A Ctrl-C typed at the terminal reaches a supervised lgx
				// twice, directly and passed on by its supervisor, within
				// moments: that is one press, not a second. A broken pipe
				// is reported again by every write to it.
				if sig == syscall.SIGPIPE || time.Since(first) < samePress {
					continue
				}
				a.quit(exitCancelled)
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		// Ignored, not just no longer caught: stop runs as lgx ends, and a
		// supervised lgx receives a typed Ctrl-C twice (from the terminal
		// and passed on by its supervisor). The second may arrive after
		// the run was cancelled and ended; caught by no one it would kill
		// the process by SIGINT instead of letting it exit 130.
		signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		signal.Reset(syscall.SIGPIPE)
		close(done)
		cancel()
	}
}

// finish reports a run's outcome on stderr, prints its result on stdout when
// it completed, and returns the error carrying the exit code.
// A run recorded in memory cannot be resumed, so no resume command is
// suggested for it.
func (a *app) finish(res *runner.Result, runErr error, out outputFlags, keys []string, durable bool) error {
	outcome := runOutcome(res, runErr)
	code := exitCode(outcome)
	if res != nil {
		for _, b := range res.Budgets { // budgets: usage against limit (SPEC §9.9)
			fmt.Fprintln(a.ios.Err, b.String())
		}
	}
	runID := ""
	if res != nil && durable {
		runID = res.RunID
	}
	switch code {
	case exitOK:
		if out.stream == "" || out.outputSet {
			if err := printResult(a.ios.Out, out.output, keys, res.Output); err != nil {
				return err
			}
		}
		return nil
	case exitInterrupted:
		var waiting []runner.Interrupt
		if res != nil {
			waiting = res.Interrupts
		}
		for _, in := range waiting {
			fmt.Fprintf(a.ios.Err, "paused at %s: %s\n", in.Path, in.Message)
		}
		switch {
		case runID == "":
		case budgetsOnly(waiting) != "":
			name := budgetsOnly(waiting)
			fmt.Fprintf(a.ios.Err, "resume with: lgx resume %s %s: the new limit of budget %s\n", runID, raiseFlags(res.Budgets, name), name)
		case len(waiting) > 1:
			fmt.Fprintf(a.ios.Err, "resume with: lgx resume %s --node PATH -i key=value (one interrupt at a time)\n", runID)
		default:
			fmt.Fprintf(a.ios.Err, "resume with: lgx resume %s %s\n", runID, runner.AnswerFlags(waiting[0].Answer))
		}
		return reported(outcome)
	case exitCancelled:
		if runID == "" {
			fmt.Fprintln(a.ios.Err, "lgx: run cancelled")
		} else {
			fmt.Fprintf(a.ios.Err, "lgx: run %s cancelled\nresume with: lgx resume %s\n", runID, runID)
		}
		return reported(outcome)
	case exitUsage:
		return outcome // main prints it
	default:
		if runErr == nil {
			runErr = errors.New("run failed")
		}
		fmt.Fprintf(a.ios.Err, "lgx: %v\n", runErr)
		switch {
		case runID == "" || repeatsOnResume(runErr):
		case errors.Is(runErr, store.ErrLeaseLost):
			// Another process took the run over: it is not this one's to resume.
			fmt.Fprintf(a.ios.Err, "another process executes run %s now: lgx runs show %s\n", runID, runID)
		default:
			fmt.Fprintf(a.ios.Err, "resume with: lgx resume %s\n", runID)
		}
		return reported(fmt.Errorf("%w: %w", errFailed, runErr))
	}
}

// repeatsOnResume reports a failure that a resume would meet again
// identically (SPEC §9.6): the recursion limit, a replace conflict and a
// node failure that depends only on the recorded workflow and state
// (NodeError.Repeats), so suggesting `lgx resume` would only send the user
// round in a circle.
func repeatsOnResume(err error) bool {
	var re *runner.RecursionError
	var ce *runner.ConflictError
	var ne *runner.NodeError
	return errors.As(err, &re) || errors.As(err, &ce) || (errors.As(err, &ne) && ne.Repeats)
}

// execute runs (or resumes) a run the way both commands do: Ctrl-C
// handling, the "run ID" line, the stream and progress sinks, and the
// report of the outcome. start does the work with the prepared options.
func (a *app) execute(ctx context.Context, header string, out outputFlags, keys []string, durable bool,
	start func(ctx context.Context, opts runner.Options) (*runner.Result, error)) error {
	ctx, stop := a.signalContext(ctx)
	defer stop()
	// Traces when an OTLP endpoint is configured (docs/tracing.md). The
	// exporter reads the OTEL_* variables from the process environment.
	// Checked before the run is announced: a bad setting runs nothing.
	tp, err := tracing.FromEnv(ctx, os.Getenv)
	if err != nil {
		return err
	}
	if header != "" { // "" when start announces the run itself (lgx run)
		fmt.Fprintln(a.ios.Err, header)
	}
	sink, closeView := a.sinks(out)
	client := nodes.NewHTTPClient(version)
	if tp != nil {
		tracing.WarnTo(a.ios.Err)
		sink = multiSink{sink, tp.Sink()}
		client.Transport = tp.Transport(client.Transport)
		defer func() {
			// Bounded: an unreachable collector must not hold the exit.
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				fmt.Fprintf(a.ios.Err, "lgx: warning: %v\n", err)
			}
		}()
	}
	opts := runner.Options{
		Sink:       sink,
		StepState:  out.stream == "values",
		HTTPClient: client,
	}
	if tp != nil {
		opts.InvocationContext = tp.Sink().InvocationContext
	}
	m, closeMachine, err := machinePools(ctx, a.wf)
	if err != nil {
		closeView()
		return err
	}
	defer func() {
		if err := closeMachine(); err != nil {
			fmt.Fprintf(a.ios.Err, "lgx: warning: %v\n", err)
		}
	}()
	opts.Machine = m
	res, runErr := start(ctx, opts)
	closeView()
	return a.finish(res, runErr, out, keys, durable)
}

// raiseFlags is the -i a budget's limit is raised with: tokens, usd or
// either, as the budget has limits (a budget without a token limit refuses
// -i tokens=N).
func raiseFlags(budgets []runner.BudgetUsage, name string) string {
	for _, b := range budgets {
		if b.Name != name {
			continue
		}
		switch {
		case b.Limit > 0 && b.USDLimit > 0:
			return "-i tokens=N and/or -i usd=X"
		case b.USDLimit > 0:
			return "-i usd=X"
		}
		return "-i tokens=N"
	}
	return "-i tokens=N (or -i usd=X)"
}

// budgetsOnly names the budget every waiting interrupt is a call paused
// for, or "" when an interrupt node waits or several budgets do: the calls
// paused for one budget are answered at once (SPEC §9.9).
func budgetsOnly(waiting []runner.Interrupt) string {
	name := ""
	for _, in := range waiting {
		if in.Budget == "" || (name != "" && in.Budget != name) {
			return ""
		}
		name = in.Budget
	}
	return name
}
