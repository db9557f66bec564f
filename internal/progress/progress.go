// Package progress folds a run's events into what a progress view shows:
// the step, each node's invocations in flight (waiting for a cap, in an
// attempt, backing off before the next, calling tools, streaming tokens)
// and each node's totals for the end-of-run summary.
//
// A Model is a pure fold: Apply reads nothing but the event (its time is
// the event's TS), starts no goroutine and does no I/O, so the same events
// always give the same Snapshot. It relies on the runner's paired events
// (wait/acquired, attempt_start/attempt_end, tool_start/tool_end,
// node_start/node_end|node_error, step_start/step_end) rather than guessing
// what the scheduler did. Events in an unexpected order, or of a kind it
// does not know, leave a consistent state: they never panic.
//
// A Model is not safe for concurrent use; a view holds it under its lock.
package progress

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lgx-run/lgx/runner"
)

// Options configures a Model with what the events do not carry.
type Options struct {
	// Attempts maps a node to the attempts its retry policy allows, so
	// that a retry reads "attempt 2/3". A node not in it, or an
	// invocation that went to a fallback provider (whose attempts are
	// counted on), shows the attempt without a total.
	Attempts map[string]int
}

// Key names one invocation: a node, or one for_each item of it.
type Key struct {
	Node  string
	Index int // -1 = not a for_each item
}

// KeyOf is the invocation an event is about.
func KeyOf(e runner.Event) Key {
	k := Key{Node: e.Node, Index: -1}
	if e.Index != nil {
		k.Index = *e.Index
	}
	return k
}

// String is the invocation as a user reads it: "fetch" or "fetch[3]".
func (k Key) String() string {
	if k.Index < 0 {
		return k.Node
	}
	return k.Node + "[" + strconv.Itoa(k.Index) + "]"
}

// Ended describes the invocation a node_end or node_error ended.
type Ended struct {
	// Work is its work time: from its caps acquired (else from its
	// start, else the event's duration_ms) to its end.
	Work time.Duration
	// Queued is how long it waited for caps; 0 when it waited for none
	// (no wait event), since then the time is not worth a mention.
	Queued time.Duration
}

// Model is a run's progress, built from its events by Apply.
type Model struct {
	attempts  map[string]int
	run       string
	workflow  string
	start     time.Time
	end       time.Time
	step      int
	stepNodes []string
	status    string // run_end status, "" while running
	errMsg    string
	running   map[Key]*inv
	nodes     map[string]*node
	order     []string // nodes in first-seen order
	// capUsers maps a shared cap seen in wait events ("pool web",
	// "rate llm", "global") to the nodes known to take it.
	capUsers map[string]map[string]bool
}

// New returns an empty model.
func New(opts Options) *Model {
	return &Model{attempts: opts.Attempts, running: map[Key]*inv{}, nodes: map[string]*node{},
		capUsers: map[string]map[string]bool{}}
}

// inv is an invocation in flight.
type inv struct {
	Invocation
	waited   bool // a wait event came before it got its caps
	began    bool // some attempt started (attempt_start or acquired)
	fellBack bool
}

// node aggregates one node's invocations.
type node struct {
	Node
	maxIndex int // highest item index seen, -1 = none
	total    int // items of the current for_each from step_start, 0 = unknown
}

func (m *Model) node(name string) *node {
	n, ok := m.nodes[name]
	if !ok {
		n = &node{Node: Node{Name: name}, maxIndex: -1}
		m.nodes[name] = n
		m.order = append(m.order, name)
	}
	return n
}

// inv returns the invocation's state, creating it when an event arrives
// for an invocation whose start was not seen.
func (m *Model) inv(k Key, e runner.Event) *inv {
	s, ok := m.running[k]
	if !ok {
		s = &inv{Invocation: Invocation{Key: k, Path: e.Path, Step: e.Step, Start: e.TS}}
		m.running[k] = s
	}
	return s
}

// Apply folds one event into the model. For node_end and node_error it
// returns the invocation's work and queue times; the zero Ended otherwise.
func (m *Model) Apply(e runner.Event) Ended {
	ts := e.TS
	if m.run == "" {
		m.run = e.Run
	}
	if m.start.IsZero() {
		m.start = ts
	}
	var n *node
	if e.Node != "" {
		n = m.node(e.Node)
		if e.Index != nil {
			n.Loop = true
			n.maxIndex = max(n.maxIndex, *e.Index)
		}
	}
	for name, total := range e.Items {
		if total >= 0 { // a negative count is no count
			m.node(name).total = total
		}
	}
	k := KeyOf(e)
	switch e.Event {
	case runner.EventRunStart:
		m.workflow = e.Workflow
		m.start = ts
	case runner.EventStepStart:
		m.step = e.Step
		m.stepNodes = slices.Clone(e.Nodes)
		for _, name := range e.Nodes {
			sn := m.node(name) // file order, not finishing order
			sn.StepStarted, sn.StepEnded = 0, 0
		}
	case runner.EventRunEnd:
		m.status, m.errMsg, m.end = e.Status, e.Error, ts
		clear(m.running) // nothing runs after the end (an interrupt pauses its node)
	case runner.EventStepEnd:
		// Past the barrier nothing of the step runs: drop what lost its
		// end event rather than show it running for ever.
		if e.Step > 0 {
			for k, s := range m.running {
				if s.Step == e.Step {
					delete(m.running, k)
				}
			}
		}
	}
	if n == nil {
		return Ended{}
	}
	switch e.Event {
	case runner.EventNodeStart:
		n.Started++
		n.StepStarted++
		s := m.inv(k, e)
		// A start resets what an earlier, unended invocation of the
		// same key left (a node revisited in a loop).
		s.Invocation = Invocation{Key: k, Path: e.Path, Step: e.Step, Start: ts}
		s.waited, s.began, s.fellBack = false, false, false
	case runner.EventWait:
		s := m.inv(k, e)
		s.Waiting, s.WaitSince, s.waited, s.Holding = e.Waiting, ts, true, false
		if e.Waiting != "node" && e.Waiting != "" {
			if m.capUsers[e.Waiting] == nil {
				m.capUsers[e.Waiting] = map[string]bool{}
			}
			m.capUsers[e.Waiting][e.Node] = true
		}
	case runner.EventAcquired:
		s := m.inv(k, e)
		s.Waiting, s.Holding, s.began = "", true, true
		if s.Acquired.IsZero() {
			s.Acquired = ts
		}
	case runner.EventAttemptStart:
		s := m.inv(k, e)
		s.Waiting, s.Holding, s.Backoff, s.InAttempt, s.began = "", true, false, true, true
		if e.Attempt > 0 {
			s.Attempt = e.Attempt
		} else {
			s.Attempt++
		}
		s.AttemptStart = ts
		if s.Acquired.IsZero() {
			s.Acquired = ts // a node that holds no slot gets no acquired event
		}
		n.Attempts++
	case runner.EventAttemptEnd:
		s := m.inv(k, e)
		s.InAttempt = false
		if e.Error != "" {
			// A failed attempt gives its caps back before the back-off
			// (the last one keeps them until the end event, a moment).
			s.Holding = false
		}
	case runner.EventRetry:
		n.Retries++
		s := m.inv(k, e)
		s.Waiting, s.Holding, s.InAttempt = "", false, false
		s.Backoff = true
		s.Attempt = e.Attempt + 1 // the event names the attempt that failed
		s.RetryKind = e.Kind
		s.RetryAt = ts.Add(time.Duration(e.DelayMS) * time.Millisecond)
	case runner.EventFallback:
		m.inv(k, e).fellBack = true
	case runner.EventToken:
		s := m.inv(k, e)
		s.Waiting = ""
		s.Tail = lastLine(s.Tail + e.Token)
	case runner.EventToolStart:
		n.ToolCalls++
		s := m.inv(k, e)
		s.Tools = append(s.Tools, Tool{Name: e.Tool, ID: e.ToolCallID, Path: e.Path, Start: ts})
	case runner.EventToolEnd:
		n.addUsage(e)
		if e.Error != "" {
			n.ToolsFailed++
		}
		if s, ok := m.running[k]; ok {
			s.Tools = slices.DeleteFunc(s.Tools, func(t Tool) bool { return t.Path == e.Path && t.ID == e.ToolCallID })
		}
	case runner.EventNodeEnd, runner.EventNodeError:
		return m.ended(n, k, e)
	case runner.EventInterrupt:
		delete(m.running, k) // paused until resumed
	}
	return Ended{}
}

// ended folds an invocation's end into its node's totals.
func (m *Model) ended(n *node, k Key, e runner.Event) Ended {
	ts := e.TS
	n.StepEnded++
	n.addUsage(e)
	d := time.Duration(e.DurationMS) * time.Millisecond
	var queued time.Duration
	began, waited := false, false
	if s, ok := m.running[k]; ok {
		waited = s.waited
		began = s.began
		if d == 0 || ts.Sub(s.Start) > 0 {
			d = ts.Sub(s.Start)
		}
		if !s.Acquired.IsZero() {
			queued = s.Acquired.Sub(s.Start)
			d = ts.Sub(s.Acquired)
		}
		delete(m.running, k)
	}
	if e.Kind == "cancelled" {
		n.Cancelled++
		if e.Attempt == 0 && !began {
			// Cancelled before its first attempt: it never ran.
			n.Unstarted++
			return Ended{Work: d, Queued: queued}
		}
	} else if e.Event == runner.EventNodeError || e.Error != "" {
		n.Failed++
	} else {
		n.Done++
	}
	if e.Kind == "cancelled" {
		n.Cut = append(n.Cut, d)
	} else {
		n.Durations = append(n.Durations, d)
	}
	n.Queued = append(n.Queued, queued)
	n.Waited = n.Waited || waited
	if !waited {
		queued = 0 // not worth a mention: it waited for no cap
	}
	return Ended{Work: d, Queued: queued}
}

// addUsage adds the model usage an event reports (node_end and
// node_error of an llm_call, tool_end of an llm_call tool).
func (n *node) addUsage(e runner.Event) {
	for _, g := range e.GenAI { // every model call, retries included
		if g.InputTokens == 0 && g.OutputTokens == 0 {
			continue
		}
		n.Usage = true
		n.InputTokens += g.InputTokens
		n.OutputTokens += g.OutputTokens
	}
}

// lastLine keeps the last line of streamed text, bounded in size.
func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 512 {
		s = s[len(s)-512:]
	}
	return s
}
