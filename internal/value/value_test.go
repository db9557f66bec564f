package value

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
)

// Before this package, six functions decided what a decoded value is, with
// different rules. The tables below hold the one rule; the cases marked
// "was:" are where a copy differed, and why the rule chosen is the one kept
// (docs/decisions.md, "One value model"):
//
//	runner.normalize        shallow; json.Number, every Go integer kind, typed slices and maps
//	runner.deepNormalize    deep over []any/map[string]any, leaves by normalize
//	nodes.fromJSONNumbers   deep, json.Number only (template format: json)
//	nodes.fetchNumbers      deep, json.Number only (http_fetch's json)
//	cmd/lgx.normalizeJSON   deep, json.Number only (-i, --input-file)
//	cmd/lgx.normalizeYAML   deep, int64/uint64 only, over yaml.Unmarshal (YAML input files):
//	                        timestamps came out as time.Time, `1: a` as map[any]any, 2^64-1
//	                        as -1; now spec.DecodeValue, the workflow literals' decoder
//	spec.valueType          names only the canonical forms, %T for the rest
//	spec.fitsType           integer takes only int; runner.fitType also an integral float64

func TestNumber(t *testing.T) {
	tests := []struct {
		in      string
		want    any
		wantErr error
	}{
		{"0", 0, nil},
		{"-0", 0, nil},
		{"42", 42, nil},
		{"-17", -17, nil},
		{"9223372036854775807", math.MaxInt64, nil},
		{"9223372036854775808", 9223372036854775808.0, nil}, // beyond int64: float64, in every copy
		{"1.0", 1.0, nil}, // written as a float, stays one
		{"1e3", 1000.0, nil},
		{"1E3", 1000.0, nil},
		{"-1.5e-3", -0.0015, nil},
		{"1e-400", 0.0, nil},               // underflow is 0, as JSON parsers do
		{"1e400", math.Inf(1), ErrRange},   // was: +Inf silently, in every copy
		{"-1e400", math.Inf(-1), ErrRange}, // was: -Inf silently
	}
	for _, tt := range tests {
		got, err := Number(json.Number(tt.in))
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("Number(%s) error = %v, want %v", tt.in, err, tt.wantErr)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Number(%s) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
	if _, err := Number("abc"); err == nil {
		t.Error(`Number("abc"): no error`)
	}
}

type point struct{ X int }

func TestNormalize(t *testing.T) {
	list := []any{json.Number("1")}
	obj := map[string]any{"n": json.Number("1")}
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"nil", nil, nil},
		{"string", "s", "s"},
		{"int", 3, 3},
		{"int8", int8(-3), -3},
		{"int16", int16(3), 3},
		{"int32", int32(3), 3},
		{"int64", int64(3), 3},
		{"uint", uint(3), 3},
		{"uint8", uint8(3), 3},
		{"uint16", uint16(3), 3},
		{"uint32", uint32(3), 3},
		{"uint64", uint64(3), 3},
		// was: int(-1) in runner.normalize and cmd/lgx.normalizeYAML (a YAML
		// input of 18446744073709551615 read as -1); spec already said float64.
		{"uint64 beyond int", uint64(math.MaxUint64), float64(math.MaxUint64)},
		{"uint beyond int", uint(math.MaxUint), float64(math.MaxUint)},
		{"float32", float32(1.5), 1.5},
		{"float64", 1.5, 1.5},
		{"NaN stays for the JSON check to name", math.NaN(), nil}, // compared below
		{"json integer", json.Number("7"), 7},
		{"json float", json.Number("7.0"), 7.0},
		{"json out of range", json.Number("1e400"), math.Inf(1)},
		{"bool", true, true},
		{"[]string", []string{"a"}, []any{"a"}},
		{"[]map", []map[string]any{{"a": 1}}, []any{map[string]any{"a": 1}}},
		{"[]int, elements normalised", []int64{1, 2}, []any{1, 2}},
		{"array", [2]uint8{1, 2}, []any{1, 2}},
		{"string-keyed map", map[string]int64{"a": 1}, map[string]any{"a": 1}},
		{"[]any is shallow", list, list},
		{"map[string]any is shallow", obj, obj},
		{"non-string keys stay for the JSON check", map[int]any{1: "a"}, map[int]any{1: "a"}},
		{"struct stays", point{1}, point{1}},
	}
	for _, tt := range tests {
		got := Normalize(tt.in)
		if f, ok := tt.in.(float64); ok && math.IsNaN(f) {
			if g, ok := got.(float64); !ok || !math.IsNaN(g) {
				t.Errorf("%s: got %#v", tt.name, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Normalize(%#v) = %#v, want %#v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestNormalizeDeep(t *testing.T) {
	in := []any{
		json.Number("1"), json.Number("2.5"), int64(3), uint64(math.MaxUint64),
		map[string]any{"n": json.Number("4"), "l": []any{json.Number("5")}},
	}
	want := []any{
		1, 2.5, 3, float64(math.MaxUint64),
		map[string]any{"n": 4, "l": []any{5}},
	}
	got := NormalizeDeep(in)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
	if again := NormalizeDeep(got); !reflect.DeepEqual(again, want) {
		t.Fatalf("not idempotent: %#v", again)
	}
}

func TestTypeName(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "null"},
		{"s", TypeString},
		{3, TypeInteger},
		{int64(3), TypeInteger}, // was: "int64" in spec.valueType
		{uint8(3), TypeInteger},
		{1.5, TypeNumber},
		{float32(1.5), TypeNumber},
		{json.Number("1"), TypeNumber},
		{true, TypeBoolean},
		{[]any{}, TypeList},
		{[]string{}, TypeList},
		{[1]int{}, TypeList},
		{map[string]any{}, TypeObject},
		{map[any]any{}, TypeObject}, // was: "map[interface {}]interface {}" in spec.valueType
		{point{}, TypeObject},
		{make(chan int), "chan int"},
	}
	for _, tt := range tests {
		if got := TypeName(tt.in); got != tt.want {
			t.Errorf("TypeName(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFit(t *testing.T) {
	msgs := []any{map[string]any{"role": "user"}}
	tests := []struct {
		typ     string
		in      any
		want    any
		wantBad string
	}{
		{TypeAny, json.Number("3"), 3, ""},
		{"", "x", "x", ""},
		{TypeString, nil, nil, ""}, // null fits every type
		{TypeString, "x", "x", ""},
		{TypeString, 1, nil, TypeInteger},
		{TypeInteger, 3, 3, ""},
		{TypeInteger, int64(3), 3, ""},
		// was: spec rejected `default: 3.0` on an integer key although the
		// runner accepts the same value written by a node.
		{TypeInteger, 3.0, 3, ""},
		{TypeInteger, -4.0, -4, ""},
		{TypeInteger, 3.5, nil, TypeNumber},
		{TypeInteger, 1e300, nil, TypeNumber}, // integral, but not exactly an int
		{TypeInteger, float64(1 << 53), nil, TypeNumber},
		{TypeInteger, float64(1<<53 - 1), 1<<53 - 1, ""},
		{TypeInteger, "3", nil, TypeString},
		{TypeNumber, 2, 2.0, ""},
		{TypeNumber, 2.5, 2.5, ""},
		{TypeNumber, json.Number("2"), 2.0, ""},
		{TypeNumber, true, nil, TypeBoolean},
		{TypeBoolean, false, false, ""},
		{TypeBoolean, "false", nil, TypeString},
		{TypeList, []string{"a"}, []any{"a"}, ""},
		{TypeList, map[string]any{}, nil, TypeObject},
		{TypeObject, map[string]any{"a": 1}, map[string]any{"a": 1}, ""},
		{TypeObject, []any{}, nil, TypeList},
		{TypeMessages, msgs, msgs, ""},
		{TypeMessages, []any{map[string]any{}, "hi"}, nil, "list with a string element"},
		{TypeMessages, map[string]any{}, nil, TypeObject},
		{TypeMessages, []any{map[string]any{"role": "user", "content": "hi"}, map[string]any{"role": "bot", "content": "yo"}}, nil,
			`list whose element 1 is a message with role "bot" (the roles are system, user, assistant and tool)`},
		{TypeMessages, []any{map[string]any{"content": "hi"}}, nil,
			"list whose element 0 is an object without a role (a message has role system, user, assistant or tool)"},
		{TypeMessages, []any{map[string]any{"role": 1}}, nil,
			"list whose element 0 is a message whose role is 1 (integer), not a string (the roles are system, user, assistant and tool)"},
		{TypeMessages, []any{map[string]any{"id": "m1", "remove": true}, map[string]any{"role": "tool", "content": nil}},
			[]any{map[string]any{"id": "m1", "remove": true}, map[string]any{"role": "tool", "content": nil}}, ""},
	}
	for _, tt := range tests {
		got, bad := Fit(tt.typ, tt.in)
		if bad != tt.wantBad || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Fit(%s, %#v) = %#v, %q; want %#v, %q", tt.typ, tt.in, got, bad, tt.want, tt.wantBad)
		}
		if Fits(tt.typ, tt.in) != (tt.wantBad == "") {
			t.Errorf("Fits(%s, %#v) disagrees with Fit", tt.typ, tt.in)
		}
	}
}

// TestFitMessagesWrite: a messages-reducer write is one message or a list
// of them; spec's validate and the runner both check it here.
func TestFitMessagesWrite(t *testing.T) {
	msg := map[string]any{"role": "user", "content": "hi"}
	tests := []struct {
		in      any
		want    any
		wantBad string
	}{
		{nil, nil, ""},
		{msg, msg, ""},
		{[]any{msg}, []any{msg}, ""},
		{map[string]any{"id": "m1", "remove": true}, map[string]any{"id": "m1", "remove": true}, ""},
		{map[string]any{"role": "human"}, nil, `a message with role "human" (the roles are system, user, assistant and tool)`},
		{[]any{msg, "hi"}, nil, "list with a string element"},
		{"hi", nil, TypeString},
	}
	for _, tt := range tests {
		got, bad := FitMessagesWrite(tt.in)
		if bad != tt.wantBad || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("FitMessagesWrite(%#v) = %#v, %q; want %#v, %q", tt.in, got, bad, tt.want, tt.wantBad)
		}
	}
}

func TestTypes(t *testing.T) {
	want := []string{"string", "number", "integer", "boolean", "list", "object", "messages", "any"}
	got := Types()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Types() = %v, want SPEC §2's %v", got, want)
	}
	got[0] = "changed"
	if Types()[0] != TypeString {
		t.Fatal("Types() returned the package's own slice")
	}
}

func TestGoTypeNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"interface conversion: interface {} is nil, not string", "interface conversion: any is null, not string"},
		{"invalid operation: + (mismatched types string and int)", "invalid operation: + (mismatched types string and integer)"},
		{"cannot fetch b from <nil>", "cannot fetch b from null"},
		{"invalid argument for len (type float64)", "invalid argument for len (type number)"},
		{"cannot use map[string]interface {} as []interface {}", "cannot use object as list"},
		{"cannot use bool and int64 and uint8", "cannot use boolean and integer and integer"},
		// A field or key the user named is theirs, not a type.
		{"cannot fetch int from <nil>", "cannot fetch int from null"},
		{"type state has no field bool", "type state has no field bool"},
		{`unknown key "nil" in int`, `unknown key "nil" in integer`},
		{"state.int is not float64", "state.int is not number"},
		// Words that only contain a type name are left alone.
		{"interval printing of nilpotent boolean integers", "interval printing of nilpotent boolean integers"},
	} {
		if got := GoTypeNames(tc.in); got != tc.want {
			t.Errorf("GoTypeNames(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
