package runner

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

func TestReducers(t *testing.T) {
	msg := func(id, content string) map[string]any {
		m := map[string]any{"role": "user", "content": content}
		if id != "" {
			m["id"] = id
		}
		return m
	}
	tests := []struct {
		name    string
		reducer string
		cur     any
		writes  []any
		want    any
		wantErr string
	}{
		{"replace", spec.ReducerReplace, 1, []any{2}, 2, ""},
		{"replace null", spec.ReducerReplace, "a", []any{nil}, nil, ""},
		{"append list concatenates", spec.ReducerAppend, []any{1}, []any{[]any{2, 3}}, []any{1, 2, 3}, ""},
		{"append scalar is one element", spec.ReducerAppend, []any{1}, []any{"x"}, []any{1, "x"}, ""},
		{"append object is one element", spec.ReducerAppend, nil, []any{map[string]any{"a": 1}}, []any{map[string]any{"a": 1}}, ""},
		{"append to null", spec.ReducerAppend, nil, []any{1, 2}, []any{1, 2}, ""},
		{"append null is one element", spec.ReducerAppend, []any{1}, []any{nil}, []any{1, nil}, ""},
		{"append empty list adds nothing", spec.ReducerAppend, []any{1}, []any{[]any{}}, []any{1}, ""},
		{"append null to null", spec.ReducerAppend, nil, []any{nil}, []any{nil}, ""},
		{"append to non-list", spec.ReducerAppend, "s", []any{1}, nil, "not a list"},
		{"merge write wins", spec.ReducerMerge, map[string]any{"a": 1, "b": 1}, []any{map[string]any{"b": 2, "c": 3}},
			map[string]any{"a": 1, "b": 2, "c": 3}, ""},
		{"merge is shallow", spec.ReducerMerge, map[string]any{"a": map[string]any{"x": 1}}, []any{map[string]any{"a": map[string]any{"y": 2}}},
			map[string]any{"a": map[string]any{"y": 2}}, ""},
		{"merge non-object", spec.ReducerMerge, nil, []any{1}, nil, "needs an object"},
		{"sum ints", spec.ReducerSum, 1, []any{2, 3}, 6, ""},
		{"sum mixed", spec.ReducerSum, 1, []any{0.5}, 1.5, ""},
		{"sum from null", spec.ReducerSum, nil, []any{2}, 2, ""},
		{"sum string", spec.ReducerSum, 1, []any{"a"}, nil, "needs numbers"},
		{"sum int overflow", spec.ReducerSum, math.MaxInt, []any{1}, nil, "overflows an integer"},
		{"sum int underflow", spec.ReducerSum, math.MinInt, []any{-1}, nil, "overflows an integer"},
		{"sum float overflow", spec.ReducerSum, math.MaxFloat64, []any{math.MaxFloat64}, nil, "overflows a number"},
		{"sum int + float overflow", spec.ReducerSum, 1, []any{math.Inf(1)}, nil, "overflows a number"},
		{"min numbers", spec.ReducerMin, 5, []any{3, 4, 2.5}, 2.5, ""},
		{"min strings", spec.ReducerMin, "b", []any{"c", "a"}, "a", ""},
		{"max numbers", spec.ReducerMax, 5, []any{3, 7, 6}, 7, ""},
		{"max strings", spec.ReducerMax, nil, []any{"b", "c", "a"}, "c", ""},
		{"max mixed kinds", spec.ReducerMax, 1, []any{"a"}, nil, "max: cannot compare"},
		{"min mixed kinds", spec.ReducerMin, "a", []any{1}, nil, "min: cannot compare"},
		{"min tie keeps the current value", spec.ReducerMin, 2, []any{2.0}, 2, ""},
		{"max tie keeps the current value", spec.ReducerMax, 2.0, []any{2}, 2.0, ""},
		{"min null write is a no-op", spec.ReducerMin, 3, []any{nil}, 3, ""},
		{"max of null is the write", spec.ReducerMax, nil, []any{4}, 4, ""},
		{"union dedups scalars in first-seen order", spec.ReducerUnion, []any{"a", "b"}, []any{[]any{"b", "c", "a", "d", "c"}},
			[]any{"a", "b", "c", "d"}, ""},
		{"union scalar appended if absent", spec.ReducerUnion, []any{1}, []any{2, 1, 2}, []any{1, 2}, ""},
		{"union int equals float", spec.ReducerUnion, []any{1}, []any{1.0}, []any{1}, ""},
		{"messages append", spec.ReducerMessages, []any{msg("1", "a")}, []any{msg("2", "b"), msg("", "c")},
			[]any{msg("1", "a"), msg("2", "b"), msg("", "c")}, ""},
		{"messages replace by id in place", spec.ReducerMessages, []any{msg("1", "a"), msg("2", "b")}, []any{msg("1", "A")},
			[]any{msg("1", "A"), msg("2", "b")}, ""},
		{"messages remove", spec.ReducerMessages, []any{msg("1", "a"), msg("2", "b"), msg("3", "c")},
			[]any{map[string]any{"id": "2", "remove": true}}, []any{msg("1", "a"), msg("3", "c")}, ""},
		{"messages remove unknown id is no-op", spec.ReducerMessages, []any{msg("1", "a")},
			[]any{map[string]any{"id": "9", "remove": true}}, []any{msg("1", "a")}, ""},
		{"messages list write", spec.ReducerMessages, nil, []any{[]any{msg("1", "a"), msg("1", "b")}}, []any{msg("1", "b")}, ""},
		{"messages non-object", spec.ReducerMessages, nil, []any{"hi"}, nil, "must be an object"},
		{"messages remove without id", spec.ReducerMessages, nil, []any{map[string]any{"remove": true}}, nil, "needs an id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fn, ok := reducerFor(tt.reducer)
			if !ok {
				t.Fatalf("no reducer %q", tt.reducer)
			}
			cur := tt.cur
			var err error
			for i, w := range tt.writes {
				cur, err = fn(cur, w, i > 0)
				if err != nil {
					break
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cur, tt.want) {
				t.Errorf("got %#v, want %#v", cur, tt.want)
			}
		})
	}
}

// An unowned current value (shared with a snapshot) is never modified.
func TestReducersDoNotMutateUnowned(t *testing.T) {
	list := make([]any, 1, 10)
	list[0] = "a"
	obj := map[string]any{"a": 1}
	msgs := []any{map[string]any{"id": "1", "content": "x"}}
	for _, c := range []struct {
		red string
		cur any
		w   any
	}{
		{spec.ReducerAppend, list, "b"},
		{spec.ReducerUnion, list, "b"},
		{spec.ReducerMerge, obj, map[string]any{"b": 2}},
		{spec.ReducerMessages, msgs, map[string]any{"id": "1", "content": "y"}},
	} {
		fn, _ := reducerFor(c.red)
		if _, err := fn(c.cur, c.w, false); err != nil {
			t.Fatal(err)
		}
	}
	if len(list) != 1 || list[:2][1] != nil {
		t.Errorf("append/union wrote into the shared backing array: %v", list[:2])
	}
	if len(obj) != 1 {
		t.Errorf("merge modified the shared map: %v", obj)
	}
	if msgs[0].(map[string]any)["content"] != "x" {
		t.Errorf("messages modified the shared list: %v", msgs)
	}
}

func TestFitType(t *testing.T) {
	tests := []struct {
		typ     string
		in      any
		want    any
		wantBad string
	}{
		{spec.TypeInteger, 3, 3, ""},
		{spec.TypeInteger, 3.0, 3, ""},
		{spec.TypeInteger, int64(4), 4, ""},
		{spec.TypeInteger, 3.5, nil, "number"},
		{spec.TypeInteger, "3", nil, "string"},
		{spec.TypeNumber, 3, 3.0, ""},
		{spec.TypeNumber, 2.5, 2.5, ""},
		{spec.TypeNumber, true, nil, "boolean"},
		{spec.TypeString, "x", "x", ""},
		{spec.TypeString, 1, nil, "integer"},
		{spec.TypeBoolean, false, false, ""},
		{spec.TypeList, []any{1}, []any{1}, ""},
		{spec.TypeList, []string{"a"}, []any{"a"}, ""},
		{spec.TypeList, map[string]any{}, nil, "object"},
		{spec.TypeObject, map[string]any{"a": 1}, map[string]any{"a": 1}, ""},
		{spec.TypeObject, []any{}, nil, "list"},
		{spec.TypeMessages, []any{map[string]any{"role": "user"}}, []any{map[string]any{"role": "user"}}, ""},
		{spec.TypeMessages, []any{"x"}, nil, "list with a string element"},
		{spec.TypeAny, "x", "x", ""},
		{spec.TypeString, nil, nil, ""},
	}
	for _, tt := range tests {
		got, bad := fitType(tt.typ, tt.in)
		if bad != tt.wantBad {
			t.Errorf("fitType(%s, %#v) bad = %q, want %q", tt.typ, tt.in, bad, tt.wantBad)
			continue
		}
		if bad == "" && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("fitType(%s, %#v) = %#v, want %#v", tt.typ, tt.in, got, tt.want)
		}
	}
}
