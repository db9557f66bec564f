package runner

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

func TestJSONValue(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		in      any
		want    any
		problem string // prefix; "" = fine
	}{
		{"scalars", []any{1, 1.5, "s", true, nil}, []any{1, 1.5, "s", true, nil}, ""},
		{"NaN", math.NaN(), nil, "NaN (JSON has no NaN"},
		{"+Inf", inf, nil, "+Inf (JSON has no infinity"},
		{"-Inf", math.Inf(-1), nil, "-Inf (JSON has no infinity"},
		{"nested in a list and an object", map[string]any{"b": 1, "a": []any{1, map[string]any{"x y": inf}}}, nil, "+Inf at .a[1][\"x y\"]"},
		{"first problem in key order", map[string]any{"z": math.NaN(), "m": inf}, nil, "+Inf at .m"},
		{"non-string key", map[any]any{1: "a", "b": 2}, nil, "an object with the non-string key 1 (integer)"},
		{"non-string key nested", []any{map[string]any{"g": map[any][]any{true: {1}}}}, nil, "an object with the non-string key true (boolean) at [0].g"},
		{"typed int-keyed map", map[int]string{3: "x"}, nil, "an object with the non-string key 3 (integer)"},
		{"string keys in interfaces become an object", map[any][]any{"a": {1}, "c": {2}}, map[string]any{"a": []any{1}, "c": []any{2}}, ""},
		{"converted deep inside", []any{1, map[string]any{"k": map[any]any{"x": int64(2)}}},
			[]any{1, map[string]any{"k": map[string]any{"x": 2}}}, ""},
		{"other Go numbers", []any{int64(3), float32(0.5)}, []any{3, 0.5}, ""},
		{"typed slices", []string{"a"}, []any{"a"}, ""},
		{"float32 infinity", float32(math.Inf(1)), nil, "+Inf"},
		{"a Go struct", struct{ A int }{1}, nil, "a value of Go type struct"},
		{"the run variable is an object", []any{spec.ExprRun{ID: "r1", Step: 2, Workflow: "w"}},
			[]any{map[string]any{"id": "r1", "step": 2, "workflow": "w"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := jsonValue(tt.in)
			if tt.problem != "" {
				if !strings.HasPrefix(problem, tt.problem) {
					t.Fatalf("problem = %q, want prefix %q", problem, tt.problem)
				}
				return
			}
			if problem != "" || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("jsonValue = %#v, %q; want %#v", got, problem, tt.want)
			}
		})
	}
}

// TestJSONValueKeepsUnchangedValues: a valid value comes back as it is,
// without a copy.
func TestJSONValueKeepsUnchangedValues(t *testing.T) {
	in := map[string]any{"a": []any{1, "x", map[string]any{"b": 2.5}}}
	allocs := testing.AllocsPerRun(100, func() {
		out, problem := jsonValue(in)
		if problem != "" || reflect.ValueOf(out).Pointer() != reflect.ValueOf(in).Pointer() {
			t.Fatal("changed")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations for a valid value, want 0", allocs)
	}
}

// TestWritesAreJSON: a write JSON cannot hold fails its invocation with
// kind type, naming node, item, key and the output's position; nothing is
// recorded as null, and a resume fails again rather than completing the
// run without the write (SPEC §9.6).
func TestWritesAreJSON(t *testing.T) {
	tests := []struct {
		name   string
		typ    string // the key's type
		value  string // the output expression
		each   bool   // the node runs per item of [2, 0]
		want   string
		wantAt string // the value's position
	}{
		{name: "+Inf", typ: "number", value: "1 / state.n", want: "+Inf (JSON has no infinity", wantAt: "test.yaml:12:10"},
		{name: "-Inf", typ: "number", value: "-1 / state.n", want: "-Inf", wantAt: "test.yaml:12:10"},
		{name: "NaN", typ: "any", value: "state.n / state.n", want: "NaN", wantAt: "test.yaml:12:10"},
		{name: "non-string key", typ: "object", value: "fromPairs([[1, 'a']])", want: "an object with the non-string key 1 (integer)", wantAt: "test.yaml:12:10"},
		{name: "nested in a list", typ: "list", value: "[1, {'a': 1 / state.n}]", want: "+Inf at [1].a", wantAt: "test.yaml:12:10"},
		{name: "an item", typ: "number", value: "1 / item", each: true, want: "+Inf", wantAt: "test.yaml:13:10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			each := ""
			if tt.each {
				each = "\n    for_each: [2, 0]"
			}
			src := `
lgx: 1
name: t
state:
  n: {type: integer, default: 0}
  v: ` + tt.typ + `
  done: {type: boolean, default: false}
nodes:
  calc:
    type: set` + each + `
    output:
      v: "${{ ` + tt.value + ` }}"
  after:
    type: set
    output: {done: true}
edges:
  - {from: START, to: calc}
  - {from: calc, to: after}
`
			if tt.each {
				src = strings.Replace(src, "  v: "+tt.typ, "  v: {type: list, reducer: append}", 1)
			}
			st := store.NewMemory()
			g := compileYAML(t, src)
			res, err := Run(context.Background(), g, Options{Store: st, Environ: []string{}})
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Node != "calc" || ne.Kind != nodes.KindType {
				t.Fatalf("err = %v, want a type failure of node calc", err)
			}
			if tt.each && ne.Index != 1 {
				t.Errorf("failed item = %d, want 1", ne.Index)
			}
			msg := err.Error()
			for _, want := range []string{`write to state key "v"`, tt.wantAt, tt.want} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			// The record says failed; nothing is recorded as null.
			invs, ierr := st.Invocations(context.Background(), res.RunID)
			if ierr != nil {
				t.Fatal(ierr)
			}
			for _, inv := range invs {
				if inv.Node == "calc" && strings.Contains(string(inv.Writes), "null") {
					t.Errorf("recorded writes %s hold null", inv.Writes)
				}
			}
			// Resume fails the same way: the run never completes without
			// the write.
			res2, err := Resume(context.Background(), st, res.RunID, Options{Environ: []string{}})
			if !errors.As(err, &ne) || ne.Kind != nodes.KindType || res2 == nil || res2.Status != store.StatusFailed || res2.State["done"] == true {
				t.Fatalf("resume: %v, %+v; want the same type failure", err, res2)
			}
		})
	}
}

// BenchmarkJSONValue: the write check on a typical structured write (100
// small objects) and on a scalar.
func BenchmarkJSONValue(b *testing.B) {
	list := make([]any, 100)
	for i := range list {
		list[i] = map[string]any{"id": i, "name": "x", "score": 0.5, "tags": []any{"a", "b"}}
	}
	b.Run("list100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, p := jsonValue(list); p != "" {
				b.Fatal(p)
			}
		}
	})
	b.Run("scalar", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, p := jsonValue(42); p != "" {
				b.Fatal(p)
			}
		}
	})
}
