package main

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/progress"
	"github.com/lgx-run/lgx/runner"
)

var viewFuzzEvents = []string{
	runner.EventRunStart, runner.EventStepStart, runner.EventNodeStart, runner.EventNodeEnd,
	runner.EventNodeError, runner.EventRetry, runner.EventFallback, runner.EventToken,
	runner.EventWait, runner.EventAcquired, runner.EventStepEnd, runner.EventInterrupt,
	runner.EventRunEnd, runner.EventToolStart, runner.EventToolEnd, runner.EventAttemptStart,
	runner.EventAttemptEnd, "unknown",
}

// FuzzViews feeds arbitrary event sequences, 5 bytes an event, to both
// views and draws them: no event order, count or index may panic a
// renderer.
func FuzzViews(f *testing.F) {
	f.Add([]byte{1, 1, 3, 2, 5, 2, 1, 0, 0, 1, 15, 1, 0, 2, 1, 5, 1, 0, 3, 200})
	f.Add([]byte{1, 2, 255, 128, 0, 2, 2, 254, 1, 0, 3, 2, 7, 1, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		live := newLiveView(io.Discard, 60, true, fixedClock(at(500)), 0)
		live.m = progress.New(progress.Options{Attempts: map[string]int{"a": 2}})
		var plainOut bytes.Buffer
		plain := newPlainView(&plainOut, fixedClock(at(500)))
		ts := t0
		for len(data) >= 5 {
			b := data[:5]
			data = data[5:]
			e := runner.Event{Event: viewFuzzEvents[int(b[0])%len(viewFuzzEvents)], Run: "R",
				Node: []string{"", "a", "b"}[b[1]%3], Attempt: int(int8(b[3])), Step: int(b[3] % 3),
				DelayMS: int64(int8(b[4])) * 10, DurationMS: int64(int8(b[4])), Waiting: []string{"", "node", "pool p"}[b[4]%3],
				Tool: "t", ToolCallID: string(rune('a' + b[3]%2)), Token: "x\n", Kind: []string{"", "cancelled", "timeout"}[b[2]%3]}
			if i := int(int8(b[2])); i%4 != 0 {
				e.Index = &i
			}
			if b[4]&1 == 1 {
				e.Items = map[string]int{e.Node: int(int8(b[3]))}
				e.Nodes = []string{e.Node}
				e.Error = "boom"
			}
			ts = ts.Add(time.Duration(int8(b[4])) * time.Millisecond)
			e.TS = ts
			live.Emit(e)
			plain.Emit(e)
			screen(live, at(500))
		}
		live.Close()
		plain.Close()
	})
}
