package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// An invocation recorded with its step's checkpoint reads back as it was
// recorded, whether it was stored as a lone record in the checkpoint's
// row (what the runner hands for a step of one invocation) or, when
// anything about it is not what a lone record leaves out, in an
// invocation batch; the cases list which.
func TestSQLiteLoneInvocations(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	base := func() *Invocation {
		return &Invocation{RunID: "r", Step: 4, Node: "step", Index: -1, Status: InvocationOK,
			Writes: json.RawMessage(`{"i":5}`), Attempts: 1, StartedAt: at, EndedAt: at.Add(7 * time.Microsecond)}
	}
	tests := []struct {
		name   string
		change func(*Invocation)
		lone   bool
	}{
		{"default path left empty", func(*Invocation) {}, true},
		{"default path given", func(inv *Invocation) { inv.Path = "4/step" }, true},
		{"nil writes, several attempts", func(inv *Invocation) { inv.Writes, inv.Attempts = nil, 3 }, true},
		{"empty writes", func(inv *Invocation) { inv.Writes = json.RawMessage{} }, true},
		{"ended before it started, before 1970", func(inv *Invocation) {
			inv.StartedAt, inv.EndedAt = time.Unix(-5, 7).UTC(), time.Unix(-9, 1).UTC()
		}, true},
		{"unicode node", func(inv *Invocation) { inv.Node, inv.Path = "ñ", "4/ñ" }, true},
		{"other path", func(inv *Invocation) { inv.Path = "4/step/tool:c1" }, false},
		{"path of another step", func(inv *Invocation) { inv.Path = "14/step" }, false},
		{"path of another node", func(inv *Invocation) { inv.Path = "4/stop" }, false},
		{"for_each item", func(inv *Invocation) { inv.Index = 0 }, false},
		{"continued", func(inv *Invocation) {
			inv.Status, inv.Error, inv.ErrorKind = InvocationContinued, "boom", "http"
		}, false},
		{"error without kind", func(inv *Invocation) { inv.Error = "x" }, false},
		{"kind without error", func(inv *Invocation) { inv.ErrorKind = "x" }, false},
		{"another step than the checkpoint", func(inv *Invocation) { inv.Step = 3 }, false},
		{"zero start", func(inv *Invocation) { inv.StartedAt = time.Time{} }, false},
		{"zero end", func(inv *Invocation) { inv.EndedAt = time.Time{} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRunStore(t, "r")
			inv := base()
			tt.change(inv)
			want := *inv
			want.Path = pathOf(inv)
			cp := &Checkpoint{RunID: "r", Step: 4, Changed: map[string]json.RawMessage{"i": json.RawMessage(`5`)}, At: at.Add(time.Millisecond)}
			if err := s.CommitSteps(ctx, []StepRecord{{Invocations: []*Invocation{inv}, Checkpoint: cp}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.Invocations(ctx, "r")
			if err != nil || len(got) != 1 {
				t.Fatalf("Invocations = %v, %v", deref(got), err)
			}
			if !reflect.DeepEqual(*got[0], want) {
				t.Errorf("read %+v\nwant %+v", *got[0], want)
			}
			if (got[0].Writes == nil) != (want.Writes == nil) {
				t.Errorf("writes nil/empty not kept apart: %#v", got[0].Writes)
			}
			var batches, lones int
			if err := s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM invocation_batches), (SELECT count(*) FROM checkpoint_batches WHERE invs IS NOT NULL)`).Scan(&batches, &lones); err != nil {
				t.Fatal(err)
			}
			if wantLone := map[bool]int{true: 1}[tt.lone]; lones != wantLone || batches != 1-wantLone {
				t.Errorf("%d invocation batches, %d rows with lone records; want lone = %v", batches, lones, tt.lone)
			}
		})
	}
}

// A run's invocations read back in step order whichever way each was
// stored, and a lone record replaces an earlier record of its path (an
// interrupt answered, its node run again alone in its step).
func TestSQLiteLoneInvocationsMerged(t *testing.T) {
	ctx := context.Background()
	s := newRunStore(t, "r", "q")
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	inv := func(run string, step int, node string, index int, status string) *Invocation {
		return &Invocation{RunID: run, Step: step, Node: node, Index: index, Status: status, Attempts: 1,
			Writes: json.RawMessage(fmt.Sprintf(`{"s":%d}`, step)), StartedAt: at.Add(time.Duration(step) * time.Second),
			EndedAt: at.Add(time.Duration(step)*time.Second + time.Millisecond)}
	}
	cp := func(run string, step int) *Checkpoint {
		return &Checkpoint{RunID: run, Step: step, Changed: map[string]json.RawMessage{"s": json.RawMessage(fmt.Sprint(step))},
			At: at.Add(time.Duration(step)*time.Second + 2*time.Millisecond)}
	}
	// Step 3 waits at an interrupt; the run is answered and step 3 runs
	// again, alone, as do steps 4 and 5 (two runs in one batch), with for_each
	// items of step 2 recorded between.
	if err := s.CommitSteps(ctx, []StepRecord{
		{Invocations: []*Invocation{inv("r", 1, "a", -1, InvocationOK)}, Checkpoint: cp("r", 1)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordInvocations(ctx, []*Invocation{inv("r", 2, "each", 0, InvocationOK), inv("r", 2, "each", 1, InvocationOK)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitSteps(ctx, []StepRecord{{Checkpoint: cp("r", 2)}}); err != nil {
		t.Fatal(err)
	}
	waiting := inv("r", 3, "ask", -1, InvocationInterrupted)
	waiting.Error = "approve?"
	if err := s.RecordInvocation(ctx, waiting); err != nil {
		t.Fatal(err)
	}
	b := s.NewStepBatch()
	for _, rec := range []StepRecord{
		{Invocations: []*Invocation{inv("r", 3, "ask", -1, InvocationOK)}, Checkpoint: cp("r", 3)},
		{Invocations: []*Invocation{inv("q", 1, "x", -1, InvocationOK)}, Checkpoint: cp("q", 1)},
		{Invocations: []*Invocation{inv("r", 4, "a", -1, InvocationOK)}, Checkpoint: cp("r", 4)},
		{Invocations: []*Invocation{inv("r", 5, "b", -1, InvocationOK)}, Checkpoint: cp("r", 5)},
	} {
		if err := b.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.Invocations(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, g := range got {
		paths = append(paths, g.Path+" "+g.Status)
	}
	want := []string{"1/a ok", "2/each[0] ok", "2/each[1] ok", "3/ask ok", "4/a ok", "5/b ok"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("Invocations(r) = %q, want %q", paths, want)
	}
	if got, err := s.Invocations(ctx, "q"); err != nil || len(got) != 1 || got[0].Path != "1/x" || got[0].RunID != "q" {
		t.Errorf("Invocations(q) = %v, %v", deref(got), err)
	}
}

func TestIsDefaultPath(t *testing.T) {
	tests := []struct {
		path string
		step int
		node string
		want bool
	}{
		{"", 3, "n", true},
		{"3/n", 3, "n", true},
		{"0/n", 0, "n", true},
		{"12345/node", 12345, "node", true},
		{"3/n", 4, "n", false},
		{"3/n", 3, "m", false},
		{"3/nn", 3, "n", false},
		{"3n", 3, "n", false},
		{"33/n", 3, "n", false},
		{"3/n[0]", 3, "n", false},
		{"/n", 3, "n", false},
	}
	for _, tt := range tests {
		if got := isDefaultPath(tt.path, tt.step, tt.node); got != tt.want {
			t.Errorf("isDefaultPath(%q, %d, %q) = %v, want %v", tt.path, tt.step, tt.node, got, tt.want)
		}
		if tt.want && tt.path != "" && InvocationPath(tt.step, tt.node, -1) != tt.path {
			t.Errorf("case %q is no default path", tt.path)
		}
	}
}

func TestDecodeLoneInvsErrors(t *testing.T) {
	var l loneRow
	l.add(&Invocation{RunID: "r", Step: 2, Node: "a", Index: -1, Status: InvocationOK, Writes: json.RawMessage(`{"a":1}`),
		Attempts: 1, StartedAt: time.Unix(1, 0), EndedAt: time.Unix(2, 0)}, func() []byte { return nil })
	good := l.b
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{2}, good[1:]...)},
		{"truncated in writes", good[:len(good)-8]},
		{"truncated at duration", good[:len(good)-1]},
		{"node past the end", []byte{loneInvVersion, 2, 0xff, 0x0f}},
		{"negative step", append([]byte{loneInvVersion, 1}, good[2:]...)},
		{"step out of int32", []byte{loneInvVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if invs, err := decodeLoneInvs(nil, "r", tt.b); !errors.Is(err, errBadBatch) {
				t.Errorf("decode = %d invocations, %v; want errBadBatch", len(invs), err)
			}
		})
	}
}

// FuzzDecodeLoneInvs: a damaged row's lone records give an error, never a
// panic, and what decodes re-encodes to the same invocations.
func FuzzDecodeLoneInvs(f *testing.F) {
	var l loneRow
	for i := range 3 {
		l.add(&Invocation{RunID: "r", Step: 2 + i, Node: "a", Index: -1, Status: InvocationOK, Writes: json.RawMessage(`{"a":1}`),
			Attempts: 1, StartedAt: time.Unix(1, int64(i)), EndedAt: time.Unix(2, int64(i))}, func() []byte { return nil })
	}
	f.Add(l.b)
	f.Add([]byte{loneInvVersion})
	f.Add([]byte{loneInvVersion, 2, 1, 'x', 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		invs, err := decodeLoneInvs(nil, "r", b)
		if err != nil {
			return
		}
		var again loneRow
		for _, inv := range invs {
			again.add(inv, func() []byte { return nil })
		}
		if len(invs) == 0 {
			return
		}
		re, err := decodeLoneInvs(nil, "r", again.b)
		if err != nil || !reflect.DeepEqual(re, invs) {
			t.Fatalf("re-encoding %v gave %v, %v", deref(invs), deref(re), err)
		}
	})
}

// Invocations reads only the checkpoint rows that hold lone records
// (through their partial index), not every checkpoint of the run: a
// Temporal worker, whose steps have none, reads a run's invocations at
// every step.
func TestSQLiteLoneInvocationsIndexed(t *testing.T) {
	s := newRunStore(t)
	rows, err := s.db.Query("EXPLAIN QUERY PLAN "+loneInvsQuery, "r")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) != 1 || !strings.Contains(plan[0], "USING INDEX checkpoint_batches_invs") {
		t.Errorf("query plan %q, want a search of checkpoint_batches_invs alone", plan)
	}
}
