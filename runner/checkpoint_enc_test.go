package runner

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestCheckpointEncoderMatchesMarshal feeds the encoder sequences of
// values of one key, large enough to be kept, and checks every encoding
// equals a fresh json.Marshal of the redacted value, whether it was
// extended in place or encoded afresh.
func TestCheckpointEncoderMatchesMarshal(t *testing.T) {
	big := strings.Repeat("x", bigEncoding)
	mb := strings.Repeat("y", 1<<20)
	elems := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = mb
		}
		return l
	}
	grown := elems(5)
	replaced := append([]any{}, grown...)
	replaced[2] = "changed"
	tests := []struct {
		name     string
		secrets  []string
		values   []any
		extended []bool // whether step i should extend in place
	}{
		{"list grows", nil,
			[]any{grown, append(append([]any{}, grown...), "tail"), append(append([]any{}, grown...), "tail", map[string]any{"k": 1.5})},
			[]bool{false, true, true}},
		{"list element replaced", nil, []any{grown, replaced}, []bool{false, false}},
		{"list shrinks", nil, []any{grown, grown[:4]}, []bool{false, false}},
		{"list to string", nil, []any{grown, big}, []bool{false, false}},
		{"string grows", nil, []any{big, big + "more", big + "more" + "é and more"}, []bool{false, true, true}},
		{"string grows with escapes", nil, []any{big, big + `"<quoted>"`, big + `"<quoted>"` + "plain"}, []bool{false, false, false}},
		{"string tail differs", nil, []any{big + "a", big + "b"}, []bool{false, false}},
		{"string with escapes", nil, []any{"<" + big, "<" + big + "z"}, []bool{false, false}},
		{"secrets: list grows, redacted", []string{"hunter2-secret"},
			[]any{grown, append(append([]any{}, grown...), "the key is hunter2-secret")}, []bool{false, true}},
		{"equal but not the same elements", nil, []any{grown, append(elems(5), "tail")}, []bool{false, false}},
		{"secrets: strings encoded afresh", []string{"hunter2-secret"},
			[]any{big + "hunter2", big + "hunter2-secret"}, []bool{false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd := newRedactor(tc.secrets)
			var e cpEncoder
			for i, v := range tc.values {
				ke := e.kept[0]
				got, err := e.encode(0, v, rd)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := json.Marshal(rd.value(v))
				if !bytes.Equal(got, want) {
					t.Fatalf("step %d: encoding differs from json.Marshal (%d bytes, want %d)", i, len(got), len(want))
				}
				if len(tc.secrets) > 0 && bytes.Contains(got, []byte(tc.secrets[0])) {
					t.Fatalf("step %d: the secret is in the checkpoint", i)
				}
				// The kept encoding survives only when it was extended.
				if extended := ke != nil && e.kept[0] == ke; extended != tc.extended[i] {
					t.Errorf("step %d: extended = %v, want %v", i, extended, tc.extended[i])
				}
			}
		})
	}
}

// TestCheckpointEncoderSmallValues: below bigEncoding nothing is kept.
func TestCheckpointEncoderSmallValues(t *testing.T) {
	var e cpEncoder
	l := []any{"a", 1, true}
	for range 3 {
		l = append(l, "more")
		if _, err := e.encode(0, l, redactor{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.kept) != 0 {
		t.Errorf("a small value's encoding is kept")
	}
}
