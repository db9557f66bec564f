package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/lgx-run/lgx/runner"
)

// TestStreamEventsDurationZero: `--stream events` writes duration_ms on the
// events that always have a duration, 0 included (a consumer reads the
// field, it does not guess that a missing one means 0), and never on the
// others. A txtar cannot pin the 0 case: on a loaded machine a real
// acquire can take a millisecond.
func TestStreamEventsDurationZero(t *testing.T) {
	tests := []struct {
		event string
		ms    int64
		want  any // the duration_ms field; nil: absent
	}{
		{runner.EventAcquired, 0, 0.0},
		{runner.EventAttemptEnd, 0, 0.0},
		{runner.EventNodeEnd, 0, 0.0},
		{runner.EventNodeError, 0, 0.0},
		{runner.EventToolEnd, 0, 0.0},
		{runner.EventNodeEnd, 12, 12.0},
		{runner.EventNodeStart, 0, nil},
		{runner.EventAttemptStart, 0, nil},
		{runner.EventStepStart, 0, nil},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		newStreamSink(&buf, "events").Emit(runner.Event{Event: tt.event, Node: "n", DurationMS: tt.ms})
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v: %s", tt.event, err, buf.Bytes())
		}
		got, ok := m["duration_ms"]
		if tt.want == nil {
			if ok {
				t.Errorf("%s: duration_ms = %v, want none", tt.event, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("%s with %d ms: duration_ms = %v (present %v), want %v", tt.event, tt.ms, got, ok, tt.want)
		}
	}
}

// TestStreamEventsTimestampWidth: ts is RFC 3339 with all nine digits of
// nanoseconds (SPEC §8), also when they end in zeros, which encoding/json
// would drop; the lines then sort as text in time order.
func TestStreamEventsTimestampWidth(t *testing.T) {
	tests := []struct {
		ts   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 764038530, time.UTC), "2026-01-02T03:04:05.764038530Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05.000000000Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), "2026-01-02T03:04:05.123456789Z"},
	}
	var buf bytes.Buffer
	sink := newStreamSink(&buf, "events")
	for _, tt := range tests {
		buf.Reset()
		sink.Emit(runner.Event{Event: runner.EventNodeStart, Run: "R", TS: tt.ts, Node: "n", Writes: map[string]any{"k": `"ts":"x"`}})
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, buf.Bytes())
		}
		if m["ts"] != tt.want {
			t.Errorf("ts = %v, want %s (line %s)", m["ts"], tt.want, buf.Bytes())
		}
		if w := m["writes"].(map[string]any)["k"]; w != `"ts":"x"` {
			t.Errorf("writes changed: %v", w)
		}
	}
}
