package main

import (
	"errors"
	"fmt"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// Exit codes (SPEC §7).
const (
	exitOK          = 0
	exitFailed      = 1   // the run failed
	exitUsage       = 2   // usage error or invalid workflow
	exitInterrupted = 3   // paused at an interrupt
	exitCancelled   = 130 // cancelled by a signal; resumable
)

// Outcomes of lgx's own that carry an exit code: a command returns one of
// these (or an error of another package's kind, below) and exitKinds
// gives the code. No command calls os.Exit.
var (
	// errInvalid: a workflow or config has errors, already printed as
	// diagnostics.
	errInvalid = errors.New("invalid workflow")
	// errFailed: something failed and the command has said what.
	errFailed = errors.New("failed")
	// errInterrupted: the run paused at an interrupt.
	errInterrupted = errors.New("paused at an interrupt")
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

// exitKind is one row of exitKinds.
type exitKind struct {
	kind  string
	code  int
	match func(error) bool
}

// exitKinds is the one table from the kinds of error a command returns to
// the process's exit code, first match wins. An error no row matches is a
// failure: exit 1.
var exitKinds = []exitKind{
	{"usage error: a bad flag, argument or input", exitUsage, isA[*usageError]},
	{"invalid workflow, config or test file (printed)", exitUsage, isErr(errInvalid)},
	{"bad store URL", exitUsage, isErr(store.ErrBadStoreURL)},
	{"run input refused by its declared type", exitUsage, isA[*runner.InputError]},
	{"invalid subgraph or recorded workflow", exitUsage, isA[*runner.InvalidWorkflowError]},
	{"run owned by a live process (lease)", exitUsage, isA[*store.LeaseError]},
	{"paused at an interrupt", exitInterrupted, isErr(errInterrupted)},
	{"cancelled by a signal", exitCancelled, isErr(runner.ErrCancelled)},
	{"failed", exitFailed, isErr(errFailed)},
}

func isA[T error](err error) bool { var t T; return errors.As(err, &t) }

func isErr(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	for _, k := range exitKinds {
		if k.match(err) {
			return k.code
		}
	}
	return exitFailed
}

// runOutcome is a finished run as an error of a kind in exitKinds: its
// error, else its status (nil: it completed).
func runOutcome(res *runner.Result, err error) error {
	if err != nil || res == nil {
		return err
	}
	switch res.Status {
	case store.StatusInterrupted:
		return errInterrupted
	case store.StatusCancelled:
		return runner.ErrCancelled
	case store.StatusFailed:
		return errFailed
	}
	return nil
}

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
func isReported(err error) bool { return isA[*reportedError](err) }
