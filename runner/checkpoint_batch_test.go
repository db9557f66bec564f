package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// appendScalar gives exactly json.Marshal's bytes for what it encodes, and
// declines (for json.Marshal to encode) what it does not.
func TestAppendScalar(t *testing.T) {
	for _, v := range []any{nil, 0, -1, 1000, math.MaxInt64, math.MinInt64, int64(-7), true, false,
		0.0, math.Copysign(0, -1), 1.5, -2.25, 1e20, 1e21, 123456789e15, 1e-6, 1e-7, -3.4e-9, math.MaxFloat64, math.SmallestNonzeroFloat64,
		"", "plain text", "<html>", "a&b", `quote"`, `back\slash`, "tab\t", "é", "\u2028", "\x7f", "\xff"} {
		b, ok := appendScalar([]byte("prefix"), v, redactor{})
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if ok && string(b) != "prefix"+string(want) {
			t.Errorf("appendScalar(%#v) = %s, json.Marshal %s", v, b[len("prefix"):], want)
		}
		if !ok && string(b) != "prefix" {
			t.Errorf("appendScalar(%#v) declined but appended %q", v, b)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), []any{1}, map[string]any{}, int32(1)} {
		if _, ok := appendScalar(nil, v, redactor{}); ok {
			t.Errorf("appendScalar(%#v) encoded it", v)
		}
	}
	// With secrets declared a string may need redacting: json.Marshal's
	// path, through the redactor.
	if _, ok := appendScalar(nil, "s3cr3t", newRedactor([]string{"s3cr3t"})); ok {
		t.Error("appendScalar encoded a string of a run with secrets")
	}
}

func FuzzAppendScalar(f *testing.F) {
	f.Add(int64(1), 1.5, "x")
	f.Add(int64(-1), 1e-7, "<\u2028>")
	f.Fuzz(func(t *testing.T, i int64, x float64, s string) {
		for _, v := range []any{int(i), i, x, s} {
			b, ok := appendScalar(nil, v, redactor{})
			if !ok {
				continue
			}
			if want, err := json.Marshal(v); err != nil || string(b) != string(want) {
				t.Errorf("appendScalar(%#v) = %s, json.Marshal %s (%v)", v, b, want, err)
			}
		}
	})
}

// TestDurablePureStepAllocs bounds what a durable pure step allocates on
// SQLite (issue 13: S3 with a store ≤ 10 µs per iteration): the journal
// encodes each step into the store's batch at once, from one reused
// checkpoint, where it held a checkpoint, its map, each value's JSON and
// the store's copies per step until the batch was written (15 allocations
// per step before; the invocation record accounts for most of the rest).
func TestDurablePureStepAllocs(t *testing.T) {
	g := compileYAML(t, s3Workflow)
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	steps := 0
	allocs := testing.AllocsPerRun(3, func() {
		res, err := Run(context.Background(), g, Options{Environ: []string{}, Store: st})
		if err != nil || res.State["i"] != 1000 {
			t.Fatalf("%v %v", err, res)
		}
		steps = res.Steps
	})
	// 2.1 since the record of a step's one invocation is reused (6.1
	// before, 15.1 before the batch encoded steps as they came).
	if perStep := allocs / float64(steps); perStep > 3 {
		t.Errorf("%.1f allocations per durable pure step, want at most 3", perStep)
	}
	// Every step is recorded: the last checkpoint is the run's last step.
	id := ""
	runs, err := st.ListRuns(context.Background(), 1)
	if err != nil || len(runs) != 1 {
		t.Fatal(runs, err)
	}
	id = runs[0].ID
	cps, err := st.Checkpoints(context.Background(), id)
	if err != nil || len(cps) != steps+1 || string(cps[steps].Changed["acc"]) != "500500" {
		t.Fatalf("%d checkpoints for %d steps (%v); last %v", len(cps), steps, err, cps[len(cps)-1].Changed)
	}
	invs, err := st.Invocations(context.Background(), id)
	if err != nil || len(invs) != steps {
		t.Fatalf("%d invocations for %d steps (%v)", len(invs), steps, err)
	}
	// The reused record left nothing of one step in another's.
	for i, inv := range invs {
		node, w := "step", fmt.Sprintf(`{"i":%d}`, i/2+1)
		if i%2 == 1 {
			node, w = "check", fmt.Sprintf(`{"acc":%d}`, (i/2+1)*(i/2+2)/2)
		}
		if inv.Step != i+1 || inv.Node != node || inv.Path != fmt.Sprintf("%d/%s", i+1, node) || string(inv.Writes) != w ||
			inv.Status != store.InvocationOK || inv.Attempts != 1 || inv.EndedAt.Before(inv.StartedAt) || inv.StartedAt.IsZero() {
			t.Fatalf("invocation %d: %+v, want step %d, node %s, writes %s", i, *inv, i+1, node, w)
		}
	}
}
