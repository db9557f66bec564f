package progress

import (
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
)

// fuzzEvents are the event names a fuzzed sequence draws from: every one
// the runner emits, and names it does not.
var fuzzEvents = []string{
	runner.EventRunStart, runner.EventStepStart, runner.EventNodeStart, runner.EventNodeEnd,
	runner.EventNodeError, runner.EventRetry, runner.EventFallback, runner.EventToken,
	runner.EventWait, runner.EventAcquired, runner.EventBudget, runner.EventStepEnd,
	runner.EventCheckpoint, runner.EventInterrupt, runner.EventRunEnd, runner.EventToolStart,
	runner.EventToolEnd, runner.EventAttemptStart, runner.EventAttemptEnd, "", "future_event",
}

var fuzzWaits = []string{"", "global", "node", "pool web", "rate llm", "pool web key a"}

var fuzzKinds = []string{"", "cancelled", "timeout", "status"}

// decodeEvents turns bytes into events, 6 bytes an event: name, node,
// index (or none, or negative), attempt, time step (forwards or
// backwards) and a byte of flags for the optional fields.
func decodeEvents(data []byte) []runner.Event {
	var evs []runner.Event
	ts := t0
	for len(data) >= 6 {
		b := data[:6]
		data = data[6:]
		e := runner.Event{Event: fuzzEvents[int(b[0])%len(fuzzEvents)], Run: "R"}
		e.Node = []string{"", "a", "b", "c"}[b[1]%4]
		switch i := int(int8(b[2])); {
		case i%3 == 0:
		default:
			e.Index = &i
		}
		e.Attempt = int(int8(b[3]))
		ts = ts.Add(time.Duration(int8(b[4])) * time.Millisecond)
		if b[5]&1 == 0 {
			e.TS = ts
		}
		f := b[5] >> 1
		e.Step = int(f % 4)
		e.Waiting = fuzzWaits[int(f)%len(fuzzWaits)]
		e.Kind = fuzzKinds[int(f>>2)%len(fuzzKinds)]
		if f&8 != 0 {
			e.Error = "boom"
		}
		if f&16 != 0 {
			e.Items = map[string]int{e.Node: e.Attempt}
			e.Nodes = []string{"a", e.Node}
		}
		if f&32 != 0 {
			e.GenAI = []nodes.GenAIInfo{{InputTokens: e.Attempt, OutputTokens: 1}}
			e.Token = "x\ny"
			e.Tool, e.ToolCallID, e.Path = "t", string(rune('0'+b[3]%3)), "p"
		}
		e.DelayMS = int64(int8(b[3])) * 100
		e.DurationMS = int64(int8(b[4]))
		evs = append(evs, e)
	}
	return evs
}

// FuzzApply feeds arbitrary event sequences to the fold: it must never
// panic, and its counts must stay consistent.
func FuzzApply(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 1, 3, 0, 1, 0, 9, 1, 3, 0, 1, 0, 17, 1, 3, 1, 1, 0, 18, 1, 3, 1, 100, 16, 5, 1, 3, 1, 0, 0})
	f.Add([]byte{8, 2, 1, 0, 0, 2, 2, 2, 1, 0, 0, 0, 4, 2, 1, 0, 1, 18, 3, 2, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0})
	f.Add([]byte{15, 3, 0, 0, 0, 64, 16, 3, 0, 1, 0, 64, 2, 3, 0, 1, 0, 0, 4, 3, 0, 0, 200, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := New(Options{Attempts: map[string]int{"a": 3, "b": 1}})
		for _, e := range decodeEvents(data) {
			end := m.Apply(e)
			_ = end
			s := m.Snapshot()
			for _, n := range s.Nodes {
				if n.Runs() != n.Done+n.Failed+n.Cancelled-n.Unstarted {
					t.Fatalf("node %s: %d runs, but done %d + failed %d + cancelled %d - unstarted %d",
						n.Name, n.Runs(), n.Done, n.Failed, n.Cancelled, n.Unstarted)
				}
				if n.Total < 0 || n.StepStarted < 0 || n.StepEnded < 0 {
					t.Fatalf("node %s: negative count %+v", n.Name, n)
				}
				for _, r := range n.Running {
					if r.Key.Node != n.Name {
						t.Fatalf("invocation %v listed under %s", r.Key, n.Name)
					}
					if r.MaxAttempts > 0 && r.Attempt > r.MaxAttempts {
						t.Fatalf("invocation %v: attempt %d/%d", r.Key, r.Attempt, r.MaxAttempts)
					}
				}
			}
			for _, c := range s.Caps {
				if c.Busy < 0 || c.Waiting < 0 {
					t.Fatalf("cap %+v", c)
				}
			}
		}
	})
}
