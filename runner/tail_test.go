package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// tailLine is an event as TestTail compares it.
func tailLine(e Event) string {
	line := e.Event
	if e.Path != "" {
		line += " " + e.Path
	}
	if e.Step > 0 && e.Path == "" {
		line += fmt.Sprintf(" %d", e.Step)
	}
	if len(e.Nodes) > 0 {
		line += " " + strings.Join(e.Nodes, ",")
	}
	if e.Items != nil {
		b, _ := json.Marshal(e.Items)
		line += " items " + string(b)
	}
	if e.Message != "" {
		line += " " + e.Message
	}
	if e.Token != "" {
		line += fmt.Sprintf(" %q", e.Token)
	}
	if e.Writes != nil {
		w, _ := json.Marshal(e.Writes)
		line += " writes " + string(w)
	}
	if e.Event == EventRetry {
		line += fmt.Sprintf(" attempt %d kind %s delay %d", e.Attempt, e.Kind, e.DelayMS)
	}
	for _, g := range e.GenAI {
		line += fmt.Sprintf(" tokens %d/%d", g.InputTokens, g.OutputTokens)
	}
	if e.State != nil {
		s, _ := json.Marshal(e.State)
		line += " state " + string(s)
	}
	if e.Run != "R" {
		line += " (run " + e.Run + ")"
	}
	return line
}

// Tail sends what the workers logged, as they logged it, with run_start
// and run_end of its own, and drops what the engine's repeated calls log
// twice: a step planned again, a step committed again, an invocation
// started again before it ended (its worker died). An invocation that
// ended (an interrupt) and runs again is reported again. A Tail started
// from LogEnd does not show what was logged before.
func TestTail(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	if err := st.CreateRun(ctx, &store.Run{ID: "R", Workflow: "w", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	worker := newLogSink(st, "R")
	log := func(evs ...Event) {
		t.Helper()
		for _, e := range evs {
			e.Run = "R"
			worker.Emit(e)
		}
		if err := worker.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tc := newTailCheck(t, st, LogMark{})
	poll := tc.poll
	zero, one, two := 0, 1, 2
	log(Event{Event: EventRunStart, Workflow: "w"}, // the client's own: not logged
		Event{Event: EventStepStart, Step: 1, Nodes: []string{"a", "w"}, Items: map[string]int{"a": 3}},
		Event{Event: EventNodeStart, Step: 1, Node: "a", Index: &zero, Path: "1/a[0]"},
		Event{Event: EventNodeStart, Step: 1, Node: "w", Path: "1/w"},
		Event{Event: EventRetry, Step: 1, Node: "w", Path: "1/w", Attempt: 1, Kind: "status", DelayMS: 250},
		Event{Event: EventToken, Step: 1, Node: "w", Path: "1/w", Token: "line\none"},
		Event{Event: EventToolStart, Step: 1, Node: "w", Path: "1/w/tool:c1", Tool: "t"},
		Event{Event: EventToolStart, Step: 1, Node: "w", Path: "1/w/tool:c1", Tool: "t"}, // planned again
		Event{Event: EventToolEnd, Step: 1, Node: "w", Path: "1/w/tool:c1", Tool: "t"},
		Event{Event: EventNodeEnd, Step: 1, Node: "w", Path: "1/w", Writes: map[string]any{"k": []any{1, "two"}},
			GenAI: []nodes.GenAIInfo{{InputTokens: 3, OutputTokens: 4}}})
	poll("run_start",
		`step_start 1 a,w items {"a":3}`,
		"node_start 1/a[0]",
		"node_start 1/w",
		"retry 1/w attempt 1 kind status delay 250",
		`token 1/w "line\none"`,
		"tool_start 1/w/tool:c1",
		"tool_end 1/w/tool:c1",
		`node_end 1/w writes {"k":[1,"two"]} tokens 3/4`)
	poll()
	// The worker running a[0] died; its retry starts it again. The step
	// is planned again (a continued dispatch) and committed twice.
	log(Event{Event: EventStepStart, Step: 1, Nodes: []string{"a", "w"}},
		Event{Event: EventNodeStart, Step: 1, Node: "a", Index: &zero, Path: "1/a[0]"},
		Event{Event: EventNodeEnd, Step: 1, Node: "a", Index: &zero, Path: "1/a[0]"},
		Event{Event: EventNodeEnd, Step: 1, Node: "a", Index: &one, Path: "1/a[1]"},
		Event{Event: EventNodeError, Step: 1, Node: "a", Index: &two, Path: "1/a[2]", Error: "boom"},
		Event{Event: EventStepEnd, Step: 1}, Event{Event: EventCheckpoint, Step: 1, Nodes: []string{"ask"}},
		Event{Event: EventStepEnd, Step: 1}, Event{Event: EventCheckpoint, Step: 1, Nodes: []string{"ask"}})
	poll("node_end 1/a[0]", "node_end 1/a[1]", "node_error 1/a[2]", "step_end 1", "checkpoint 1 ask")
	log(Event{Event: EventStepStart, Step: 2, Nodes: []string{"ask"}},
		Event{Event: EventNodeStart, Step: 2, Node: "ask", Path: "2/ask"},
		Event{Event: EventInterrupt, Step: 2, Node: "ask", Path: "2/ask", Message: "ok?"})
	poll("step_start 2 ask", "node_start 2/ask", "interrupt 2/ask ok?")

	// lgx resume follows the answered run from the log's end.
	end, err := LogEnd(ctx, st, "R")
	if err != nil || end != (LogMark{Seq: 3, Step: 1}) {
		t.Fatalf("LogEnd = %+v, %v; want batch 3, checkpoint 1", end, err)
	}
	tc = newTailCheck(t, st, end)
	poll = tc.poll
	log(Event{Event: EventStepStart, Step: 2, Nodes: []string{"ask"}},
		Event{Event: EventNodeStart, Step: 2, Node: "ask", Path: "2/ask"},
		Event{Event: EventNodeEnd, Step: 2, Node: "ask", Path: "2/ask"},
		Event{Event: EventStepEnd, Step: 2}, Event{Event: EventCheckpoint, Step: 2},
		Event{Event: EventRunEnd, Status: "completed"}) // the client's own: not logged
	poll("run_start 1", "step_start 2 ask", "node_start 2/ask", "node_end 2/ask", "step_end 2", "checkpoint 2")
	tc.end(`run_end 2 state {"out":1}`, map[string]any{"out": 1})
	if err := worker.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// tailCheck follows run R of a store with a Tail from a mark, keeping
// its events as tailLines.
type tailCheck struct {
	t    *testing.T
	tail *Tail
	got  []string
}

func newTailCheck(t *testing.T, st store.Store, from LogMark) *tailCheck {
	t.Helper()
	tc := &tailCheck{t: t}
	tail, err := NewTail(st, "R", "w", SinkFunc(func(e Event) { tc.got = append(tc.got, tailLine(e)) }))
	if err != nil {
		t.Fatal(err)
	}
	tail.From(from)
	tc.tail = tail
	return tc
}

// poll polls once and checks the events sent.
func (tc *tailCheck) poll(want ...string) {
	tc.t.Helper()
	tc.got = nil
	if err := tc.tail.Poll(context.Background()); err != nil {
		tc.t.Fatal(err)
	}
	if strings.Join(tc.got, "\n") != strings.Join(want, "\n") {
		tc.t.Errorf("events:\n%s\nwant:\n%s", strings.Join(tc.got, "\n"), strings.Join(want, "\n"))
	}
}

// end ends the run (completed, with output) and checks the events sent,
// joined by commas.
func (tc *tailCheck) end(want string, output map[string]any) {
	tc.t.Helper()
	tc.got = nil
	tc.tail.End(store.StatusCompleted, "", output, time.Now())
	if got := strings.Join(tc.got, ","); got != want {
		tc.t.Errorf("end: %s, want %s", got, want)
	}
}

// A Tail needs a store with an event log.
func TestTailNeedsEventLog(t *testing.T) {
	type bare struct{ store.Store }
	if _, err := NewTail(bare{store.NewMemory()}, "R", "w", Discard); !errors.Is(err, ErrNoEventLog) {
		t.Errorf("NewTail on a store without an event log: %v", err)
	}
}

// flakyLog fails its first n appends.
type flakyLog struct {
	store.EventLog
	mu   sync.Mutex
	fail int
}

func (f *flakyLog) AppendEvents(ctx context.Context, runID string, events [][]byte) error {
	f.mu.Lock()
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		return errors.New("database is locked")
	}
	f.mu.Unlock()
	return f.EventLog.AppendEvents(ctx, runID, events)
}

// A worker's events are written logFlushEvery after the first of a batch,
// together; a failed write keeps them for the next; Close writes the rest
// and leaves nothing running.
func TestLogSinkBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		mem := store.NewMemory()
		if err := mem.CreateRun(ctx, &store.Run{ID: "R", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		log := &flakyLog{EventLog: mem, fail: 1}
		batches := func() (n int, events []string) {
			t.Helper()
			bs, err := mem.Events(ctx, "R", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				for _, e := range b.Events {
					var le loggedEvent
					if err := json.Unmarshal(e, &le); err != nil {
						t.Fatal(err)
					}
					events = append(events, le.Token)
				}
			}
			return len(bs), events
		}
		s := newLogSink(log, "R")
		s.Emit(Event{Event: EventToken, Token: "a"})
		time.Sleep(logFlushEvery / 2)
		s.Emit(Event{Event: EventToken, Token: "b"})
		synctest.Wait()
		if n, _ := batches(); n != 0 {
			t.Fatalf("%d batches written before logFlushEvery", n)
		}
		time.Sleep(logFlushEvery / 2)
		synctest.Wait()
		if n, _ := batches(); n != 0 {
			t.Fatalf("the failed write wrote %d batches", n)
		}
		s.Emit(Event{Event: EventToken, Token: "c"})
		time.Sleep(logFlushEvery)
		synctest.Wait()
		if n, evs := batches(); n != 1 || strings.Join(evs, "") != "abc" {
			t.Fatalf("after a failed write and a retry: %d batches %q, want 1 \"abc\"", n, evs)
		}
		s.Emit(Event{Event: EventToken, Token: "d"})
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if n, evs := batches(); n != 2 || strings.Join(evs, "") != "abcd" {
			t.Fatalf("after Close: %d batches %q", n, evs)
		}
	})
}

// A worker writes its events up to logFlushEvery late, so a step's end
// can be logged before one of its invocations' end: Tail holds the step's
// end and what follows it, lets the step's late events through, and
// sends the step's end once every invocation of the step has ended, or
// after holdMax, or at End.
func TestTailHoldsStepEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := store.NewMemory()
		if err := st.CreateRun(ctx, &store.Run{ID: "R", Workflow: "w", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		log := func(evs ...Event) {
			t.Helper()
			var raw [][]byte
			for _, e := range evs {
				b, err := json.Marshal(loggedEvent{Event: e})
				if err != nil {
					t.Fatal(err)
				}
				raw = append(raw, b)
			}
			if err := st.AppendEvents(ctx, "R", raw); err != nil {
				t.Fatal(err)
			}
		}
		tc := newTailCheck(t, st, LogMark{})
		poll := tc.poll
		zero, one := 0, 1
		// Worker A logged item 0; the commit logged the step's end and
		// the next step's start before worker B's batch with item 1.
		log(Event{Event: EventStepStart, Step: 1, Nodes: []string{"a"}, Items: map[string]int{"a": 2}},
			Event{Event: EventNodeStart, Step: 1, Node: "a", Index: &zero, Path: "1/a[0]"},
			Event{Event: EventNodeEnd, Step: 1, Node: "a", Index: &zero, Path: "1/a[0]"})
		log(Event{Event: EventStepEnd, Step: 1}, Event{Event: EventCheckpoint, Step: 1, Nodes: []string{"b"}},
			Event{Event: EventStepStart, Step: 2, Nodes: []string{"b"}})
		poll("run_start", `step_start 1 a items {"a":2}`, "node_start 1/a[0]", "node_end 1/a[0]")
		log(Event{Event: EventNodeStart, Step: 1, Node: "a", Index: &one, Path: "1/a[1]"},
			Event{Event: EventNodeEnd, Step: 1, Node: "a", Index: &one, Path: "1/a[1]"},
			Event{Event: EventNodeStart, Step: 2, Node: "b", Path: "2/b"})
		poll("node_start 1/a[1]", "node_end 1/a[1]", "step_end 1", "checkpoint 1 b", "step_start 2 b", "node_start 2/b")

		// Step 2's end comes, its invocation's never does: held for
		// holdMax, then sent.
		log(Event{Event: EventStepEnd, Step: 2}, Event{Event: EventCheckpoint, Step: 2})
		poll()
		time.Sleep(holdMax + time.Millisecond)
		poll("step_end 2", "checkpoint 2")

		// A held end goes at End, before run_end.
		log(Event{Event: EventStepStart, Step: 3, Nodes: []string{"c"}}, Event{Event: EventStepEnd, Step: 3})
		poll("step_start 3 c")
		tc.end("step_end 3,run_end 3", nil)
	})
}

// Two workers advance a subgraph invocation's child: each logs its start,
// and one's batch can reach the log after the invocation's end (batches
// are written up to logFlushEvery late). A start logged after its
// invocation ended is stale and dropped; an interrupt's answer starts
// its invocation again.
func TestTailDropsStartAfterEnd(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	if err := st.CreateRun(ctx, &store.Run{ID: "R", Workflow: "w", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	log := func(evs ...Event) {
		t.Helper()
		w := newLogSink(st, "R")
		for _, e := range evs {
			w.Emit(e)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tc := newTailCheck(t, st, LogMark{})
	log(Event{Event: EventStepStart, Step: 1, Nodes: []string{"sub", "ask"}},
		Event{Event: EventNodeStart, Step: 1, Node: "sub", Path: "1/sub"},
		Event{Event: EventAttemptStart, Step: 1, Node: "sub", Path: "1/sub", Attempt: 1},
		Event{Event: EventNodeEnd, Step: 1, Node: "sub", Path: "1/sub"},
		Event{Event: EventNodeStart, Step: 1, Node: "ask", Path: "1/ask"},
		Event{Event: EventInterrupt, Step: 1, Node: "ask", Path: "1/ask", Message: "ok?"})
	log(Event{Event: EventNodeStart, Step: 1, Node: "sub", Path: "1/sub"}, // the other worker's, late
		Event{Event: EventAttemptStart, Step: 1, Node: "sub", Path: "1/sub", Attempt: 1},
		Event{Event: EventNodeStart, Step: 1, Node: "ask", Path: "1/ask"}) // answered: runs again
	tc.poll("run_start", "step_start 1 sub,ask", "node_start 1/sub", "attempt_start 1/sub", "node_end 1/sub",
		"node_start 1/ask", "interrupt 1/ask ok?", "node_start 1/ask")
}
