package main

import (
	"errors"
	"fmt"

	"github.com/lgx-run/lgx/internal/exitcode"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// Exit codes (SPEC §7), from the one table in internal/exitcode.
const (
	exitOK          = exitcode.OK
	exitFailed      = exitcode.Failed
	exitUsage       = exitcode.Usage
	exitInterrupted = exitcode.Interrupted
	exitCancelled   = exitcode.Cancelled
)

// Outcomes that carry an exit code: a command returns one of these (or an
// error of another package's kind, below) and exitKinds gives the code.
// No command calls os.Exit.
var (
	// errInvalid: a workflow or config has errors, already printed as
	// diagnostics.
	errInvalid = errors.New("invalid workflow")
	// errFailed: something failed and the command has said what.
	errFailed = exitcode.ErrFailed
	// errInterrupted: the run paused at an interrupt.
	errInterrupted = exitcode.ErrInterrupted
)

// usageError is a bad flag, argument or input: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// reportedError is an outcome the command already told the user about,
// so main prints nothing more; its code is its cause's.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// exitKinds is the table from the kinds of error a command returns to
// the process's exit code, first match wins: the CLI's own rows, then how
// a run ends (exitcode.RunKinds, which `lgx test` uses too). An error no
// row matches is a failure: exit 1.
var exitKinds = append([]exitcode.Kind{
	{Kind: "usage error: a bad flag, argument or input", Code: exitUsage, Match: exitcode.IsA[*usageError]},
	{Kind: "invalid workflow, config or test file (printed)", Code: exitUsage, Match: exitcode.Is(errInvalid)},
	{Kind: "bad store URL", Code: exitUsage, Match: exitcode.Is(store.ErrBadStoreURL)},
	{Kind: "a store path that names no lgx store (another file, a directory)", Code: exitUsage, Match: exitcode.Is(store.ErrNotLgxStore)},
	{Kind: "a store path in a directory that does not exist", Code: exitUsage, Match: exitcode.Is(store.ErrNoStoreDir)},
}, exitcode.RunKinds...)

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int { return exitcode.Of(exitKinds, err) }

// runOutcome is a finished run as an error of a kind in exitKinds: its
// error, else its status (nil: it completed).
func runOutcome(res *runner.Result, err error) error { return exitcode.Outcome(res, err) }

// usageErr marks err as a usage error (exit 2).
func usageErr(err error) error { return &usageError{err: err} }

// usageErrf formats a usage error.
func usageErrf(format string, args ...any) error {
	return usageErr(fmt.Errorf(format, args...))
}

// reported marks err as told to the user already: main prints nothing
// more and exits with err's code.
func reported(err error) error { return &reportedError{err: err} }

// isReported says whether main should stay silent about err.
func isReported(err error) bool { return exitcode.IsA[*reportedError](err) }
