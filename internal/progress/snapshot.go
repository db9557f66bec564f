package progress

import (
	"slices"
	"strings"
	"time"
)

// Snapshot is the model at one moment, for a renderer to draw. Its slices
// are its own or read-only views the model only appends past, so a
// snapshot stays valid while the model moves on.
type Snapshot struct {
	Run      string
	Workflow string
	// Start is the run's start (run_start, else the first event); End its
	// end (run_end), zero while it runs.
	Start, End time.Time
	Step       int      // the current step, 0 before the first
	StepNodes  []string // the current step's nodes
	Status     string   // run_end status: completed, failed, cancelled, interrupted; "" while running
	Error      string   // run_end error
	Nodes      []Node   // every node seen, in first-seen order
	Caps       []CapUse // shared caps seen in wait events, by name
}

// Node is one node's totals and its invocations in flight.
type Node struct {
	Name string
	Loop bool // a for_each node (its events carry an index)
	// Total is the number of items of its current for_each: from
	// step_start, else the highest index seen plus one; 0 for a node
	// without for_each.
	Total int
	// Started counts node_start events; Done, Failed (on_error: continue
	// included) and Cancelled the ends; Unstarted those cancelled before
	// their first attempt (not runs); Retries the retry events; Attempts
	// the attempts begun (attempt_start).
	Started, Done, Failed, Cancelled, Unstarted, Retries, Attempts int
	// StepStarted and StepEnded count the invocations of the node's
	// latest step (reset by step_start): progress of the current for_each.
	StepStarted, StepEnded int
	// Waited: some invocation waited for a cap (a wait event).
	Waited bool
	// Usage: some model call reported its tokens, summed in InputTokens
	// and OutputTokens.
	Usage                     bool
	InputTokens, OutputTokens int
	// ToolCalls counts tool_start events, ToolsFailed the tool_end
	// events with an error.
	ToolCalls, ToolsFailed int
	// Durations are the work times of the invocations that finished,
	// succeeded or failed; Cut those of the invocations a cancellation
	// stopped, kept apart because how long a run had worked when Ctrl-C
	// came says nothing of how long the node takes. Queued is the time
	// each of them (either kind) waited for its caps.
	Durations, Cut, Queued []time.Duration
	// Running are its invocations in flight, by item index.
	Running []Invocation
}

// Runs is how many invocations began an attempt, cancelled ones included.
func (n Node) Runs() int { return len(n.Durations) + len(n.Cut) }

// MaxQueued is the longest time an invocation of n waited for its caps.
func (n Node) MaxQueued() time.Duration {
	var d time.Duration
	for _, q := range n.Queued {
		d = max(d, q)
	}
	return d
}

// Invocation is an invocation in flight.
type Invocation struct {
	Key  Key
	Path string
	Step int
	// Start is its node_start; Acquired when its first attempt got its
	// caps (zero until then).
	Start, Acquired time.Time
	// Waiting is the cap it waits for ("global", "node", "pool web", …),
	// "" when it waits for none; WaitSince when the wait began.
	Waiting   string
	WaitSince time.Time
	// Holding: it holds its caps (acquired, or in an attempt), not while
	// it waits or backs off.
	Holding bool
	// Attempt is the attempt in progress, or after a retry the next one;
	// 0 before the first. MaxAttempts is what its retry policy allows,
	// 0 when unknown (Options.Attempts, or a fallback provider took over).
	Attempt, MaxAttempts int
	// AttemptStart is when the current attempt began; InAttempt says it
	// runs (between attempt_start and attempt_end).
	AttemptStart time.Time
	InAttempt    bool
	// Backoff: a retry event said the next attempt comes at RetryAt,
	// after a failure of kind RetryKind; it ends when that attempt starts
	// or waits for its caps.
	Backoff   bool
	RetryAt   time.Time
	RetryKind string
	// Tail is the last line of its streamed tokens.
	Tail string
	// Tools are its tool calls in flight, in the order they started.
	Tools []Tool
}

// Tool is a tool call in flight.
type Tool struct {
	Name  string // the tool the model called
	ID    string // the model's call id
	Path  string
	Start time.Time
}

// CapUse is a shared cap's invocations holding it and waiting for it.
type CapUse struct {
	Cap           string
	Busy, Waiting int
}

// Snapshot returns the model's current state.
func (m *Model) Snapshot() Snapshot {
	s := Snapshot{Run: m.run, Workflow: m.workflow, Start: m.start, End: m.end, Step: m.step,
		StepNodes: slices.Clip(m.stepNodes), Status: m.status, Error: m.errMsg}
	byNode := map[string][]Invocation{}
	for _, r := range m.running {
		iv := r.Invocation
		if len(iv.Tools) == 0 {
			iv.Tools = nil
		} else {
			iv.Tools = slices.Clone(iv.Tools)
		}
		if lim := m.attempts[iv.Key.Node]; lim > 0 && !r.fellBack && iv.Attempt <= lim {
			iv.MaxAttempts = lim
		}
		byNode[iv.Key.Node] = append(byNode[iv.Key.Node], iv)
	}
	s.Nodes = make([]Node, 0, len(m.order))
	for _, name := range m.order {
		n := m.nodes[name]
		v := n.Node
		if v.Loop {
			v.Total = n.maxIndex + 1
			if n.total > 0 {
				v.Total = n.total
			}
		}
		v.Durations, v.Cut, v.Queued = slices.Clip(v.Durations), slices.Clip(v.Cut), slices.Clip(v.Queued)
		v.Running = byNode[name]
		slices.SortFunc(v.Running, func(a, b Invocation) int { return a.Key.Index - b.Key.Index })
		s.Nodes = append(s.Nodes, v)
	}
	for c, users := range m.capUsers {
		u := CapUse{Cap: c}
		for _, r := range m.running {
			switch {
			case r.Waiting == c:
				u.Waiting++
			case r.Holding && r.Waiting == "" && (c == "global" || users[r.Key.Node]):
				u.Busy++
			}
		}
		s.Caps = append(s.Caps, u)
	}
	slices.SortFunc(s.Caps, func(a, b CapUse) int { return strings.Compare(a.Cap, b.Cap) })
	return s
}
