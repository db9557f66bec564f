package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lgx-run/lgx/internal/progress"
	"github.com/lgx-run/lgx/internal/redact"
	"github.com/lgx-run/lgx/nodes/llm"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
)

// inActions reports whether lgx runs as a GitHub Actions step, where it
// speaks the runner's workflow commands (masks, groups, annotations).
func (a *app) inActions() bool {
	return a.ios.env("GITHUB_ACTIONS") == "true"
}

// maskSecrets asks the Actions runner to mask the value of each secret the
// workflow declares (and the default provider API keys when it declares
// providers), so that a value echoed by any later line of the log, even
// one lgx did not redact, shows as ***. Called before the run prints
// anything that could hold a value. Each line of a multi-line value is
// masked separately: the runner matches masks line by line.
func (a *app) maskSecrets(w io.Writer, wf *spec.Workflow) {
	if wf == nil || !a.inActions() {
		return
	}
	seen := map[string]bool{}
	for _, n := range secretEnvNames(wf) {
		for _, line := range strings.Split(a.ios.env(n), "\n") {
			line = strings.TrimRight(line, "\r")
			if strings.TrimSpace(line) == "" || seen[line] {
				continue
			}
			seen[line] = true
			fmt.Fprintf(w, "::add-mask::%s\n", ghEscapeData(line))
		}
	}
}

// secretEnvNames lists the environment variables whose values are secret
// for wf: its declared secrets, and the default provider API keys when it
// declares providers.
func secretEnvNames(wf *spec.Workflow) []string {
	names := make([]string, 0, len(wf.Secrets)+len(llm.Kinds))
	for _, s := range wf.Secrets {
		names = append(names, s.Value)
	}
	if len(wf.Providers) > 0 {
		for _, kind := range llm.Kinds {
			names = append(names, llm.KeyEnv(kind))
		}
	}
	return names
}

// redactor replaces the secrets of the workflow being run or resumed, once
// it is loaded, in what lgx prints itself: an input or an answer refused
// before the run starts quotes the value it refused, which may be a secret
// (SPEC §8: "in everything lgx prints"). Nil before a workflow is loaded.
func (a *app) redactor() *redact.Redactor {
	if a.wf == nil {
		return nil
	}
	var values []string
	for _, n := range secretEnvNames(a.wf) {
		values = append(values, a.ios.env(n))
	}
	return redact.New(values...)
}

// ghEscapeData escapes a workflow command's data the way the runner
// unescapes it.
func ghEscapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// summaryView wraps a progress view and, when the run ends, appends a job
// summary to $GITHUB_STEP_SUMMARY: the status, one row per node and a
// Mermaid chart of the steps the run took.
type summaryView struct {
	runView
	path string
	errW io.Writer // where a failure to write the summary is reported
	now  func() time.Time

	mu    sync.Mutex
	m     *progress.Model
	steps [][]string // the nodes of each super-step, in order
	bad   map[string]bool
	done  bool
}

func newSummaryView(inner runView, path string, errW io.Writer, now func() time.Time) *summaryView {
	return &summaryView{runView: inner, path: path, errW: errW, now: now, m: progress.New(progress.Options{}), bad: map[string]bool{}}
}

func (v *summaryView) Emit(e runner.Event) {
	v.runView.Emit(e)
	v.mu.Lock()
	defer v.mu.Unlock()
	if e.TS.IsZero() {
		e.TS = v.now()
	}
	v.m.Apply(e)
	switch e.Event {
	case runner.EventStepStart:
		v.steps = append(v.steps, append([]string(nil), e.Nodes...))
	case runner.EventNodeError:
		if e.Kind != "cancelled" {
			v.bad[e.Node] = true
		}
	case runner.EventNodeEnd:
		if e.Error != "" {
			v.bad[e.Node] = true
		}
	}
}

// Close closes the inner view, then appends the summary. A summary that
// cannot be written is reported but does not change the run's outcome.
func (v *summaryView) Close() {
	v.runView.Close()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.done {
		return
	}
	v.done = true
	f, err := os.OpenFile(v.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(v.errW, "lgx: job summary: %v\n", err)
		return
	}
	defer f.Close()
	if _, err := io.WriteString(f, v.markdown()); err != nil {
		fmt.Fprintf(v.errW, "lgx: job summary: %v\n", err)
	}
}

// markdown renders the job summary.
func (v *summaryView) markdown() string {
	var b strings.Builder
	m := v.m.Snapshot()
	status := m.Status
	if status == "" {
		status = "stopped"
	}
	icon := map[string]string{"completed": "✅", "failed": "❌", "cancelled": "⏹️", "interrupted": "⏸️"}[status]
	fmt.Fprintf(&b, "## %s lgx run `%s`: %s\n\n", icon, m.Run, status)
	if line := endLine(m); line != "" {
		fmt.Fprintf(&b, "%s.\n\n", line)
	}
	header, rows := summaryRows(m)
	if len(rows) > 0 {
		b.WriteString("| " + strings.Join(header, " | ") + " |\n")
		b.WriteString("|" + strings.Repeat(" --- |", len(header)) + "\n")
		for _, r := range rows {
			for i := range r {
				r[i] = summaryCell(r[i])
			}
			b.WriteString("| " + strings.Join(r, " | ") + " |\n")
		}
		b.WriteString("\n")
	}
	if len(v.steps) > 0 {
		b.WriteString("<details><summary>Path taken</summary>\n\n```mermaid\nflowchart LR\n")
		b.WriteString("  START([START])\n")
		prev := "START"
		for i, nodes := range v.steps {
			id := fmt.Sprintf("s%d", i+1)
			fmt.Fprintf(&b, "  subgraph %s [\"step %d\"]\n", id, i+1)
			for _, n := range nodes {
				nid := fmt.Sprintf("%s_%s", id, n)
				fmt.Fprintf(&b, "    %s[\"%s\"]\n", nid, n)
				if v.bad[n] {
					fmt.Fprintf(&b, "    class %s failed\n", nid)
				}
			}
			b.WriteString("  end\n")
			fmt.Fprintf(&b, "  %s --> %s\n", prev, id)
			prev = id
		}
		fmt.Fprintf(&b, "  %s --> END([%s])\n", prev, status)
		b.WriteString("  classDef failed fill:#fdd,stroke:#c00\n```\n\n</details>\n")
	}
	return b.String()
}

// summaryCell escapes a Markdown table cell.
func summaryCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
