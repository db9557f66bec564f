package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// maxCompletedRuns bounds the run ids offered on TAB: the newest ones are
// those a person types, and a long list helps nobody.
const maxCompletedRuns = 100

// addCompletions gives the commands that take a run id, a node type or a
// workflow file their argument completion (`lgx completion SHELL` scripts
// call `lgx __complete …`). It walks the finished command tree, so each
// command's own file stays about what the command does.
func addCompletions(root *cobra.Command) {
	walk(root, func(c *cobra.Command) {
		if c.ValidArgsFunction != nil {
			return
		}
		switch c.CommandPath() {
		case "lgx resume":
			c.ValidArgsFunction = completeRunIDs(true)
		case "lgx runs show", "lgx runs history":
			c.ValidArgsFunction = completeRunIDs(false)
		case "lgx nodes":
			c.ValidArgsFunction = completeNodeTypes
		case "lgx run", "lgx graph", "lgx mcp list":
			c.ValidArgsFunction = completeWorkflowFiles(1)
		case "lgx validate":
			c.ValidArgsFunction = completeWorkflowFiles(-1)
		case "lgx test":
			c.ValidArgsFunction = completeOwnFlags(completeWorkflowFiles(-1))
		}
	})
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

// completeWorkflowFiles offers *.yaml and *.yml files (and directories to
// descend into) for the first n arguments; n < 0: for every argument.
func completeWorkflowFiles(n int) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if n >= 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
	}
}

// completeOwnFlags completes the arguments of a command that parses its
// own flags (DisableFlagParsing: lgx test, for go test's -run). Cobra then
// hands every argument, flags included, to the command's ValidArgsFunction
// and completes no flag, so this does what cobra would: flag names after a
// dash, a flag's value with its registered completion (nothing for a flag
// without one: its value is no file), and args for the rest.
func completeOwnFlags(args cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, given []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		// The flag a value is completed for: "--format" then "", or "--format=j".
		flagName, prefix := "", ""
		if n := len(given); n > 0 && strings.HasPrefix(given[n-1], "-") && !strings.Contains(given[n-1], "=") {
			if f := ownFlag(cmd, given[n-1]); f != nil && f.Value.Type() != "bool" {
				flagName = f.Name
			}
		}
		if flagName == "" && strings.HasPrefix(toComplete, "-") {
			if name, value, ok := strings.Cut(toComplete, "="); ok {
				if f := ownFlag(cmd, name); f != nil {
					flagName, prefix, toComplete = f.Name, name+"=", value
				}
			} else {
				var out []cobra.Completion
				cmd.Flags().VisitAll(func(f *pflag.Flag) {
					if f.Hidden {
						return
					}
					if name := flagSpelling(f); strings.HasPrefix(name, toComplete) {
						out = append(out, cobra.CompletionWithDesc(name, f.Usage))
					}
				})
				return out, cobra.ShellCompDirectiveNoFileComp
			}
		}
		if flagName == "" {
			return args(cmd, given, toComplete)
		}
		values, ok := cmd.GetFlagCompletionFunc(flagName)
		if !ok {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		out, dir := values(cmd, given, toComplete)
		var kept []cobra.Completion
		for _, v := range out {
			if strings.HasPrefix(v, toComplete) {
				kept = append(kept, prefix+v)
			}
		}
		return kept, dir
	}
}

// ownFlag is the flag an argument names (--name, -name or -n), or nil.
func ownFlag(cmd *cobra.Command, arg string) *pflag.Flag {
	name := strings.TrimLeft(arg, "-")
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	if len(name) == 1 && !strings.HasPrefix(arg, "--") {
		return cmd.Flags().ShorthandLookup(name)
	}
	return nil
}

// flagSpelling is how a flag is offered: --name, except lgx test's -run,
// which is spelled as go test spells it.
func flagSpelling(f *pflag.Flag) string {
	if f.Name == "run" {
		return "-run"
	}
	return "--" + f.Name
}

// completeNodeTypes offers the catalog's type names, each with its summary.
func completeNodeTypes(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, name := range nodes.Names() {
		if !strings.HasPrefix(name, toComplete) {
			continue
		}
		t, _ := nodes.Lookup(name)
		out = append(out, cobra.CompletionWithDesc(name, firstSentence(t.Doc().Summary)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// firstSentence shortens a summary to its first sentence or clause,
// which is what fits beside a completion.
func firstSentence(s string) string {
	s = foldSpace(s)
	for _, sep := range []string{". ", "; "} {
		if i := strings.Index(s, sep); i >= 0 {
			s = s[:i]
		}
	}
	return strings.TrimSuffix(s, ".")
}

// completeRunIDs offers the recorded run ids, newest first, each described
// by its status, workflow and start time. resumable: only runs that
// `lgx resume` accepts (not completed ones).
func completeRunIDs(resumable bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		const dir = cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
		if len(args) > 0 {
			return nil, dir
		}
		url := os.Getenv("LGX_STORE")
		if f := cmd.Flag("store"); f != nil && f.Changed {
			url = f.Value.String()
		}
		runs, err := recordedRuns(cmd.Context(), url)
		if err != nil {
			// A completion cannot print an error where the user sees it;
			// cobra shows this with BASH_COMP_DEBUG_FILE set.
			cobra.CompDebugln("lgx: run ids: "+err.Error(), false)
			return nil, dir
		}
		var out []cobra.Completion
		for _, r := range runs {
			if resumable && !r.Status.Resumable() || !strings.HasPrefix(r.ID, toComplete) {
				continue
			}
			out = append(out, cobra.CompletionWithDesc(r.ID, runDescription(r)))
		}
		return out, dir
	}
}

// runDescription is a run's status, workflow and local start time.
func runDescription(r *store.Run) string {
	return fmt.Sprintf("%s %s %s", r.Status, r.Workflow, r.StartedAt.Local().Format("2006-01-02 15:04"))
}

// recordedRuns lists the newest runs of a SQLite store (the default one
// when url is empty), opened read-only: pressing TAB never creates,
// migrates or locks a store. Other stores offer no ids, as connecting to a
// database server on a key press could hang the shell.
func recordedRuns(ctx context.Context, url string) ([]*store.Run, error) {
	var path string
	switch {
	case url == "" || url == "sqlite":
		p, err := store.DefaultPath()
		if err != nil {
			return nil, err
		}
		path = p
	case strings.HasPrefix(url, "sqlite:"):
		path = strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
	default:
		return nil, fmt.Errorf("store %s: run ids are completed from SQLite stores only", store.Redact(url))
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil // no run recorded yet
	}
	s, err := store.OpenSQLiteReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.ListRuns(ctx, maxCompletedRuns)
}
