package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lgx-run/lgx/store"
)

// Tail follows, from the store's event log (eventlog.go), a run that other
// processes execute (an engine's workers), and sends its events as a local
// run sends them, so that a client shows the same live view and `--stream
// events`. The workers log what their invocations, plans and commits emit;
// Tail adds run_start and run_end, and drops what the engine's repeated
// calls log twice: the step_start of a step planned again (a continued or
// resumed dispatch), the end of a step committed again, and the node_start
// and attempt_start of an invocation already started (an activity retried
// after its worker died, a tools invocation that runs after its calls)
// until that invocation ends.
type Tail struct {
	log      store.EventLog
	runID    string
	workflow string
	sink     Sink
	seq      int64 // the last batch read
	from     int   // the step run_start names (a resumed run's last checkpoint)
	started  bool
	step     int             // the last step whose step_start was sent
	ended    int             // the last step whose step_end was sent
	cp       int             // the last step whose checkpoint was sent (-1: none; 0 is the run's start)
	open     map[string]bool // invocations and tool calls started and not ended, by path
	// attempted is the last attempt started of each open invocation.
	attempted map[string]int
	// finished are the invocations and tool calls that ended (not at an
	// interrupt): a start of theirs logged later by another worker is
	// dropped.
	finished map[string]bool

	// A worker writes its events up to logFlushEvery after they happen,
	// so a step's checkpoint can be logged before the end of one of its
	// invocations. The step_end of a step whose invocations have not all
	// logged their end is held, with what follows it, while that step's
	// late events pass, until they are all in or holdMax has passed.
	expect   map[int]int             // invocations of each started step
	ends     map[int]map[string]bool // the paths of each step's ended invocations
	held     []Event                 // held[0] is the held step_end
	heldAt   time.Time
	holdStep int
}

// holdMax bounds how long Tail holds a step's end for its late events.
const holdMax = 3 * logFlushEvery

// ErrNoEventLog is returned by NewTail for a store that keeps no event
// log.
var ErrNoEventLog = errors.New("the store keeps no event log")

// NewTail returns a Tail of run runID in st sending to sink.
func NewTail(st store.Store, runID, workflow string, sink Sink) (*Tail, error) {
	log, ok := st.(store.EventLog)
	if !ok {
		return nil, ErrNoEventLog
	}
	return &Tail{log: log, runID: runID, workflow: workflow, sink: sink, cp: -1, open: map[string]bool{}, attempted: map[string]int{}, finished: map[string]bool{},
		expect: map[int]int{}, ends: map[int]map[string]bool{}}, nil
}

// LogMark is a place in a run's event log: the last batch logged, and
// the step of the last checkpoint logged up to it.
type LogMark struct {
	Seq  int64
	Step int
}

// LogEnd is the end of run runID's event log: a Tail started from it
// (From) shows only what is logged after, e.g. a resumed run without its
// earlier steps.
func LogEnd(ctx context.Context, st store.Store, runID string) (LogMark, error) {
	log, ok := st.(store.EventLog)
	if !ok {
		return LogMark{}, ErrNoEventLog
	}
	var m LogMark
	for {
		bs, err := log.Events(ctx, runID, m.Seq)
		if err != nil {
			return LogMark{}, fmt.Errorf("store: %w", err)
		}
		if len(bs) == 0 {
			return m, nil
		}
		for _, b := range bs {
			for _, raw := range b.Events {
				if !bytes.Contains(raw, checkpointMark) {
					continue
				}
				var e Event
				if json.Unmarshal(raw, &e) == nil && e.Event == EventCheckpoint {
					m.Step = max(m.Step, e.Step)
				}
			}
			m.Seq = b.Seq
		}
	}
}

var checkpointMark = []byte(`"event":"checkpoint"`)

// From makes the Tail read the log after m (see LogEnd): its run_start
// carries m's step, as a resumed local run's does.
func (t *Tail) From(m LogMark) { t.seq, t.from = m.Seq, m.Step }

// Poll sends the events logged since the last Poll.
func (t *Tail) Poll(ctx context.Context) error {
	if !t.started {
		t.started = true
		t.emit(Event{Event: EventRunStart, Step: t.from, Workflow: t.workflow, TS: time.Now()})
	}
	for {
		bs, err := t.log.Events(ctx, t.runID, t.seq)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		for _, b := range bs {
			for _, raw := range b.Events {
				var le loggedEvent
				if err := json.Unmarshal(raw, &le); err != nil {
					continue // not an event this lgx knows: the view goes on
				}
				if le.Event.Event == eventHTTPInteraction {
					continue // a recorded request (steprecord.go): for the cassette, not the view
				}
				le.Event.GenAI = le.GenAI
				t.relay(le.Event)
			}
			t.seq = b.Seq
		}
		if len(bs) < store.EventBatchLimit {
			break
		}
	}
	if len(t.held) > 0 && time.Since(t.heldAt) > holdMax {
		t.release()
	}
	return nil
}

// Settle polls until no step end is held, for at most holdMax: what the
// workers logged last is in before the run's end is reported.
func (t *Tail) Settle(ctx context.Context) {
	for deadline := time.Now().Add(holdMax); len(t.held) > 0 && time.Now().Before(deadline); {
		time.Sleep(logFlushEvery / 5)
		_ = t.Poll(ctx) // a busy store: End sends what is held
	}
}

// relay sends e unless the engine's repeated calls logged it before.
func (t *Tail) relay(e Event) {
	if len(t.held) > 0 && (e.Step != t.holdStep || e.Event == EventStepEnd || e.Event == EventCheckpoint) {
		t.held = append(t.held, e)
		return
	}
	switch e.Event {
	case EventStepStart:
		if e.Step <= t.step {
			return
		}
		t.step = e.Step
		n := 0
		for _, node := range e.Nodes {
			if items, ok := e.Items[node]; ok {
				n += items
			} else {
				n++
			}
		}
		t.expect[e.Step] = n
	case EventStepEnd:
		if e.Step <= t.ended {
			return
		}
		t.ended = e.Step
		if !t.complete(e.Step) {
			t.held, t.heldAt, t.holdStep = []Event{e}, time.Now(), e.Step
			return
		}
	case EventCheckpoint:
		if e.Step <= t.cp {
			return
		}
		t.cp = e.Step
	case EventNodeStart:
		// A start logged late, by another worker's call that only
		// advanced the invocation (a subgraph's child step), after the
		// invocation ended: stale.
		if t.open[e.Path] || t.finished[e.Path] {
			return
		}
		t.open[e.Path] = true
	case EventToolStart:
		if t.open[e.Path] || t.finished[e.Path] { // a call planned again
			return
		}
		t.open[e.Path] = true
	case EventToolEnd:
		delete(t.open, e.Path)
		t.finished[e.Path] = true
	case EventAttemptStart:
		if e.Attempt <= t.attempted[e.Path] || t.finished[e.Path] {
			return
		}
		t.attempted[e.Path] = e.Attempt
	case EventNodeEnd, EventNodeError, EventInterrupt:
		delete(t.open, e.Path)
		delete(t.attempted, e.Path)
		if e.Event != EventInterrupt { // an answered interrupt runs again
			t.finished[e.Path] = true
		}
		if t.ends[e.Step] == nil {
			t.ends[e.Step] = map[string]bool{}
		}
		t.ends[e.Step][e.Path] = true
	}
	t.emit(e)
	if len(t.held) > 0 && t.complete(t.holdStep) {
		t.release()
	}
}

// complete reports whether every invocation of step has logged its end
// (a step this Tail saw no start of is taken as complete).
func (t *Tail) complete(step int) bool {
	n, ok := t.expect[step]
	return !ok || len(t.ends[step]) >= n
}

// release sends the held step end and relays what was held after it.
func (t *Tail) release() {
	held := t.held
	t.held = nil
	t.emit(held[0])
	for _, e := range held[1:] {
		t.relay(e)
	}
}

// End sends run_end with the run's status, its error (redacted, as
// recorded) and its output.
func (t *Tail) End(status store.Status, errMsg string, output map[string]any, at time.Time) {
	for len(t.held) > 0 {
		t.release()
	}
	t.emit(Event{Event: EventRunEnd, Step: t.step, Status: string(status), Error: errMsg, State: output, TS: at})
}

func (t *Tail) emit(e Event) {
	e.Run = t.runID
	t.sink.Emit(e)
}

// Follow polls every `every` until ctx ends; the caller polls once more
// after, for what was logged last.
func (t *Tail) Follow(ctx context.Context, every time.Duration) {
	PollEvery(ctx, every, func(ctx context.Context) {
		_ = t.Poll(ctx) // a busy store: the next poll catches up
	})
}

// PollEvery calls poll (with ctx's values but not its cancellation, so a
// poll is never cut short) every `every` until ctx ends, or less often
// when polls are slow: after a poll that took d it waits at least
// pollShare × d, so that following a run costs at most about a tenth of
// a core however busy the store.
func PollEvery(ctx context.Context, every time.Duration, poll func(context.Context)) {
	for {
		began := time.Now()
		poll(context.WithoutCancel(ctx))
		wait := max(every, pollShare*time.Since(began))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// pollShare is how many times a poll's own duration PollEvery waits
// before the next one, at least.
const pollShare = 9
