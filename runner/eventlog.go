package runner

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// A run executed step by step by other processes (an engine's workers)
// reports its events through the store's event log (store.EventLog): each
// StepRun sends what its invocations, plans and commits emit to a logSink,
// and the client that follows the run reads the log back (Tail). The
// events are those a local run sends, redacted as they are, so the client
// shows the same live view and `--stream events`; run_start and run_end
// are the client's own.

// logFlushEvery is how long an event waits in a worker before its batch
// is written: short enough for a live view of streamed tokens, long
// enough that a token stream or a large for_each costs a write per batch,
// not per event. Every StepRun call also writes what it buffered before
// it returns, so a step's events are in the log before its checkpoint.
const logFlushEvery = 100 * time.Millisecond

// loggedEvent is an Event as the log keeps it: with the model calls'
// reports, which the event stream leaves out (the client's summary and
// traces read them).
type loggedEvent struct {
	Event
	GenAI []nodes.GenAIInfo `json:"genai,omitempty"`
}

// logSink buffers a StepRun's events and appends them to the log in
// batches.
type logSink struct {
	log   store.EventLog
	runID string

	mu      sync.Mutex
	buf     [][]byte
	timer   *time.Timer // the pending background flush, nil when none
	closed  bool
	pending sync.WaitGroup // background flushes scheduled or running

	writeMu sync.Mutex // one write at a time: batches keep emit order
}

func newLogSink(log store.EventLog, runID string) *logSink {
	return &logSink{log: log, runID: runID}
}

// Emit buffers e; a flush is scheduled logFlushEvery from the first
// event buffered.
func (s *logSink) Emit(e Event) {
	if e.Event == EventRunStart || e.Event == EventRunEnd {
		return // the client reports the run's start and end
	}
	data, err := json.Marshal(loggedEvent{Event: e, GenAI: e.GenAI})
	if err != nil {
		return // an event is never worth failing an invocation for
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, data)
	s.schedule()
}

// emitRaw buffers data, a line of the log that is not an Event (see
// loggedInteraction).
func (s *logSink) emitRaw(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, data)
	s.schedule()
}

// schedule arms the background flush; s.mu is held.
func (s *logSink) schedule() {
	if s.timer == nil && !s.closed {
		s.pending.Add(1)
		s.timer = time.AfterFunc(logFlushEvery, func() {
			defer s.pending.Done()
			_ = s.Flush(context.Background()) // the view's loss; the next flush tries again
		})
	}
}

// Flush writes what is buffered as one batch. A failed write keeps the
// events for the next flush.
func (s *logSink) Flush(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	batch := s.buf
	s.buf = nil
	if s.timer != nil && s.timer.Stop() {
		s.pending.Done() // it will not run
	}
	s.timer = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := s.log.AppendEvents(ctx, s.runID, batch); err != nil {
		s.mu.Lock()
		s.buf = append(batch, s.buf...)
		s.mu.Unlock()
		return err
	}
	return nil
}

// Close writes what is left and waits for background flushes to end.
func (s *logSink) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	err := s.Flush(ctx)
	s.pending.Wait()
	return err
}

// stepStarted logs the step_start of a planned step, as a local run sends
// it (the nodes, and the item count of each for_each).
func (s *StepRun) stepStarted(p *StepPlan) {
	if s.events == nil {
		return
	}
	ev := Event{Event: EventStepStart, Step: p.Step}
	for _, n := range p.Nodes {
		ev.Nodes = append(ev.Nodes, n.Name)
		if n.Items >= 0 {
			if ev.Items == nil {
				ev.Items = map[string]int{}
			}
			ev.Items[n.Name] = n.Items
		}
	}
	s.r.emit(ev)
}

// stepEnded logs the step_end and checkpoint of a committed step, or the
// checkpoint alone of step 0 (the run's start).
func (s *StepRun) stepEnded(step int, next []string) {
	if s.events == nil {
		return
	}
	now := time.Now()
	if step > 0 {
		s.r.emit(Event{Event: EventStepEnd, Step: step, TS: now})
	}
	s.r.emit(Event{Event: EventCheckpoint, Step: step, Nodes: next, TS: now})
}

// FlushEvents writes the events the run's calls logged and have not
// written yet: an engine calls it before it reports a call done, so that
// a step's events are in the log before its checkpoint, and a client's
// view never lags a call's result.
func (s *StepRun) FlushEvents(ctx context.Context) error {
	if s.events == nil {
		return nil
	}
	return s.events.Flush(ctx)
}

func (s *StepRun) closeEvents() {
	if s.events != nil {
		_ = s.events.Close(context.Background()) // the view's loss, not the run's
	}
}

// callsFirst reports whether c is a tools or subgraph invocation whose
// calls or child invocations an engine ran before it, as invocations of
// their own (steptools.go, stepchild.go): its attempt began when the first
// of those did, as it does locally, where they run inside the attempt.
func (c *call) callsFirst() bool {
	if c.r.stepCalls == nil {
		return false
	}
	caps := nodes.CapabilitiesOf(c.n.typ)
	return caps.CallsField != "" || caps.ChildField != ""
}

// callsBegin logs the node_start and attempt_start of the tools
// invocation c as its calls are planned, before they run: the calls'
// tool events come inside the invocation, as locally. The invocation
// logs them again when it runs after its calls; Tail drops those.
func (s *StepRun) callsBegin(c *call) {
	if s.events == nil {
		return
	}
	now := time.Now()
	ev := Event{Event: EventNodeStart, Node: c.n.name, Path: c.path, Step: c.step, TS: now}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	s.r.emit(ev)
	ev.Event, ev.Attempt = EventAttemptStart, 1
	s.r.emit(ev)
}

// emit sends e, or keeps it for the childMode of the subgraph invocation
// c runs step by step (see inChildMode).
func (c *call) emit(e Event) {
	if cm := c.quiet; cm != nil {
		cm.mu.Lock()
		cm.events = append(cm.events, e)
		cm.mu.Unlock()
		return
	}
	c.r.emit(e)
}

// sendEvents sends the events the subgraph invocation kept in this call:
// all of them when the call ended it (ended), else only its start
// (node_start and its first attempt_start), which a client shows until a
// later call ends it (Tail drops the repeats). A call that only ran one
// of its child's invocations or formed the child's next step stopped the
// invocation, and its end then is not the invocation's.
func (cm *childMode) sendEvents(r *run, ended bool) {
	cm.mu.Lock()
	evs := cm.events
	cm.events = nil
	cm.mu.Unlock()
	for _, e := range evs {
		if ended || e.Event == EventNodeStart || e.Event == EventAttemptStart && e.Attempt == 1 {
			r.emit(e)
		}
	}
}

// waited is an Invocation's Waited and Since, carried in the context of
// its top-level call (of run r; not its child's or its tool calls').
type waited struct {
	r     *run
	what  []string
	since time.Time
}

type waitedKey struct{}

// waitedContext is ctx carrying what held in back (Invocation.Waited) for
// r's invocation, if anything did.
func (in Invocation) waitedContext(ctx context.Context, r *run) context.Context {
	if len(in.Waited) == 0 || in.Since.IsZero() || r.sink == nil && r.rec == nil {
		return ctx
	}
	return context.WithValue(ctx, waitedKey{}, &waited{r: r, what: in.Waited, since: in.Since})
}

// waitedOf is what held back r's invocation running in ctx, or nil.
func waitedOf(ctx context.Context, r *run) *waited {
	w, _ := ctx.Value(waitedKey{}).(*waited)
	if w == nil || w.r != r {
		return nil
	}
	return w
}
