package runner

import (
	"context"
	"time"
)

// attemptCtx gives the attempts one goroutine runs a context that ends
// after the node's timeout, reusing one context and one timer from attempt
// to attempt while none times out. context.WithTimeout per attempt costs a
// context, a timer, a Done channel and, once a request registers on it, a
// children map: about 4 % of the CPU of a fast local HTTP request. Not safe
// for concurrent use: each worker (and the run loop) owns one.
type attemptCtx struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	// timer cancels ctx with the cause context.DeadlineExceeded, as a
	// deadline would (node types report a timeout, not a cancellation).
	timer *time.Timer
}

// begin returns the context for an attempt under parent that must end
// after d.
func (a *attemptCtx) begin(parent context.Context, d time.Duration) context.Context {
	if a.ctx != nil && (a.parent != parent || a.ctx.Err() != nil) {
		a.release()
	}
	if a.ctx == nil {
		a.ctx, a.cancel = context.WithCancelCause(parent)
		a.parent = parent
		cancel := a.cancel // the timer ends this context, never a later one
		a.timer = time.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
		return a.ctx
	}
	a.timer.Reset(d)
	return a.ctx
}

// end stops the attempt's timer and reports whether it fired, i.e. the
// attempt ran out of time. A fired context is dropped: the next attempt
// gets a new one.
func (a *attemptCtx) end() (timedOut bool) {
	if a.timer.Stop() {
		return false
	}
	a.release()
	return true
}

// release ends the current context, if any.
func (a *attemptCtx) release() {
	if a.ctx == nil {
		return
	}
	a.timer.Stop()
	a.cancel(context.Canceled)
	a.parent, a.ctx, a.cancel, a.timer = nil, nil, nil, nil
}
