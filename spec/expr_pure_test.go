package spec

import (
	"strings"
	"testing"
)

func TestExprPurity(t *testing.T) {
	tests := []struct {
		field string // YAML for an output value or an if:
		want  string // "" = valid
		at    string // file:line:col of the problem
	}{
		{"output: {n: '${{ now() }}'}", "now() reads the clock; a resumed run could take another branch", "m.yaml:7:22"},
		{"output: {n: 'at ${{ string(now()) }}'}", "now() reads the clock", "m.yaml:7:32"},
		{"output: {n: '${{ 1 % 0 }}'}", "division by zero", "m.yaml:7:24"},
		{"output: {n: '${{ 1 / (2 - 2) }}'}", "division by zero", "m.yaml:7:24"},
		{"output: {n: '${{ state.n / 0.0 }}'}", "division by zero", "m.yaml:7:30"},
		{"output: {n: '${{ state.n % -0 }}'}", "division by zero", "m.yaml:7:30"},
		{"output: {n: '${{ state.n / 2 }}'}", "", ""},
		{"output: {n: '${{ 7 % 3 }}'}", "", ""},
		{"output: {n: '${{ state.n / state.n }}'}", "", ""},
		{"output: {n: '${{ duration(\"1s\") > duration(\"0s\") ? 1 : 0 }}'}", "", ""},
		// Constant parts that fail at every run (SPEC §9.6).
		{"output: {n: '${{ int(\"abc\") }}'}", "int(abc): this expression can never succeed", "m.yaml:7:22"},
		{"output: {n: '${{ state.n + float(\"1.5e\") }}'}", "float(1.5e): this expression can never succeed", "m.yaml:7:32"},
		{"output: {n: '${{ [1, 2][5] }}'}", "index out of range: 5 (array length is 2): this expression can never succeed", "m.yaml:7:28"},
		{"output: {n: '${{ len([1, 2][1:5]) }}'}", "", ""}, // expr clamps a slice
		{"output: {n: '${{ int(\"12\") + len(\"abc\") + [1, 2][1] }}'}", "", ""},
		// Not constant, or run only under a condition: they may succeed.
		{"output: {n: '${{ [state.n][5] }}'}", "", ""},
		{"output: {n: '${{ true ? 1 : [1][5] }}'}", "", ""},
		{"output: {n: '${{ state.n > 0 ? [1][5] : 0 }}'}", "", ""},
		{"output: {n: '${{ state.n > 0 && int(\"q\") > 1 ? 1 : 0 }}'}", "", ""},
		{"output: {n: '${{ state.n ?? int(\"q\") }}'}", "", ""},
		{"output: {n: '${{ len(repeat(\"ab\", 3)) }}'}", "", ""},
	}
	for _, tt := range tests {
		src := "lgx: 1\nname: m\nstate: {n: number}\nnodes:\n  a:\n    type: set\n    " + tt.field + "\nedges: [{from: START, to: a}]\n"
		w, ds := Load("m.yaml", []byte(src))
		if ds.HasErrors() {
			t.Fatalf("load: %v", ds)
		}
		got := Validate(w).String()
		if tt.want == "" {
			if strings.Contains(got, "error") {
				t.Errorf("%s: %s", tt.field, got)
			}
			continue
		}
		if !strings.Contains(got, tt.want) || !strings.Contains(got, tt.at) {
			t.Errorf("%s:\n%s\nwant %q at %s", tt.field, got, tt.want, tt.at)
		}
	}
	// if: and for_each: too.
	src := "lgx: 1\nname: m\nstate: {n: number}\nnodes:\n  a: {type: set, for_each: 'now().Year() > 0 ? [1] : []'}\nedges:\n  - {from: START, to: a}\n  - from: a\n    when: [{if: 'now().Unix() % 2 == 0', to: END}]\n    else: END\n"
	w, _ := Load("m.yaml", []byte(src))
	got := Validate(w).String()
	if strings.Count(got, "now() reads the clock") != 2 {
		t.Errorf("for_each and if:\n%s", got)
	}
}
