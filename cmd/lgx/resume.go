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

func (a *app) resumeCmd() *cobra.Command {
	var (
		inputs    []string
		inputFile string
		node      string
		empty     bool
		out       outputFlags
		st        storeFlag
	)
	cmd := &cobra.Command{
		Use:   "resume RUN",
		Short: "Continue a failed, cancelled, killed or interrupted run",
		Long: `resume continues a recorded run from its last checkpoint, with the workflow
text recorded when the run started. Invocations whose writes were recorded
are never run again; POSTs re-sent after a crash carry the same
Idempotency-Key as before.

For a run paused at an interrupt node, the -i values, as one object, become
that node's result. When several interrupts wait (parallel approvals, or
interrupts inside subgraphs), --node names the one to answer, by path or by
node name; the run stays paused while others wait. Without -i, resume
refuses to answer an interrupt unless --empty says the empty answer is meant.

For a run paused because a budget with on_exhausted: interrupt ran out,
-i tokens=N and/or -i usd=X are the budget's new limits; every call paused
for that budget runs again under them.`,
		Example: `  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8
  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -i approved=true -i comment="ship it"
  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 --node 2/review_legal -i approved=false
  lgx resume 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -i tokens=20000`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out.outputSet = cmd.Flags().Changed("output")
			if err := out.check(); err != nil {
				return err
			}
			values, err := parseInputs(inputFile, inputs)
			if err != nil {
				return err
			}
			if len(inputs) == 0 && inputFile == "" {
				values = nil // no answer given (not an empty one)
			} else if empty {
				// Both say what the answer is, and they disagree: using
				// either silently would answer something the user may not mean.
				return usageErrf("--empty answers with no values; it cannot be combined with -i or --input-file")
			}
			s, err := st.openRecorded()
			if err != nil {
				return err
			}
			defer s.Close()
			run, err := s.GetRun(cmd.Context(), args[0])
			if errors.Is(err, store.ErrNotFound) {
				return usageErrf("no run %s (lgx runs list shows the recorded runs)", args[0])
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
				return silentExit(exitUsage)
			}
			a.wf = wf

			return a.execute(cmd, "run "+run.ID+" (resumed)", out, outputKeys(wf), st.kind != "memory",
				func(ctx context.Context, opts runner.Options) (*runner.Result, error) {
					opts.Answer = runner.Answer{Values: values, Node: node, Empty: empty}
					return runner.Resume(ctx, s, run.ID, opts)
				})
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&inputs, "input", "i", nil, "`key=value` for the paused interrupt's result (JSON if valid, else a string; key=@file reads a file)")
	f.StringVar(&inputFile, "input-file", "", "read the values from a JSON or YAML object `file`")
	f.StringVar(&node, "node", "", "answer the interrupt at this `path` (or node name, when unambiguous)")
	f.BoolVar(&empty, "empty", false, "answer the waiting interrupt with no values ({})")
	a.addOutputFlags(cmd, &out)
	f.StringVar(&st.kind, "store", "", "the store the run was recorded in: sqlite:PATH or postgres://… (default $LGX_STORE, else sqlite under $LGX_HOME; runs made with --store memory are not kept)")
	return cmd
}
