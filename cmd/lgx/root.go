package main

import (
	"github.com/spf13/cobra"

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
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
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
	)
	for _, c := range root.Commands() {
		if c.Name() == "run" || c.Name() == "resume" {
			c.Flags().StringVar(&a.progress, "progress", "auto", "progress on stderr: auto (live on a terminal, else plain), live or plain")
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
		}
	}
	return root
}

// exactArgs is cobra.ExactArgs whose failure is a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageErr(err)
		}
		return nil
	}
}

// minArgs is cobra.MinimumNArgs whose failure is a usage error.
func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.MinimumNArgs(n)(cmd, args); err != nil {
			return usageErr(err)
		}
		return nil
	}
}
