package main

import (
	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/spec"
)

func (a *app) validateCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check workflow files and report every problem",
		Long: `validate loads each workflow file and reports every problem in one pass:
structure, names, durations, expressions type-checked against the state
schema, templates, node fields, unreachable nodes, and parallel writers
that would overwrite one state key in the same super-step.

Diagnostics go to stdout. The exit code is 2 when any file has an error;
warnings alone exit 0.`,
		Example: `  lgx validate workflows/*.yaml
  lgx validate --format json flow.yaml | jq '.[] | select(.severity=="error")'
  lgx validate --format github flow.yaml   # annotations in GitHub Actions`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			switch format {
			case "text", "json", "github":
			default:
				return usageErrf("--format must be text, json or github, not %q", format)
			}
			var all spec.Diagnostics
			sources := map[string][]byte{}
			for _, f := range files {
				l, err := loadAndValidate(f)
				if err != nil {
					return err
				}
				sources[f] = sourceOf(l.wf)
				all = append(all, l.diags...)
			}
			out := a.ios.Out
			var err error
			switch format {
			case "json":
				err = all.WriteJSON(out)
			case "github":
				err = all.WriteGitHub(out)
			default:
				err = all.WriteText(out, sources)
			}
			if err != nil {
				return err
			}
			if all.HasErrors() {
				return silentExit(exitUsage)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json or github")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json", "github"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
