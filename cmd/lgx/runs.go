package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// runsOptions are the flags and argument of lgx runs and its commands.
type runsOptions struct {
	store     storeFlag
	format    string // -o: text or json
	limit     int    // list -n
	run       string // show, history: the run id
	olderThan string // prune --older-than
}

func (a *app) runsCmd() *cobra.Command {
	var opts runsOptions
	cmd := &cobra.Command{
		Use:   "runs [list | show RUN | history RUN]",
		Short: "Show recorded runs, their steps, node timings and state",
		Example: `  lgx runs list
  lgx runs show 01JDZ8A6Q3X9Y2K7M4N5P6R7S8
  lgx runs history 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runsList(cmd.Context(), opts)
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&opts.format, "output", "o", "text", "format: text or json")
	pf.StringVar(&opts.store.kind, "store", "", "the store to read: sqlite:PATH or postgres://… (default $LGX_STORE, else sqlite under $LGX_HOME; runs made with --store memory are not kept)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List recorded runs, newest first",
		Example: `  lgx runs list
  lgx runs list -n 5 -o json | jq -r '.[] | select(.status=="failed") | .id'`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runsList(cmd.Context(), opts)
		},
	}
	list.Flags().IntVarP(&opts.limit, "limit", "n", 50, "show at most `N` runs (0 = all)")
	show := &cobra.Command{
		Use:   "show RUN",
		Short: "Status, steps, each node's attempts, timings and errors, and the state",
		Example: `  lgx runs show 01JDZ8A6Q3X9Y2K7M4N5P6R7S8
  lgx runs show 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -o json | jq .state`,
		Args: runIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.run = args[0]
			return a.runsShow(cmd.Context(), opts)
		},
	}
	history := &cobra.Command{
		Use:   "history RUN",
		Short: "Every checkpoint of a run, with the keys it changed",
		Example: `  lgx runs history 01JDZ8A6Q3X9Y2K7M4N5P6R7S8
  lgx runs history 01JDZ8A6Q3X9Y2K7M4N5P6R7S8 -o json | jq '.[].next'`,
		Args: runIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.run = args[0]
			return a.runsHistory(cmd.Context(), opts)
		},
	}
	prune := &cobra.Command{
		Use:   "prune --older-than AGE",
		Short: "Delete finished runs that ended more than AGE ago",
		Long: `prune deletes the completed, failed and cancelled runs that ended more
than AGE ago, with everything recorded for them (invocations, checkpoints,
workflow sources). Running runs and runs paused at an interrupt are kept.
AGE is a number and a unit: d (days), w (weeks), or a Go duration (36h).`,
		Example: `  lgx runs prune --older-than 30d
  lgx runs prune --older-than 2w -o json | jq length`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runsPrune(cmd.Context(), opts)
		},
	}
	prune.Flags().StringVar(&opts.olderThan, "older-than", "", "delete finished runs that ended more than `AGE` ago (30d, 2w, 36h)")
	cmd.AddCommand(list, show, history, prune)
	return cmd
}

// parseAge reads --older-than: a non-negative integer with d or w, or a Go
// duration; days are 24 hours (no calendar or DST arithmetic).
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("--older-than is required, e.g. --older-than 30d")
	}
	for unit, d := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 || v > 100000 {
				return 0, fmt.Errorf("--older-than %q: want a number of days or weeks, e.g. 30d or 2w", s)
			}
			return time.Duration(v) * d, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--older-than %q: want an age such as 30d, 2w or 36h", s)
	}
	return d, nil
}

// runsPrune deletes the finished runs that ended more than
// opts.olderThan ago and lists their ids.
func (a *app) runsPrune(ctx context.Context, opts runsOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	age, err := parseAge(opts.olderThan)
	if err != nil {
		return usageErr(err)
	}
	s, err := opts.store.openRecorded()
	if err != nil {
		return err
	}
	defer s.Close()
	p, ok := s.(store.Pruner)
	if !ok {
		return fmt.Errorf("the %s store cannot delete runs", opts.store.kind)
	}
	ids, err := p.PruneRuns(ctx, time.Now().Add(-age))
	if err != nil {
		return err
	}
	if opts.format == "json" {
		if ids == nil {
			ids = []string{}
		}
		return writeJSON(a.ios.Out, ids)
	}
	for _, id := range ids {
		fmt.Fprintln(a.ios.Out, id)
	}
	fmt.Fprintf(a.ios.Err, "pruned %d run%s that ended more than %s ago\n", len(ids), plural(len(ids)), opts.olderThan)
	return nil
}

func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return usageErrf("-o must be text or json, not %q", format)
	}
	return nil
}

// runJSON is a run as `lgx runs … -o json` prints it.
type runJSON struct {
	ID        string     `json:"id"`
	Workflow  string     `json:"workflow"`
	Status    string     `json:"status"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Error     string     `json:"error,omitempty"`
}

func toRunJSON(r *store.Run) runJSON {
	j := runJSON{ID: r.ID, Workflow: r.Workflow, Status: string(r.Status), StartedAt: r.StartedAt, Error: r.Error}
	if !r.EndedAt.IsZero() {
		t := r.EndedAt
		j.EndedAt = &t
	}
	return j
}

// runsList lists the recorded runs, newest first.
func (a *app) runsList(ctx context.Context, opts runsOptions) error {
	if err := checkFormat(opts.format); err != nil {
		return err
	}
	s, err := opts.store.openRecorded()
	if err != nil {
		return err
	}
	defer s.Close()
	runs, err := s.ListRuns(ctx, opts.limit)
	if err != nil {
		return err
	}
	if opts.format == "json" {
		list := make([]runJSON, len(runs))
		for i, r := range runs {
			list[i] = toRunJSON(r)
		}
		return writeJSON(a.ios.Out, list)
	}
	if len(runs) == 0 {
		fmt.Fprintln(a.ios.Err, "no runs recorded yet")
		return nil
	}
	tw := tabwriter.NewWriter(a.ios.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWORKFLOW\tSTATUS\tSTARTED\tDURATION")
	for _, r := range runs {
		dur := "-"
		if !r.EndedAt.IsZero() {
			dur = r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Workflow, r.Status, r.StartedAt.Local().Format("2006-01-02 15:04:05"), dur)
	}
	return tw.Flush()
}

// loadRun checks the output format, then fetches a run, its invocations
// and checkpoints from the store.
func loadRun(ctx context.Context, opts runsOptions) (*store.Run, []*store.Invocation, []*store.Checkpoint, error) {
	id := opts.run
	if err := checkFormat(opts.format); err != nil {
		return nil, nil, nil, err
	}
	s, err := opts.store.openRecorded()
	if err != nil {
		return nil, nil, nil, err
	}
	defer s.Close()
	run, err := s.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, usageErrf("no run %s (lgx runs list shows the recorded runs)", id)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	invs, err := s.Invocations(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	cps, err := s.Checkpoints(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return run, invs, cps, nil
}

// stateAt replays checkpoints (each holds only the keys its step changed)
// into the state as of the last one.
func stateAt(cps []*store.Checkpoint) map[string]json.RawMessage {
	state := map[string]json.RawMessage{}
	for _, cp := range cps {
		for k, v := range cp.Changed {
			state[k] = v
		}
	}
	return state
}

type invocationJSON struct {
	// Path names the invocation (SPEC §9.1): "2/review",
	// "3/each[1]/2/charge", "5/tools/tool:call_1".
	Path       string          `json:"path"`
	Step       int             `json:"step"`
	Node       string          `json:"node"`
	Index      *int            `json:"index,omitempty"`
	Status     string          `json:"status"`
	Attempts   int             `json:"attempts"`
	DurationMS float64         `json:"duration_ms"`
	Error      string          `json:"error,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Writes     json.RawMessage `json:"writes,omitempty"`
	// LLM is an llm_call's provider (the one that answered) and usage.
	LLM *runner.LLMRecord `json:"llm,omitempty"`
}

// toInvocationJSON is a recorded invocation as `lgx runs show` prints it.
func toInvocationJSON(inv *store.Invocation) invocationJSON {
	j := invocationJSON{Path: inv.Path, Step: inv.Step, Node: inv.Node, Status: inv.Status, Attempts: inv.Attempts,
		DurationMS: float64(inv.EndedAt.Sub(inv.StartedAt).Microseconds()) / 1000,
		Error:      inv.Error, Kind: inv.ErrorKind, Writes: runner.WritesWithoutLLM(inv.Writes)}
	if inv.Index >= 0 {
		idx := inv.Index
		j.Index = &idx
	}
	if rec, ok := runner.RecordedLLM(inv); ok {
		j.LLM = &rec
	}
	return j
}

// llmSummary is "backup, 120+30 tokens" for an llm_call's record.
func llmSummary(rec *runner.LLMRecord) string {
	s := rec.Provider
	if s == "" {
		s = "-"
	}
	if rec.InputTokens+rec.OutputTokens > 0 {
		s += fmt.Sprintf(", %d+%d tokens", rec.InputTokens, rec.OutputTokens)
	}
	if rec.USD > 0 {
		s += fmt.Sprintf(", $%.4f", rec.USD)
	}
	return s
}

// runsShow prints a run: its status, steps, invocations and state.
func (a *app) runsShow(ctx context.Context, opts runsOptions) error {
	run, invs, cps, err := loadRun(ctx, opts)
	if err != nil {
		return err
	}
	steps := 0
	if len(cps) > 0 {
		steps = cps[len(cps)-1].Step
	}
	list := make([]invocationJSON, len(invs))
	llm := false
	for i, inv := range invs {
		list[i] = toInvocationJSON(inv)
		llm = llm || list[i].LLM != nil
	}
	state := stateAt(cps)
	if opts.format == "json" {
		return writeJSON(a.ios.Out, struct {
			runJSON
			File        string                     `json:"file"`
			Steps       int                        `json:"steps"`
			Invocations []invocationJSON           `json:"invocations"`
			State       map[string]json.RawMessage `json:"state"`
		}{toRunJSON(run), run.File, steps, list, state})
	}
	w := a.ios.Out
	fmt.Fprintf(w, "run       %s\nworkflow  %s (%s)\nstatus    %s\nstarted   %s\n", run.ID, run.Workflow, run.File, run.Status, run.StartedAt.Local().Format(time.RFC3339))
	if !run.EndedAt.IsZero() {
		fmt.Fprintf(w, "ended     %s (%s)\n", run.EndedAt.Local().Format(time.RFC3339), run.EndedAt.Sub(run.StartedAt).Round(time.Millisecond))
	}
	if run.Error != "" {
		fmt.Fprintf(w, "error     %s\n", run.Error)
	}
	if l := run.Lease; l != nil && run.Status == store.StatusRunning {
		fmt.Fprintf(w, "owner     process %d on %s\n", l.PID, l.Host)
	}
	fmt.Fprintf(w, "steps     %d\n\n", steps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if llm { // the PROVIDER column only for runs that called a model
		fmt.Fprintln(tw, "STEP\tPATH\tSTATUS\tATTEMPTS\tDURATION\tPROVIDER\tERROR")
	} else {
		fmt.Fprintln(tw, "STEP\tPATH\tSTATUS\tATTEMPTS\tDURATION\tERROR")
	}
	for _, j := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%.1fms\t", j.Step, j.Path, j.Status, j.Attempts, j.DurationMS)
		if llm {
			prov := ""
			if j.LLM != nil {
				prov = llmSummary(j.LLM)
			}
			fmt.Fprintf(tw, "%s\t", prov)
		}
		fmt.Fprintf(tw, "%s\n", oneLine(j.Error, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nstate:")
	for _, k := range sortedKeys(state) {
		fmt.Fprintf(w, "  %s: %s\n", k, oneLine(string(state[k]), 200))
	}
	return nil
}

type checkpointJSON struct {
	Step    int                        `json:"step"`
	At      time.Time                  `json:"at"`
	Changed map[string]json.RawMessage `json:"changed"`
	Next    []string                   `json:"next"`
	// LLMCalls are the step's llm_call invocations: which provider
	// answered each, with its usage.
	LLMCalls []llmCallJSON `json:"llm_calls,omitempty"`
}

type llmCallJSON struct {
	Path string `json:"path"`
	runner.LLMRecord
}

// runsHistory prints every checkpoint of a run.
func (a *app) runsHistory(ctx context.Context, opts runsOptions) error {
	_, invs, cps, err := loadRun(ctx, opts)
	if err != nil {
		return err
	}
	calls := map[int][]llmCallJSON{}
	for _, inv := range invs {
		if rec, ok := runner.RecordedLLM(inv); ok {
			calls[inv.Step] = append(calls[inv.Step], llmCallJSON{Path: inv.Path, LLMRecord: rec})
		}
	}
	list := make([]checkpointJSON, len(cps))
	for i, cp := range cps {
		next := cp.Next
		if next == nil {
			next = []string{}
		}
		list[i] = checkpointJSON{Step: cp.Step, At: cp.At, Changed: cp.Changed, Next: next, LLMCalls: calls[cp.Step]}
	}
	if opts.format == "json" {
		return writeJSON(a.ios.Out, list)
	}
	for _, cp := range list {
		next := "END"
		if len(cp.Next) > 0 {
			next = strings.Join(cp.Next, ", ")
		}
		fmt.Fprintf(a.ios.Out, "step %d  %s  next: %s\n", cp.Step, cp.At.Local().Format("15:04:05.000"), next)
		for _, k := range sortedKeys(cp.Changed) {
			fmt.Fprintf(a.ios.Out, "  %s = %s\n", k, oneLine(string(cp.Changed[k]), 200))
		}
		for _, c := range cp.LLMCalls {
			fmt.Fprintf(a.ios.Out, "  llm %s: %s\n", c.Path, llmSummary(&c.LLMRecord))
		}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// oneLine shortens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// openRecorded opens the store of recorded runs for runs and resume. A
// memory store lives only inside the lgx process that ran with it, so a
// later command can never find a run there: asking for it is a mistake
// worth naming rather than an empty list.
func (f storeFlag) openRecorded() (store.Store, error) {
	if f.url() == "memory" {
		return nil, usageErrf("%s: a memory store lives only as long as the lgx run that used it; runs are kept only with --store sqlite (the default)", f.named())
	}
	return f.open()
}
