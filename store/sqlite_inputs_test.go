package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/crc32"
	"path/filepath"
	"testing"
)

// inputsRun returns a run whose inputs hold a long list and a number, with
// InputValues as the runner gives them: pieces of Inputs.
func inputsRun(id string) (*Run, json.RawMessage) {
	list := growingList(40)
	inputs := append(append([]byte(`{"messages":`), list...), `,"n":1}`...)
	return &Run{ID: id, Status: StatusRunning, Inputs: inputs, InputValues: map[string]json.RawMessage{
		"messages": inputs[len(`{"messages":`) : len(`{"messages":`)+len(list)],
		"n":        inputs[len(inputs)-2 : len(inputs)-1],
	}}, list
}

// TestSQLiteFirstCheckpointAgainstInputs: a run's step-0 checkpoint
// repeats its inputs; a value that is its input is stored as a reference
// to the run's inputs, not a second copy, and every reader (Checkpoints,
// MergedCheckpoint, a cursor; after the store was reopened too) gets it
// whole. Given whole are values that differ from the input, and inputs
// whose pieces do not make up Inputs.
func TestSQLiteFirstCheckpointAgainstInputs(t *testing.T) {
	ctx := context.Background()
	type write func(s *SQLite, cp *Checkpoint) error
	writes := map[string]write{
		"WriteCheckpoint": func(s *SQLite, cp *Checkpoint) error { return s.WriteCheckpoint(ctx, cp) },
		"CommitSteps":     func(s *SQLite, cp *Checkpoint) error { return CommitSteps(ctx, s, []StepRecord{{Checkpoint: cp}}) },
		"StepBatch": func(s *SQLite, cp *Checkpoint) error {
			b := s.NewStepBatch()
			if err := b.Add(StepRecord{Checkpoint: cp}); err != nil {
				return err
			}
			return b.Commit(ctx)
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lgx.db")
			s := openStore(t, path)
			for _, tc := range []struct {
				id       string
				mangle   func(r *Run)
				value    func(list json.RawMessage) json.RawMessage
				referred bool
			}{
				{"same", nil, func(l json.RawMessage) json.RawMessage { return bytes.Clone(l) }, true},
				{"other value", nil, func(l json.RawMessage) json.RawMessage { return extend(l, `,"x"]`) }, false},
				{"pieces that are not the inputs", func(r *Run) {
					r.InputValues["n"] = json.RawMessage("2")
				}, func(l json.RawMessage) json.RawMessage { return bytes.Clone(l) }, false},
				{"no pieces", func(r *Run) { r.InputValues = nil }, func(l json.RawMessage) json.RawMessage { return bytes.Clone(l) }, false},
			} {
				run, list := inputsRun(tc.id)
				if tc.mangle != nil {
					tc.mangle(run)
				}
				if err := s.CreateRun(ctx, run); err != nil {
					t.Fatal(err)
				}
				v0 := tc.value(list)
				if err := write(s, &Checkpoint{RunID: tc.id, Step: 0, Changed: map[string]json.RawMessage{"messages": v0, "n": json.RawMessage("1")}}); err != nil {
					t.Fatalf("%s: step 0: %v", tc.id, err)
				}
				// A later step grows the list: stored against step 0.
				v1 := extend(v0, `,"more"]`)
				if err := write(s, &Checkpoint{RunID: tc.id, Step: 1, Changed: map[string]json.RawMessage{"messages": v1}}); err != nil {
					t.Fatalf("%s: step 1: %v", tc.id, err)
				}
				stored := storedCheckpoints(t, s, tc.id)
				if referred := len(stored[0].enc.Changed)+len(stored[0].enc.Deltas) < len(list)/2; referred != tc.referred {
					t.Errorf("%s: step 0 stored as a reference to the inputs = %v, want %v (%d + %d bytes)",
						tc.id, referred, tc.referred, len(stored[0].enc.Changed), len(stored[0].enc.Deltas))
				}
				checkInputsRead(t, s, tc.id, v0, v1)
			}
			s.Close()
			// Another process: no cache of what was written.
			s = openStore(t, path)
			run, list := inputsRun("same")
			checkInputsRead(t, s, run.ID, list, extend(list, `,"more"]`))
		})
	}
}

// checkInputsRead checks that every reader of run's checkpoints gets
// messages as v0 at step 0 and v1 at step 1, and n as 1.
func checkInputsRead(t *testing.T, s *SQLite, run string, v0, v1 json.RawMessage) {
	t.Helper()
	ctx := context.Background()
	cps, err := s.Checkpoints(ctx, run)
	if err != nil || len(cps) != 2 {
		t.Fatalf("%s: Checkpoints: %d, %v", run, len(cps), err)
	}
	if !bytes.Equal(cps[0].Changed["messages"], v0) || string(cps[0].Changed["n"]) != "1" || !bytes.Equal(cps[1].Changed["messages"], v1) {
		t.Errorf("%s: Checkpoints gave other values", run)
	}
	m, err := s.MergedCheckpoint(ctx, run)
	if err != nil || !bytes.Equal(m.Changed["messages"], v1) || string(m.Changed["n"]) != "1" {
		t.Errorf("%s: MergedCheckpoint gave other values (%v)", run, err)
	}
	var got []json.RawMessage
	cur := NewCheckpointCursor(run)
	if err := s.ReadCheckpoints(ctx, cur, func(cp *Checkpoint) error {
		got = append(got, cp.Changed["messages"])
		return nil
	}); err != nil || len(got) != 2 || !bytes.Equal(got[0], v0) || !bytes.Equal(got[1], v1) {
		t.Errorf("%s: ReadCheckpoints gave other values (%d, %v)", run, len(got), err)
	}
}

func TestInputsMatch(t *testing.T) {
	for _, tc := range []struct {
		inputs string
		values map[string]string
		want   bool
	}{
		{`{"a":[1,2],"b":"x"}`, map[string]string{"a": "[1,2]", "b": `"x"`}, true},
		{`{"a\u003c":1}`, map[string]string{"a<": "1"}, true}, // keys as json.Marshal writes them
		{`{"a<":1}`, map[string]string{"a<": "1"}, false},
		{`{"a":[1,2],"b":"x"}`, map[string]string{"a": "[1,2]"}, false},
		{`{"a":[1,2]}`, map[string]string{"a": "[1,2]", "b": `"x"`}, false},
		{`{"b":"x","a":[1,2]}`, map[string]string{"a": "[1,2]", "b": `"x"`}, false},
		{`{"a": [1,2]}`, map[string]string{"a": "[1,2]"}, false},
		{`{"a":[1,2]} `, map[string]string{"a": "[1,2]"}, false},
		{`{"a":[1,2]}`, map[string]string{"a": "[1,3]"}, false},
		{`{"a":[1,2]}`, map[string]string{"a": "[1,"}, false},
		{`{}`, map[string]string{}, true},
		{``, map[string]string{"a": "1"}, false},
	} {
		values := make(map[string]json.RawMessage, len(tc.values))
		for k, v := range tc.values {
			values[k] = json.RawMessage(v)
		}
		if got := inputsMatch([]byte(tc.inputs), values); got != tc.want {
			t.Errorf("inputsMatch(%s, %v) = %v, want %v", tc.inputs, tc.values, got, tc.want)
		}
	}
}

// A value stored as a reference to the run's inputs is refused, not
// rebuilt wrong, when the reader has no inputs or they differ.
func TestInputReferenceDamaged(t *testing.T) {
	v := []byte(`["a long enough value, past the minimum of a delta"]`)
	raw := appendDelta(nil, delta{key: "k", baseStep: inputStep, prefix: len(v), sum: crc32.Checksum(v, castagnoli)})
	for name, inputs := range map[string]func() ([]byte, error){
		"no reader":   nil,
		"no such key": func() ([]byte, error) { return []byte(`{"other":1}`), nil },
		"other value": func() ([]byte, error) {
			return []byte(`{"k":["a long enough value, past the minimum of a delta!"]}`), nil
		},
		"not JSON":     func() ([]byte, error) { return []byte(`{"k":`), nil },
		"read failing": func() ([]byte, error) { return nil, errors.New("disk on fire") },
	} {
		rb := rebuilder{inputs: inputs}
		if _, err := rb.apply(0, nil, raw); err == nil {
			t.Errorf("%s: rebuilt a value", name)
		}
	}
	rb := rebuilder{inputs: func() ([]byte, error) { return append(append([]byte(`{"k":`), v...), '}'), nil }}
	got, err := rb.apply(0, nil, raw)
	if err != nil || !bytes.Equal(got["k"], v) {
		t.Errorf("with the inputs: %s, %v", got["k"], err)
	}
}
