package runner

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/lgx-run/lgx/nodes"
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
	// timer cancels ctx with a nodes.TimeoutCause (a
	// context.DeadlineExceeded), as a deadline would (node types report a
	// timeout, not a cancellation), naming the timeout in after: the
	// timer is reused across attempts whose timeouts may differ.
	timer *time.Timer
	after *atomic.Int64
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
		after := new(atomic.Int64)
		after.Store(int64(d))
		a.after = after
		a.timer = time.AfterFunc(d, func() { cancel(&nodes.TimeoutCause{After: time.Duration(after.Load())}) })
		return a.ctx
	}
	a.after.Store(int64(d))
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
	a.parent, a.ctx, a.cancel, a.timer, a.after = nil, nil, nil, nil, nil
}
