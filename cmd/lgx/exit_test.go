package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/lgx-run/lgx/internal/exitcode"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// Every row of exitKinds, by its kind: an error of that kind, bare and
// wrapped on its way up, gets the row's code.
func TestExitKinds(t *testing.T) {
	examples := map[string]error{
		"usage error: a bad flag, argument or input":      usageErrf("--format must be mermaid, not %q", "svg"),
		"invalid workflow, config or test file (printed)": reported(errInvalid),
		"bad store URL": fmt.Errorf("--store: %w", store.ErrBadStoreURL),
		"a store path that names no lgx store (another file, a directory)": fmt.Errorf("notes.txt is %w: file is not a database", store.ErrNotLgxStore),
		"a store path in a directory that does not exist":                  fmt.Errorf("open store x/lgx.db: %w: directory x does not exist", store.ErrNoStoreDir),
		"run input refused by its declared type":                           &runner.InputError{Msg: "unknown input key nope"},
		"invalid subgraph or recorded workflow":                            &runner.InvalidWorkflowError{File: "child.yaml"},
		"run owned by a live process (lease)":                              &store.LeaseError{RunID: "R", Holder: store.Lease{PID: 1}},
		"paused at an interrupt":                                           reported(errInterrupted),
		"cancelled by a signal":                                            runner.ErrCancelled,
		"failed":                                                           reported(fmt.Errorf("%w: %w", errFailed, errors.New("node f: 404"))),
	}
	want := map[string]int{}
	for _, k := range exitKinds {
		want[k.Kind] = k.Code
		ex, ok := examples[k.Kind]
		if !ok {
			t.Errorf("exit kind %q has no example in this test", k.Kind)
			continue
		}
		for _, err := range []error{ex, fmt.Errorf("resume R: %w", ex)} {
			if got := exitCode(err); got != k.Code {
				t.Errorf("%s: exitCode(%v) = %d, want %d", k.Kind, err, got, k.Code)
			}
		}
	}
	for kind := range examples {
		if _, ok := want[kind]; !ok {
			t.Errorf("example %q names no row of exitKinds", kind)
		}
	}
	// The codes SPEC §7 gives these kinds, so that the table cannot drift.
	for kind, code := range map[string]int{
		"usage error: a bad flag, argument or input": 2, "run input refused by its declared type": 2,
		"paused at an interrupt": 3, "cancelled by a signal": 130, "failed": 1,
	} {
		if want[kind] != code {
			t.Errorf("%s: exit %d, SPEC §7 says %d", kind, want[kind], code)
		}
	}
	if got := exitCode(nil); got != exitOK {
		t.Errorf("exitCode(nil) = %d", got)
	}
	if got := exitCode(errors.New("disk full")); got != exitFailed {
		t.Errorf("an error of no kind: exit %d, want %d", got, exitFailed)
	}
}

// A finished run exits as internal/exitcode says (its TestRun pins each
// outcome to SPEC §7's code): the CLI's own rows come first in exitKinds
// and must not catch a run's outcome.
func TestRunOutcome(t *testing.T) {
	for _, st := range []store.Status{store.StatusCompleted, store.StatusInterrupted, store.StatusCancelled, store.StatusFailed} {
		for _, err := range []error{nil, errors.New("boom"), &runner.InputError{Msg: "x"}, fmt.Errorf("step 2: %w", runner.ErrCancelled)} {
			res := &runner.Result{Status: st}
			if got, want := exitCode(runOutcome(res, err)), exitcode.Run(res, err); got != want {
				t.Errorf("%s, %v: exit %d, want %d", st, err, got, want)
			}
		}
	}
	if got := exitCode(runOutcome(nil, nil)); got != exitOK {
		t.Errorf("no result, no error: exit %d", got)
	}
}

// main prints an error unless the command reported it already.
func TestIsReported(t *testing.T) {
	if !isReported(fmt.Errorf("x: %w", reported(errFailed))) {
		t.Error("a wrapped reported error is reported")
	}
	if isReported(usageErrf("bad")) || isReported(errFailed) {
		t.Error("unreported errors count as reported")
	}
}
