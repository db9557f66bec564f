package nodes

import (
	"context"
	"fmt"
	"time"
)

// DefaultMaxValueBytes is the default `config.max_value_bytes` (16 MiB):
// the most bytes one rendered template or evaluated expression may build
// (SPEC §9.6).
const DefaultMaxValueBytes = 16 << 20

// Budget bounds one evaluation (a template execution, an expression): the
// bytes it may build and the context it must stop at. Functions that build
// values sized by an argument (`until 1000000000`, `repeat`) ask Reserve
// before they allocate, so a hostile argument is refused instead of
// exhausting memory; every function call and written chunk calls Tick, so
// a loop stops soon after the invocation's deadline.
//
// The count is cumulative over the evaluation: a loop that builds a 1 MB
// string a thousand times is refused as surely as one that builds 1 GB at
// once. A Budget is used by one goroutine at a time.
type Budget struct {
	ctx   context.Context
	limit int64
	used  int64
	ticks uint32
	// deadline, when set, ends the evaluation like ctx's deadline (for
	// expressions evaluated outside an attempt's context).
	deadline time.Time
	timeout  time.Duration
	// what names the value in messages: "rendered text", "expression value".
	what string
}

// Reset prepares b for a new evaluation under ctx (nil = no deadline) with
// limit bytes (≤ 0 = DefaultMaxValueBytes).
func (b *Budget) Reset(ctx context.Context, limit int64, what string) {
	if limit <= 0 {
		limit = DefaultMaxValueBytes
	}
	*b = Budget{ctx: ctx, limit: limit, what: what}
}

// Release forgets the evaluation (its context above all), for a budget
// kept in a pool or a reused environment.
func (b *Budget) Release() { *b = Budget{} }

// SetDeadline stops the evaluation timeout from now (0 = never).
func (b *Budget) SetDeadline(timeout time.Duration) {
	b.timeout = timeout
	if timeout > 0 {
		b.deadline = time.Now().Add(timeout)
	}
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Remaining is how many bytes may still be built.
func (b *Budget) Remaining() int64 { return max(b.limit-b.used, 0) }

// Reserve counts n more bytes, refusing (kind limit) when they do not fit;
// call it before allocating them. n may be an estimate; a negative n (an
// overflowed estimate) never fits.
func (b *Budget) Reserve(n int64) error {
	if n < 0 || n > b.limit-b.used {
		return b.exceeded()
	}
	b.used += n
	return b.Check() // what allocates is slow enough to look at the clock each time
}

// Fits reports, without counting, whether n more bytes fit.
func (b *Budget) Fits(n int64) error {
	if n < 0 || n > b.limit-b.used {
		return b.exceeded()
	}
	return nil
}

func (b *Budget) exceeded() error {
	return &Error{Kind: KindLimit, Err: &LimitError{What: b.what, Limit: b.limit}}
}

// Tick checks the context every 64 calls (ctx.Err takes a lock; a tight
// loop calls Tick millions of times a second).
func (b *Budget) Tick() error {
	b.ticks++
	if b.ticks&63 != 0 {
		return nil
	}
	return b.Check()
}

// Check reports, on every call, whether the deadline passed or the
// context ended; for callers whose steps are slow enough (a template
// function) that waiting for the 64th would overshoot the deadline.
func (b *Budget) Check() error {
	if b.timeout > 0 && time.Now().After(b.deadline) {
		return Errorf(KindTimeout, "stopped after the node's timeout (%s)", b.timeout)
	}
	return b.Err()
}

// Err is the context's error (its cause, e.g. the attempt's
// context.DeadlineExceeded), or nil while it runs.
func (b *Budget) Err() error {
	if b.ctx == nil || b.ctx.Err() == nil {
		return nil
	}
	return context.Cause(b.ctx)
}

// LimitError says a value outgrew config.max_value_bytes.
type LimitError struct {
	What  string // "rendered text", "expression value"
	Limit int64
}

func (e *LimitError) Error() string {
	what := e.What
	if what == "" {
		what = "value"
	}
	return fmt.Sprintf("%s exceeds config.max_value_bytes (%s)", what, FormatByteSize(e.Limit))
}

// FormatByteSize writes n the way a user would: "16 MiB", "1500 B".
func FormatByteSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d %s", n/u.mult, u.name)
		}
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprintf("%d %s", n/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}
