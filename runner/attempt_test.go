package runner

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/nodes"
)

func TestAttemptCtx(t *testing.T) {
	// Each case runs on the fake clock of a synctest bubble: a timer
	// fires exactly when due, and a sleep that must outlast a timer does,
	// however loaded the machine.
	bubble := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	alive := func(t *testing.T, ctx context.Context, what string) {
		t.Helper()
		if err := ctx.Err(); err != nil {
			t.Fatalf("%s: context ended: %v", what, context.Cause(ctx))
		}
	}
	bubble("reused while attempts finish in time", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		parent := context.Background()
		c1 := a.begin(parent, time.Hour)
		if a.end() {
			t.Fatal("end reported a timeout")
		}
		c2 := a.begin(parent, time.Hour)
		if c1 != c2 {
			t.Error("a second attempt got a new context")
		}
		alive(t, c2, "second attempt")
		a.end()
	})
	bubble("timeout ends the attempt and the next one starts afresh", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		start := time.Now()
		ctx := a.begin(context.Background(), 5*time.Millisecond)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the attempt context did not end after its timeout")
		}
		if d := time.Since(start); d != 5*time.Millisecond {
			t.Errorf("the attempt context ended after %s, want 5ms", d)
		}
		if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) || nodes.TimedOutAfter(ctx) != 5*time.Millisecond {
			t.Errorf("cause = %v, want a context.DeadlineExceeded naming 5ms", context.Cause(ctx))
		}
		if !a.end() {
			t.Error("end did not report the timeout")
		}
		next := a.begin(context.Background(), time.Hour)
		alive(t, next, "attempt after a timeout")
		a.end()
	})
	bubble("a reused timer's cause names the attempt's own timeout", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		a.begin(context.Background(), time.Hour)
		a.end()
		ctx := a.begin(context.Background(), 5*time.Millisecond)
		<-ctx.Done()
		if got := nodes.TimedOutAfter(ctx); got != 5*time.Millisecond {
			t.Errorf("timed out after %s, want 5ms", got)
		}
	})
	bubble("a stopped timer never ends a later attempt", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		a.begin(context.Background(), 10*time.Millisecond)
		a.end()
		ctx := a.begin(context.Background(), time.Hour)
		time.Sleep(40 * time.Millisecond)
		alive(t, ctx, "attempt begun after a short one")
		a.end()
	})
	bubble("a timer that fired as the attempt ended spares the next", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		a.begin(context.Background(), time.Millisecond)
		time.Sleep(10 * time.Millisecond) // fired: the attempt "ended" too late
		a.end()
		ctx := a.begin(context.Background(), time.Hour)
		time.Sleep(10 * time.Millisecond)
		alive(t, ctx, "attempt after a late one")
		a.end()
	})
	bubble("a new parent gets a new context and the old one ends", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		p1, cancel1 := context.WithCancel(context.Background())
		defer cancel1()
		c1 := a.begin(p1, time.Hour)
		a.end()
		c2 := a.begin(context.Background(), time.Hour)
		if c1 == c2 || c1.Err() == nil {
			t.Errorf("same context %v, old one's error %v: want a new context and the old one ended", c1 == c2, c1.Err())
		}
		alive(t, c2, "attempt under the new parent")
		a.end()
	})
	bubble("a cancelled parent ends the attempt, not as a timeout", func(t *testing.T) {
		var a attemptCtx
		defer a.release()
		p, cancel := context.WithCancel(context.Background())
		ctx := a.begin(p, time.Hour)
		cancel()
		<-ctx.Done()
		if a.end() {
			t.Error("end reported a timeout for a cancelled parent")
		}
	})
}
