package main

import (
	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/runner"
)

func (a *app) graphCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Draw a workflow as a Mermaid flowchart",
		Long: `graph prints the workflow as a Mermaid flowchart, drawn from the declared
edges: plain edges solid, conditional edges dotted and labelled with their
condition, joins labelled "join", for_each nodes as double-bordered boxes
with their loop and cap. Paste it into Markdown inside a mermaid block.`,
		Example: "  lgx graph workflows/research.yaml > docs/research.mmd",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "mermaid" {
				return usageErrf("--format must be mermaid, not %q", format)
			}
			wf, err := a.mustBeValid(args[0])
			if err != nil {
				return err
			}
			return runner.WriteMermaid(a.ios.Out, wf)
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "output format (mermaid)")
	return cmd
}
