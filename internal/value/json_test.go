package value

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
)

// decodeWithDecoder is the reference DecodeJSON must agree with:
// encoding/json's decoder with UseNumber, one document and nothing after
// it, numbers by Number.
func decodeWithDecoder(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON value")
	}
	v, err := numbers(v)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func numbers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		return Number(x)
	case []any:
		for i, e := range x {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	case map[string]any:
		for k, e := range x {
			n, err := numbers(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	}
	return v, nil
}

var jsonCases = []string{
	`{"a": 1, "b": [1, 2.5, -3, 1e3, 1.0, -0, 9223372036854775807, 9223372036854775808], "c": {"d": null}}`,
	` [true, false, null, "", "x"] `,
	`"plain"`, `"esc\"aped \\ \n \u00e9 \ud83d\ude00 \u0000"`, "\"caf\xc3\xa9\"", "\"bad \xff utf8\"",
	`{"dup": 1, "dup": 2}`, `{"": {"": []}}`, `[[[[]]]]`, `[{}, {"k": "v"}, []]`, `0`, `-1.5e-3`,
	"\t\n{\"a\" : [ 1 , 2 ] }\r\n", `[1E400]`, `-1e400`, `1e-400`,
	``, ` `, `1 2`, `{} ]`, `[1,]`, `{"a":}`, `"unterminated`, `nul`, `01`, `{"a" 1}`, `[1 2]`, `1 }`,
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    any
		wantErr error
	}{
		{`{"n": 1, "f": 1.0, "e": 1e3, "l": [-0, 2.5]}`, map[string]any{"n": 1, "f": 1.0, "e": 1000.0, "l": []any{0, 2.5}}, nil},
		{` "s" `, "s", nil},
		{`null`, nil, nil},
		// was: +Inf in every copy (the runner then refused the write with
		// "check for a division by zero")
		{`{"big": 1e400}`, nil, ErrRange},
		// was: accepted as {"a":1} by template format: json, --input-file
		// and -i (a list or object key's file); as 1 by -i
		{`{"a":1} junk`, nil, new(json.SyntaxError)},
		{`{"a":1} ]`, nil, new(json.SyntaxError)},
		{`1 }`, nil, new(json.SyntaxError)},
		{``, nil, new(json.SyntaxError)},
	}
	for _, tt := range tests {
		got, err := DecodeJSON([]byte(tt.in))
		switch want := tt.wantErr.(type) {
		case nil:
			if err != nil {
				t.Errorf("DecodeJSON(%q): %v", tt.in, err)
			}
		case *json.SyntaxError:
			if !errors.As(err, &want) {
				t.Errorf("DecodeJSON(%q) error = %v, want a *json.SyntaxError", tt.in, err)
			}
		default:
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("DecodeJSON(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("DecodeJSON(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeJSONMatchesDecoder(t *testing.T) {
	for _, in := range jsonCases {
		checkDecodeJSON(t, []byte(in))
	}
}

// FuzzDecodeJSON: DecodeJSON never panics and agrees with encoding/json;
// a decoded value fits its own type and normalising it changes nothing; and
// JSON → value → JSON is stable from the second round (the first may turn
// 1.0 into 1 and -0e0 into -0, then 0: same number, and still fitting the
// type the value had).
func FuzzDecodeJSON(f *testing.F) {
	for _, in := range jsonCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v := checkDecodeJSON(t, data)
		if v == nil {
			return
		}
		for _, typ := range types {
			Fit(typ, v) // must not panic
		}
		if typ := TypeName(v); typ != "null" && !Fits(typ, v) {
			t.Fatalf("%q: a %s does not fit %s", data, typ, typ)
		}
		if n := NormalizeDeep(v); !reflect.DeepEqual(n, v) {
			t.Fatalf("%q: NormalizeDeep changed a decoded value:\n%#v\n%#v", data, v, n)
		}
		once, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%q: decoded value does not encode: %v", data, err)
		}
		v2, err := DecodeJSON(once)
		if err != nil {
			t.Fatalf("%q: re-encoded %q does not decode: %v", data, once, err)
		}
		// What resume needs: a value read back from its JSON still fits
		// the type it had (1.0 comes back as int 1, which fits number).
		if typ := TypeName(v); typ != "null" && !Fits(typ, v2) {
			t.Fatalf("%q: %s read back as %#v, which does not fit %s", data, once, v2, typ)
		}
		twice, err := json.Marshal(v2)
		if err != nil {
			t.Fatal(err)
		}
		v3, err := DecodeJSON(twice)
		if err != nil {
			t.Fatal(err)
		}
		if thrice, _ := json.Marshal(v3); !bytes.Equal(twice, thrice) || !reflect.DeepEqual(v2, v3) {
			t.Fatalf("%q: round trip not stable:\n%s\n%s", data, twice, thrice)
		}
	})
}

// checkDecodeJSON compares DecodeJSON with the reference and returns the
// value (nil on an error).
func checkDecodeJSON(t *testing.T, data []byte) any {
	t.Helper()
	got, gerr := DecodeJSON(data)
	want, werr := decodeWithDecoder(data)
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("%q: error %v, the decoder's %v", data, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", data, got, want)
	}
	if f, ok := got.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
		t.Fatalf("%q: decoded to %v, which JSON cannot hold", data, f)
	}
	return got
}

func BenchmarkNormalize(b *testing.B) {
	vals := []any{"s", 1, 2.5, true, nil, []any{1}, map[string]any{"a": 1}, int64(3), json.Number("4")}
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range vals {
			Normalize(v)
		}
	}
}

// BenchmarkDecodeJSON compares DecodeJSON with the json.Decoder route that
// template format: json and the CLI's inputs took before.
func BenchmarkDecodeJSON(b *testing.B) {
	doc := []byte(`{"items": [` + strings.Repeat(`{"id": 12, "score": 0.5, "name": "item", "tags": ["a", "b"]},`, 50) + `{}], "total": 51}`)
	b.Run("DecodeJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeJSON(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeWithDecoder(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecodeJSONErrorPosition: a syntax error says where, as an editor
// counts lines and columns.
func TestDecodeJSONErrorPosition(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a": 1,}`, "invalid JSON at line 1, column 9: "},
		{"{\n  \"a\": 1\n  \"b\": 2\n}", "invalid JSON at line 3, column 3: "},
		{"{\"é\": tru}", "invalid JSON at line 1, column 10: "},
		{"[1,\n", "invalid JSON at line 2, column 1: unexpected end of JSON input"},
	} {
		_, err := DecodeJSON([]byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("DecodeJSON(%q) = %v, want an error starting %q", tc.in, err, tc.want)
		}
	}
}
