package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/runner"
)

// graphOptions are lgx graph's flag and argument.
type graphOptions struct {
	file   string
	format string
}

func (a *app) graphCmd() *cobra.Command {
	var opts graphOptions
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
			opts.file = args[0]
			return a.runGraph(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "mermaid", "output format (mermaid)")
	return cmd
}

// runGraph prints a valid workflow as a Mermaid flowchart.
func (a *app) runGraph(_ context.Context, opts graphOptions) error {
	if opts.format != "mermaid" {
		return usageErrf("--format must be mermaid, not %q", opts.format)
	}
	wf, err := a.mustBeValid(opts.file)
	if err != nil {
		return err
	}
	return runner.WriteMermaid(a.ios.Out, wf)
}
