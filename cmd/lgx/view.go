package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lgx-run/lgx/runner"
)

// runView is a run's progress view on stderr: it consumes the event stream
// and must be closed (which draws its final state and summary) before the
// results are printed. Emit is safe for concurrent use; a view never writes
// to stdout.
type runView interface {
	runner.Sink
	Close()
}

// redrawInterval is how often the live view redraws (10 times a second).
const redrawInterval = 100 * time.Millisecond

// progressView picks the view for this process: live on an interactive
// terminal, plain timestamped lines everywhere else (CI, pipes, TERM=dumb),
// unless --progress live or plain says otherwise. Under GitHub Actions it
// first masks the workflow's secrets, groups the plain lines by step, and
// appends a job summary to $GITHUB_STEP_SUMMARY when the run ends.
func (a *app) progressView() runView {
	a.maskSecrets(a.ios.Err, a.wf)
	live := a.ios.ErrTTY
	switch a.progress {
	case "live":
		live = true
	case "plain":
		live = false
	}
	var v runView
	if live {
		v = newLiveView(a.ios.Err, a.ios.Width, a.ios.Color, time.Now, redrawInterval)
	} else {
		pv := newPlainView(a.ios.Err, time.Now)
		pv.groups = a.inActions()
		v = pv
	}
	if path := a.ios.env("GITHUB_STEP_SUMMARY"); path != "" && a.inActions() {
		v = newSummaryView(v, path, a.ios.Err, time.Now)
	}
	return v
}

// invKey names one invocation: a node, or one for_each item of it.
type invKey struct {
	node  string
	index int // -1 = not a for_each item
}

func keyOf(e runner.Event) invKey {
	k := invKey{node: e.Node, index: -1}
	if e.Index != nil {
		k.index = *e.Index
	}
	return k
}

func (k invKey) String() string {
	if k.index < 0 {
		return k.node
	}
	return k.node + "[" + strconv.Itoa(k.index) + "]"
}

// invState is an invocation in flight.
type invState struct {
	key   invKey
	start time.Time
	// acquired is when its first attempt got its caps (the acquired
	// event); zero until then, and for invocations that hold no slot.
	acquired time.Time
	waited   bool      // a wait event came before it got its caps
	waiting  string    // the cap it waits for, "" = none
	since    time.Time // when the wait began
	attempt  int       // the next attempt after a retry event, 0 = first
	retryAt  time.Time // when that attempt starts
	kind     string    // kind of the failure being retried
	tail     string    // last line of streamed tokens
}

// nodeStats aggregates one node's invocations for the view and summary.
type nodeStats struct {
	name      string
	loop      bool // a for_each node (its events carry an index)
	maxIndex  int  // highest item index seen, -1 = none
	total     int  // items of the current for_each (from step_start), 0 = unknown
	started   int
	done      int
	failed    int
	cancelled int // stopped because the run was cancelled or a sibling failed
	unstarted int // of those, cancelled before their first attempt: not runs
	retries   int
	// stepStarted and stepEnded count the invocations of the node's
	// latest step (reset by step_start): progress of the current for_each.
	stepStarted, stepEnded int
	// waited: some run waited for a cap (a wait event); only then
	// are queue times shown, so that a run without contention shows none.
	waited bool
	// usage: some model call reported its tokens; in and out are the sums.
	usage   bool
	in, out int
	// durations are the work times (from their caps acquired, else from
	// their start, to their end) of the runs that finished, succeeded or
	// failed; cut those of the runs a cancellation stopped, kept apart
	// because how long a run had worked when Ctrl-C came says nothing of
	// how long the node takes. queued is the time each run (either kind)
	// waited before it got its caps.
	durations []time.Duration
	cut       []time.Duration
	queued    []time.Duration
}

// runs is how many invocations began an attempt, cancelled ones included.
func (n *nodeStats) runs() int { return len(n.durations) + len(n.cut) }

// model is what both views know about a run, built from its events.
type model struct {
	run       string
	workflow  string
	start     time.Time
	end       time.Time
	step      int
	stepNodes []string
	running   map[invKey]*invState
	nodes     map[string]*nodeStats
	order     []string // nodes in first-seen order
	// capUsers maps a shared cap seen in wait events ("pool web",
	// "rate llm", "global") to the nodes known to take it.
	capUsers map[string]map[string]bool
	status   string // run_end status, "" while running
	errMsg   string
}

func newModel() *model {
	return &model{running: map[invKey]*invState{}, nodes: map[string]*nodeStats{},
		capUsers: map[string]map[string]bool{}}
}

func (m *model) node(name string) *nodeStats {
	n, ok := m.nodes[name]
	if !ok {
		n = &nodeStats{name: name, maxIndex: -1}
		m.nodes[name] = n
		m.order = append(m.order, name)
	}
	return n
}

// inv returns the invocation's state, creating it when an event arrives
// for an invocation whose start was not seen.
func (m *model) inv(k invKey, ts time.Time) *invState {
	s, ok := m.running[k]
	if !ok {
		s = &invState{key: k, start: ts}
		m.running[k] = s
	}
	return s
}

// apply folds one event into the model. For node_end and node_error it
// returns the invocation's work time and the time it waited for its caps
// (0 otherwise).
func (m *model) apply(e runner.Event, ts time.Time) (work, queued time.Duration) {
	if m.run == "" {
		m.run = e.Run
	}
	if m.start.IsZero() {
		m.start = ts
	}
	var n *nodeStats
	if e.Node != "" {
		n = m.node(e.Node)
		if e.Index != nil {
			n.loop = true
			n.maxIndex = max(n.maxIndex, *e.Index)
		}
	}
	for name, total := range e.Items {
		m.node(name).total = total
	}
	k := keyOf(e)
	switch e.Event {
	case runner.EventRunStart:
		m.workflow = e.Workflow
		m.start = ts
	case runner.EventStepStart:
		m.step = e.Step
		m.stepNodes = e.Nodes
		for _, name := range e.Nodes {
			sn := m.node(name) // file order, not finishing order
			sn.stepStarted, sn.stepEnded = 0, 0
		}
	case runner.EventNodeStart:
		if n != nil {
			n.started++
			n.stepStarted++
			s := m.inv(k, ts)
			s.start, s.waiting = ts, ""
		}
	case runner.EventAcquired:
		if n != nil {
			s := m.inv(k, ts)
			s.waiting, s.acquired = "", ts
		}
	case runner.EventToolEnd:
		if n != nil {
			n.addUsage(e)
		}
	case runner.EventWait:
		if n != nil {
			s := m.inv(k, ts)
			s.waiting, s.since, s.waited = e.Waiting, ts, true
			if e.Waiting != "node" {
				if m.capUsers[e.Waiting] == nil {
					m.capUsers[e.Waiting] = map[string]bool{}
				}
				m.capUsers[e.Waiting][e.Node] = true
			}
		}
	case runner.EventRetry:
		if n != nil {
			n.retries++
			s := m.inv(k, ts)
			if s.waiting == "" {
				m.release(e.Node) // its slots are free during the back-off
			}
			s.waiting = ""
			s.attempt = e.Attempt + 1 // the event names the attempt that failed
			s.kind = e.Kind
			s.retryAt = ts.Add(time.Duration(e.DelayMS) * time.Millisecond)
		}
	case runner.EventToken:
		if n != nil {
			s := m.inv(k, ts)
			s.waiting = ""
			s.tail = lastLine(s.tail + e.Token)
		}
	case runner.EventNodeEnd, runner.EventNodeError:
		if n == nil {
			break
		}
		n.stepEnded++
		n.addUsage(e)
		d := time.Duration(e.DurationMS) * time.Millisecond
		acquired, waited := false, false
		if s, ok := m.running[k]; ok {
			waited = s.waited
			if d == 0 || ts.Sub(s.start) > 0 {
				d = ts.Sub(s.start)
			}
			if !s.acquired.IsZero() {
				acquired = true
				queued = s.acquired.Sub(s.start)
				d = ts.Sub(s.acquired)
			}
			delete(m.running, k)
			if s.waiting == "" {
				m.release(e.Node)
			}
		}
		if e.Kind == "cancelled" {
			n.cancelled++
			if e.Attempt == 0 && !acquired {
				// Cancelled before its first attempt: it never ran.
				n.unstarted++
				return d, queued
			}
		} else if e.Event == runner.EventNodeError || e.Error != "" {
			n.failed++
		} else {
			n.done++
		}
		if e.Kind == "cancelled" {
			n.cut = append(n.cut, d)
		} else {
			n.durations = append(n.durations, d)
		}
		n.queued = append(n.queued, queued)
		n.waited = n.waited || waited
		if !waited {
			queued = 0 // not worth a mention: it waited for no cap
		}
		return d, queued
	case runner.EventInterrupt:
		delete(m.running, k) // paused until resumed
	case runner.EventRunEnd:
		m.status = e.Status
		m.errMsg = e.Error
		m.end = ts
		clear(m.running) // nothing runs after the end (an interrupt pauses its node)
	}
	return 0, 0
}

// addUsage adds the model usage an event reports (node_end and
// node_error of an llm_call, tool_end of an llm_call tool).
func (n *nodeStats) addUsage(e runner.Event) {
	for _, g := range e.GenAI { // every model call, retries included
		if g.InputTokens == 0 && g.OutputTokens == 0 {
			continue
		}
		n.usage = true
		n.in += g.InputTokens
		n.out += g.OutputTokens
	}
}

// maxQueued is the longest time a run of n waited for its caps.
func (n *nodeStats) maxQueued() time.Duration {
	return maxDuration(n.queued)
}

// release is called when an invocation of node gives its slots back (it
// ended, or backs off before a retry). Events say when an invocation starts
// to wait, not when it gets its slot, so the view infers it: each cap the
// node takes (the global cap, its own, and the pools it was seen waiting
// for) passes to the invocation waiting longest for it. Rate waits end by
// time and are cleared by the waiter's own next event.
func (m *model) release(node string) {
	for c, users := range m.capUsers {
		if c == "global" || users[node] {
			if strings.HasPrefix(c, "rate ") {
				continue
			}
			m.wakeOldest(c, "")
		}
	}
	m.wakeOldest("node", node)
}

// wakeOldest ends the longest wait for cap (of node, when node is set).
func (m *model) wakeOldest(cap, node string) {
	var oldest *invState
	for _, s := range m.running {
		if s.waiting != cap || (node != "" && s.key.node != node) {
			continue
		}
		if oldest == nil || s.since.Before(oldest.since) ||
			(s.since.Equal(oldest.since) && (s.key.node < oldest.key.node ||
				(s.key.node == oldest.key.node && s.key.index < oldest.key.index))) {
			oldest = s
		}
	}
	if oldest != nil {
		oldest.waiting = ""
	}
}

// capUse is a shared cap's slots in use and invocations waiting for one.
type capUse struct {
	cap           string
	busy, waiting int
}

// caps reports, for each shared cap seen in wait events, how many of its
// users' invocations run (hold a slot; not while backing off before a retry)
// and how many wait, by cap name.
func (m *model) caps(now time.Time) []capUse {
	var out []capUse
	for c, users := range m.capUsers {
		u := capUse{cap: c}
		for _, s := range m.running {
			if s.waiting == c {
				u.waiting++
			} else if s.waiting == "" && !s.retryAt.After(now) && (c == "global" || users[s.key.node]) {
				u.busy++
			}
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b capUse) int { return strings.Compare(a.cap, b.cap) })
	return out
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

// runningOf lists a node's invocations in flight, by item index.
func (m *model) runningOf(node string) []*invState {
	var out []*invState
	for k, s := range m.running {
		if k.node == node {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *invState) int { return a.key.index - b.key.index })
	return out
}

// fmtDuration renders a duration short and readable: 0.3ms, 12ms, 1.25s,
// 12.5s, 2m3s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0ms"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	case d < 10*time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// percentile returns the p-th percentile (0..100) of ds by the nearest-rank
// method; 0 for no values.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, i-1)]
}

// waitText describes a cap from a wait event: "global", "node", "pool web".
func waitText(c string) string {
	switch c {
	case "global":
		return "the global cap"
	case "node":
		return "the node's cap"
	}
	return c
}

// endLine is the run's closing line: its status and how long it took.
// What to do next (the resume command, the error) is printed by the
// command itself after the view is closed.
func (m *model) endLine() string {
	took := fmtDuration(m.end.Sub(m.start))
	switch m.status {
	case "":
		return ""
	case "completed":
		return "run completed in " + took
	case "interrupted":
		return "run paused at an interrupt after " + took
	}
	return fmt.Sprintf("run %s after %s", m.status, took)
}

// summaryRows are the summary table's rows, nodes in first-run order:
// runs (invocations that began an attempt), failures, cancellations,
// retries, p50 and max of the work time (waiting for caps excluded; of the
// runs that finished, not those cancelled), the
// longest wait for caps (shown for nodes that waited for one), and the
// model tokens used (input/output). The
// CANCELLED, QUEUED and TOKENS columns are present only when some node
// has something to show in them.
func (m *model) summaryRows() (header []string, rows [][]string) {
	var cancelled, queued, tokens bool
	for _, n := range m.nodes {
		cancelled = cancelled || n.cancelled > 0
		queued = queued || n.waited
		tokens = tokens || n.usage
	}
	header = []string{"NODE", "RUNS", "FAILED"}
	if cancelled {
		header = append(header, "CANCELLED")
	}
	header = append(header, "RETRIES", "P50", "MAX")
	if queued {
		header = append(header, "QUEUED")
	}
	if tokens {
		header = append(header, "TOKENS")
	}
	for _, name := range m.order {
		n := m.nodes[name]
		if n.runs() == 0 && n.cancelled == 0 {
			continue
		}
		p50, most := "-", "-"
		if len(n.durations) > 0 {
			p50, most = fmtDuration(percentile(n.durations, 50)), fmtDuration(slices.Max(n.durations))
		}
		row := []string{name, strconv.Itoa(n.runs()), strconv.Itoa(n.failed)}
		if cancelled {
			row = append(row, strconv.Itoa(n.cancelled))
		}
		row = append(row, strconv.Itoa(n.retries), p50, most)
		if queued {
			q := "-"
			if n.waited {
				q = fmtDuration(n.maxQueued())
			}
			row = append(row, q)
		}
		if tokens {
			t := "-"
			if n.usage {
				t = strconv.Itoa(n.in) + "/" + strconv.Itoa(n.out)
			}
			row = append(row, t)
		}
		rows = append(rows, row)
	}
	return header, rows
}

// writeSummaryTable writes the summary as an aligned plain-text table.
func writeSummaryTable(w io.Writer, m *model) {
	header, rows := m.summaryRows()
	if len(rows) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}
