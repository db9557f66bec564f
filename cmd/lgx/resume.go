package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// resumeOptions are lgx resume's flags and argument.
type resumeOptions struct {
	runID     string
	inputs    []string // -i key=value: the interrupt's answer or a budget's new limit
	inputFile string
	node      string
	empty     bool
	out       outputFlags
	store     storeFlag
	temporal  temporalFlags // for a run the Temporal workers drive
	engine    string        // local, or temporal: a new execution on the workers
}

func (a *app) resumeCmd() *cobra.Command {
	var opts resumeOptions
	cmd := &cobra.Command{
		Use:   "resume RUN",
		Short: "Continue a failed, cancelled, killed or interrupted run",
		Long: `resume continues a recorded run from its last checkpoint, with the workflow
text recorded when the run started. Invocations whose writes were recorded
are never run again; POSTs re-sent after a crash carry the same
Idempotency-Key as before.

For a run paused at an interrupt node, the -i values, as one object, become
that node's result; an interrupt that declares its answer (with.answer)
has them read by its types, and refuses a name it does not list or a
value that does not fit. When several interrupts wait (parallel approvals, or
interrupts inside subgraphs), --node names the one to answer: by path
(1/ask[0]), by the end of its path (ask[0]) or by node name when only one
waiting interrupt fits; the run stays paused while others wait. Without -i, resume
refuses to answer an interrupt unless --empty says the empty answer is meant.

For a run started with --engine temporal and paused at an interrupt, the
answer goes to its workflow (--temporal, --namespace say where the cluster
is): the workers run the run on, and resume follows it as lgx run did.
A stopped run (failed, cancelled, killed) continues in this process, or,
with --engine temporal, on the workers as a new execution of its workflow.

For a run paused because a budget with on_exhausted: interrupt ran out,
-i tokens=N and/or -i usd=X are the budget's new limits; every call paused
for that budget runs again under them.`,
		Example: `  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8
  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -i approved=true -i comment="ship it"
  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 --node 2/review_legal -i approved=false
  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -i tokens=20000`,
		Args: runIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.runID = args[0]
			opts.out.outputSet = cmd.Flags().Changed("output")
			return a.runResume(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.inputs, "input", "i", nil, "`key=value` for the paused interrupt's result (by the types its answer: declares, else JSON if valid, else a string; key=@file reads a file)")
	f.StringVar(&opts.inputFile, "input-file", "", "read the values from a JSON or YAML object `file`")
	f.StringVar(&opts.node, "node", "", "answer the interrupt at this `path` (or node name, when unambiguous)")
	f.BoolVar(&opts.empty, "empty", false, "answer the waiting interrupt with no values ({})")
	a.addOutputFlags(cmd, &opts.out)
	f.StringVar(&opts.store.kind, "store", "", "the store the run was recorded in: sqlite:PATH or postgres://… (default $LGX_STORE, else sqlite under $LGX_HOME; runs made with --store memory are not kept)")
	opts.temporal.add(cmd)
	f.StringVar(&opts.engine, "engine", "local", "where a stopped run continues: local (this process) or temporal (lgx worker processes)")
	return cmd
}

// runResume continues a recorded run with the workflow text recorded with
// it, answering its interrupt when values are given.
func (a *app) runResume(ctx context.Context, opts resumeOptions) error {
	out := opts.out
	if err := out.check(); err != nil {
		return err
	}
	if opts.engine != "local" && opts.engine != "temporal" && opts.engine != "" {
		return usageErrf("--engine must be local or temporal, not %q", opts.engine)
	}
	values, err := parseInputs(opts.inputFile, opts.inputs)
	if err != nil {
		return err
	}
	if len(opts.inputs) == 0 && opts.inputFile == "" {
		values = nil // no answer given (not an empty one)
	} else if opts.empty {
		// Both say what the answer is, and they disagree: using
		// either silently would answer something the user may not mean.
		return usageErrf("--empty answers with no values; it cannot be combined with -i or --input-file")
	}
	s, err := opts.store.openRecorded()
	if err != nil {
		return err
	}
	defer s.Close()
	run, err := s.GetRun(ctx, opts.runID)
	if errors.Is(err, store.ErrNotFound) {
		return usageErrf("no run %s (lgx runs list shows the recorded runs)", opts.runID)
	}
	if err != nil {
		return err
	}
	if !run.Status.Resumable() {
		return usageErrf("run %s is %s; there is nothing to resume", run.ID, run.Status)
	}
	wf, diags := spec.Load(run.File, run.Source)
	if diags.HasErrors() {
		return fmt.Errorf("run %s: its recorded workflow no longer loads", run.ID)
	}
	if cds, err := applyUserConfig(wf); err != nil {
		return err
	} else if cds.HasErrors() {
		cds.WriteText(a.ios.Err, nil)
		return reported(errInvalid)
	}
	a.wf = wf
	if len(opts.inputs) > 0 {
		// An interrupt that declares its answer's types (with.answer) has
		// its -i values read by them, as lgx run reads inputs.
		cfg, err := configOf()
		if err != nil {
			return err
		}
		if types := runner.AnswerTypes(ctx, s, run.ID, runner.Answer{Node: opts.node}, cfg); types != nil {
			if values, err = parseTypedInputs(opts.inputFile, opts.inputs, types, 0); err != nil {
				return err
			}
		}
	}
	if runner.EngineDriven(run) {
		return a.resumeTemporal(ctx, opts, s, run, outputKeys(wf), values)
	}
	if opts.engine == "temporal" {
		if values != nil || opts.empty || opts.node != "" {
			return usageErrf("--engine temporal continues a stopped run; -i, --node and --empty answer an interrupt (lgx resume %s -i key=value, without --engine)", run.ID)
		}
		return a.reopenTemporal(ctx, opts, s, run, outputKeys(wf))
	}

	// "run ID (resumed)" is printed once the run goes on (its run_start
	// event), not before: an answer Resume refuses (several interrupts
	// wait, --node names none) or a lease another process holds resumes
	// nothing.
	return a.execute(ctx, "", out, outputKeys(wf), opts.store.kind != "memory",
		func(ctx context.Context, ro runner.Options) (*runner.Result, error) {
			ro.Sink = &announceSink{w: a.ios.Err, line: "run " + run.ID + " (resumed)", next: ro.Sink}
			ro.Answer = runner.Answer{Values: values, Node: opts.node, Empty: opts.empty}
			return runner.Resume(ctx, s, run.ID, ro)
		})
}
