package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lgx-run/lgx/spec"
)

// app is the state shared by the commands of one lgx invocation.
type app struct {
	ios *IOStreams
	// ran is set once a command's own code starts; errors before that
	// (unknown command, wrong argument count) are usage errors.
	ran bool
	// wf is the workflow being run or resumed, once loaded: the Actions
	// integration masks its secrets.
	wf *spec.Workflow
	// progress is --progress of run and resume: auto, live or plain.
	progress string
	// quit ends the process with a code at once, for a second Ctrl-C
	// during a run (signalContext): os.Exit, set by main.go only.
	quit func(code int)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lgx",
		Short: "Run LangGraph-style workflows written in YAML",
		Long: `lgx runs LangGraph-style workflows written in YAML: state keys with
reducers, nodes from a built-in catalog, and edges, executed concurrently in
super-steps under concurrency caps, with timeouts, retries and durable,
resumable runs.`,
		Example: `  lgx run workflows/hello.yaml -i name=Ada
  lgx validate workflows/*.yaml
  lgx graph workflows/research.yaml > research.mmd`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			a.ran = true
			switch a.progress {
			case "", "auto", "live", "plain":
				return nil
			}
			return usageErrf("--progress must be auto, live or plain, not %q", a.progress)
		},
	}
	root.SetOut(a.ios.Out)
	root.SetErr(a.ios.Err)
	root.SetIn(a.ios.In)
	root.SetVersionTemplate("lgx {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr(suggestFlag(c, err)) })
	root.AddCommand(
		a.runCmd(),
		a.resumeCmd(),
		a.validateCmd(),
		a.testCmd(),
		a.graphCmd(),
		a.runsCmd(),
		a.nodesCmd(),
		a.schemaCmd(),
		a.mcpCmd(),
		a.manCmd(),
		a.workerCmd(),
	)
	for _, c := range root.Commands() {
		if c.Name() == "run" || c.Name() == "resume" {
			c.Flags().StringVar(&a.progress, "progress", "auto", "progress on stderr: auto (live on a terminal, plain in CI, pipes or with NO_COLOR), live or plain")
			_ = c.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions([]string{"auto", "live", "plain"}, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	// cobra adds the completion command itself; give it examples too.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Example = `  source <(lgx completion bash)
  lgx completion zsh > "${fpath[1]}/_lgx"
  lgx completion fish > ~/.config/fish/completions/lgx.fish`
			// cobra's completion command has no Run: an unknown shell
			// printed its help and exited 0, and `lgx completion tcsh >
			// file` left a useless file behind without a word.
			var shells []string
			for _, sub := range c.Commands() {
				shells = append(shells, sub.Name())
			}
			list := strings.Join(shells[:len(shells)-1], ", ") + " or " + shells[len(shells)-1]
			c.Args = func(_ *cobra.Command, args []string) error {
				if len(args) > 0 {
					return usageErrf("unknown shell %q for lgx completion (%s)", args[0], list)
				}
				return usageErrf("lgx completion needs a shell: %s", list)
			}
			c.RunE = func(*cobra.Command, []string) error { return nil }
			c.Use = "completion SHELL"
		}
	}
	refuseUnknownHelpTopics(root)
	addCompletions(root)
	return root
}

// refuseUnknownHelpTopics makes `lgx help TOPIC` of a topic that is no
// command a usage error (exit 2, on stderr), like `lgx TOPIC`: cobra's
// own help command printed "Unknown help topic" and the usage on stdout
// and exited 0.
func refuseUnknownHelpTopics(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() != "help" || c.Run == nil {
			continue
		}
		show := c.Run
		c.Run = nil
		c.RunE = func(c *cobra.Command, args []string) error {
			if cmd, _, err := c.Root().Find(args); cmd == nil || err != nil {
				topic := strings.Join(args, " ")
				if s := c.Root().SuggestionsFor(args[0]); len(s) > 0 {
					return usageErrf("unknown help topic %q (did you mean %s?)", topic, strings.Join(s, " or "))
				}
				return usageErrf("unknown help topic %q (see lgx --help for the commands)", topic)
			}
			show(c, args)
			return nil
		}
	}
}

// exactArgs checks the number of arguments and, when it is wrong, says
// what is missing or extra in lgx's words (from the command's Use line)
// rather than cobra's "accepts 1 arg(s), received 0".
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return missingArgs(cmd, args)
		}
		if len(args) > n && n == 0 {
			return usageErrf("%s takes no arguments, got %d: %s", cmd.CommandPath(), len(args), strings.Join(args, " "))
		}
		if len(args) > n {
			return usageErrf("%s takes %d argument%s (%s), got %d: %s",
				cmd.CommandPath(), n, plural(n), strings.Join(useArgs(cmd), " "), len(args), strings.Join(args, " "))
		}
		return nil
	}
}

// runIDArg checks the one argument of a command that takes a run id: an
// empty one (lgx resume "", or a shell variable that was never set) is a
// missing run id, not a lookup of the run "" that reads "no run  (…)".
func runIDArg(cmd *cobra.Command, args []string) error {
	if err := exactArgs(1)(cmd, args); err != nil {
		return err
	}
	if strings.TrimSpace(args[0]) == "" {
		return usageErrf("the run id RUN is empty (usage: %s; lgx runs list shows the recorded runs)", cmd.UseLine())
	}
	return nil
}

// minArgs checks that at least n arguments were given.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return missingArgs(cmd, args)
		}
		return nil
	}
}

// missingArgs names the first argument the command line lacks, e.g.
// "missing the workflow FILE (usage: lgx run FILE [flags]; see lgx run --help)".
func missingArgs(cmd *cobra.Command, args []string) error {
	names := useArgs(cmd)
	what := "an argument"
	if len(args) < len(names) {
		name := strings.TrimSuffix(names[len(args)], "...")
		switch name {
		case "FILE", "FILE|DIR":
			what = "the workflow " + name
		case "RUN", "RUN_ID":
			what = "the run id " + name
		default:
			what = "the " + name
		}
	}
	return usageErrf("missing %s (usage: %s; see %s --help)", what, cmd.UseLine(), cmd.CommandPath())
}

// useArgs are the argument names of a command's Use line ("FILE", "RUN_ID").
func useArgs(cmd *cobra.Command) []string {
	fields := strings.Fields(cmd.Use)
	if len(fields) <= 1 {
		return nil
	}
	var out []string
	for _, f := range fields[1:] {
		if !strings.HasPrefix(f, "[") {
			out = append(out, f)
		}
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// suggestFlag adds the command's closest flag to an "unknown flag: --X"
// error, as cobra does for commands: --concurency is a typo of
// --concurrency, not a missing feature.
func suggestFlag(c *cobra.Command, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok || name == "" {
		return err
	}
	var names []string
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	c.InheritedFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	if s := spec.Suggest(name, names); s != "" {
		return fmt.Errorf("%w (did you mean --%s?)", err, s)
	}
	return err
}
