package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/internal/wftest"
)

// testOptions are lgx test's flags.
type testOptions struct {
	paths    []string
	run      string
	format   string
	update   bool
	parallel int
	verbose  bool
}

func (a *app) testCmd() *cobra.Command {
	var o testOptions
	cmd := &cobra.Command{
		Use:   "test [PATH...]",
		Short: "Run workflow tests (*.test.yaml) offline with cassettes or stubs",
		Long: `test runs every *.test.yaml under the paths (default: the current
directory, recursively). A test file names a workflow and lists cases: inputs,
a cassette (recorded with lgx test --update or lgx run --record) or stubbed
node results, interrupts to answer, and expectations on the exit code, the
final state, the path of nodes and free assertions. See docs/testing.md.

Cases run in parallel, each on its own in-memory store, and never reach the
network: a request without a cassette or stub fails with kind cassette.

Exit codes: 0 every case passed, 1 a case failed, 2 an invalid test file or
workflow (with file:line:col).`,
		Example: `  lgx test workflows/
  lgx test -run 'brief' workflows/tests/research.test.yaml
  lgx test --format junit . > report.xml
  lgx test --update workflows/tests/agent.test.yaml   # re-record its cassettes`,
		// go test's single-dash -run is what users type; pflag would read
		// it as -r -u -n, so flags are parsed here with -run spelled --run.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for i, a := range args {
				if a == "--" {
					break
				}
				if a == "-run" || strings.HasPrefix(a, "-run=") {
					args[i] = "-" + a
				}
			}
			if err := cmd.Flags().Parse(args); err != nil {
				return usageErr(err)
			}
			if help, _ := cmd.Flags().GetBool("help"); help {
				return cmd.Help()
			}
			args = cmd.Flags().Args()
			o.paths = args
			if len(o.paths) == 0 {
				o.paths = []string{"."}
			}
			if !cmd.Flags().Changed("format") && a.ios.Getenv("GITHUB_ACTIONS") == "true" {
				o.format = "github"
			}
			return a.runTests(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.run, "run", "", "run only the cases whose name (or FILE/NAME) matches the `regex`")
	f.StringVar(&o.format, "format", "text", "report format: text, github or junit")
	f.BoolVar(&o.update, "update", false, "re-record the cases' cassettes against the real servers and rewrite exact-value state expectations")
	f.IntVar(&o.parallel, "parallel", 4, "how many cases run at once")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "also list the cases that passed (text format)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "github", "junit"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// runTests runs the cases of the test files under o.paths and reports
// them in o.format.
func (a *app) runTests(ctx context.Context, o testOptions) error {
	switch o.format {
	case "text", "github", "junit":
	default:
		return usageErrf("--format must be text, github or junit, not %q", o.format)
	}
	if o.parallel < 1 {
		return usageErrf("--parallel must be at least 1")
	}
	opts := wftest.Options{Parallel: o.parallel, Record: o.update, Version: version}
	if o.run != "" {
		re, err := regexp.Compile(o.run)
		if err != nil {
			return usageErrf("-run: %v", err)
		}
		opts.Filter = re
	}
	paths, err := wftest.Find(o.paths)
	if err != nil {
		return usageErr(err)
	}
	if len(paths) == 0 {
		return usageErrf("no *.test.yaml under %v", o.paths)
	}
	files, graphs, err := wftest.Load(paths)
	if err != nil {
		var fes wftest.Errors
		if !errors.As(err, &fes) {
			return usageErr(err)
		}
		// Every problem, each on its own line (and annotation).
		for _, fe := range fes {
			if o.format == "github" {
				fmt.Fprintf(a.ios.Out, "::error file=%s,line=%d,col=%d::%s\n", fe.Pos.File, fe.Pos.Line, fe.Pos.Col, ghEscapeData(fe.Msg))
			}
			fmt.Fprintf(a.ios.Err, "lgx: %v\n", fe)
		}
		return reported(errInvalid)
	}
	results := wftest.Run(ctx, files, graphs, opts)
	if len(results) == 0 && opts.Filter != nil {
		// As go test's "no tests to run": exit 0, but never silently.
		fmt.Fprintf(a.ios.Err, "lgx test: no case matches -run %q\n", o.run)
	}
	if o.update {
		if err := wftest.Update(results); err != nil {
			return err
		}
	}
	switch o.format {
	case "github":
		err = wftest.WriteGitHub(a.ios.Out, results)
	case "junit":
		err = wftest.WriteJUnit(a.ios.Out, results)
	default:
		err = wftest.WriteText(a.ios.Out, results, o.verbose)
	}
	if err != nil {
		return err
	}
	if _, failed := wftest.Summary(results); failed > 0 {
		return reported(errFailed)
	}
	return nil
}
