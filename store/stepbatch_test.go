package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// stepRecords returns n steps of run id from step first: each with one
// invocation and a checkpoint of a counter, a list that grows past the
// delta threshold (so later steps are stored as deltas) and a string.
func stepRecords(id string, first, n int) []StepRecord {
	var out []StepRecord
	at := time.Unix(1700000000, 0).UTC()
	for i := first; i < first+n; i++ {
		list := "[" + strings.Repeat(`"abcdefgh",`, i) + `"end"]`
		out = append(out, StepRecord{
			Invocations: []*Invocation{{RunID: id, Step: i, Node: "n", Index: -1, Status: InvocationOK,
				Writes: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Attempts: 1,
				StartedAt: at.Add(time.Duration(i) * time.Millisecond), EndedAt: at.Add(time.Duration(i)*time.Millisecond + 1)}},
			Checkpoint: &Checkpoint{RunID: id, Step: i, Next: []string{"n"}, Joins: json.RawMessage(`{}`),
				At: at.Add(time.Duration(i) * time.Millisecond),
				Changed: map[string]json.RawMessage{"i": json.RawMessage(fmt.Sprint(i)), "list": json.RawMessage(list),
					"s": json.RawMessage(`"x<y>\u00e9"`)}},
		})
	}
	return out
}

func newRunStore(t *testing.T, ids ...string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, id := range ids {
		if err := s.CreateRun(context.Background(), &Run{ID: id, Workflow: "wf", Status: StatusRunning, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// A StepBatch stores what CommitSteps stores, batch after batch in the
// buffers of the one before, and its records may be reused by the caller
// as soon as Add returns.
func TestSQLiteStepBatchAsCommitSteps(t *testing.T) {
	ctx := context.Background()
	want, got := newRunStore(t, "r"), newRunStore(t, "r")
	b := got.NewStepBatch()
	for _, part := range [][2]int{{0, 5}, {5, 40}, {45, 1}} {
		recs := stepRecords("r", part[0], part[1])
		if err := want.CommitSteps(ctx, recs); err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, rec := range recs {
			if err := b.Add(rec); err != nil {
				t.Fatal(err)
			}
			if b.Size() <= size {
				t.Errorf("Size %d after an Add, %d before", b.Size(), size)
			}
			size = b.Size()
			// The caller reuses its record at once: the batch kept nothing.
			for k := range rec.Checkpoint.Changed {
				rec.Checkpoint.Changed[k] = json.RawMessage(`"overwritten"`)
			}
			rec.Invocations[0].Writes = json.RawMessage(`{"overwritten":true}`)
		}
		if b.Len() != part[1] {
			t.Errorf("Len = %d, want %d", b.Len(), part[1])
		}
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if b.Len() != 0 || b.Size() != 0 {
			t.Errorf("after Commit: Len %d, Size %d", b.Len(), b.Size())
		}
	}
	wantCPs, err := want.Checkpoints(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	gotCPs, err := got.Checkpoints(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotCPs, wantCPs) {
		t.Errorf("checkpoints differ:\n got %v\nwant %v", gotCPs, wantCPs)
	}
	wantInvs, _ := want.Invocations(ctx, "r")
	gotInvs, err := got.Invocations(ctx, "r")
	if err != nil || !reflect.DeepEqual(deref(gotInvs), deref(wantInvs)) {
		t.Errorf("invocations differ (%v):\n got %v\nwant %v", err, deref(gotInvs), deref(wantInvs))
	}
	if n := storedDeltas(t, got); n == 0 {
		t.Error("no checkpoint stored a delta: the growing list was stored whole")
	}
}

// storedDeltas counts the checkpoints stored with deltas.
func storedDeltas(t *testing.T, s *SQLite) int {
	t.Helper()
	rows, err := s.db.Query(`SELECT cps FROM checkpoint_batches`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		es, err := decodeCPBatch(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.enc.Deltas != nil {
				n++
			}
		}
	}
	return n
}

// A record the store cannot keep is refused by Add, which leaves the batch
// as it was; the steps added before it are still committed.
func TestSQLiteStepBatchRefuses(t *testing.T) {
	ctx := context.Background()
	s := newRunStore(t, "r")
	b := s.NewStepBatch()
	recs := stepRecords("r", 0, 3)
	if err := b.Add(recs[0]); err != nil {
		t.Fatal(err)
	}
	n, size := b.Len(), b.Size()
	bad := []StepRecord{
		{Checkpoint: &Checkpoint{RunID: "r", Step: 1, Changed: map[string]json.RawMessage{"i": json.RawMessage(`{`)}}},
		{Checkpoint: &Checkpoint{RunID: "r", Step: 1, Extended: map[string]Extension{"nope": {Base: 9, Tail: json.RawMessage(`[1]`)}}}},
		{Invocations: []*Invocation{{RunID: "r", Step: 1}}, Checkpoint: recs[1].Checkpoint},
		{Checkpoint: nil},
	}
	for i, rec := range bad {
		if err := b.Add(rec); err == nil {
			t.Errorf("bad record %d was added", i)
		}
		if b.Len() != n || b.Size() != size {
			t.Errorf("bad record %d changed the batch: Len %d, Size %d; want %d, %d", i, b.Len(), b.Size(), n, size)
		}
	}
	if err := b.Add(recs[1]); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	cps, err := s.Checkpoints(ctx, "r")
	if err != nil || len(cps) != 2 || cps[1].Step != 1 || string(cps[1].Changed["i"]) != "1" {
		t.Fatalf("Checkpoints = %v, %v", cps, err)
	}
}

// A batch whose commit fails is emptied, and the run's delta cache
// forgotten: the next checkpoint is stored whole, not as a delta against a
// value that was never stored.
func TestSQLiteStepBatchCommitFails(t *testing.T) {
	ctx := context.Background()
	s := newRunStore(t, "r")
	b := s.NewStepBatch()
	for _, rec := range stepRecords("gone", 0, 3) { // a run that does not exist
		if err := b.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Commit = %v, want ErrNotFound", err)
	}
	if b.Len() != 0 || b.Size() != 0 {
		t.Errorf("after a failed Commit: Len %d, Size %d", b.Len(), b.Size())
	}
	if _, ok := s.enc.cache["gone"]; ok {
		t.Error("the failed run's delta cache is still held")
	}
	// The batch is usable afterwards.
	for _, rec := range stepRecords("r", 0, 2) {
		if err := b.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if cps, err := s.Checkpoints(ctx, "r"); err != nil || len(cps) != 2 {
		t.Fatalf("Checkpoints = %d, %v", len(cps), err)
	}
}

// A step rewritten after later ones (a resume that re-runs steps) drops
// the cached values of those steps: its deltas never point at them.
func TestSQLiteStepBatchRewrite(t *testing.T) {
	ctx := context.Background()
	s := newRunStore(t, "r")
	b := s.NewStepBatch()
	add := func(recs []StepRecord) {
		t.Helper()
		for _, rec := range recs {
			if err := b.Add(rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	add(stepRecords("r", 0, 10))
	redo := stepRecords("r", 5, 5)
	for i, rec := range redo {
		rec.Checkpoint.Changed["list"] = json.RawMessage(`["different",` + strings.Repeat(`"from before",`, i) + `"end"]`)
	}
	add(redo[:3])
	for _, c := range s.enc.cache["r"] {
		if c.step > 7 {
			t.Errorf("cached value of step %d after step 7 was rewritten", c.step)
		}
	}
	add(redo[3:])
	cps, err := s.Checkpoints(ctx, "r")
	if err != nil || len(cps) != 10 {
		t.Fatalf("Checkpoints = %d, %v", len(cps), err)
	}
	for i, rec := range redo {
		if got, want := string(cps[5+i].Changed["list"]), string(rec.Checkpoint.Changed["list"]); got != want {
			t.Errorf("step %d's list = %s, want %s", 5+i, got, want)
		}
	}
	// Steps 4-9 of the first pass, 8 and 9 of the second (against the
	// rewritten step 7) extend their list's value by 32 bytes or more.
	if n := storedDeltas(t, s); n != 8 {
		t.Errorf("%d checkpoints stored deltas, want 8", n)
	}
}

// validJSON's fast path agrees with json.Valid.
func TestValidJSON(t *testing.T) {
	for _, s := range []string{"0", "-0", "12", "-12", "01", "-", "--1", "1.5", "1e3", "", `""`, `"a"`, `"a`, `"\"`,
		`"\u00e9"`, "\"\t\"", `"é"`, " 1", "1 ", "true", "nul", `"a"b"`, `"<&>"`, "\"\x7f\"", "99999999999999999999999", "{}", "[]", "{]", "[}", "{ }"} {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid %v", s, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{"0", "-12", `"a"`, `"\n"`, "01", "1.5", `"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}
