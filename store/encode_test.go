package store

import (
	"bytes"
	"encoding/json"
	"testing"
)

// encodeNames must produce exactly what json.Marshal does, fast path or not.
func TestEncodeNames(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  string
	}{
		{"nil is NULL", nil, ""},
		{"empty", []string{}, "[]"},
		{"plain", []string{"fetch", "write_brief", "a-b"}, `["fetch","write_brief","a-b"]`},
		{"quote and backslash", []string{`a"b`, `c\d`}, `["a\"b","c\\d"]`},
		{"html escaped like json.Marshal", []string{"<&>"}, `["\u003c\u0026\u003e"]`},
		{"non-ASCII and control", []string{"é", "\n"}, `["é","\n"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(encodeNames(tt.names)); got != tt.want {
				t.Errorf("encodeNames(%q) = %s, want %s", tt.names, got, tt.want)
			}
		})
	}
}

func FuzzEncodeNames(f *testing.F) {
	f.Add("fetch", "b")
	f.Add("a\"\\<", "\x00\xff")
	f.Fuzz(func(t *testing.T, a, b string) {
		names := []string{a, b}
		want, err := json.Marshal(names)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeNames(names); !bytes.Equal(got, want) {
			t.Errorf("encodeNames(%q) = %s, json.Marshal = %s", names, got, want)
		}
	})
}

// The keys a checkpoint stores whole are one JSON object (splitChanged,
// with nothing to store as a delta): keys quoted as json.Marshal does,
// fast path or not, sorted, values copied verbatim but trimmed (json.Marshal
// would re-indent them), nil as NULL.
func TestEncodeChanged(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]json.RawMessage
		want string
	}{
		{"nil is NULL", nil, ""},
		{"empty", map[string]json.RawMessage{}, "{}"},
		{"sorted, trimmed", map[string]json.RawMessage{"b": json.RawMessage(" [1, 2] "), "a": json.RawMessage("1")}, `{"a":1,"b":[1, 2]}`},
		{"keys escaped like json.Marshal", map[string]json.RawMessage{"<&>": json.RawMessage("1"), `q"\`: json.RawMessage("2"), "é\n": json.RawMessage("3")},
			`{"\u003c\u0026\u003e":1,"q\"\\":2,"é\n":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, deltas := splitChanged(tt.m, 1, nil, nil, &encScratch{}); string(got) != tt.want || deltas != nil {
				t.Errorf("splitChanged = %s, %x; want %s and no deltas", got, deltas, tt.want)
			}
		})
	}
}
