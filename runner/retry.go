package runner

import (
	"math/rand/v2"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// retryPolicy is a node's resolved spec.RetryPolicy.
type retryPolicy struct {
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration
	on         []string
}

func resolveRetry(p *spec.RetryPolicy, def spec.RetryPolicy) retryPolicy {
	if p == nil {
		p = &def
	}
	r := retryPolicy{attempts: p.Attempts, backoff: p.Backoff, maxBackoff: p.MaxBackoff, on: p.On}
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
	if r.on == nil {
		r.on = spec.DefaultRetryOn
	}
	return r
}

// retryable reports whether err is selected by one of the policy's `on`
// entries.
func (r *retryPolicy) retryable(err error) bool {
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
// that retries of many invocations spread out.
func (r *retryPolicy) delay(attempt int, err error) time.Duration {
	if e, ok := err.(*nodes.Error); ok && e.RetryAfter > 0 {
		return e.RetryAfter
	}
	if e := asNodeErr(err); e != nil && e.RetryAfter > 0 {
		return e.RetryAfter
	}
	d := r.backoff
	for i := 1; i < attempt && d < r.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.maxBackoff)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}
