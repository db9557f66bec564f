package runner

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// PollEvery polls every `every` while polls are quick, and waits at least
// nine times a slow poll's duration before the next, so following a run
// whose records grow costs a bounded share of a core; it stops when ctx
// ends, without cutting a poll short.
func TestPollEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		durations := []time.Duration{0, 0, 100 * time.Millisecond, 0, time.Second, 0}
		var at []time.Duration
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			PollEvery(ctx, 250*time.Millisecond, func(pctx context.Context) {
				if pctx.Err() != nil {
					t.Error("a poll got a cancelled context")
				}
				at = append(at, time.Since(start))
				if len(at) <= len(durations) {
					time.Sleep(durations[len(at)-1])
				}
				if len(at) == len(durations) {
					cancel()
				}
			})
		}()
		<-done
		// Polls at 0 and 250 ms; the third takes 100 ms, so the fourth
		// waits 900 ms after it ends (not 250); the fifth comes 250 ms
		// after that, takes 1 s, and the sixth waits 9 s.
		want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 1500 * time.Millisecond,
			1750 * time.Millisecond, 11750 * time.Millisecond}
		if len(at) != len(want) {
			t.Fatalf("polled at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Errorf("poll %d at %v, want %v (all: %v)", i, at[i], want[i], at)
			}
		}
	})
}
