package runner

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// stepStatesWF loops five steps appending long entries (stored as deltas
// from the store's second checkpoint of the key), fans out, and writes a
// secret, numbers of every kind and a string JSON would HTML-escape.
const stepStatesWF = `
lgx: 1
name: states
secrets: [TOKEN]
state:
  n: {type: integer, default: 0}
  log: {type: list, reducer: append}
  items: {type: list, default: [1, 2, 3]}
  doubled: {type: list, reducer: append}
  ratio: number
  note: string
  blob: {type: object, default: {}}
nodes:
  inc:
    type: set
    output:
      n: "${{ state.n + 1 }}"
      log: "${{ 'entry ' + string(state.n) + ': ' + repeat('lorem <ipsum> & ', 20) }}"
      ratio: "${{ state.n / 3 }}"
  double:
    type: set
    for_each: ${{ state.items }}
    output:
      doubled: ${{ item * 2.5 }}
  seal:
    type: set
    output:
      note: "${{ 'sealed with ' + secrets.TOKEN }}"
      blob: {big: 9007199254740993, small: 0.1, k: "${{ secrets.TOKEN }}"}
edges:
  - {from: START, to: inc}
  - from: inc
    when:
      - if: state.n < 5
        to: inc
    else: double
  - {from: double, to: seal}
`

// stateLines are the JSON of each step_end's State, as --stream values
// encodes them (no HTML escaping).
func stateLines(t *testing.T, events []Event) []string {
	t.Helper()
	var out []string
	for _, e := range events {
		if e.Event != EventStepEnd || e.State == nil {
			continue
		}
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(map[string]any{"step": e.Step, "state": e.State}); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.String())
	}
	return out
}

// TestStepStatesMatchLocal: the states rebuilt from the store's
// checkpoints are, byte for byte once encoded, those a local run sends
// with StepState, secrets redacted though the reader has none; a reader
// that skipped what was committed sends nothing more.
func TestStepStatesMatchLocal(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := compileYAML(t, stepStatesWF)
	local := &eventLog{}
	res, err := Run(ctx, g, Options{Store: st, Sink: local, StepState: true, Environ: []string{"TOKEN=s3cr3t-value"}})
	if err != nil {
		t.Fatal(err)
	}
	want := stateLines(t, local.events)
	if len(want) != 7 {
		t.Fatalf("the local run sent %d states, want 7", len(want))
	}
	ss, err := NewStepStates(ctx, st, res.RunID, &spec.UserConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := &eventLog{}
	if err := ss.Poll(ctx, got); err != nil {
		t.Fatal(err)
	}
	lines := stateLines(t, got.events)
	if strings.Join(lines, "") != strings.Join(want, "") {
		t.Errorf("rebuilt states:\n%s\nwant the local run's:\n%s", strings.Join(lines, ""), strings.Join(want, ""))
	}
	for _, l := range lines {
		if strings.Contains(l, "s3cr3t") {
			t.Fatalf("a secret leaked: %s", l)
		}
	}
	for _, e := range got.events {
		if e.Run != res.RunID || e.Event != EventStepEnd {
			t.Errorf("event %s of run %q", e.Event, e.Run)
		}
	}
	// Polled again: nothing new.
	again := &eventLog{}
	if err := ss.Poll(ctx, again); err != nil || len(again.events) > 0 {
		t.Fatalf("second poll: %d events, %v", len(again.events), err)
	}
	// Skipped: nothing.
	sk, err := NewStepStates(ctx, st, res.RunID, &spec.UserConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sk.Skip(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sk.Poll(ctx, again); err != nil || len(again.events) > 0 {
		t.Fatalf("after Skip: %d events, %v", len(again.events), err)
	}
}

// TestStepStatesBadCheckpoint: a checkpoint that does not fit the
// workflow is an error naming the run, step and key, not a panic or a
// value sent.
func TestStepStatesBadCheckpoint(t *testing.T) {
	g := compileYAML(t, stepStatesWF)
	tests := []struct {
		name    string
		changed map[string]json.RawMessage
		want    string
	}{
		{"unknown key", map[string]json.RawMessage{"nope": json.RawMessage(`1`)}, `checkpoint 1: unknown state key "nope"`},
		{"wrong type", map[string]json.RawMessage{"n": json.RawMessage(`"x"`)}, `checkpoint 1: key n: expected integer`},
		{"not JSON", map[string]json.RawMessage{"n": json.RawMessage(`{`)}, `checkpoint 1: key n:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &StepStates{g: g, runID: "R1"}
			s.reset()
			err := s.apply(&store.Checkpoint{RunID: "R1", Step: 1, Changed: tt.changed}, &eventLog{})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "run R1") {
				t.Fatalf("error %v, want it to say %q", err, tt.want)
			}
			var ce *checkpointError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T, want a *checkpointError", err)
			}
		})
	}
}

// flakyFollower hands on the first `partial` checkpoints of its first read
// and then fails, as a read whose delta no longer fits what the cursor
// decoded does.
type flakyFollower struct {
	*store.SQLite
	partial int
	reads   int
}

func (f *flakyFollower) ReadCheckpoints(ctx context.Context, cur *store.CheckpointCursor, each func(*store.Checkpoint) error) error {
	f.reads++
	if f.reads > 1 {
		return f.SQLite.ReadCheckpoints(ctx, cur, each)
	}
	n := 0
	err := f.SQLite.ReadCheckpoints(ctx, cur, func(cp *store.Checkpoint) error {
		if n == f.partial {
			return errors.New("key \"log\": its value at step 2, which this step extends, is missing or was replaced")
		}
		n++
		return each(cp)
	})
	return err
}

// TestStepStatesRereadOnce: a read that fails midway (not for a
// checkpoint that does not fit the workflow) is done again from the start,
// once, and each step is sent once, in order, with the local run's state.
func TestStepStatesRereadOnce(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	local := &eventLog{}
	res, err := Run(ctx, compileYAML(t, stepStatesWF), Options{Store: st, Sink: local, StepState: true, Environ: []string{"TOKEN=x"}})
	if err != nil {
		t.Fatal(err)
	}
	ff := &flakyFollower{SQLite: st, partial: 4} // steps 0 to 3 sent, then the failure
	ss, err := NewStepStates(ctx, ff, res.RunID, &spec.UserConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := &eventLog{}
	if err := ss.Poll(ctx, got); err != nil {
		t.Fatal(err)
	}
	if ff.reads != 2 {
		t.Errorf("%d reads, want 2 (the failed one, then one from the start)", ff.reads)
	}
	if g, w := strings.Join(stateLines(t, got.events), ""), strings.Join(stateLines(t, local.events), ""); g != w {
		t.Errorf("states after a reread:\n%s\nwant:\n%s", g, w)
	}
}
