// Package exitcode maps how a run ended to lgx's exit codes (SPEC §7): the
// one table both the CLI and `lgx test` (a case's expected `exit:`) read,
// so the two cannot drift apart.
package exitcode

import (
	"errors"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// Exit codes (SPEC §7).
const (
	OK          = 0
	Failed      = 1   // the run failed
	Usage       = 2   // usage error, invalid workflow or refused input
	Interrupted = 3   // paused at an interrupt
	Cancelled   = 130 // cancelled by a signal; resumable
)

// Outcomes that carry an exit code but are no error of another package:
// Outcome returns them for a run's status.
var (
	// ErrInterrupted: the run paused at an interrupt.
	ErrInterrupted = errors.New("paused at an interrupt")
	// ErrFailed: the run failed (its error, if any, was reported).
	ErrFailed = errors.New("failed")
)

// Kind is one row of a table from kinds of error to exit codes.
type Kind struct {
	Kind  string
	Code  int
	Match func(error) bool
}

// RunKinds are the rows for how a run ends, in the order they are tried.
// The CLI puts its own rows (usage errors, invalid files) before them.
var RunKinds = []Kind{
	{"run input refused by its declared type", Usage, IsA[*runner.InputError]},
	{"invalid subgraph or recorded workflow", Usage, IsA[*runner.InvalidWorkflowError]},
	{"run owned by a live process (lease)", Usage, IsA[*store.LeaseError]},
	{"paused at an interrupt", Interrupted, Is(ErrInterrupted)},
	{"cancelled by a signal", Cancelled, Is(runner.ErrCancelled)},
	{"failed", Failed, Is(ErrFailed)},
}

// IsA matches errors with a T in their chain.
func IsA[T error](err error) bool { var t T; return errors.As(err, &t) }

// Is matches errors with target in their chain.
func Is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

// Of maps err to the code of the first row of kinds it matches: OK for
// nil, Failed for an error no row matches.
func Of(kinds []Kind, err error) int {
	if err == nil {
		return OK
	}
	for _, k := range kinds {
		if k.Match(err) {
			return k.Code
		}
	}
	return Failed
}

// Outcome is a finished run as an error of a kind in RunKinds: its error,
// else its status (nil: it completed).
func Outcome(res *runner.Result, err error) error {
	if err != nil || res == nil {
		return err
	}
	switch res.Status {
	case store.StatusInterrupted:
		return ErrInterrupted
	case store.StatusCancelled:
		return runner.ErrCancelled
	case store.StatusFailed:
		return ErrFailed
	}
	return nil
}

// Run is the exit code of a finished run.
func Run(res *runner.Result, err error) int { return Of(RunKinds, Outcome(res, err)) }
