package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
	"github.com/charmbracelet/x/ansi"

	"github.com/lgx-run/lgx/runner"
)

// maxItemLines bounds the in-flight items drawn under a for_each node.
const maxItemLines = 4

// maxBlockLines is the height above which finished nodes fold into one
// line, so that the block fits small terminals (the cursor cannot move up
// past the top of the screen).
const maxBlockLines = 20

// barWidth is the width of a for_each progress bar, in cells.
const barWidth = 20

// liveView draws the run as a block of lines at the bottom of the terminal
// and redraws it in place about ten times a second (cursor up, clear,
// draw): the current step, each node in flight with its elapsed time,
// for_each progress bars, waits for caps, retries with their delay, and
// the last line of streamed tokens. Finished nodes collapse to one line.
// Failures and interrupts are printed above the block, where they stay.
// Close stops the redraw goroutine, draws the final state and a summary.
type liveView struct {
	mu     sync.Mutex
	w      io.Writer
	now    func() time.Time
	width  int
	st     liveStyles
	m      *model
	lines  int      // lines of the block drawn last, to move back over
	log    []string // permanent lines to print above the next block
	frame  int      // spinner frame
	closed bool

	stop chan struct{}
	done chan struct{}
}

// liveStyles are the view's lipgloss styles; all empty without colour.
type liveStyles struct {
	ok, fail, warn, dim, bold, accent lipgloss.Style
}

func newLiveStyles(color bool) liveStyles {
	if !color {
		return liveStyles{}
	}
	return liveStyles{
		ok:     lipgloss.NewStyle().Foreground(lipgloss.Green),
		fail:   lipgloss.NewStyle().Foreground(lipgloss.Red),
		warn:   lipgloss.NewStyle().Foreground(lipgloss.Yellow),
		dim:    lipgloss.NewStyle().Faint(true),
		bold:   lipgloss.NewStyle().Bold(true),
		accent: lipgloss.NewStyle().Foreground(lipgloss.Cyan),
	}
}

// newLiveView starts a live view on w (a terminal width columns wide);
// interval is the redraw period, 0 for none (tests draw by hand).
func newLiveView(w io.Writer, width int, color bool, now func() time.Time, interval time.Duration) *liveView {
	if width <= 0 {
		width = 80
	}
	v := &liveView{w: w, now: now, width: width, st: newLiveStyles(color), m: newModel(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if interval <= 0 {
		close(v.done)
		return v
	}
	go v.loop(interval)
	return v
}

func (v *liveView) loop(interval time.Duration) {
	defer close(v.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
			v.mu.Lock()
			v.frame++
			v.draw()
			v.mu.Unlock()
		}
	}
}

// Emit folds the event into the model; failures and interrupts are queued
// as permanent lines. Drawing happens on the next tick.
func (v *liveView) Emit(e runner.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	ts := e.TS
	if ts.IsZero() {
		ts = v.now()
	}
	v.m.apply(e, ts)
	k := keyOf(e)
	switch e.Event {
	case runner.EventNodeError, runner.EventNodeEnd:
		if e.Error == "" || e.Kind == "cancelled" {
			break
		}
		line := fmt.Sprintf("%s %s %s %s", v.st.fail.Render("✗"), v.st.bold.Render(k.String()),
			v.st.fail.Render("["+orUnknown(e.Kind)+"]"), oneLineText(e.Error))
		if e.Event == runner.EventNodeEnd {
			line += v.st.dim.Render(" (on_error: continue)")
		}
		v.log = append(v.log, line)
	case runner.EventInterrupt:
		msg := oneLineText(e.Message)
		if msg == "" {
			msg = "paused"
		}
		v.log = append(v.log, fmt.Sprintf("%s %s: %s", v.st.warn.Render("⏸"), v.st.bold.Render(k.String()), msg))
	}
}

// Close stops redrawing, draws the final block, the run's end line and the
// summary table. It is safe to call more than once.
func (v *liveView) Close() {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed = true
	v.mu.Unlock()
	select {
	case <-v.stop:
	default:
		close(v.stop)
	}
	<-v.done

	v.mu.Lock()
	defer v.mu.Unlock()
	v.draw()
	v.lines = 0 // the final block stays
	var b strings.Builder
	if line := v.m.endLine(); line != "" {
		style := v.st.ok
		if v.m.status != "completed" {
			style = v.st.fail
			if v.m.status == "interrupted" {
				style = v.st.warn
			}
		}
		b.WriteString(v.wrap(style.Render(line)) + "\n")
	}
	b.WriteString(v.summary())
	io.WriteString(v.w, b.String())
}

// draw replaces the previous block with the current one, printing queued
// permanent lines above it. The caller holds v.mu.
func (v *liveView) draw() {
	var b strings.Builder
	if v.lines > 0 {
		// Back to the first line of the old block, and clear it all.
		fmt.Fprintf(&b, "\x1b[%dF\x1b[J", v.lines)
	}
	for _, l := range v.log {
		b.WriteString(v.wrap(l) + "\n")
	}
	v.log = v.log[:0]
	block := v.block(v.now())
	for _, l := range block {
		b.WriteString(v.fit(l) + "\n")
	}
	v.lines = len(block)
	io.WriteString(v.w, b.String())
}

// fit cuts a line to the terminal width so that it never wraps (a wrapped
// line would break the cursor arithmetic of the next redraw).
func (v *liveView) fit(s string) string {
	return ansi.Truncate(s, v.width-1, "…")
}

// wrap breaks a permanent line (printed above the block, never redrawn)
// at the terminal width, so that nothing of it is lost.
func (v *liveView) wrap(s string) string {
	return ansi.Wrap(s, v.width-1, "")
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// block renders the model as lines.
func (v *liveView) block(now time.Time) []string {
	m, st := v.m, v.st
	if m.start.IsZero() {
		return nil
	}
	end := now
	if !m.end.IsZero() {
		end = m.end
	}
	var lines []string
	head := "starting"
	if m.step > 0 {
		head = fmt.Sprintf("step %d", m.step)
		if len(m.stepNodes) > 0 {
			head += " · " + strings.Join(m.stepNodes, ", ")
		}
	}
	if m.workflow != "" {
		head = m.workflow + " · " + head
	}
	lines = append(lines, st.bold.Render(head)+"  "+st.dim.Render(fmtDuration(end.Sub(m.start))))

	spin := st.accent.Render(spinner[v.frame%len(spinner)])
	var finished []int // indexes of finished-node lines
	failedNodes := 0
	for _, name := range m.order {
		n := m.nodes[name]
		running := m.runningOf(name)
		if len(running) == 0 {
			if n.runs() > 0 || n.cancelled > 0 {
				lines = append(lines, "  "+v.finishedLine(n))
				finished = append(finished, len(lines)-1)
				if n.failed > 0 {
					failedNodes++
				}
			}
			continue
		}
		if !n.loop {
			s := running[0]
			lines = append(lines, fmt.Sprintf("  %s %s  %s", spin, st.bold.Render(name), v.invStatus(s, now)))
			if s.tail != "" {
				lines = append(lines, "    "+st.dim.Render("› "+v.tail(s.tail, v.width-8)))
			}
			continue
		}
		total := n.maxIndex + 1
		if n.total > 0 {
			total = n.total
		}
		ended := n.stepEnded
		waiting := 0
		for _, s := range running {
			if s.waiting != "" {
				waiting++
			}
		}
		sep := st.dim.Render(" · ")
		line := fmt.Sprintf("  %s %s  %s %d/%d%s%d running", spin, st.bold.Render(name), bar(ended, total), ended, total, sep, len(running)-waiting)
		if waiting > 0 {
			line += sep + st.warn.Render(fmt.Sprintf("%d waiting", waiting))
		}
		// Items not handed out yet (or waiting for their turn): without
		// them the counts above would not add up to the total.
		if queued := total - n.stepStarted; queued > 0 {
			line += sep + st.dim.Render(fmt.Sprintf("%d queued", queued))
		}
		if n.failed > 0 {
			line += sep + st.fail.Render(fmt.Sprintf("%d failed", n.failed))
		}
		if n.retries > 0 {
			line += sep + st.warn.Render(fmt.Sprintf("%d retries", n.retries))
		}
		lines = append(lines, line)
		for i, s := range running {
			if i == maxItemLines {
				lines = append(lines, st.dim.Render(fmt.Sprintf("      … %d more", len(running)-maxItemLines)))
				break
			}
			lines = append(lines, fmt.Sprintf("      %s  %s", s.key, v.invStatus(s, now)))
			if s.tail != "" {
				lines = append(lines, "        "+st.dim.Render("› "+v.tail(s.tail, v.width-12)))
			}
		}
	}
	for _, c := range m.caps(now) {
		line := fmt.Sprintf("  %s: %d in use", c.cap, c.busy)
		if c.waiting > 0 {
			line += st.warn.Render(fmt.Sprintf(" · %d waiting", c.waiting))
		}
		lines = append(lines, st.dim.Render(line))
	}
	if len(lines) > maxBlockLines && len(finished) > 1 {
		// Too tall to redraw in place on a small terminal: fold the
		// finished nodes into one line.
		fold := fmt.Sprintf("  %s %d nodes done", st.ok.Render("✓"), len(finished))
		if failedNodes > 0 {
			fold += st.fail.Render(fmt.Sprintf(" (%d with failures)", failedNodes))
		}
		kept := make([]string, 0, len(lines)-len(finished)+1)
		for i, l := range lines {
			switch {
			case i == finished[0]:
				kept = append(kept, fold)
			case slices.Contains(finished, i):
			default:
				kept = append(kept, l)
			}
		}
		lines = kept
	}
	return lines
}

// invStatus is an invocation's state: waiting, retrying, or its elapsed
// work time (from its caps acquired, else from its start).
func (v *liveView) invStatus(s *invState, now time.Time) string {
	st := v.st
	from := s.start
	if !s.acquired.IsZero() {
		from = s.acquired
	}
	switch {
	case s.waiting != "":
		return st.warn.Render("waiting for " + waitText(s.waiting))
	case s.attempt > 0 && now.Before(s.retryAt):
		return st.warn.Render(fmt.Sprintf("↻ attempt %d in %s", s.attempt, fmtDuration(s.retryAt.Sub(now)))) +
			st.dim.Render(" ("+orUnknown(s.kind)+")")
	case s.attempt > 0:
		return st.dim.Render(fmtDuration(now.Sub(from))) + st.warn.Render(fmt.Sprintf("  attempt %d", s.attempt))
	}
	return st.dim.Render(fmtDuration(now.Sub(from)))
}

// finishedLine collapses a node with nothing in flight into one line: ✓
// when every run succeeded, ✗ when one failed, a dim – when runs were
// cancelled (by a failing sibling or the run's end) and none failed.
func (v *liveView) finishedLine(n *nodeStats) string {
	st := v.st
	mark := st.ok.Render("✓")
	switch {
	case n.failed > 0:
		mark = st.fail.Render("✗")
	case n.cancelled > 0:
		mark = st.dim.Render("–")
	}
	var detail string
	switch {
	case n.loop || n.runs() > 1:
		detail = fmt.Sprintf("%d runs", n.runs())
		if len(n.durations) > 0 { // of the runs that finished (the cancelled are counted below)
			detail += fmt.Sprintf(" · p50 %s · max %s", fmtDuration(percentile(n.durations, 50)), fmtDuration(maxDuration(n.durations)))
		}
	case len(n.durations) == 1:
		detail = fmtDuration(n.durations[0])
	case len(n.cut) == 1:
		detail = fmtDuration(n.cut[0]) // until it was cancelled
	default:
		detail = "not started"
	}
	if n.waited {
		detail += " · queued up to " + fmtDuration(n.maxQueued())
	}
	if n.failed > 0 {
		detail += " · " + st.fail.Render(fmt.Sprintf("%d failed", n.failed))
	}
	if n.cancelled > 0 {
		detail += fmt.Sprintf(" · %d cancelled", n.cancelled)
		if n.unstarted > 0 && n.unstarted < n.cancelled {
			detail += fmt.Sprintf(" (%d before they started)", n.unstarted)
		}
	}
	if n.retries > 0 {
		detail += " · " + fmt.Sprintf("%d retries", n.retries)
	}
	return fmt.Sprintf("%s %s  %s", mark, n.name, st.dim.Render(detail))
}

// tail keeps the end of the token line, at most width cells.
func (v *liveView) tail(s string, width int) string {
	s = strings.ReplaceAll(s, "\t", " ")
	s = ansi.Strip(s)
	width = max(width, 10)
	if w := ansi.StringWidth(s); w > width {
		s = "…" + ansi.TruncateLeft(s, w-width+1, "")
	}
	return s
}

// summary renders the end-of-run table with lipgloss, or as the plain
// view's borderless table when the borders would not fit the terminal.
func (v *liveView) summary() string {
	header, rows := v.m.summaryRows()
	if len(rows) == 0 {
		return ""
	}
	if tableWidth(header, rows) > v.width-1 {
		var b strings.Builder
		writeSummaryTable(&b, v.m)
		return b.String()
	}
	t := table.New().Headers(header...).Rows(rows...).
		Border(lipgloss.RoundedBorder()).
		StyleFunc(func(row, col int) lipgloss.Style {
			s := lipgloss.NewStyle().Padding(0, 1)
			if row == table.HeaderRow {
				return s.Inherit(v.st.bold)
			}
			if col > 0 {
				s = s.Align(lipgloss.Right)
			}
			return s
		})
	return t.Render() + "\n"
}

// tableWidth is the width of the bordered summary table: each column as
// wide as its widest cell plus one space of padding on either side, and
// a border before each column and after the last.
func tableWidth(header []string, rows [][]string) int {
	w := 1
	for c := range header {
		cw := ansi.StringWidth(header[c])
		for _, r := range rows {
			cw = max(cw, ansi.StringWidth(r[c]))
		}
		w += cw + 3
	}
	return w
}

// bar is a progress bar of done out of total.
func bar(done, total int) string {
	filled := 0
	if total > 0 {
		filled = min(barWidth, done*barWidth/total)
	}
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", barWidth-filled) + "]"
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
