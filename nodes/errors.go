package nodes

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kind classifies a failure; retry policies (`retry.on`) and `error.kind`
// in expressions read it.
type Kind string

// Failure kinds.
const (
	KindNetwork   Kind = "network"   // connection refused, reset, DNS, TLS…
	KindTimeout   Kind = "timeout"   // the attempt's deadline passed
	KindStatus    Kind = "status"    // a response status outside `expect`
	KindSchema    Kind = "schema"    // a value does not fit a JSON Schema
	KindTemplate  Kind = "template"  // a template failed to render
	KindType      Kind = "type"      // a write does not fit its state key
	KindInput     Kind = "input"     // a resolved `with` value is unusable
	KindExpr      Kind = "expr"      // an expression failed at run time
	KindPanic     Kind = "panic"     // the node panicked (recovered)
	KindCancelled Kind = "cancelled" // the run was cancelled
	KindProvider  Kind = "provider"  // an LLM provider returned an error
	KindLimit     Kind = "limit"     // a resource limit was reached (size budget, subgraph depth)
	KindCassette  Kind = "cassette"  // a replayed request has no recording (lgx run --replay, lgx test)
	KindBudget    Kind = "budget"    // a token budget cannot cover the call (SPEC §9.9)
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
