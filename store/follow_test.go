package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestReadCheckpointsForward: a cursor hands on each checkpoint once, with
// the full values Checkpoints gives, however the steps were written (one
// by one, or several in one batch), including values stored as deltas
// against a step read in an earlier call; and nothing when nothing new was
// written.
func TestReadCheckpointsForward(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "lgx.db"))
	const run = "R1"
	if err := s.CreateRun(ctx, &Run{ID: run, Workflow: "wf", Status: StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cp := func(step int) *Checkpoint {
		return &Checkpoint{RunID: run, Step: step, Next: []string{"n"}, Changed: map[string]json.RawMessage{
			"messages": growingList(step + 1), // a delta from step 1 on
			"n":        json.RawMessage(fmt.Sprint(step)),
		}}
	}
	cur := NewCheckpointCursor(run)
	read := func() []*Checkpoint {
		t.Helper()
		var got []*Checkpoint
		if err := s.ReadCheckpoints(ctx, cur, func(c *Checkpoint) error {
			got = append(got, c)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// What each call writes before reading: single steps, then a batch.
	writes := [][]int{{0}, {1}, {}, {2}, {3, 4, 5}, {}, {6}}
	for _, steps := range writes {
		var recs []StepRecord
		for _, st := range steps {
			recs = append(recs, StepRecord{Checkpoint: cp(st)})
		}
		if len(recs) > 0 {
			if err := CommitSteps(ctx, s, recs); err != nil {
				t.Fatal(err)
			}
		}
		got := read()
		if len(got) != len(steps) {
			t.Fatalf("after writing steps %v: read %d checkpoints, want %d", steps, len(got), len(steps))
		}
		for i, c := range got {
			want := cp(steps[i])
			if c.Step != want.Step || string(c.Changed["messages"]) != string(want.Changed["messages"]) || string(c.Changed["n"]) != string(want.Changed["n"]) {
				t.Errorf("step %d: got step %d, %d-byte messages, n=%s; want the values written", want.Step, c.Step, len(c.Changed["messages"]), c.Changed["n"])
			}
			if len(c.Next) != 1 || c.Next[0] != "n" {
				t.Errorf("step %d: next %v", c.Step, c.Next)
			}
		}
	}
	// The deltas were exercised: the history holds some.
	if ds := deltaSteps(t, s, run); len(ds) == 0 {
		t.Fatal("no checkpoint was stored as a delta; the test does not test decoding across reads")
	}

	// A step written again comes again, in the order written.
	if err := s.WriteCheckpoint(ctx, cp(6)); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got) != 1 || got[0].Step != 6 || string(got[0].Changed["messages"]) != string(cp(6).Changed["messages"]) {
		t.Fatalf("rewritten step 6: read %d checkpoints", len(got))
	}
}

func TestReadCheckpointsUnknownRun(t *testing.T) {
	ctx := context.Background()
	for name, st := range map[string]Store{
		"sqlite": openStore(t, filepath.Join(t.TempDir(), "lgx.db")),
		"memory": NewMemory(),
	} {
		t.Run(name, func(t *testing.T) {
			err := ReadCheckpoints(ctx, st, NewCheckpointCursor("nope"), func(*Checkpoint) error { return nil })
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("err %v, want ErrNotFound", err)
			}
		})
	}
}

// TestReadCheckpointsFallback: a store that is not a CheckpointFollower
// (Memory, which merges its checkpoints) gives the latest step once, with
// every key's value.
func TestReadCheckpointsFallback(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	const run = "R1"
	if err := m.CreateRun(ctx, &Run{ID: run, Workflow: "wf", Status: StatusRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	cur := NewCheckpointCursor(run)
	var steps []int
	each := func(c *Checkpoint) error {
		steps = append(steps, c.Step)
		if c.Step == 2 && (string(c.Changed["a"]) != "0" || string(c.Changed["b"]) != "2") {
			return fmt.Errorf("step 2: %s", c.Changed)
		}
		return nil
	}
	for _, w := range []struct {
		step int
		key  string
	}{{0, "a"}, {1, "b"}, {2, "b"}} {
		if err := m.WriteCheckpoint(ctx, &Checkpoint{RunID: run, Step: w.step, Changed: map[string]json.RawMessage{w.key: json.RawMessage(fmt.Sprint(w.step))}}); err != nil {
			t.Fatal(err)
		}
		if w.step == 1 {
			continue // two steps between reads: the latest comes
		}
		if err := ReadCheckpoints(ctx, m, cur, each); err != nil {
			t.Fatal(err)
		}
	}
	if err := ReadCheckpoints(ctx, m, cur, each); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(steps) != "[0 2]" {
		t.Fatalf("steps read %v, want [0 2]", steps)
	}
}
