package runner

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// retryPolicy is a node's resolved spec.RetryPolicy.
type retryPolicy struct {
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration
	maxWait    time.Duration // bounds every wait, Retry-After included
	on         []string
	// outputs: on names a kind a node's output can fail with (type,
	// expr, limit), so an attempt's output is evaluated with it and a
	// failure there is retried like the attempt's own.
	outputs bool
}

func resolveRetry(p *spec.RetryPolicy, def spec.RetryPolicy) retryPolicy {
	if p == nil {
		p = &def
	}
	r := retryPolicy{attempts: p.Attempts, backoff: p.Backoff, maxBackoff: p.MaxBackoff, maxWait: p.MaxWait, on: p.On}
	if r.attempts <= 0 {
		r.attempts = spec.DefaultAttempts
	}
	if r.backoff <= 0 {
		r.backoff = spec.DefaultBackoff
	}
	if r.maxBackoff <= 0 {
		r.maxBackoff = spec.DefaultMaxBackoff
	}
	if r.maxBackoff < r.backoff {
		r.maxBackoff = r.backoff
	}
	if r.maxWait <= 0 {
		r.maxWait = spec.DefaultMaxWait
	}
	if r.on == nil {
		r.on = spec.DefaultRetryOn
	}
	for _, on := range r.on {
		switch nodes.Kind(on) {
		case nodes.KindType, nodes.KindExpr, nodes.KindLimit:
			r.outputs = true
		}
	}
	return r
}

// retryable reports whether err is selected by one of the policy's `on`
// entries.
func (r *retryPolicy) retryable(err error) bool {
	if errors.Is(err, errNoRetry) {
		return false
	}
	for _, on := range r.on {
		if nodes.Matches(err, on) {
			return true
		}
	}
	return false
}

// delay is the wait before attempt+1 after attempt failed with err: a
// Retry-After carried by a *nodes.Error wins; otherwise backoff doubled per
// attempt up to maxBackoff, with "equal jitter" (half fixed, half random) so
// that retries of many invocations spread out. No wait exceeds maxWait
// (SPEC §9.6): a Retry-After beyond it is an error that ends the retries
// (a server asking for an hour should not hold a run, its caps and its
// terminal for an hour with no way out but a kill).
func (r *retryPolicy) delay(attempt int, err error) (time.Duration, error) {
	var after time.Duration
	if e, ok := err.(*nodes.Error); ok && e.RetryAfter > 0 {
		after = e.RetryAfter
	} else if e := asNodeErr(err); e != nil && e.RetryAfter > 0 {
		after = e.RetryAfter
	}
	if after > 0 {
		if after > r.maxWait {
			return 0, &retryAfterError{after: after, maxWait: r.maxWait, err: err}
		}
		return after, nil
	}
	d := r.backoff
	for i := 1; i < attempt && d < r.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.maxBackoff, r.maxWait)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1)), nil
}

// retryAfterError is a failed attempt whose server asked for a wait beyond
// retry.max_wait: the attempt fails for good, and the message says what was
// asked. It unwraps to the attempt's error, so its kind and status stay.
type retryAfterError struct {
	after, maxWait time.Duration
	err            error
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("server asked to retry after %s, beyond retry.max_wait %s: %v",
		e.after, shortDuration(e.maxWait), e.err)
}

func (e *retryAfterError) Unwrap() error { return e.err }

// shortDuration prints d as written in a workflow: 5m rather than 5m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
