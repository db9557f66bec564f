package main

import (
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/progress"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
)

// The live view shows a retrying invocation's attempt out of its policy's
// total, from the runner's attempt events, and the tool calls in flight.
func TestLiveViewAttemptsAndTools(t *testing.T) {
	retrying := []runner.Event{
		{Event: runner.EventRunStart, TS: at(0), Workflow: "demo"},
		{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"fetch", "agent"}},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "fetch"},
		{Event: runner.EventAcquired, TS: at(0), Step: 1, Node: "fetch"},
		{Event: runner.EventAttemptStart, TS: at(0), Step: 1, Node: "fetch", Attempt: 1},
		{Event: runner.EventAttemptEnd, TS: at(100), Step: 1, Node: "fetch", Attempt: 1, Kind: "timeout", Error: "timed out"},
		{Event: runner.EventRetry, TS: at(100), Step: 1, Node: "fetch", Attempt: 1, Kind: "timeout", DelayMS: 500},
		{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "agent"},
		{Event: runner.EventAttemptStart, TS: at(0), Step: 1, Node: "agent", Attempt: 1},
		{Event: runner.EventToolStart, TS: at(50), Step: 1, Node: "agent", Path: "1/agent/tool:a", Tool: "search", ToolCallID: "a"},
	}
	second := append(retrying[:len(retrying):len(retrying)],
		runner.Event{Event: runner.EventAttemptStart, TS: at(600), Step: 1, Node: "fetch", Attempt: 2},
		runner.Event{Event: runner.EventToolEnd, TS: at(650), Step: 1, Node: "agent", Path: "1/agent/tool:a", Tool: "search", ToolCallID: "a"})
	tests := []struct {
		name     string
		attempts map[string]int
		evs      []runner.Event
		now      time.Time
		want     []string
		avoid    []string
	}{
		{"backing off: the next attempt of three and when", map[string]int{"fetch": 3}, retrying, at(300),
			[]string{"fetch  ↻ attempt 2/3 in 300ms (timeout)", "agent  300ms", "⚙ search  250ms"}, nil},
		{"in the second attempt: its own elapsed time", map[string]int{"fetch": 3}, second, at(700),
			[]string{"fetch  100ms  attempt 2/3"}, []string{"search", "↻"}},
		{"a policy the view does not know: no total", nil, second, at(700),
			[]string{"fetch  100ms  attempt 2"}, []string{"attempt 2/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newLiveView(io.Discard, 100, false, fixedClock(tt.now), 0)
			v.m = progress.New(progress.Options{Attempts: tt.attempts})
			feed(v, tt.evs)
			got := screen(v, tt.now)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("screen lacks %q:\n%s", w, got)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(got, a) {
					t.Errorf("screen has %q:\n%s", a, got)
				}
			}
		})
	}
}

// A finished tools node says how many tool calls it made and how many
// failed.
func TestLiveViewFinishedToolCalls(t *testing.T) {
	v := newLiveView(io.Discard, 100, false, fixedClock(at(100)), 0)
	feed(v, []runner.Event{
		{Event: runner.EventNodeStart, TS: at(0), Node: "agent"},
		{Event: runner.EventToolStart, TS: at(1), Node: "agent", Path: "1/agent/tool:a", ToolCallID: "a"},
		{Event: runner.EventToolStart, TS: at(1), Node: "agent", Path: "1/agent/tool:b", ToolCallID: "b"},
		{Event: runner.EventToolEnd, TS: at(5), Node: "agent", Path: "1/agent/tool:a", ToolCallID: "a", Kind: "status", Error: "404"},
		{Event: runner.EventToolEnd, TS: at(6), Node: "agent", Path: "1/agent/tool:b", ToolCallID: "b"},
		{Event: runner.EventNodeEnd, TS: at(10), Node: "agent", Attempt: 1},
	})
	if got := screen(v, at(100)); !strings.Contains(got, "✓ agent  10ms · 2 tool calls (1 failed)") {
		t.Errorf("want the tool call counts:\n%s", got)
	}
}

// progressView hands the views each node's attempts: its own retry
// policy, else config.retry.
func TestAttemptLimits(t *testing.T) {
	wf := &spec.Workflow{Config: spec.Config{Retry: spec.RetryPolicy{Attempts: 3}},
		Nodes: []*spec.Node{{Name: "a"}, {Name: "b", Retry: &spec.RetryPolicy{Attempts: 5}}}}
	if got, want := attemptLimits(wf), map[string]int{"a": 3, "b": 5}; !maps.Equal(got, want) {
		t.Errorf("attemptLimits = %v, want %v", got, want)
	}
	if got := attemptLimits(nil); got != nil {
		t.Errorf("attemptLimits(nil) = %v, want nil", got)
	}
}
