package runner

import (
	"strings"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

// TestCompileValueErrors: what Compile reports for values that Validate
// would have rejected (a caller that skips it): each with its
// file:line:col, an alias's expression at its anchor. The messages are
// those of the compiler that read YAML nodes itself.
func TestCompileValueErrors(t *testing.T) {
	const head = "lgx: 1\nname: x\nstate:\n  a: {type: any}\n"
	tests := []struct {
		name, body, want string
	}{
		{"with: unterminated", "nodes:\n  n:\n    type: set\n    with: {v: \"a ${{ state.a\"}\n", "node n: with.v: w.yaml:8:15: unclosed ${{: expected }}"},
		{"with: nested bad expression", "nodes:\n  n:\n    type: set\n    with: {v: [1, {w: \"${{ 1 + }}\"}]}\n", "node n: with.v: w.yaml:8:23: expression \"1 +\": unexpected token EOF"},
		{"output through an alias", "nodes:\n  m:\n    type: set\n    description: &e \"${{ 1 + }}\"\n  n:\n    type: set\n    output: {a: *e}\n", "node n: output.a: w.yaml:8:18: expression \"1 +\": unexpected token EOF"},
		{"for_each mixing text", "nodes:\n  n:\n    type: set\n    for_each: \"x ${{ [1] }}\"\n", "node n: for_each: w.yaml:8:15: \"x ${{ [1] }}\" mixes text and ${{ }}; write one expression"},
		{"for_each list", "nodes:\n  n:\n    type: set\n    for_each: [1, \"${{ ( }}\"]\n", "node n: for_each: w.yaml:8:19: expression \"(\": unexpected token EOF"},
		{"pool key", "pools:\n  p: {concurrency: 1}\nnodes:\n  n:\n    type: set\n    pool: {name: p, key: \"k-${{ item\"}\n", "node n: pool.key: w.yaml:10:26: unclosed ${{: expected }}"},
		{"condition", "nodes:\n  n: {type: set}\nedges:\n  - from: START\n    to: n\n  - from: n\n    when:\n      - if: \"a ${{ b }}\"\n        to: END\n", "w.yaml:12:13: \"a ${{ b }}\" mixes text and ${{ }}; write one expression"},
		{"tool output", "tools:\n  t:\n    description: d\n    parameters: {type: object}\n    node: {type: set}\n    output: \"${{ ) }}\"\nnodes:\n  n: {type: set}\n", "tool t: output: w.yaml:10:13: expression \")\": unexpected token Bracket"},
		{"static input that does not decode", "nodes:\n  n:\n    type: template\n    with: {template: !!int x}\n", "w.yaml:8:22: node n: with.template: yaml: cannot decode !!str `x` as a !!int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ds := spec.Load("w.yaml", []byte(head+tt.body))
			if ds.HasErrors() {
				t.Fatalf("load: %v", ds.Errors())
			}
			_, err := Compile(w)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %q, want %q", err, tt.want)
			}
		})
	}
}

// TestCompileSharesPrograms: an expression written in several places is
// compiled once per graph, and each place still reports its own position
// and records the result fields it reads.
func TestCompileSharesPrograms(t *testing.T) {
	g := compileYAML(t, `lgx: 1
name: x
state:
  a: {type: any}
  b: {type: any}
nodes:
  n: {type: probe, with: {value: {v: 1}}, output: {a: "${{ result.v }}"}}
  m: {type: probe, with: {value: {v: 2}}, output: {b: "${{ result.v }}"}}
edges:
  - {from: START, to: [n, m]}
`)
	prog := func(node string) *progVal {
		t.Helper()
		return g.nodes[g.byName[node]].output[0].val.(*progVal)
	}
	n, m := prog("n"), prog("m")
	if n.prog != m.prog {
		t.Error("the same expression was compiled twice")
	}
	if n.pos == m.pos || n.pos.Line != 7 || m.pos.Line != 8 {
		t.Errorf("positions %v and %v, want each its own line", n.pos, m.pos)
	}
	for _, node := range []string{"n", "m"} {
		if got := g.nodes[g.byName[node]].resultFields; !got["v"] || len(got) != 1 {
			t.Errorf("node %s: result fields %v, want [v]", node, got)
		}
	}
	if g.progs != nil {
		t.Error("the compile cache outlives Compile")
	}
}

// TestTerminalNodes: a node is terminal when nothing it leads to is a
// node: no edges, edges to END only, conditions whose every case and else
// go to END; an edge, a condition's case or else to a node, or being a
// join's source makes it not.
func TestTerminalNodes(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
state:
  x: {type: integer, default: 0}
nodes:
  a: {type: probe}
  b: {type: probe}
  c: {type: probe}
  d: {type: probe}
  e: {type: probe}
  f: {type: probe}
  g: {type: probe}
  h: {type: probe}
edges:
  - {from: START, to: [a, b, c, d, e, f, g]}
  - {from: a, to: END}
  - from: b
    when:
      - {if: "state.x > 1", to: END}
    else: END
  - from: c
    when:
      - {if: "state.x > 1", to: END}
    else: h
  - from: d
    when:
      - {if: "state.x > 1", to: h}
  - {from: e, to: h}
  - {from: [f, g], to: END}
`)
	want := map[string]bool{"a": true, "b": true, "c": false, "d": false, "e": false, "f": false, "g": false, "h": true}
	for _, n := range g.nodes {
		if n.terminal != want[n.name] {
			t.Errorf("%s: terminal = %v, want %v", n.name, n.terminal, want[n.name])
		}
	}
}
