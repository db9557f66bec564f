package spec

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestScaleShortcutsKeepDiagnostics pins the diagnostics of the paths the
// scale work (issue #13) made cheaper: duplicate keys found by comparison
// in small mappings and with a map in large ones, expressions checked once
// per (source, scope) and reported at every place they occur, anchors
// memoised by the size check.
func TestScaleShortcutsKeepDiagnostics(t *testing.T) {
	var many strings.Builder
	for i := range smallMapping + 2 {
		fmt.Fprintf(&many, "  n%d: {type: set}\n", i)
	}
	tests := []struct {
		name, src, want string
	}{
		{
			name: "duplicate key in a small mapping",
			src:  "lgx: 1\nname: d\nnodes:\n  a: {type: set, type: set}\nedges: [{from: START, to: a}]\n",
			want: `d.yaml:4:18: error: "type" is defined twice in node a (first at line 4) [duplicate]`,
		},
		{
			name: "duplicate key in a large mapping",
			src:  "lgx: 1\nname: d\nnodes:\n" + many.String() + "  n1: {type: set}\nedges: [{from: START, to: [" + nodeList(smallMapping+2) + "]}]\n",
			want: fmt.Sprintf(`d.yaml:%d:3: error: "n1" is defined twice in nodes (first at line 5) [duplicate]`, smallMapping+6),
		},
		{
			name: "duplicate key through a merge key",
			src:  "lgx: 1\nname: d\nnodes:\n  b: &base {type: set}\n  a: {<<: *base, type: set, type: set}\nedges: [{from: START, to: [a, b]}]\n",
			want: `d.yaml:5:29: error: "type" is defined twice in node a (first at line 5) [duplicate]`,
		},
		{
			name: "one expression, reported everywhere, per scope",
			src: "lgx: 1\nname: d\nstate: {x: {type: string}, y: {type: string}, z: {type: string}}\nnodes:\n" +
				"  a: {type: set, output: {x: \"${{ state.nope }}\"}}\n" +
				"  b: {type: set, output: {y: \"${{ state.nope }}\"}}\n" +
				"  c: {type: test_echo, with: {msg: \"${{ result.msg }}\"}, output: {z: \"${{ result.msg }}\"}}\n" +
				"  e: {type: test_echo, with: {msg: \"${{ result.msg }}\"}}\n" +
				"edges: [{from: START, to: [a, b]}, {from: a, to: c}, {from: b, to: e}]\n",
			want: "d.yaml:5:41: error: unknown state key \"nope\" [expr]\n" +
				"d.yaml:6:41: error: unknown state key \"nope\" [expr]\n" +
				"d.yaml:7:41: error: unknown name result [expr]\n" +
				"d.yaml:8:41: error: unknown name result [expr]",
		},
		{
			name: "recursive anchor",
			src:  "lgx: 1\nname: d\nx: &a [1, &b [2, *b]]\nnodes: {a: {type: set}}\nedges: [{from: START, to: a}]\n",
			want: `d.yaml:3:11: error: an alias refers to the node that contains it (recursive anchor) [too-large]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ds := Load("d.yaml", []byte(tt.src))
			if !ds.HasErrors() {
				ds = append(ds, Validate(w)...)
			}
			ds.Sort()
			if got := strings.TrimSpace(ds.String()); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func nodeList(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	return strings.Join(names, ", ")
}

// FuzzIsIdent checks the hand-written identifier test against namePattern.
func FuzzIsIdent(f *testing.F) {
	for _, s := range []string{"", "a", "_", "A1", "1a", "a-b", "a b", "é", "a\n", "\na", "fetch_docs", "x\x00"} {
		f.Add(s)
	}
	re := regexp.MustCompile(namePattern)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isIdent(s), re.MatchString(s); got != want {
			t.Fatalf("isIdent(%q) = %v, namePattern says %v", s, got, want)
		}
	})
}
