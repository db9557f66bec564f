package main

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/runner"
)

// runOptions are lgx run's flags and argument.
type runOptions struct {
	file        string
	inputs      []string // -i key=value
	inputFile   string
	out         outputFlags
	concurrency int
	store       storeFlag
	cassette    cassetteFlags
	// engine is local or temporal (worker.go); temporal and detach go
	// with temporal.
	engine   string
	temporal temporalFlags
	detach   bool
}

func (a *app) runCmd() *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a workflow and print its output keys",
		Long: `run validates the workflow (an invalid file exits 2 and runs nothing),
then runs it: every node triggered for a super-step runs concurrently under
the caps, and the writes are merged through the reducers when all have
finished. The run is recorded (SQLite under $LGX_HOME unless --store memory),
so a failed, cancelled or killed run can be continued with lgx resume.

The run id is printed on stderr at start; progress goes to stderr, the
result (the workflow's output keys) to stdout.

Exit codes: 0 done, 1 run failed, 2 usage error or invalid workflow,
3 paused at an interrupt, 130 cancelled by a signal (resumable).`,
		Example: `  lgx run workflows/hello.yaml -i name=Ada
  lgx run research.yaml -i query="vector databases" -i 'urls=["https://a.example","https://b.example"]'
  lgx run flow.yaml --input-file inputs.yaml -o json
  lgx run flow.yaml -i notes=@notes.txt --stream events | jq .event
  lgx run research.yaml -i query=lgx --record research.cassette.yaml
  lgx run research.yaml -i query=lgx --replay research.cassette.yaml`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			opts.out.outputSet = cmd.Flags().Changed("output")
			if cmd.Flags().Changed("concurrency") && opts.concurrency < 1 {
				// 0 is the flag's "not given"; typed, it is a cap no
				// invocation could pass, refused like config.concurrency: 0.
				return usageErrf("--concurrency must be at least 1, not %d", opts.concurrency)
			}
			return a.runRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.inputs, "input", "i", nil, "input `key=value`, read by the key's declared type: a string key takes the text as it is, other types parse it as JSON, an any key JSON if valid else a string; key=@file reads a file")
	f.StringVar(&opts.inputFile, "input-file", "", "read inputs from a JSON or YAML object `file`")
	a.addOutputFlags(cmd, &opts.out)
	f.IntVar(&opts.concurrency, "concurrency", 0, "override config.concurrency, the global cap on invocations in flight")
	f.StringVar(&opts.store.kind, "store", "", "where to record the run: sqlite:PATH, memory or postgres://… (default $LGX_STORE, else sqlite under $LGX_HOME)")
	f.StringVar(&opts.cassette.record, "record", "", "write every HTTP request and response to the cassette `file` (YAML)")
	f.StringVar(&opts.cassette.replay, "replay", "", "answer every HTTP request from the cassette `file`; send nothing")
	f.StringVar(&opts.engine, "engine", "local", "where the run executes: local (this process) or temporal (lgx worker processes; see lgx worker)")
	opts.temporal.add(cmd)
	f.BoolVar(&opts.detach, "detach", false, "with --engine temporal: print the run id once the run started, and return")
	return cmd
}

// runRun validates, compiles and runs a workflow, recording it in the
// store, and reports its outcome.
func (a *app) runRun(ctx context.Context, opts runOptions) error {
	switch {
	case opts.engine == "temporal":
		return a.runTemporal(ctx, opts)
	case opts.engine != "local" && opts.engine != "":
		return usageErrf("--engine must be local or temporal, not %q", opts.engine)
	case opts.detach:
		return usageErrf("--detach needs --engine temporal (a local run lives in this process)")
	}
	out := opts.out
	if err := out.check(); err != nil {
		return err
	}
	if opts.concurrency < 0 {
		return usageErrf("--concurrency must be positive")
	}
	wf, in, g, err := a.loadRun(opts.file, opts.inputFile, opts.inputs)
	if err != nil {
		return err
	}
	s, err := opts.store.open()
	if err != nil {
		return err
	}
	defer s.Close()

	c, err := opts.cassette.open(wf)
	if err != nil {
		return err
	}
	runID := ulid.Make().String()
	// "run ID" is printed once the store holds the run (its run_start
	// event): an id printed earlier could name a run that `runs show`
	// and `resume` do not know, if lgx is killed then or the run fails
	// to start.
	err = a.execute(ctx, "", out, outputKeys(wf), opts.store.kind != "memory",
		func(ctx context.Context, ro runner.Options) (*runner.Result, error) {
			ro.Sink = &announceSink{w: a.ios.Err, line: "run " + runID, next: ro.Sink}
			ro.RunID, ro.Inputs, ro.Store, ro.Concurrency = runID, in, s, opts.concurrency
			ro.HTTPClient = wrapCassette(c, ro.HTTPClient)
			return runner.Run(ctx, g, ro)
		})
	return closeCassette(c, err)
}

// addOutputFlags registers -o and --stream, shared by run and resume.
func (a *app) addOutputFlags(cmd *cobra.Command, out *outputFlags) {
	f := cmd.Flags()
	f.StringVarP(&out.output, "output", "o", "text", "result format: text or json")
	f.StringVar(&out.stream, "stream", "", "stream to stdout as JSON lines: updates, values or events")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("stream", cobra.FixedCompletions([]string{"updates", "values", "events"}, cobra.ShellCompDirectiveNoFileComp))
}

// sinks builds the event consumers of a run: the --stream writer on stdout
// and the progress view on stderr. The returned func stops the view.
func (a *app) sinks(out outputFlags) (runner.Sink, func()) {
	var sinks multiSink
	if out.stream != "" {
		sinks = append(sinks, newStreamSink(a.ios.Out, out.stream))
	}
	view := a.progressView()
	sinks = append(sinks, view)
	return sinks, view.Close
}

// announceSink prints line on w when the run's first run_start event
// arrives, before passing it on: Run sends it after the store recorded the
// run.
type announceSink struct {
	w    io.Writer
	line string
	next runner.Sink
	once sync.Once
}

func (s *announceSink) Emit(e runner.Event) {
	if e.Event == runner.EventRunStart {
		s.once.Do(func() { fmt.Fprintln(s.w, s.line) })
	}
	if s.next != nil {
		s.next.Emit(e)
	}
}
