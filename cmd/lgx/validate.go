package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/spec"
)

var validateFormats = []string{"text", "json", "github", "sarif"}

// validateOptions are lgx validate's flags and arguments.
type validateOptions struct {
	paths  []string // files and directories
	format string   // text, json, github or sarif
	strict bool
	online bool
}

func (a *app) validateCmd() *cobra.Command {
	var opts validateOptions
	cmd := &cobra.Command{
		Use:   "validate FILE|DIR...",
		Short: "Check workflow files and report every problem",
		Long: `validate loads each workflow file and reports every problem in one pass:
structure, names, durations, expressions type-checked against the state
schema, templates, node fields, unreachable nodes, and parallel writers
that would overwrite one state key in the same super-step.

A directory argument validates every workflow under it: the *.yaml and
*.yml files with a top-level lgx: key, skipping *.test.yaml files, hidden
directories and other YAML (cassettes, CI configuration). The path -
reads one workflow from standard input, named <stdin> in diagnostics
(graph and run take - too).

Diagnostics go to stdout: text for people, json for tools, github for
GitHub Actions annotations (the default when GITHUB_ACTIONS=true), sarif
(SARIF 2.1.0, paths relative to the repository root) for code scanning.

The exit code is 2 when any file has an error, or any warning with
--strict; warnings alone exit 0.`,
		Example: `  lgx validate workflows/
  lgx validate --strict workflows/*.yaml
  lgx validate --format json flow.yaml | jq '.[] | select(.severity=="error")'
  generate-flow | lgx validate -
  lgx validate --format sarif workflows/ > lgx.sarif   # for github/codeql-action/upload-sarif`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.paths = args
			if !cmd.Flags().Changed("format") && a.ios.env("GITHUB_ACTIONS") == "true" {
				opts.format = "github"
			}
			return a.runValidate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "text", "output format: text, json, github or sarif (github when GITHUB_ACTIONS=true)")
	cmd.Flags().BoolVar(&opts.strict, "strict", false, "fail (exit 2) on warnings too")
	cmd.Flags().BoolVar(&opts.online, "online", false, "also start or connect every MCP server and check each server.tool and mcp_call's arguments against the listed tools")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(validateFormats, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// runValidate validates every workflow the paths name and prints the
// diagnostics in opts.format; exit 2 on an error (or, strict, a warning).
func (a *app) runValidate(ctx context.Context, opts validateOptions) error {
	switch opts.format {
	case "text", "json", "github", "sarif":
	default:
		return usageErrf("--format must be text, json, github or sarif, not %q", opts.format)
	}
	// A path that cannot be read is one more error among the others, not
	// the end of the report: validate prints every file's diagnostics.
	files, all := workflowFiles(opts.paths)
	sources := map[string][]byte{}
	for _, f := range files {
		if d := unreadable(f); f != "-" && d != nil {
			all = append(all, *d)
			continue
		}
		l, err := loadAndValidate(f)
		if err != nil {
			return err
		}
		sources[displayName(f)] = sourceOf(l.wf)
		all = append(all, l.diags...)
		if opts.online && !l.diags.HasErrors() {
			all = append(all, onlineMCP(ctx, l.wf)...)
		}
	}
	all.AddRanges(sources)
	out := a.ios.Out
	var err error
	switch opts.format {
	case "json":
		err = all.WriteJSON(out)
	case "github":
		err = all.WriteGitHub(out)
	case "sarif":
		err = repoRelative(all, a.ios.env).WriteSARIF(out, spec.SARIFTool{
			Name: "lgx", Version: versionString(), InformationURI: "https://github.com/lgx-run/lgx",
		})
	default:
		err = all.WriteText(out, sources)
	}
	if err != nil {
		return err
	}
	if all.HasErrors() || (opts.strict && len(all) > 0) {
		return reported(errInvalid)
	}
	return nil
}

// workflowFiles expands the arguments of validate: files are taken as
// given (so a file named explicitly is always checked), directories are
// walked for workflow files in lexical order. A directory that cannot be
// walked or holds no workflow is reported as an error diagnostic.
func workflowFiles(args []string) ([]string, spec.Diagnostics) {
	var files []string
	var problems spec.Diagnostics
	for _, arg := range args {
		info, err := os.Stat(arg)
		if err != nil || !info.IsDir() {
			files = append(files, arg) // loadAndValidate reports a missing file
			continue
		}
		var found []string
		walked := false // some entry could be read, even if none was a workflow
		_ = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				// An entry that cannot be read (a dangling symlink, a
				// loop, no permission) is one error; the walk goes on.
				problems = append(problems, noFile(path, unwrapPathError(err)))
				return nil
			}
			name := d.Name()
			if d.IsDir() {
				if path != arg && strings.HasPrefix(name, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !isWorkflowName(name) {
				return nil
			}
			// A FIFO or device named *.yaml is no workflow, and reading
			// it could block forever; a symlink counts as what it names.
			info, err := os.Stat(path)
			if err != nil {
				problems = append(problems, noFile(path, unwrapPathError(err)))
				return nil
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			walked = true
			ok, err := hasLGXKey(path)
			if err != nil {
				problems = append(problems, noFile(path, unwrapPathError(err)))
				return nil
			}
			if ok {
				found = append(found, path)
			}
			return nil
		})
		if len(found) == 0 && (walked || len(problems) == 0) {
			problems = append(problems, noFile(arg, "no workflow files (*.yaml or *.yml with a top-level lgx: key)"))
		}
		sort.Strings(found)
		files = append(files, found...)
	}
	return files, problems
}

// unwrapPathError is err's text without the path a *fs.PathError
// repeats (the diagnostic names the file).
func unwrapPathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// unreadable reports a workflow path that cannot be read as a diagnostic
// (nil when it can).
func unreadable(path string) *spec.Diagnostic {
	f, err := os.Open(path)
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, fs.ErrNotExist):
			msg = "no such file"
		case errors.Is(err, fs.ErrPermission):
			msg = "permission denied"
		}
		d := noFile(path, msg)
		return &d
	}
	f.Close()
	return nil
}

// noFile is the error diagnostic of a path validate cannot check.
func noFile(path, msg string) spec.Diagnostic {
	return spec.Diagnostic{File: path, Severity: spec.SeverityError, Code: spec.CodeNoFile, Message: msg}
}

// isWorkflowName reports whether a file name can hold a workflow: YAML,
// and not a test file (*.test.yaml).
func isWorkflowName(name string) bool {
	for _, ext := range []string{".yaml", ".yml"} {
		if base, ok := strings.CutSuffix(name, ext); ok {
			return !strings.HasSuffix(base, ".test")
		}
	}
	return false
}

// topLevelLGX matches an `lgx:` key at the start of a line, for files that
// do not parse as YAML: a broken workflow must still be reported, not
// skipped.
var topLevelLGX = regexp.MustCompile(`(?m)^["']?lgx["']?\s*:`)

// hasLGXKey reports whether the YAML file at path has a top-level lgx:
// key, which is what makes it a workflow rather than a cassette, a test
// file or another tool's configuration.
func hasLGXKey(path string) (bool, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 {
		return topLevelLGX.Match(src), nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return false, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "lgx" {
			return true, nil
		}
	}
	return false, nil
}

// repoRelative rewrites diagnostic file names relative to the repository
// root, which is what code scanning resolves SARIF paths against:
// $GITHUB_WORKSPACE under Actions, else the closest directory above the
// working directory that holds .git. Files outside the root keep an
// absolute path; with no root found, names stay as given.
func repoRelative(ds spec.Diagnostics, getenv func(string) string) spec.Diagnostics {
	root := getenv("GITHUB_WORKSPACE")
	if root == "" {
		root = findRepoRoot()
	}
	if root == "" {
		return ds
	}
	out := make(spec.Diagnostics, len(ds))
	for i, d := range ds {
		if abs, err := filepath.Abs(d.File); err == nil {
			if rel, err := filepath.Rel(root, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				d.File = rel
			} else {
				d.File = abs
			}
		}
		out[i] = d
	}
	return out
}

// findRepoRoot returns the closest directory at or above the working
// directory that contains .git ("" when there is none).
func findRepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		} else if !errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
