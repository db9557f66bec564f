package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// testCheckpointExtensions: a store that WritesExtensions builds each
// extended value from the key's previous value (small or large, a list or
// a string, written whole or extended, in one write or a batch), readers
// get full values, and an extension of a value the store does not hold is
// refused without changing anything.
func testCheckpointExtensions(t *testing.T, s store.Store) {
	if !store.WritesExtensions(s) {
		t.Skip("the store does not accept extensions")
	}
	ctx := context.Background()
	mustCreate(t, s, newRun("run", at(0)))
	state := map[string]json.RawMessage{} // what replaying the checkpoints must give
	check := func(when string) {
		t.Helper()
		got := map[string]json.RawMessage{}
		for _, cp := range mustCheckpoints(t, s, "run") {
			if len(cp.Extended) > 0 {
				t.Fatalf("%s: Checkpoints returns extensions", when)
			}
			for k, v := range cp.Changed {
				got[k] = v
			}
		}
		for k, v := range state {
			if string(got[k]) != string(v) {
				t.Fatalf("%s: key %s = %.80s… (%d bytes), want %.80s… (%d bytes)", when, k, got[k], len(got[k]), v, len(v))
			}
		}
	}
	// ext extends the expected value of k by the elements or text of tail.
	ext := func(k, tail string) store.Extension {
		prev := state[k]
		x := store.Extension{Base: len(prev), Tail: json.RawMessage(tail)}
		var next string
		switch {
		case prev[0] == '"':
			next = string(prev[:len(prev)-1]) + tail[1:]
		case strings.TrimSpace(tail[1:len(tail)-1]) == "":
			next = string(prev)
		case strings.TrimSpace(string(prev[1:len(prev)-1])) == "":
			next = string(prev[:len(prev)-1]) + tail[1:]
		default:
			next = string(prev[:len(prev)-1]) + "," + tail[1:]
		}
		state[k] = json.RawMessage(next)
		return x
	}
	cp := func(step int, changed map[string]json.RawMessage, extended map[string]store.Extension) *store.Checkpoint {
		for k, v := range changed {
			state[k] = v
		}
		return &store.Checkpoint{RunID: "run", Step: step, Changed: changed, Extended: extended, At: at(step)}
	}
	write := func(c *store.Checkpoint) {
		t.Helper()
		if err := s.WriteCheckpoint(ctx, c); err != nil {
			t.Fatalf("WriteCheckpoint(step %d): %v", c.Step, err)
		}
		check(fmt.Sprintf("step %d", c.Step))
	}
	blk := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }

	write(cp(1, map[string]json.RawMessage{
		"empty": raw(`[ ]`), "small": raw(`["a"]`), "text": raw(`"ab\n"`),
		"big":     raw(`["` + blk('x', 70<<10) + `"]`),
		"bigtext": raw(`"` + blk('y', 100<<10-1) + `"`),
	}, nil))
	write(cp(2, nil, map[string]store.Extension{
		"empty": ext("empty", `["x",1]`), "small": ext("small", `[{"k":null}]`), "text": ext("text", `"c\u00e9\""`),
		"big":     ext("big", `["`+blk('z', 200<<10)+`",2]`), // crosses block ends of the summary
		"bigtext": ext("bigtext", `"`+blk('w', 28<<10)+`"`),  // all but its quote: 128 KiB, a block end
	}))
	write(cp(3, map[string]json.RawMessage{"counter": raw(`3`)}, map[string]store.Extension{
		"empty": ext("empty", `[]`), "text": ext("text", `""`),
		"big":     ext("big", `[true]`),
		"bigtext": ext("bigtext", `"v"`),
	}))
	// Whole again, sharing a prefix with the extended value: stored as a
	// delta against what the extensions built.
	grown := string(state["big"][:len(state["big"])-1]) + `,"whole"]`
	write(cp(4, map[string]json.RawMessage{"big": raw(grown)}, nil))

	// Refused, changing nothing.
	for _, tc := range []struct {
		name string
		c    *store.Checkpoint
	}{
		{"wrong base", &store.Checkpoint{RunID: "run", Step: 5, Extended: map[string]store.Extension{
			"big": {Base: len(state["big"]) - 1, Tail: raw(`[1]`)}}}},
		{"string onto a list", &store.Checkpoint{RunID: "run", Step: 5, Extended: map[string]store.Extension{
			"big": {Base: len(state["big"]), Tail: raw(`"1"`)}}}},
		{"list onto a string", &store.Checkpoint{RunID: "run", Step: 5, Extended: map[string]store.Extension{
			"text": {Base: len(state["text"]), Tail: raw(`[1]`)}}}},
		{"unknown key", &store.Checkpoint{RunID: "run", Step: 5, Extended: map[string]store.Extension{
			"nope": {Base: 2, Tail: raw(`[1]`)}}}},
	} {
		if err := s.WriteCheckpoint(ctx, tc.c); !errors.Is(err, store.ErrExtensionBase) {
			t.Errorf("WriteCheckpoint(%s) = %v, want ErrExtensionBase", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name string
		x    store.Extension
	}{
		{"not JSON", store.Extension{Base: 5, Tail: raw(`["x"`)}},
		{"an object", store.Extension{Base: 5, Tail: raw(`{}`)}},
		{"a number", store.Extension{Base: 5, Tail: raw(`1`)}},
		{"no base", store.Extension{Base: 0, Tail: raw(`[1]`)}},
	} {
		c := &store.Checkpoint{RunID: "run", Step: 5, Extended: map[string]store.Extension{"small": tc.x}}
		if err := s.WriteCheckpoint(ctx, c); err == nil {
			t.Errorf("WriteCheckpoint(%s) succeeded, want error", tc.name)
		}
	}
	both := &store.Checkpoint{RunID: "run", Step: 5, Changed: map[string]json.RawMessage{"small": raw(`[]`)},
		Extended: map[string]store.Extension{"small": {Base: len(state["small"]), Tail: raw(`[1]`)}}}
	if err := s.WriteCheckpoint(ctx, both); err == nil {
		t.Errorf("WriteCheckpoint(changed and extended) succeeded, want error")
	}
	check("after refused writes")

	// A batch: each step extends what the one before built.
	var batch []store.StepRecord
	for step := 5; step < 9; step++ {
		batch = append(batch, store.StepRecord{Checkpoint: cp(step, nil, map[string]store.Extension{
			"big": ext("big", fmt.Sprintf(`["%s"]`, blk('a'+byte(step), 30<<10))), "text": ext("text", `"!"`)})})
	}
	if err := store.CommitSteps(ctx, s, batch); err != nil {
		t.Fatalf("CommitSteps: %v", err)
	}
	check("after the batch")

	// The latest step rewritten without the keys it extended: they are
	// back at their earlier values.
	before := map[string]json.RawMessage{"text": state["text"], "big": state["big"]}
	write(cp(9, nil, map[string]store.Extension{"text": ext("text", `"?"`), "big": ext("big", `[9]`)}))
	state["text"], state["big"] = before["text"], before["big"]
	write(cp(9, map[string]json.RawMessage{"counter": raw(`9`)}, nil))
	checkMerged(t, s, "run")
}

// checkMerged checks that store.ResumeCheckpoints gives the run's
// checkpoints folded into one (for a store.CheckpointFolder), or all of
// them, and that replaying it gives the state replaying Checkpoints gives.
func checkMerged(t *testing.T, s store.Store, runID string) {
	t.Helper()
	ctx := context.Background()
	all := mustCheckpoints(t, s, runID)
	got, err := store.ResumeCheckpoints(ctx, s, runID)
	if err != nil {
		t.Fatalf("ResumeCheckpoints: %v", err)
	}
	if _, ok := s.(store.CheckpointFolder); !ok {
		if len(got) != len(all) {
			t.Fatalf("ResumeCheckpoints = %d checkpoints, want all %d", len(got), len(all))
		}
		return
	}
	if len(all) == 0 {
		if len(got) != 0 {
			t.Fatalf("ResumeCheckpoints = %d checkpoints of a run with none", len(got))
		}
		return
	}
	if len(got) != 1 {
		t.Fatalf("ResumeCheckpoints = %d checkpoints, want 1 merged", len(got))
	}
	want := *all[len(all)-1]
	want.Changed = map[string]json.RawMessage{}
	for _, cp := range all {
		for k, v := range cp.Changed {
			want.Changed[k] = v
		}
	}
	checkCheckpoint(t, got[0], &want)
}
