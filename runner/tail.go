package runner

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// Tail follows, from the store, a run that other processes execute (an
// engine's workers): the journal's records become the events a local run
// sends for them, so that a client shows the same live view. An
// invocation is seen once it is recorded, so node_start and its end come
// together (with the recorded start time); a step starts with its first
// record and ends with the next step's first, or the run's end. Tail sees
// top-level invocations only; it sends no token, attempt or wait events,
// and no step's state (node_end carries the recorded writes). A record's
// attempts become retry events and its model usage node_end's GenAI, so
// that the summary's RETRIES and TOKENS read as a local run's.
type Tail struct {
	st       store.Store
	runID    string
	workflow string
	sink     Sink
	seen     map[string]string // path -> status last reported
	step     int               // the step whose step_start was sent (0: none)
	nodes    []string          // its nodes seen so far
	started  bool
}

// NewTail returns a Tail of run runID sending to sink.
func NewTail(st store.Store, runID, workflow string, sink Sink) *Tail {
	return &Tail{st: st, runID: runID, workflow: workflow, sink: sink, seen: map[string]string{}}
}

// Skip marks what is recorded now as seen: a resumed run's earlier steps
// are not reported again.
func (t *Tail) Skip(ctx context.Context) error {
	invs, err := t.st.Invocations(ctx, t.runID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	t.SkipRecords(invs)
	return nil
}

// SkipRecords marks invs as seen: what a resume read before it let the
// run go on (Skip after that could miss what the workers recorded in
// between).
func (t *Tail) SkipRecords(invs []*store.Invocation) {
	for _, inv := range invs {
		t.seen[inv.Path] = inv.Status
	}
}

// Poll sends the events of what was recorded since the last Poll.
func (t *Tail) Poll(ctx context.Context) error {
	if !t.started {
		t.started = true
		t.emit(Event{Event: EventRunStart, Workflow: t.workflow, TS: time.Now()})
	}
	invs, err := t.st.Invocations(ctx, t.runID)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var fresh []*store.Invocation
	for _, inv := range invs {
		if !topLevel(inv.Path) || t.seen[inv.Path] == inv.Status {
			continue
		}
		// A paused interrupt answered later is recorded again: report it
		// again; anything else only once.
		if prev, ok := t.seen[inv.Path]; ok && prev != store.InvocationInterrupted {
			continue
		}
		fresh = append(fresh, inv)
	}
	slices.SortStableFunc(fresh, func(a, b *store.Invocation) int {
		if c := cmp.Compare(a.Step, b.Step); c != 0 {
			return c
		}
		return a.EndedAt.Compare(b.EndedAt)
	})
	for _, inv := range fresh {
		t.seen[inv.Path] = inv.Status
		if inv.Step != t.step {
			t.endStep(inv.StartedAt)
			t.step, t.nodes = inv.Step, []string{inv.Node}
			t.emit(Event{Event: EventStepStart, Step: inv.Step, Nodes: []string{inv.Node}, TS: inv.StartedAt})
		} else if !slices.Contains(t.nodes, inv.Node) {
			t.nodes = append(t.nodes, inv.Node)
		}
		var idx *int
		if inv.Index >= 0 {
			i := inv.Index
			idx = &i
		}
		t.emit(Event{Event: EventNodeStart, Step: inv.Step, Node: inv.Node, Index: idx, Path: inv.Path, TS: inv.StartedAt})
		end := Event{Event: EventNodeEnd, Step: inv.Step, Node: inv.Node, Index: idx, Path: inv.Path, TS: inv.EndedAt,
			Attempt: inv.Attempts, DurationMS: inv.EndedAt.Sub(inv.StartedAt).Milliseconds()}
		switch inv.Status {
		case store.InvocationInterrupted:
			t.emit(Event{Event: EventInterrupt, Step: inv.Step, Node: inv.Node, Index: idx, Path: inv.Path, Message: inv.Error, TS: inv.EndedAt})
			continue
		case store.InvocationFailed:
			end.Event = EventNodeError
		}
		end.Error, end.Kind = inv.Error, inv.ErrorKind
		end.Writes = recordedWrites(inv.Writes)
		// What the record keeps of the attempts and model calls: a
		// retry event per failed attempt (their kinds and delays stay on
		// the worker), and the tokens, as one model call's usage.
		for a := 1; a < inv.Attempts; a++ {
			t.emit(Event{Event: EventRetry, Step: inv.Step, Node: inv.Node, Index: idx, Path: inv.Path, Attempt: a, TS: inv.EndedAt})
		}
		if rec, ok := RecordedLLM(inv); ok && (rec.InputTokens > 0 || rec.OutputTokens > 0) {
			end.GenAI = []nodes.GenAIInfo{{InputTokens: int(rec.InputTokens), OutputTokens: int(rec.OutputTokens), Started: inv.StartedAt, Ended: inv.EndedAt}}
		}
		t.emit(end)
	}
	return nil
}

// End sends the end of the last step and run_end with the run's status,
// its error (redacted, as recorded) and its output.
func (t *Tail) End(status store.Status, errMsg string, output map[string]any, at time.Time) {
	t.endStep(at)
	t.emit(Event{Event: EventRunEnd, Step: t.step, Status: string(status), Error: errMsg, State: output, TS: at})
}

// recordedWrites are an invocation record's writes (secrets redacted when
// recorded), without the model-usage record kept beside them; nil when
// there are none.
func recordedWrites(raw []byte) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return nil
	}
	m, _ := v.(map[string]any)
	delete(m, RecordKeyLLM)
	if len(m) == 0 {
		return nil
	}
	return m
}

func (t *Tail) endStep(at time.Time) {
	if t.step > 0 {
		t.emit(Event{Event: EventStepEnd, Step: t.step, TS: at})
	}
}

func (t *Tail) emit(e Event) {
	e.Run = t.runID
	t.sink.Emit(e)
}

// Follow polls every `every` until ctx ends; the caller polls once more
// after, for what was recorded last.
func (t *Tail) Follow(ctx context.Context, every time.Duration) {
	PollEvery(ctx, every, func(ctx context.Context) {
		_ = t.Poll(ctx) // a busy store: the next poll catches up
	})
}

// PollEvery calls poll (with ctx's values but not its cancellation, so a
// poll is never cut short) every `every` until ctx ends, or less often
// when polls are slow: after a poll that took d it waits at least
// pollShare × d, so that following a run costs at most about a tenth of
// a core however large the run's records grow (each poll reads them all).
func PollEvery(ctx context.Context, every time.Duration, poll func(context.Context)) {
	for {
		began := time.Now()
		poll(context.WithoutCancel(ctx))
		wait := max(every, pollShare*time.Since(began))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// pollShare is how many times a poll's own duration PollEvery waits
// before the next one, at least.
const pollShare = 9

// topLevel reports whether path names an invocation of the run's graph
// ("3/fetch", "3/fetch[2]"), not a tool call, a subgraph's child or an
// answer's record.
func topLevel(path string) bool {
	step, rest, ok := strings.Cut(path, "/")
	return ok && step != "" && !strings.ContainsAny(rest, "/@")
}
