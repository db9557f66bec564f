package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// TestReadCheckpointsForward: a cursor hands on each checkpoint once, with
// the full values Checkpoints gives, whether written one by one or several
// in one transaction, values stored as deltas against a step read in an
// earlier call included; nothing when nothing new was written.
func TestReadCheckpointsForward(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, freshSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const run = "R1"
	if err := s.CreateRun(ctx, &store.Run{ID: run, Workflow: "wf", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A list growing by a long entry a step: a delta from step 1 on.
	list := func(step int) json.RawMessage {
		entries := make([]string, step+1)
		for i := range entries {
			entries[i] = fmt.Sprintf("%03d %s", i, strings.Repeat("words ", 14))
		}
		b, _ := json.Marshal(entries)
		return b
	}
	cp := func(step int) *store.Checkpoint {
		return &store.Checkpoint{RunID: run, Step: step, Next: []string{"n"},
			Changed: map[string]json.RawMessage{"log": list(step), "n": json.RawMessage(fmt.Sprint(step))}}
	}
	cur := store.NewCheckpointCursor(run)
	for _, steps := range [][]int{{0}, {1}, {}, {2, 3, 4}, {}, {5}} {
		var recs []store.StepRecord
		for _, st := range steps {
			recs = append(recs, store.StepRecord{Checkpoint: cp(st)})
		}
		if len(recs) > 0 {
			if err := store.CommitSteps(ctx, s, recs); err != nil {
				t.Fatal(err)
			}
		}
		var got []*store.Checkpoint
		if err := store.ReadCheckpoints(ctx, s, cur, func(c *store.Checkpoint) error {
			got = append(got, c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(steps) {
			t.Fatalf("after writing steps %v: read %d checkpoints", steps, len(got))
		}
		for i, c := range got {
			want := cp(steps[i])
			if c.Step != want.Step || string(c.Changed["log"]) != string(want.Changed["log"]) || string(c.Changed["n"]) != string(want.Changed["n"]) || len(c.Next) != 1 {
				t.Errorf("step %d: got step %d, log %s, n %s, next %v", want.Step, c.Step, c.Changed["log"], c.Changed["n"], c.Next)
			}
		}
	}
	var deltas int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM checkpoints WHERE run_id = $1 AND deltas IS NOT NULL`, run).Scan(&deltas); err != nil {
		t.Fatal(err)
	}
	if deltas == 0 {
		t.Fatal("no checkpoint was stored as a delta; the test does not test decoding across reads")
	}
	err = store.ReadCheckpoints(ctx, s, store.NewCheckpointCursor("nope"), func(*store.Checkpoint) error { return nil })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown run: %v, want ErrNotFound", err)
	}
}
