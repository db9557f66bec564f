package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/internal/value"
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

// appendValue gives exactly json.Marshal's bytes for the lists and objects
// it encodes (keys sorted, nesting up to maxFastDepth), and declines what
// json.Marshal must encode: an escaped key, a value appendScalar declines
// anywhere inside, too deep a nesting.
func TestAppendValue(t *testing.T) {
	deep := any(1)
	for range maxFastDepth + 1 {
		deep = []any{deep}
	}
	for _, tc := range []struct {
		v  any
		ok bool
	}{
		{[]any{}, true},
		{[]any(nil), true},
		{map[string]any{}, true},
		{map[string]any(nil), true},
		{[]any{1, "a", nil, true, 2.5, []any{map[string]any{"z": 1, "a": []any{}}}}, true},
		{map[string]any{"b": 1, "a": map[string]any{"y": "x", "x": nil}, "": 0}, true},
		{[]any{"http://127.0.0.1:8080/item/1?a=b"}, true},
		{[]any{"<script>"}, false},
		{map[string]any{"a&b": 1}, false},
		{[]any{1, math.Inf(1)}, false},
		{[]any{int32(1)}, false},
		{deep, false},
	} {
		b, ok := appendValue([]byte("p"), tc.v, redactor{}, 0)
		if ok != tc.ok {
			t.Errorf("appendValue(%#v) ok = %v, want %v", tc.v, ok, tc.ok)
			continue
		}
		got, err := marshalValue(tc.v, redactor{})
		want, werr := json.Marshal(tc.v)
		if ok && string(b) != "p"+string(want) {
			t.Errorf("appendValue(%#v) = %s, json.Marshal %s", tc.v, b[1:], want)
		}
		if (err == nil) != (werr == nil) || string(got) != string(want) {
			t.Errorf("marshalValue(%#v) = %s, %v; json.Marshal %s, %v", tc.v, got, err, want, werr)
		}
	}
	// With secrets declared, strings go through the redactor.
	rd := newRedactor([]string{"s3cr3t"})
	got, err := marshalValue(map[string]any{"k": []any{"s3cr3t"}}, rd)
	if err != nil || strings.Contains(string(got), "s3cr3t") {
		t.Errorf("marshalValue with a secret = %s, %v", got, err)
	}
}

// FuzzAppendValue: whatever JSON decodes to, appendValue encodes it as
// json.Marshal does, or declines.
func FuzzAppendValue(f *testing.F) {
	f.Add(`[1, "a", {"b": [true, null, 2.5]}]`)
	f.Add(`{"<": 1, "z": {"y": "\u2028"}}`)
	f.Add(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := value.DecodeJSON([]byte(s))
		if err != nil {
			return
		}
		want, err := json.Marshal(v)
		if err != nil {
			return
		}
		if b, ok := appendValue(nil, v, redactor{}, 0); ok && string(b) != string(want) {
			t.Errorf("appendValue(%s) = %s, json.Marshal %s", s, b, want)
		}
		if b, err := marshalValue(v, redactor{}); err != nil || string(b) != string(want) {
			t.Errorf("marshalValue(%s) = %s, %v; json.Marshal %s", s, b, err, want)
		}
	})
}

// marshalInputs gives a run's record json.Marshal's bytes of the redacted
// inputs, and each input's own bytes as a piece of them: what the step-0
// checkpoint reuses must be what encoding the value gives.
func TestMarshalInputs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inputs  map[string]any
		secrets []string
		byKey   bool // the inputs' bytes are given by key
	}{
		{"none", nil, nil, false},
		{"empty", map[string]any{}, nil, false},
		{"plain", map[string]any{"urls": []any{"http://127.0.0.1/1", "http://127.0.0.1/2"}, "n": 3, "f": 2.5, "on": true, "x": nil}, nil, true},
		{"nested", map[string]any{"o": map[string]any{"b": []any{1, map[string]any{"z": "y"}}, "a": ""}}, nil, true},
		{"values json.Marshal escapes", map[string]any{"html": "<b>&", "u": "é\u2028", "l": []any{"a\"b", 1e21}}, nil, true},
		{"keys json.Marshal escapes", map[string]any{"a<b": 1, "é": []any{"x"}, "a": 2}, nil, true},
		{"with secrets", map[string]any{"token": "s3cr3t-value", "urls": []any{"http://h/?k=s3cr3t-value"}}, []string{"s3cr3t-value"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := redactor{}
			if tc.secrets != nil {
				rd = newRedactor(tc.secrets)
			}
			got, byKey, err := marshalInputs(tc.inputs, rd)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(rd.value(tc.inputs))
			if err != nil {
				t.Fatal(err)
			}
			if string(want) == "null" {
				want = []byte("{}")
			}
			if string(got) != string(want) {
				t.Fatalf("marshalInputs = %s\n json.Marshal  %s", got, want)
			}
			if (byKey != nil) != tc.byKey {
				t.Fatalf("inputs by key given = %v, want %v", byKey != nil, tc.byKey)
			}
			for k, in := range byKey {
				w, _ := json.Marshal(tc.inputs[k])
				if string(in.b) != string(w) || !sameValue(in.v, tc.inputs[k]) {
					t.Errorf("input %q: %s, want %s", k, in.b, w)
				}
				if !bytes.Contains(got, in.b) || cap(in.b) != len(in.b) {
					t.Errorf("input %q: its bytes are not a capped piece of the record's", k)
				}
			}
		})
	}
}

// FuzzMarshalInputs: whatever JSON object decodes to, marshalInputs gives
// json.Marshal's bytes, and each key's piece is json.Marshal's of its value.
func FuzzMarshalInputs(f *testing.F) {
	f.Add(`{"urls": ["http://a/1", "http://a/2"], "n": 1}`)
	f.Add(`{"<": 1, "z": {"y": "\u2028"}, "": [2.5e30]}`)
	f.Fuzz(func(t *testing.T, s string) {
		v, err := value.DecodeJSON([]byte(s))
		if err != nil {
			return
		}
		inputs, ok := v.(map[string]any)
		if !ok {
			return
		}
		want, err := json.Marshal(inputs)
		if err != nil {
			return
		}
		got, byKey, err := marshalInputs(inputs, redactor{})
		if err != nil || string(got) != string(want) {
			t.Fatalf("marshalInputs(%s) = %s, %v; json.Marshal %s", s, got, err, want)
		}
		for k, in := range byKey {
			if w, _ := json.Marshal(inputs[k]); string(in.b) != string(w) {
				t.Errorf("input %q of %s: %s, want %s", k, s, in.b, w)
			}
		}
	})
}
