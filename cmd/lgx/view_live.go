package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"charm.land/lipgloss/v2"
	"charm.land/lipgloss/v2/table"
	"github.com/charmbracelet/x/ansi"

	"github.com/lgx-run/lgx/internal/progress"
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
	m      *progress.Model
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
	v := &liveView{w: w, now: now, width: width, st: newLiveStyles(color), m: progress.New(progress.Options{}),
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
	if e.TS.IsZero() {
		e.TS = v.now()
	}
	// The view writes to the terminal itself (Term, not the escaping
	// Err): the text a value brings is made printable here, once.
	e.Error, e.Message, e.Token = printable(e.Error), printable(e.Message), printable(e.Token)
	e.Waiting, e.Tool, e.Kind = printable(e.Waiting), printable(e.Tool), printable(e.Kind)
	v.m.Apply(e)
	k := progress.KeyOf(e)
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
	snap := v.m.Snapshot()
	if line := endLine(snap); line != "" {
		style := v.st.ok
		if snap.Status != "completed" {
			style = v.st.fail
			if snap.Status == "interrupted" {
				style = v.st.warn
			}
		}
		b.WriteString(v.wrap(style.Render(line)) + "\n")
	}
	b.WriteString(v.summary(snap))
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
	m, st := v.m.Snapshot(), v.st
	if m.Start.IsZero() {
		return nil
	}
	end := now
	if !m.End.IsZero() {
		end = m.End
	}
	var lines []string
	head := "starting"
	if m.Step > 0 {
		head = fmt.Sprintf("step %d", m.Step)
		if len(m.StepNodes) > 0 {
			head += " · " + strings.Join(m.StepNodes, ", ")
		}
	}
	if m.Workflow != "" {
		head = m.Workflow + " · " + head
	}
	lines = append(lines, st.bold.Render(head)+"  "+st.dim.Render(fmtDuration(end.Sub(m.Start))))

	spin := st.accent.Render(spinner[v.frame%len(spinner)])
	var finished []int // indexes of finished-node lines
	failedNodes := 0
	for _, n := range m.Nodes {
		running := n.Running
		if len(running) == 0 {
			if n.Runs() > 0 || n.Cancelled > 0 {
				lines = append(lines, "  "+v.finishedLine(n))
				finished = append(finished, len(lines)-1)
				if n.Failed > 0 {
					failedNodes++
				}
			}
			continue
		}
		if !n.Loop {
			s := running[0]
			lines = append(lines, fmt.Sprintf("  %s %s  %s", spin, st.bold.Render(n.Name), v.invStatus(s, now)))
			lines = append(lines, v.invDetail(s, now, "    ")...)
			continue
		}
		total, ended := n.Total, n.StepEnded
		waiting := 0
		for _, s := range running {
			if s.Waiting != "" {
				waiting++
			}
		}
		sep := st.dim.Render(" · ")
		line := fmt.Sprintf("  %s %s  %s %d/%d%s%d running", spin, st.bold.Render(n.Name), bar(ended, total), ended, total, sep, len(running)-waiting)
		if waiting > 0 {
			line += sep + st.warn.Render(fmt.Sprintf("%d waiting", waiting))
		}
		// Items not handed out yet (or waiting for their turn): without
		// them the counts above would not add up to the total.
		if queued := total - n.StepStarted; queued > 0 {
			line += sep + st.dim.Render(fmt.Sprintf("%d queued", queued))
		}
		if n.Failed > 0 {
			line += sep + st.fail.Render(fmt.Sprintf("%d failed", n.Failed))
		}
		if n.Retries > 0 {
			line += sep + st.warn.Render(fmt.Sprintf("%d retries", n.Retries))
		}
		lines = append(lines, line)
		for i, s := range running {
			if i == maxItemLines {
				lines = append(lines, st.dim.Render(fmt.Sprintf("      … %d more", len(running)-maxItemLines)))
				break
			}
			lines = append(lines, fmt.Sprintf("      %s  %s", s.Key, v.invStatus(s, now)))
			lines = append(lines, v.invDetail(s, now, "        ")...)
		}
	}
	for _, c := range m.Caps {
		line := fmt.Sprintf("  %s: %d in use", c.Cap, c.Busy)
		if c.Waiting > 0 {
			line += st.warn.Render(fmt.Sprintf(" · %d waiting", c.Waiting))
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

// invStatus is an invocation's state: waiting, backing off before its
// next attempt, or its elapsed work time (from its caps acquired, else
// from its start; from the attempt's start for a second attempt on), with
// the attempt when it is not the first.
func (v *liveView) invStatus(s progress.Invocation, now time.Time) string {
	st := v.st
	from := s.Start
	if !s.Acquired.IsZero() {
		from = s.Acquired
	}
	if s.Attempt > 1 && !s.AttemptStart.IsZero() && !s.Backoff {
		from = s.AttemptStart
	}
	switch {
	case s.Waiting != "":
		return st.warn.Render("waiting for " + waitText(s.Waiting))
	case s.Backoff && now.Before(s.RetryAt):
		return st.warn.Render(fmt.Sprintf("↻ attempt %s in %s", attemptText(s), fmtDuration(s.RetryAt.Sub(now)))) +
			st.dim.Render(" ("+orUnknown(s.RetryKind)+")")
	case s.Attempt > 1:
		return st.dim.Render(fmtDuration(now.Sub(from))) + st.warn.Render("  attempt "+attemptText(s))
	}
	return st.dim.Render(fmtDuration(now.Sub(from)))
}

// attemptText is the attempt as "2/3" when the retry policy's total is
// known, else "2".
func attemptText(s progress.Invocation) string {
	if s.MaxAttempts > 0 {
		return fmt.Sprintf("%d/%d", s.Attempt, s.MaxAttempts)
	}
	return strconv.Itoa(s.Attempt)
}

// invDetail are the lines under an invocation: its tool calls in flight
// and the last line of its streamed tokens.
func (v *liveView) invDetail(s progress.Invocation, now time.Time, indent string) []string {
	st := v.st
	var lines []string
	for i, t := range s.Tools {
		if i == maxItemLines {
			lines = append(lines, indent+st.dim.Render(fmt.Sprintf("… %d more tool calls", len(s.Tools)-maxItemLines)))
			break
		}
		lines = append(lines, indent+st.dim.Render("⚙ "+orUnknownTool(t.Name)+"  "+fmtDuration(now.Sub(t.Start))))
	}
	if s.Tail != "" {
		lines = append(lines, indent+st.dim.Render("› "+v.tail(s.Tail, v.width-len(indent)-4)))
	}
	return lines
}

// orUnknownTool names a tool call whose event named no tool.
func orUnknownTool(name string) string {
	if name == "" {
		return "tool"
	}
	return oneLineText(name)
}

// finishedLine collapses a node with nothing in flight into one line: ✓
// when every run succeeded, ✗ when one failed, a dim – when runs were
// cancelled (by a failing sibling or the run's end) and none failed.
func (v *liveView) finishedLine(n progress.Node) string {
	st := v.st
	mark := st.ok.Render("✓")
	switch {
	case n.Failed > 0:
		mark = st.fail.Render("✗")
	case n.Cancelled > 0:
		mark = st.dim.Render("–")
	}
	var detail string
	switch {
	case n.Loop || n.Runs() > 1:
		detail = fmt.Sprintf("%d runs", n.Runs())
		if len(n.Durations) > 0 { // of the runs that finished (the cancelled are counted below)
			detail += fmt.Sprintf(" · p50 %s · max %s", fmtDuration(percentile(n.Durations, 50)), fmtDuration(maxDuration(n.Durations)))
		}
	case len(n.Durations) == 1:
		detail = fmtDuration(n.Durations[0])
	case len(n.Cut) == 1:
		detail = fmtDuration(n.Cut[0]) // until it was cancelled
	default:
		detail = "not started"
	}
	if n.Waited {
		detail += " · queued up to " + fmtDuration(n.MaxQueued())
	}
	if n.Failed > 0 {
		detail += " · " + st.fail.Render(fmt.Sprintf("%d failed", n.Failed))
	}
	if n.Cancelled > 0 {
		detail += fmt.Sprintf(" · %d cancelled", n.Cancelled)
		if n.Unstarted > 0 && n.Unstarted < n.Cancelled {
			detail += fmt.Sprintf(" (%d before they started)", n.Unstarted)
		}
	}
	if n.Retries > 0 {
		detail += " · " + fmt.Sprintf("%d retries", n.Retries)
	}
	if n.ToolCalls > 0 {
		detail += " · " + fmt.Sprintf("%d tool calls", n.ToolCalls)
		if n.ToolsFailed > 0 {
			detail += " (" + st.fail.Render(fmt.Sprintf("%d failed", n.ToolsFailed)) + ")"
		}
	}
	return fmt.Sprintf("%s %s  %s", mark, n.Name, st.dim.Render(detail))
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
func (v *liveView) summary(snap progress.Snapshot) string {
	header, rows := summaryRows(snap)
	if len(rows) == 0 {
		return ""
	}
	if tableWidth(header, rows) > v.width-1 {
		var b strings.Builder
		writeSummaryTable(&b, snap)
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
		filled = max(0, min(barWidth, done*barWidth/total))
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
