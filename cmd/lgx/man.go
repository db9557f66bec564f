package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCmd writes a man page per command, from the same cobra definitions
// that --help prints, so the pages never drift from the commands. Release
// builds run it (.goreleaser.yaml's before hook) and ship man/ in the
// archives and packages; it is hidden because users read the pages, they
// do not make them.
// manOptions are lgx man's: the directory, and the command tree to document.
type manOptions struct {
	dir  string
	root *cobra.Command
}

func (a *app) manCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (section 1) into DIR",
		Hidden: true,
		Args:   exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runMan(cmd.Context(), manOptions{dir: args[0], root: cmd.Root()})
		},
	}
}

// runMan writes the man pages of opts.root's commands into opts.dir.
func (a *app) runMan(_ context.Context, opts manOptions) error {
	n, err := writeManPages(opts.root, opts.dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.ios.Err, "wrote %d man pages to %s\n", n, opts.dir)
	return nil
}

// writeManPages writes lgx.1, lgx-run.1, … into dir (created if needed)
// and returns how many it wrote. The date is SOURCE_DATE_EPOCH's when set,
// for reproducible release archives.
func writeManPages(root *cobra.Command, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("man pages: %w", err)
	}
	// The pages say which lgx they document, not who generated them.
	walk(root, func(c *cobra.Command) { c.DisableAutoGenTag = true })
	header := &doc.GenManHeader{Section: "1", Source: "lgx " + versionString(), Manual: "lgx manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return 0, fmt.Errorf("man pages: %w", err)
	}
	n := 0
	walk(root, func(c *cobra.Command) {
		if c == root || available(c) {
			n++
		}
	})
	return n, nil
}

// available reports whether GenManTree writes a page for c: it skips
// hidden commands and help, and everything under them.
func available(c *cobra.Command) bool {
	for p := c; p.HasParent(); p = p.Parent() {
		if !p.IsAvailableCommand() || p.IsAdditionalHelpTopicCommand() {
			return false
		}
	}
	return true
}
