package progress

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func idx(i int) *int { return &i }

func ms(xs ...int) []time.Duration {
	var ds []time.Duration
	for _, x := range xs {
		ds = append(ds, time.Duration(x)*time.Millisecond)
	}
	return ds
}

func key(node string, index int) Key { return Key{Node: node, Index: index} }

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		attempts map[string]int
		evs      []runner.Event
		want     Snapshot
		ended    Ended // what the last event's Apply returned
	}{
		{
			name:     "a retrying invocation backs off, then runs its second attempt of three",
			attempts: map[string]int{"fetch": 3},
			evs: []runner.Event{
				{Event: runner.EventRunStart, Run: "R", TS: at(0), Workflow: "demo"},
				{Event: runner.EventStepStart, TS: at(1), Step: 1, Nodes: []string{"fetch"}},
				{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "fetch", Path: "1/fetch"},
				{Event: runner.EventAcquired, TS: at(2), Step: 1, Node: "fetch"},
				{Event: runner.EventAttemptStart, TS: at(2), Step: 1, Node: "fetch", Attempt: 1},
				{Event: runner.EventAttemptEnd, TS: at(102), Step: 1, Node: "fetch", Attempt: 1, Kind: "timeout", Error: "timed out"},
				{Event: runner.EventRetry, TS: at(102), Step: 1, Node: "fetch", Attempt: 1, Kind: "timeout", DelayMS: 500},
			},
			want: Snapshot{Run: "R", Workflow: "demo", Start: at(0), Step: 1, StepNodes: []string{"fetch"},
				Nodes: []Node{{Name: "fetch", Started: 1, StepStarted: 1, Retries: 1, Attempts: 1,
					Running: []Invocation{{Key: key("fetch", -1), Path: "1/fetch", Step: 1, Start: at(1), Acquired: at(2),
						Attempt: 2, MaxAttempts: 3, AttemptStart: at(2), Backoff: true, RetryAt: at(602), RetryKind: "timeout"}}}}},
		},
		{
			name:     "the next attempt_start ends the back-off and holds the caps again",
			attempts: map[string]int{"fetch": 3},
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "fetch"},
				{Event: runner.EventAcquired, TS: at(2), Step: 1, Node: "fetch"},
				{Event: runner.EventAttemptStart, TS: at(2), Step: 1, Node: "fetch", Attempt: 1},
				{Event: runner.EventAttemptEnd, TS: at(102), Step: 1, Node: "fetch", Attempt: 1, Kind: "timeout", Error: "timed out"},
				{Event: runner.EventRetry, TS: at(102), Step: 1, Node: "fetch", Attempt: 1, Kind: "timeout", DelayMS: 500},
				{Event: runner.EventAttemptStart, TS: at(602), Step: 1, Node: "fetch", Attempt: 2},
			},
			want: Snapshot{Start: at(1),
				Nodes: []Node{{Name: "fetch", Started: 1, StepStarted: 1, Retries: 1, Attempts: 2,
					Running: []Invocation{{Key: key("fetch", -1), Step: 1, Start: at(1), Acquired: at(2), Holding: true,
						Attempt: 2, MaxAttempts: 3, AttemptStart: at(602), InAttempt: true, RetryAt: at(602), RetryKind: "timeout"}}}}},
		},
		{
			name: "the retried invocation succeeds: work time from its caps acquired",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(1), Node: "fetch"},
				{Event: runner.EventAcquired, TS: at(2), Node: "fetch"},
				{Event: runner.EventAttemptStart, TS: at(2), Node: "fetch", Attempt: 1},
				{Event: runner.EventAttemptEnd, TS: at(102), Node: "fetch", Attempt: 1, Kind: "timeout", Error: "timed out"},
				{Event: runner.EventRetry, TS: at(102), Node: "fetch", Attempt: 1, DelayMS: 500},
				{Event: runner.EventAttemptStart, TS: at(602), Node: "fetch", Attempt: 2},
				{Event: runner.EventAttemptEnd, TS: at(700), Node: "fetch", Attempt: 2},
				{Event: runner.EventNodeEnd, TS: at(702), Node: "fetch", Attempt: 2},
			},
			want: Snapshot{Start: at(1),
				Nodes: []Node{{Name: "fetch", Started: 1, StepStarted: 1, StepEnded: 1, Done: 1, Retries: 1, Attempts: 2,
					Durations: ms(700), Queued: ms(1)}}},
			ended: Ended{Work: 700 * time.Millisecond}, // it waited for no cap: no queue time to mention
		},
		{
			name:     "an attempt beyond the policy's total shows no total",
			attempts: map[string]int{"ask": 2},
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "ask"},
				{Event: runner.EventAttemptStart, TS: at(0), Node: "ask", Attempt: 3},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "ask", Started: 1, StepStarted: 1, Attempts: 1,
				Running: []Invocation{{Key: key("ask", -1), Start: at(0), Acquired: at(0), Holding: true,
					Attempt: 3, AttemptStart: at(0), InAttempt: true}}}}},
		},
		{
			name:     "after a fallback the attempts count on past the primary's policy: no total",
			attempts: map[string]int{"ask": 2},
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "ask"},
				{Event: runner.EventFallback, TS: at(5), Node: "ask", Message: "asking backup"},
				{Event: runner.EventAttemptStart, TS: at(6), Node: "ask", Attempt: 2},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "ask", Started: 1, StepStarted: 1, Attempts: 1,
				Running: []Invocation{{Key: key("ask", -1), Start: at(0), Acquired: at(6), Holding: true,
					Attempt: 2, AttemptStart: at(6), InAttempt: true}}}}},
		},
		{
			name: "waits for a pool, then acquired: the cap's waiter becomes its user",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "fetch", Index: idx(0)},
				{Event: runner.EventAcquired, TS: at(0), Node: "fetch", Index: idx(0)},
				{Event: runner.EventNodeStart, TS: at(0), Node: "fetch", Index: idx(1)},
				{Event: runner.EventWait, TS: at(0), Node: "fetch", Index: idx(1), Waiting: "pool web"},
				{Event: runner.EventNodeEnd, TS: at(100), Node: "fetch", Index: idx(0)},
				{Event: runner.EventAcquired, TS: at(100), Node: "fetch", Index: idx(1)},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "fetch", Loop: true, Total: 2, Started: 2, StepStarted: 2, StepEnded: 1, Done: 1,
				Durations: ms(100), Queued: ms(0),
				Running: []Invocation{{Key: key("fetch", 1), Start: at(0), Acquired: at(100), WaitSince: at(0), Holding: true}}}},
				Caps: []CapUse{{Cap: "pool web", Busy: 1}}},
		},
		{
			name: "still waiting: counted as the cap's waiter, not its user",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "fetch", Index: idx(0)},
				{Event: runner.EventAcquired, TS: at(0), Node: "fetch", Index: idx(0)},
				{Event: runner.EventNodeStart, TS: at(0), Node: "fetch", Index: idx(1)},
				{Event: runner.EventWait, TS: at(0), Node: "fetch", Index: idx(1), Waiting: "pool web"},
				{Event: runner.EventNodeStart, TS: at(0), Node: "other"},
				{Event: runner.EventWait, TS: at(1), Node: "other", Waiting: "node"},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{
				{Name: "fetch", Loop: true, Total: 2, Started: 2, StepStarted: 2, Running: []Invocation{
					{Key: key("fetch", 0), Start: at(0), Acquired: at(0), Holding: true},
					{Key: key("fetch", 1), Start: at(0), Waiting: "pool web", WaitSince: at(0)}}},
				{Name: "other", Started: 1, StepStarted: 1, Running: []Invocation{
					{Key: key("other", -1), Start: at(0), Waiting: "node", WaitSince: at(1)}}}},
				Caps: []CapUse{{Cap: "pool web", Busy: 1, Waiting: 1}}},
		},
		{
			name: "a wait that ended in work: queue time mentioned",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "f", Index: idx(2)},
				{Event: runner.EventWait, TS: at(0), Node: "f", Index: idx(2), Waiting: "node"},
				{Event: runner.EventAcquired, TS: at(1500), Node: "f", Index: idx(2)},
				{Event: runner.EventNodeEnd, TS: at(1620), Node: "f", Index: idx(2), Attempt: 1},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "f", Loop: true, Total: 3, Started: 1, StepStarted: 1, StepEnded: 1, Done: 1,
				Waited: true, Durations: ms(120), Queued: ms(1500)}}},
			ended: Ended{Work: 120 * time.Millisecond, Queued: 1500 * time.Millisecond},
		},
		{
			name: "for_each items: total from step_start, in flight by index, a later step counts afresh",
			evs: []runner.Event{
				{Event: runner.EventStepStart, TS: at(0), Step: 1, Nodes: []string{"fetch"}, Items: map[string]int{"fetch": 1}},
				{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "fetch", Index: idx(0)},
				{Event: runner.EventNodeEnd, TS: at(1), Step: 1, Node: "fetch", Index: idx(0), Attempt: 1},
				{Event: runner.EventStepStart, TS: at(2), Step: 2, Nodes: []string{"fetch"}, Items: map[string]int{"fetch": 5}},
				{Event: runner.EventNodeStart, TS: at(2), Step: 2, Node: "fetch", Index: idx(2)},
				{Event: runner.EventNodeStart, TS: at(2), Step: 2, Node: "fetch", Index: idx(0)},
				{Event: runner.EventNodeStart, TS: at(2), Step: 2, Node: "fetch", Index: idx(1)},
				{Event: runner.EventNodeEnd, TS: at(5), Step: 2, Node: "fetch", Index: idx(1), Attempt: 1},
			},
			want: Snapshot{Start: at(0), Step: 2, StepNodes: []string{"fetch"}, Nodes: []Node{{Name: "fetch", Loop: true, Total: 5,
				Started: 4, Done: 2, StepStarted: 3, StepEnded: 1, Durations: ms(1, 3), Queued: ms(0, 0),
				Running: []Invocation{
					{Key: key("fetch", 0), Step: 2, Start: at(2)},
					{Key: key("fetch", 2), Step: 2, Start: at(2)}}}}},
			ended: Ended{Work: 3 * time.Millisecond},
		},
		{
			name: "tool calls in flight under their tools node; a failed one counted; usage summed",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Step: 3, Node: "tools", Path: "3/tools"},
				{Event: runner.EventAttemptStart, TS: at(0), Step: 3, Node: "tools", Attempt: 1},
				{Event: runner.EventToolStart, TS: at(1), Step: 3, Node: "tools", Path: "3/tools/tool:a", Tool: "search", ToolCallID: "a"},
				{Event: runner.EventToolStart, TS: at(2), Step: 3, Node: "tools", Path: "3/tools/tool:b", Tool: "fetch", ToolCallID: "b"},
				{Event: runner.EventToolStart, TS: at(3), Step: 3, Node: "tools", Path: "3/tools/tool:c", Tool: "ask", ToolCallID: "c"},
				{Event: runner.EventToolEnd, TS: at(10), Step: 3, Node: "tools", Path: "3/tools/tool:b", Tool: "fetch", ToolCallID: "b", Kind: "status", Error: "404"},
				{Event: runner.EventToolEnd, TS: at(11), Step: 3, Node: "tools", Path: "3/tools/tool:c", Tool: "ask", ToolCallID: "c",
					GenAI: []nodes.GenAIInfo{{InputTokens: 10, OutputTokens: 2}}},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "tools", Started: 1, StepStarted: 1, Attempts: 1,
				ToolCalls: 3, ToolsFailed: 1, Usage: true, InputTokens: 10, OutputTokens: 2,
				Running: []Invocation{{Key: key("tools", -1), Path: "3/tools", Step: 3, Start: at(0), Acquired: at(0), Holding: true,
					Attempt: 1, AttemptStart: at(0), InAttempt: true,
					Tools: []Tool{{Name: "search", ID: "a", Path: "3/tools/tool:a", Start: at(1)}}}}}}},
		},
		{
			name: "a failing node: counted failed with its work time, the run failed",
			evs: []runner.Event{
				{Event: runner.EventRunStart, TS: at(0), Workflow: "w"},
				{Event: runner.EventNodeStart, TS: at(0), Node: "f"},
				{Event: runner.EventAcquired, TS: at(0), Node: "f"},
				{Event: runner.EventAttemptStart, TS: at(0), Node: "f", Attempt: 1},
				{Event: runner.EventAttemptEnd, TS: at(40), Node: "f", Attempt: 1, Kind: "status", Error: "404"},
				{Event: runner.EventNodeError, TS: at(40), Node: "f", Attempt: 1, Kind: "status", Error: "404"},
				{Event: runner.EventRunEnd, TS: at(41), Status: "failed", Error: "node f: 404"},
			},
			want: Snapshot{Workflow: "w", Start: at(0), End: at(41), Status: "failed", Error: "node f: 404",
				Nodes: []Node{{Name: "f", Started: 1, StepStarted: 1, StepEnded: 1, Failed: 1, Attempts: 1, Durations: ms(40), Queued: ms(0)}}},
		},
		{
			name: "failed under on_error: continue (node_end with an error)",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "f"},
				{Event: runner.EventNodeEnd, TS: at(3), Node: "f", Attempt: 1, Kind: "status", Error: "404"},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "f", Started: 1, StepStarted: 1, StepEnded: 1, Failed: 1,
				Durations: ms(3), Queued: ms(0)}}},
			ended: Ended{Work: 3 * time.Millisecond},
		},
		{
			name: "cancelled before its first attempt: no run; cancelled in an attempt: a cut run",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "f", Index: idx(0)},
				{Event: runner.EventAttemptStart, TS: at(0), Node: "f", Index: idx(0), Attempt: 1},
				{Event: runner.EventNodeStart, TS: at(0), Node: "f", Index: idx(1)},
				{Event: runner.EventWait, TS: at(0), Node: "f", Index: idx(1), Waiting: "node"},
				{Event: runner.EventNodeError, TS: at(9), Node: "f", Index: idx(1), Kind: "cancelled", Error: "context canceled"},
				{Event: runner.EventNodeError, TS: at(10), Node: "f", Index: idx(0), Attempt: 1, Kind: "cancelled", Error: "context canceled"},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "f", Loop: true, Total: 2, Started: 2, StepStarted: 2, StepEnded: 2,
				Cancelled: 2, Unstarted: 1, Attempts: 1, Waited: false, Cut: ms(10), Queued: ms(0)}}},
			ended: Ended{Work: 10 * time.Millisecond},
		},
		{
			name: "an interrupt pauses its node; the run's end clears what was in flight",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "approve"},
				{Event: runner.EventNodeStart, TS: at(0), Node: "other"},
				{Event: runner.EventInterrupt, TS: at(1), Node: "approve", Message: "ok?"},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "approve", Started: 1, StepStarted: 1},
				{Name: "other", Started: 1, StepStarted: 1, Running: []Invocation{{Key: key("other", -1), Start: at(0)}}}}},
		},
		{
			name: "step_end drops an invocation of its step that lost its end event",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Step: 1, Node: "a"},
				{Event: runner.EventNodeStart, TS: at(0), Step: 2, Node: "b"},
				{Event: runner.EventStepEnd, TS: at(5), Step: 1},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "a", Started: 1, StepStarted: 1},
				{Name: "b", Started: 1, StepStarted: 1, Running: []Invocation{{Key: key("b", -1), Step: 2, Start: at(0)}}}}},
		},
		{
			name: "tokens: the last line, not the first",
			evs: []runner.Event{
				{Event: runner.EventNodeStart, TS: at(0), Node: "w"},
				{Event: runner.EventToken, TS: at(1), Node: "w", Token: "Dear reader,"},
				{Event: runner.EventToken, TS: at(2), Node: "w", Token: "\nthe sources"},
				{Event: runner.EventToken, TS: at(3), Node: "w", Token: " agree."},
			},
			want: Snapshot{Start: at(0), Nodes: []Node{{Name: "w", Started: 1, StepStarted: 1,
				Running: []Invocation{{Key: key("w", -1), Start: at(0), Tail: "the sources agree."}}}}},
		},
		{
			name: "out of order and unknown events: an end without a start uses duration_ms, strays create nothing odd",
			evs: []runner.Event{
				{Event: "mystery", TS: at(0), Node: "x", Index: idx(-4)},
				{Event: runner.EventNodeEnd, TS: at(1500), Node: "a", Index: idx(2), DurationMS: 1500},
				{Event: runner.EventAttemptEnd, TS: at(1500), Node: "b", Attempt: 7, Error: "late"},
				{Event: runner.EventToolEnd, TS: at(1501), Node: "b", ToolCallID: "nope"},
				{Event: runner.EventStepStart, TS: at(1502), Step: 1, Items: map[string]int{"a": -3}},
				{Event: runner.EventCheckpoint, TS: at(1503), Step: 1, Nodes: []string{"a"}},
				{Event: runner.EventRunEnd, TS: at(1504), Status: "completed"},
				{Event: runner.EventNodeEnd, TS: at(1505), Node: "a", Index: idx(2)}, // after the end
			},
			want: Snapshot{Start: at(0), End: at(1504), Step: 1, Status: "completed", Nodes: []Node{
				{Name: "x", Loop: true},
				{Name: "a", Loop: true, Total: 3, StepEnded: 2, Done: 2, Durations: ms(1500, 0), Queued: ms(0, 0)},
				{Name: "b"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{Attempts: tt.attempts})
			var ended Ended
			for _, e := range tt.evs {
				ended = m.Apply(e)
			}
			got := m.Snapshot()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("snapshot\n got %s\nwant %s", dump(got), dump(tt.want))
			}
			if ended != tt.ended {
				t.Errorf("last Apply returned %+v, want %+v", ended, tt.ended)
			}
		})
	}
}

// dump prints a snapshot one node per line, for a readable diff.
func dump(s Snapshot) string {
	nodes := s.Nodes
	s.Nodes = nil
	out := fmt.Sprintf("%+v", s)
	for _, n := range nodes {
		out += fmt.Sprintf("\n  %+v", n)
	}
	return out
}

// A snapshot taken earlier keeps its values while the model moves on.
func TestSnapshotIsStable(t *testing.T) {
	m := New(Options{})
	m.Apply(runner.Event{Event: runner.EventNodeStart, TS: at(0), Node: "a"})
	m.Apply(runner.Event{Event: runner.EventNodeEnd, TS: at(5), Node: "a"})
	before := m.Snapshot()
	for i := range 100 {
		m.Apply(runner.Event{Event: runner.EventNodeStart, TS: at(10), Node: "a"})
		m.Apply(runner.Event{Event: runner.EventNodeEnd, TS: at(11 + i), Node: "a"})
	}
	if got := before.Nodes[0].Durations; !reflect.DeepEqual(got, ms(5)) {
		t.Errorf("earlier snapshot's durations became %v", got)
	}
	if got := len(m.Snapshot().Nodes[0].Durations); got != 101 {
		t.Errorf("model has %d durations, want 101", got)
	}
}

func TestKeyString(t *testing.T) {
	for _, tt := range []struct {
		k    Key
		want string
	}{{key("fetch", -1), "fetch"}, {key("fetch", 3), "fetch[3]"}} {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.k, got, tt.want)
		}
	}
}
