package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestInvBatchRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		invs []*Invocation
	}{
		{"empty batch", nil},
		{"one, all fields", []*Invocation{{RunID: "r", Path: "3/charge[4]", Step: 3, Node: "charge", Index: 4,
			Status: InvocationFailed, Writes: json.RawMessage(`{"a":[1,2]}`), Error: "boom", ErrorKind: "http",
			Attempts: 3, StartedAt: at, EndedAt: at.Add(time.Second)}}},
		{"nil and empty writes, zero times, no for_each", []*Invocation{
			{RunID: "r", Path: "1/a", Step: 1, Node: "a", Index: -1, Status: InvocationOK},
			{RunID: "r", Path: "1/b", Step: 1, Node: "b", Index: -1, Status: InvocationOK, Writes: json.RawMessage{}},
		}},
		{"path derived from step, node, index", []*Invocation{{RunID: "r", Step: 7, Node: "n", Index: 2, Status: InvocationOK}}},
		{"times before 1970, unicode, subgraph path", []*Invocation{{RunID: "r", Path: "2/sub[1]/3/ñ", Step: 2, Node: "ñ",
			Index: 1, Status: InvocationContinued, StartedAt: time.Unix(-5, 7).UTC(), EndedAt: time.Unix(0, 1).UTC()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeInvBatch(nil, "r", appendInvBatch(nil, tt.invs))
			if err != nil {
				t.Fatal(err)
			}
			var want []*Invocation
			for _, inv := range tt.invs {
				w := *inv
				w.Path = pathOf(inv)
				want = append(want, &w)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %s, want %s", fmt.Sprint(deref(got)), fmt.Sprint(deref(want)))
			}
			if len(got) == 2 && (got[0].Writes != nil || got[1].Writes == nil) {
				t.Errorf("writes nil/empty not kept apart: %#v %#v", got[0].Writes, got[1].Writes)
			}
		})
	}
}

func deref(invs []*Invocation) []Invocation {
	out := make([]Invocation, len(invs))
	for i, inv := range invs {
		out[i] = *inv
	}
	return out
}

func TestInvBatchDecodeErrors(t *testing.T) {
	good := appendInvBatch(nil, []*Invocation{{RunID: "r", Path: "1/a", Step: 1, Node: "a", Index: -1, Status: "ok",
		Writes: json.RawMessage(`{"a":1}`), StartedAt: time.Unix(1, 0)}})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{2}, good[1:]...)},
		{"truncated in writes", good[:len(good)-6]},
		{"truncated at end time", good[:len(good)-1]},
		{"bad time flag", append(append([]byte{}, good[:len(good)-1]...), 7)},
		{"length past the end", []byte{invBatchVersion, 0xff, 0xff, 0xff, 0x0f}},
		{"step out of int32", append(appendString([]byte{invBatchVersion}, "p"), 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if invs, err := decodeInvBatch(nil, "r", tt.b); !errors.Is(err, errBadBatch) {
				t.Errorf("decode = %d invocations, %v; want errBadBatch", len(invs), err)
			}
		})
	}
}

// FuzzDecodeInvBatch: a batch row read from a damaged or foreign file
// gives an error, never a panic, and what decodes re-encodes to the same
// invocations.
func FuzzDecodeInvBatch(f *testing.F) {
	f.Add(appendInvBatch(nil, []*Invocation{{RunID: "r", Path: "1/a", Step: 1, Node: "a", Index: -1, Status: "ok",
		Writes: json.RawMessage(`{"a":1}`), Attempts: 1, StartedAt: time.Unix(1, 2), EndedAt: time.Unix(3, 4)}}))
	f.Add([]byte{invBatchVersion})
	f.Add([]byte{invBatchVersion, 1, 'x', 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		invs, err := decodeInvBatch(nil, "r", b)
		if err != nil {
			return
		}
		again, err := decodeInvBatch(nil, "r", appendInvBatch(nil, invs))
		if err != nil || !reflect.DeepEqual(again, invs) && len(invs) > 0 {
			t.Fatalf("re-encoding %v gave %v, %v", deref(invs), deref(again), err)
		}
	})
}

func TestMergeInvocations(t *testing.T) {
	inv := func(path string, step int, w string) *Invocation {
		return &Invocation{Path: path, Step: step, Writes: json.RawMessage(w)}
	}
	tests := []struct {
		name string
		in   []*Invocation
		want string
	}{
		{"empty", nil, "[]"},
		{"ordered by step, stable within", []*Invocation{inv("2/a", 2, "1"), inv("1/b", 1, "2"), inv("1/a", 1, "3"), inv("2/b", 2, "4")},
			"[1/b=2 1/a=3 2/a=1 2/b=4]"},
		{"a re-recorded path keeps its last record, at the end of its step",
			[]*Invocation{inv("1/a", 1, "1"), inv("1/b", 1, "2"), inv("2/c", 2, "3"), inv("1/a", 1, "4")},
			"[1/b=2 1/a=4 2/c=3]"},
		{"recorded three times", []*Invocation{inv("1/a", 1, "1"), inv("1/a", 1, "2"), inv("1/a", 1, "3")}, "[1/a=3]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []string{}
			for _, inv := range mergeInvocations(tt.in) {
				got = append(got, inv.Path+"="+string(inv.Writes))
			}
			if fmt.Sprint(got) != tt.want {
				t.Errorf("merged = %v, want %s", got, tt.want)
			}
		})
	}
}

// TestSQLiteInvocationBatchRows checks that the writes that carry many
// invocations store them in one row each: a step batch of CommitSteps, and
// RecordInvocations (the recorder's commit of a parallel step's items). A
// row per invocation made them cost three b-tree operations each
// (issue #13).
func TestSQLiteInvocationBatchRows(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"r", "q"} {
		if err := s.CreateRun(ctx, &Run{ID: id, Workflow: "wf", Status: StatusRunning, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var steps []StepRecord
	for i := range 64 {
		steps = append(steps, StepRecord{
			Invocations: []*Invocation{{RunID: "r", Step: i, Node: "n", Index: -1, Status: InvocationOK, Writes: json.RawMessage(`{"i":1}`)}},
			Checkpoint:  &Checkpoint{RunID: "r", Step: i, Changed: map[string]json.RawMessage{"i": json.RawMessage(fmt.Sprint(i))}},
		})
	}
	if err := s.CommitSteps(ctx, steps); err != nil {
		t.Fatal(err)
	}
	var items []*Invocation
	for i := range 100 {
		items = append(items, &Invocation{RunID: "r", Step: 64, Node: "each", Index: i, Status: InvocationOK})
	}
	// Another run's items in the same write get a row of their own.
	items = append(items, &Invocation{RunID: "q", Step: 0, Node: "x", Index: -1, Status: InvocationOK})
	if err := s.RecordInvocations(ctx, items); err != nil {
		t.Fatal(err)
	}
	count := func(table string) int {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if rows, legacy := count("invocation_batches"), count("invocations"); rows != 3 || legacy != 0 {
		t.Errorf("%d batch rows and %d invocation rows; want 3 (steps, items of r, item of q) and 0", rows, legacy)
	}
	if rows, legacy := count("checkpoint_batches"), count("checkpoints"); rows != 1 || legacy != 0 {
		t.Errorf("%d checkpoint batch rows and %d checkpoint rows; want 1 and 0", rows, legacy)
	}
	cps, err := s.Checkpoints(ctx, "r")
	if err != nil || len(cps) != 64 || cps[63].Step != 63 || string(cps[63].Changed["i"]) != "63" {
		t.Fatalf("Checkpoints(r) = %d, %v", len(cps), err)
	}
	invs, err := s.Invocations(ctx, "r")
	if err != nil || len(invs) != 164 {
		t.Fatalf("Invocations(r) = %d, %v; want 164", len(invs), err)
	}
	if invs[0].Path != "0/n" || invs[63].Path != "63/n" || invs[64].Path != "64/each[0]" || invs[163].Path != "64/each[99]" {
		t.Errorf("order: %s %s %s %s", invs[0].Path, invs[63].Path, invs[64].Path, invs[163].Path)
	}
	if invs, err := s.Invocations(ctx, "q"); err != nil || len(invs) != 1 || invs[0].RunID != "q" {
		t.Errorf("Invocations(q) = %v, %v", invs, err)
	}
}

// TestOpenSQLiteUpgradesV5: the invocations a store of schema version 5
// holds (one row each) are read before those recorded after the upgrade
// (batches), and a path recorded again replaces its old row's record.
func TestOpenSQLiteUpgradesV5(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:5]); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO runs (id, workflow, status, started_at) VALUES ('old', 'wf', 'running', 1700000000000000000)`)
	exec(t, db, `INSERT INTO invocations (run_id, path, step, node, idx, status, writes, attempts, started_at) VALUES
		('old', '1/b', 1, 'b', -1, 'ok', '{"b":1}', 1, 1700000000000000001),
		('old', '2/c', 2, 'c', -1, 'interrupted', NULL, 1, NULL),
		('old', '1/a', 1, 'a', -1, 'ok', '{"a":1}', 1, NULL)`)
	db.Close()

	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatalf("OpenSQLite on a v5 store: %v", err)
	}
	defer s.Close()
	for _, inv := range []*Invocation{
		{RunID: "old", Path: "2/c", Step: 2, Node: "c", Index: -1, Status: InvocationOK, Writes: json.RawMessage(`{"c":2}`)},
		{RunID: "old", Path: "1/a2", Step: 1, Node: "a2", Index: -1, Status: InvocationOK},
	} {
		if err := s.RecordInvocation(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	invs, err := s.Invocations(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, inv := range invs {
		got = append(got, fmt.Sprintf("%s:%s=%s", inv.Path, inv.Status, inv.Writes))
	}
	want := `[1/b:ok={"b":1} 1/a:ok={"a":1} 1/a2:ok= 2/c:ok={"c":2}]`
	if fmt.Sprint(got) != want {
		t.Errorf("invocations = %v, want %s", got, want)
	}
	if !invs[0].StartedAt.Equal(time.Unix(0, 1700000000000000001)) {
		t.Errorf("legacy start time = %v", invs[0].StartedAt)
	}
}

// TestSQLiteCheckpointsOldAndRewritten: the checkpoints a store of schema
// version 5 holds come first; a step written again (a checkpoint table
// row, then a batch, then a batch of several) reads as its last write, in
// step order.
func TestSQLiteCheckpointsOldAndRewritten(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	db := rawDB(t, "file:"+path+"?_txlock=immediate")
	if err := migrate(ctx, db, path, migrations[:5]); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `INSERT INTO runs (id, workflow, status, started_at) VALUES ('old', 'wf', 'running', 1700000000000000000)`)
	exec(t, db, `INSERT INTO checkpoints (run_id, step, changed, next, joins, at) VALUES
		('old', 1, '{"k":1}', '["a"]', '{}', 1700000000000000001),
		('old', 2, '{"k":2}', '["b"]', '{}', NULL)`)
	db.Close()
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cp := func(step int, k string) *Checkpoint {
		return &Checkpoint{RunID: "old", Step: step, Changed: map[string]json.RawMessage{"k": json.RawMessage(k)}, Next: []string{"n"}}
	}
	read := func() string {
		t.Helper()
		cps, err := s.Checkpoints(ctx, "old")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range cps {
			got = append(got, fmt.Sprintf("%d:%s", c.Step, c.Changed["k"]))
		}
		m, err := s.MergedCheckpoint(ctx, "old")
		if err != nil || m == nil || m.Step != cps[len(cps)-1].Step || string(m.Changed["k"]) != string(cps[len(cps)-1].Changed["k"]) {
			t.Errorf("MergedCheckpoint = %+v, %v; want the last of %v", m, err, got)
		}
		return fmt.Sprint(got)
	}
	if err := s.WriteCheckpoint(ctx, cp(3, "3")); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), "[1:1 2:2 3:3]"; got != want {
		t.Errorf("after a new step: %s, want %s", got, want)
	}
	if err := s.WriteCheckpoint(ctx, cp(2, `"two"`)); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), `[1:1 2:"two" 3:3]`; got != want {
		t.Errorf("after rewriting an old step: %s, want %s", got, want)
	}
	// A batch that rewrites step 3 and adds 4, and one whose steps go back.
	if err := s.CommitSteps(ctx, []StepRecord{{Checkpoint: cp(3, "33")}, {Checkpoint: cp(4, "4")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitSteps(ctx, []StepRecord{{Checkpoint: cp(5, "5")}, {Checkpoint: cp(1, "11")}}); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), `[1:11 2:"two" 3:33 4:4 5:5]`; got != want {
		t.Errorf("after batches: %s, want %s", got, want)
	}
	cps, _ := s.Checkpoints(ctx, "old")
	if !cps[1].At.IsZero() || len(cps[1].Next) != 1 {
		t.Errorf("step 2 = %+v", cps[1])
	}
}

func TestLastPerStep(t *testing.T) {
	tests := []struct {
		steps []int // in the order written; the entry's index tells which
		want  string
	}{
		{nil, "[]"},
		{[]int{1, 2, 3}, "[1@0 2@1 3@2]"},
		{[]int{1, 2, 1}, "[1@2 2@1]"},
		{[]int{3, 2, 1, 2}, "[1@2 2@3 3@0]"},
	}
	for _, tt := range tests {
		var in []cpEntry
		for i, st := range tt.steps {
			in = append(in, cpEntry{step: st, enc: EncodedCheckpoint{Joins: []byte(fmt.Sprint(i))}})
		}
		got := []string{}
		for _, e := range lastPerStep(in) {
			got = append(got, fmt.Sprintf("%d@%s", e.step, e.enc.Joins))
		}
		if fmt.Sprint(got) != tt.want {
			t.Errorf("lastPerStep(%v) = %v, want %s", tt.steps, got, tt.want)
		}
	}
}

// FuzzDecodeCPBatch: a damaged checkpoint batch gives an error, never a
// panic, and what decodes re-encodes to the same checkpoints.
func FuzzDecodeCPBatch(f *testing.F) {
	f.Add(appendCPEntry([]byte{invBatchVersion}, 3, time.Unix(5, 6), EncodedCheckpoint{Changed: []byte(`{"a":1}`), Next: []byte(`[]`), Joins: []byte{}}))
	f.Add([]byte{invBatchVersion, 2, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeCPBatch(nil, b)
		if err != nil {
			return
		}
		enc := []byte{invBatchVersion}
		for _, e := range es {
			enc = appendCPEntry(enc, e.step, e.at, e.enc)
		}
		again, err := decodeCPBatch(nil, enc)
		if err != nil || !reflect.DeepEqual(again, es) {
			t.Fatalf("re-encoding %v gave %v, %v", es, again, err)
		}
	})
}
