package nodes

import (
	"context"
	"errors"
	"time"
)

// TimeoutCause is the cause the runner cancels an attempt's context with
// when the attempt's timeout passes. It is context.DeadlineExceeded for
// errors.Is, so code that asks "did the deadline pass?" is unchanged, and
// it carries the timeout so that messages can say "timed out after 2s"
// rather than the bare "context deadline exceeded".
type TimeoutCause struct {
	After time.Duration
}

func (e *TimeoutCause) Error() string { return "timed out after " + e.After.String() }

// Is makes a TimeoutCause a context.DeadlineExceeded.
func (e *TimeoutCause) Is(target error) bool { return target == context.DeadlineExceeded }

// TimedOutAfter is the timeout that ended ctx (its cause a TimeoutCause),
// or 0 when ctx is not done, was cancelled, or ended at a deadline that
// carries no duration.
func TimedOutAfter(ctx context.Context) time.Duration {
	var tc *TimeoutCause
	if errors.As(context.Cause(ctx), &tc) {
		return tc.After
	}
	return 0
}
