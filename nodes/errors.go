package nodes

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lgx-run/lgx/internal/failure"
)

// Kind classifies a failure; retry policies (`retry.on`) and `error.kind`
// in expressions read it.
type Kind string

// Failure kinds, as internal/failure declares them (with their meaning).
const (
	KindNetwork   Kind = failure.Network
	KindTimeout   Kind = failure.Timeout
	KindStatus    Kind = failure.Status
	KindSchema    Kind = failure.Schema
	KindTemplate  Kind = failure.Template
	KindType      Kind = failure.Type
	KindInput     Kind = failure.Input
	KindExpr      Kind = failure.Expr
	KindPanic     Kind = failure.Panic
	KindCancelled Kind = failure.Cancelled
	KindProvider  Kind = failure.Provider
	KindLimit     Kind = failure.Limit
	KindCassette  Kind = failure.Cassette
	KindBudget    Kind = failure.Budget
)

// RetryKinds are the kinds a `retry.on` entry may name (besides statuses),
// in the order docs and hints list them. The others are never worth a
// new attempt: a cancelled run, a limit, a cassette miss, an exhausted
// budget.
var RetryKinds = []Kind{KindNetwork, KindTimeout, KindStatus, KindSchema, KindTemplate, KindType, KindInput, KindExpr, KindPanic, KindProvider}

// Error is a node failure with a kind the retry policy can read.
type Error struct {
	Kind       Kind
	Status     int           // HTTP status, for KindStatus and provider errors
	RetryAfter time.Duration // from a Retry-After header; 0 = none
	Err        error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return string(e.Kind)
	}
	return e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of err, or "" when err carries none. A cassette
// miss anywhere in the chain wins over the kind a caller wrapped it in
// (http_fetch and the LLM adapters see it as a transport failure): calling
// it a network error would send the user looking for the wrong cause.
func KindOf(err error) Kind {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	for inner := e; ; {
		if inner.Kind == KindCassette {
			return KindCassette
		}
		if !errors.As(inner.Err, &inner) {
			break
		}
	}
	return e.Kind
}

// Matches reports whether err is selected by one `retry.on` entry: a kind
// ("network", "timeout", "status", …), an exact status ("429"), or a status
// class ("5xx", "4xx").
func Matches(err error, on string) bool {
	if KindOf(err) == KindCassette {
		// Retrying cannot make a recording appear.
		return on == string(KindCassette)
	}
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	if string(e.Kind) == on {
		return true
	}
	if e.Status == 0 {
		return false
	}
	if len(on) == 3 && on[1:] == "xx" && on[0] >= '1' && on[0] <= '5' {
		return e.Status/100 == int(on[0]-'0')
	}
	n, err2 := strconv.Atoi(on)
	return err2 == nil && n == e.Status
}

// Interrupt is returned by the interrupt type: the run pauses until resumed
// with values (SPEC §5.7).
type Interrupt struct {
	Message string
}

func (i *Interrupt) Error() string { return "interrupted: " + i.Message }

// ChildPause is implemented by the error of a call whose child workflow
// paused at interrupts (SPEC §9.2: an interrupt inside a child pauses the
// whole run). A tools node passes such an error on, so that the run
// pauses where the child waits; any other failure of a call becomes the
// call's error message.
type ChildPause interface {
	error
	ChildPaused()
}

// ChildPauses is the pauses of several calls of one invocation, each a
// ChildPause, in call order: the run waits at all of them. It unwraps to
// each, so errors.As finds the first one's *Interrupt.
type ChildPauses []error

func (p ChildPauses) Error() string   { return p[0].Error() }
func (p ChildPauses) Unwrap() []error { return p }

// ChildPaused marks the pauses as a ChildPause: a tools call that runs
// such an invocation passes them on.
func (ChildPauses) ChildPaused() {}

// FieldError is a failure inside the text of one of the node's with
// fields (a template's line:col count from that text's start). The runner
// sets At to the field's position in the workflow file, so the message
// names both: "with.template at flow.yaml:8:22: line 1:14: …".
type FieldError struct {
	Field string // the with field, e.g. "template"
	At    string // FILE:LINE:COL of its value; "" when unknown
	Err   error
}

func (e *FieldError) Error() string {
	if e.At == "" {
		return e.Err.Error()
	}
	return "with." + e.Field + " at " + e.At + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }
