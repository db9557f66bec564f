package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lgx-run/lgx/internal/progress"
	"github.com/lgx-run/lgx/runner"
)

// plainView writes one timestamped line per notable event and a summary
// table at the end: no escape codes, no redraws, so logs in CI and pipes
// stay readable. Used whenever stderr is not an interactive terminal.
type plainView struct {
	mu     sync.Mutex
	w      io.Writer
	now    func() time.Time
	m      *progress.Model
	closed bool
	// groups folds each step's lines into a GitHub Actions log group
	// (::group:: … ::endgroup::); open says one is open.
	groups, open bool
}

// newPlainView returns a plain view writing to w; now stamps events that
// carry no time.
func newPlainView(w io.Writer, now func() time.Time) *plainView {
	return &plainView{w: w, now: now, m: progress.New(progress.Options{})}
}

// Emit prints the event's line, if it has one.
func (v *plainView) Emit(e runner.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	if e.TS.IsZero() {
		e.TS = v.now()
	}
	ts := e.TS
	end := v.m.Apply(e)
	line := plainLine(e, v.m, end)
	if line == "" {
		return
	}
	if v.groups && (e.Event == runner.EventStepStart || e.Event == runner.EventRunEnd) {
		v.endGroup()
		if e.Event == runner.EventStepStart {
			// The group's title is the step line itself, so the collapsed
			// log still reads as one line per step.
			fmt.Fprintf(v.w, "::group::%s %s\n", ts.Format("15:04:05.000"), ghEscapeData(line))
			v.open = true
			return
		}
	}
	fmt.Fprintf(v.w, "%s %s\n", ts.Format("15:04:05.000"), line)
}

// endGroup closes the open log group, if any.
func (v *plainView) endGroup() {
	if v.open {
		fmt.Fprintln(v.w, "::endgroup::")
		v.open = false
	}
}

// plainLine is the text of one event ("" for events not shown: node_start,
// acquired, token, checkpoint, step_end). An invocation's end shows its
// work time d, and queued, the time it waited for caps (0: it waited for
// none).
func plainLine(e runner.Event, m *progress.Model, end progress.Ended) string {
	k := progress.KeyOf(e)
	d, queued := end.Work, end.Queued
	switch e.Event {
	case runner.EventRunStart:
		return "start " + e.Workflow
	case runner.EventStepStart:
		return fmt.Sprintf("step %d: %s", e.Step, strings.Join(e.Nodes, ", "))
	case runner.EventNodeEnd:
		if e.Error != "" { // failed under on_error: continue
			return fmt.Sprintf("✗ %s [%s] %s (on_error: continue)", k, orUnknown(e.Kind), oneLineText(e.Error))
		}
		line := fmt.Sprintf("✓ %s %s", k, fmtDuration(d))
		if queued > 0 {
			line += fmt.Sprintf(" (queued %s)", fmtDuration(queued))
		}
		return line
	case runner.EventNodeError:
		if e.Kind == "cancelled" {
			if e.Attempt == 0 {
				return fmt.Sprintf("- %s cancelled before it started", k)
			}
			return fmt.Sprintf("- %s cancelled", k)
		}
		return fmt.Sprintf("✗ %s [%s] %s", k, orUnknown(e.Kind), oneLineText(e.Error))
	case runner.EventRetry:
		line := fmt.Sprintf("retry %s attempt %d in %s", k, e.Attempt+1, fmtDuration(time.Duration(e.DelayMS)*time.Millisecond))
		if e.Kind != "" || e.Error != "" {
			line += fmt.Sprintf(" after [%s] %s", orUnknown(e.Kind), oneLineText(e.Error))
		}
		return line
	case runner.EventFallback:
		line := fmt.Sprintf("fallback %s: %s", k, oneLineText(e.Message))
		if e.Kind != "" || e.Error != "" {
			line += fmt.Sprintf(", after [%s] %s", orUnknown(e.Kind), oneLineText(e.Error))
		}
		return line
	case runner.EventWait:
		return fmt.Sprintf("%s waits for %s", k, waitText(e.Waiting))
	case runner.EventInterrupt:
		if e.Message == "" {
			return fmt.Sprintf("⏸ %s: paused", k)
		}
		return fmt.Sprintf("⏸ %s: %s", k, oneLineText(e.Message))
	case runner.EventRunEnd:
		return endLine(m.Snapshot())
	}
	return ""
}

// Close prints the summary table; later events are ignored.
func (v *plainView) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	v.closed = true
	v.endGroup()
	writeSummaryTable(v.w, v.m.Snapshot())
}

func orUnknown(kind string) string {
	if kind == "" {
		return "error"
	}
	return kind
}

// oneLineText folds newlines so that one event stays one line, after
// escaping the control characters a terminal would act on (printable):
// a carriage return shows as \r rather than a space.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(printable(s)), " ")
}
