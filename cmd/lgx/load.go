package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
)

// loaded is a workflow file after Load and Validate.
type loaded struct {
	wf    *spec.Workflow
	diags spec.Diagnostics
}

// loadAndValidate reads and validates one workflow file. A file that cannot
// be read is a usage error; diagnostics are returned for the caller to print.
func loadAndValidate(path string) (*loaded, error) {
	wf, diags, err := loadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageErrf("%s: no such file", path)
		}
		if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
			return nil, usageErrf("%s is a directory, not a workflow file", path)
		}
		return nil, usageErr(err)
	}
	// The pools and providers of the user's config (SPEC §9.9), which the
	// workflow may name.
	if wf != nil {
		cds, err := applyUserConfig(wf)
		if err != nil {
			return nil, err
		}
		diags = append(diags, cds...)
	}
	// Validate the partial workflow too, so one pass reports every problem
	// (Validate tolerates what Load could not decode).
	if wf != nil {
		diags = append(diags, spec.Validate(wf)...)
	}
	if wf != nil && !diags.HasErrors() {
		// Subgraphs: every child the workflow can call, transitively,
		// loads and is valid, and none calls itself (SPEC §9.2).
		var iwe *runner.InvalidWorkflowError
		if err := runner.CheckSubgraphs(wf); errors.As(err, &iwe) {
			diags = append(diags, iwe.Diagnostics...)
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	diags = dedupe(diags)
	diags.Sort()
	return &loaded{wf: wf, diags: diags}, nil
}

// mustBeValid prints a workflow's diagnostics on stderr and fails with exit
// code 2 when any is an error; commands that act on a workflow (run, graph)
// refuse invalid files.
func (a *app) mustBeValid(path string) (*spec.Workflow, error) {
	l, err := loadAndValidate(path)
	if err != nil {
		return nil, err
	}
	if len(l.diags) > 0 {
		l.diags.WriteText(a.ios.Err, map[string][]byte{displayName(path): sourceOf(l.wf)})
	}
	if l.diags.HasErrors() {
		return nil, reported(errInvalid)
	}
	a.wf = l.wf
	return l.wf, nil
}

// loadRun is what `lgx run` does before a run, on either engine: the
// workflow checked (diagnostics printed), the inputs read against its
// state types, the graph compiled.
func (a *app) loadRun(path, inputFile string, inputs []string) (*spec.Workflow, map[string]any, *runner.Graph, error) {
	wf, err := a.mustBeValid(path)
	if err != nil {
		return nil, nil, nil, err
	}
	in, err := parseTypedInputs(inputFile, inputs, inputTypes(wf), wf.Config.MaxValueBytes)
	if err != nil {
		return nil, nil, nil, err
	}
	g, err := runner.Compile(wf)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("compile %s: %w", path, err)
	}
	return wf, in, g, nil
}

// stdinName is how diagnostics name a workflow read from standard input
// (the path "-", as linters take it); its subgraphs resolve from the
// working directory.
const stdinName = "<stdin>"

// displayName is the file name diagnostics give the workflow at path.
func displayName(path string) string {
	if path == "-" {
		return stdinName
	}
	return path
}

// loadFile is spec.LoadFile, and "-" reads the workflow from standard
// input, under the same size limit.
func loadFile(path string) (*spec.Workflow, spec.Diagnostics, error) {
	if path != "-" {
		return spec.LoadFile(path)
	}
	src, err := io.ReadAll(io.LimitReader(os.Stdin, spec.MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read standard input: %w", err)
	}
	wf, ds := spec.Load(stdinName, src)
	return wf, ds, nil
}

func sourceOf(wf *spec.Workflow) []byte {
	if wf == nil {
		return nil
	}
	return wf.Source
}

// dedupe drops diagnostics reported twice (same place, code and message).
func dedupe(ds spec.Diagnostics) spec.Diagnostics {
	type key struct {
		file      string
		pos       spec.Pos
		code, msg string
	}
	seen := make(map[key]bool, len(ds))
	out := ds[:0]
	for _, d := range ds {
		k := key{d.File, d.Pos, d.Code, d.Message}
		if !seen[k] {
			seen[k] = true
			out = append(out, d)
		}
	}
	return out
}
