package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// TestCheckpointEncoderMatchesMarshal feeds the encoder sequences of
// values of one key, large enough to be kept, and checks every encoding
// gives the store (memory, SQLite) what rebuilds a fresh json.Marshal of
// the redacted value, whether it was given as an extension or whole.
func TestCheckpointEncoderMatchesMarshal(t *testing.T) {
	big := strings.Repeat("x", keepFrom)
	mb := strings.Repeat("y", 1<<20)
	elems := func(n int) []any {
		l := make([]any, n)
		for i := range l {
			l[i] = mb
		}
		return l
	}
	grown := elems(5)
	one := elems(1)
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
		{"string grows with escapes", nil, []any{big, big + `"<quoted>"`, big + `"<quoted>"` + "plain\u2028\n"}, []bool{false, true, true}},
		{"string grows after a cut rune", nil, []any{big + "\xe2\x82", big + "\xe2\x82\xac", big + "\xe2\x82\xac!"}, []bool{false, false, true}},
		{"string grows, invalid UTF-8 in the tail", nil, []any{big, big + "a\xffb", big + "a\xffb\xe2\x82\xacc"}, []bool{false, true, true}},
		{"string tail differs", nil, []any{big + "a", big + "b"}, []bool{false, false}},
		{"string with escapes", nil, []any{"<" + big, "<" + big + "z"}, []bool{false, true}},
		{"list from empty", nil, []any{[]any{}, one, append(one, mb)}, []bool{false, false, true}},
		{"list, nothing appended", nil, []any{grown, grown}, []bool{false, true}},
		{"nil list", nil, []any{[]any(nil), []any{mb}}, []bool{false, false}},
		{"secrets: list grows, redacted", []string{"hunter2-secret"},
			[]any{grown, append(append([]any{}, grown...), "the key is hunter2-secret")}, []bool{false, true}},
		{"equal but not the same elements", nil, []any{grown, append(elems(5), "tail")}, []bool{false, false}},
		{"secrets: strings encoded afresh", []string{"hunter2-secret"},
			[]any{big + "hunter2", big + "hunter2-secret"}, []bool{false, false}},
	}
	for _, tc := range tests {
		for _, sc := range []struct {
			name string
			open func(t *testing.T) store.Store
		}{
			{"memory", func(*testing.T) store.Store { return store.NewMemory() }},
			{"sqlite", func(t *testing.T) store.Store {
				st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}},
		} {
			t.Run(tc.name+"/"+sc.name, func(t *testing.T) {
				st := sc.open(t)
				ctx := context.Background()
				if err := st.CreateRun(ctx, &store.Run{ID: "r1", Workflow: "w", Status: store.StatusRunning, StartedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
				rd := newRedactor(tc.secrets)
				var e cpEncoder
				for i, v := range tc.values {
					cp := &store.Checkpoint{RunID: "r1", Step: i, Changed: map[string]json.RawMessage{}, At: time.Now()}
					if err := e.put(cp, 0, "k", v, rd, true); err != nil {
						t.Fatal(err)
					}
					_, extended := cp.Extended["k"]
					if extended != tc.extended[i] {
						t.Errorf("step %d: extended = %v, want %v", i, extended, tc.extended[i])
					}
					if err := st.WriteCheckpoint(ctx, cp); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if extended && len(tc.secrets) > 0 && bytes.Contains(cp.Extended["k"].Tail, []byte(tc.secrets[0])) {
						t.Fatalf("step %d: the secret is in the checkpoint", i)
					}
					cps, err := st.Checkpoints(ctx, "r1")
					if err != nil {
						t.Fatal(err)
					}
					got := cps[len(cps)-1].Changed["k"]
					want, _ := json.Marshal(rd.value(v))
					if !bytes.Equal(got, want) {
						t.Fatalf("step %d: stored value differs from json.Marshal (%d bytes, want %d)", i, len(got), len(want))
					}
					if len(tc.secrets) > 0 && bytes.Contains(got, []byte(tc.secrets[0])) {
						t.Fatalf("step %d: the secret is in the checkpoint", i)
					}
				}
			})
		}
	}
}

// TestCheckpointEncoderSmallValues: below keepFrom nothing is kept, and a
// store that does not take extensions gets full values.
func TestCheckpointEncoderSmallValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		elem string
		ext  bool
	}{
		{"small", "more", true},
		{"no extensions", strings.Repeat("m", keepFrom), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e cpEncoder
			l := []any{"a", 1, true}
			for i := range 3 {
				l = append(l, tc.elem)
				cp := &store.Checkpoint{RunID: "r1", Step: i, Changed: map[string]json.RawMessage{}}
				if err := e.put(cp, 0, "k", l, redactor{}, tc.ext); err != nil {
					t.Fatal(err)
				}
				if cp.Extended != nil || cp.Changed["k"] == nil {
					t.Fatalf("step %d: extended %v", i, cp.Extended)
				}
			}
			if len(e.kept) != 0 {
				t.Errorf("a value is kept")
			}
		})
	}
}
