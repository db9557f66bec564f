package main

import (
	"errors"
	"fmt"
)

// Exit codes (SPEC §7).
const (
	exitOK          = 0
	exitFailed      = 1   // the run failed
	exitUsage       = 2   // usage error or invalid workflow
	exitInterrupted = 3   // paused at an interrupt
	exitCancelled   = 130 // cancelled by a signal; resumable
)

// exitError carries the process exit code for an error. Commands return
// these instead of calling os.Exit, so every exit path is testable.
type exitError struct {
	code int
	err  error
	// reported means the command already told the user (e.g. printed
	// diagnostics), so main prints nothing more.
	reported bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (exit 2).
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// usageErrf formats a usage error.
func usageErrf(format string, args ...any) error {
	return usageErr(fmt.Errorf(format, args...))
}

// silentExit ends the command with code after it has reported everything.
func silentExit(code int) error { return &exitError{code: code, reported: true} }

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitFailed
}
