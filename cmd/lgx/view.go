package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lgx-run/lgx/internal/progress"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
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
	opts := progress.Options{Attempts: attemptLimits(a.wf)}
	var v runView
	if live {
		lv := newLiveView(a.ios.term(), a.ios.Width, a.ios.Color, time.Now, redrawInterval)
		lv.m = progress.New(opts) // before any event: Emit starts with the run
		v = lv
	} else {
		pv := newPlainView(a.ios.Err, time.Now)
		pv.m = progress.New(opts)
		pv.groups = a.inActions()
		v = pv
	}
	if path := a.ios.env("GITHUB_STEP_SUMMARY"); path != "" && a.inActions() {
		v = newSummaryView(v, path, a.ios.Err, time.Now)
	}
	return v
}

// attemptLimits maps each node of wf to the attempts its retry policy
// allows, so that the live view can say "attempt 2/3"; nil without a
// workflow.
func attemptLimits(wf *spec.Workflow) map[string]int {
	if wf == nil {
		return nil
	}
	out := make(map[string]int, len(wf.Nodes))
	for _, n := range wf.Nodes {
		p := wf.Config.Retry
		if n.Retry != nil {
			p = *n.Retry
		}
		if p.Attempts > 0 {
			out[n.Name] = p.Attempts
		}
	}
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
func endLine(m progress.Snapshot) string {
	took := fmtDuration(m.End.Sub(m.Start))
	switch m.Status {
	case "":
		return ""
	case "completed":
		return "run completed in " + took
	case "interrupted":
		return "run paused at an interrupt after " + took
	}
	return fmt.Sprintf("run %s after %s", m.Status, took)
}

// summaryRows are the summary table's rows, nodes in first-run order:
// runs (invocations that began an attempt), failures, cancellations,
// retries, p50 and max of the work time (waiting for caps excluded; of the
// runs that finished, not those cancelled), the
// longest wait for caps (shown for nodes that waited for one), and the
// model tokens used (input/output). The
// CANCELLED, QUEUED and TOKENS columns are present only when some node
// has something to show in them.
func summaryRows(m progress.Snapshot) (header []string, rows [][]string) {
	var cancelled, queued, tokens bool
	for _, n := range m.Nodes {
		cancelled = cancelled || n.Cancelled > 0
		queued = queued || n.Waited
		tokens = tokens || n.Usage
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
	for _, n := range m.Nodes {
		if n.Runs() == 0 && n.Cancelled == 0 {
			continue
		}
		p50, most := "-", "-"
		if len(n.Durations) > 0 {
			p50, most = fmtDuration(percentile(n.Durations, 50)), fmtDuration(slices.Max(n.Durations))
		}
		row := []string{n.Name, strconv.Itoa(n.Runs()), strconv.Itoa(n.Failed)}
		if cancelled {
			row = append(row, strconv.Itoa(n.Cancelled))
		}
		row = append(row, strconv.Itoa(n.Retries), p50, most)
		if queued {
			q := "-"
			if n.Waited {
				q = fmtDuration(n.MaxQueued())
			}
			row = append(row, q)
		}
		if tokens {
			t := "-"
			if n.Usage {
				t = strconv.Itoa(n.InputTokens) + "/" + strconv.Itoa(n.OutputTokens)
			}
			row = append(row, t)
		}
		rows = append(rows, row)
	}
	return header, rows
}

// writeSummaryTable writes the summary as an aligned plain-text table.
func writeSummaryTable(w io.Writer, m progress.Snapshot) {
	header, rows := summaryRows(m)
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
