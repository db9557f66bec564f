package spec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// programSrc exercises every kind of Value: literals, one expression,
// interpolations, maps and lists with expressions below, aliases, a
// Static input, conditions, for_each, a pool key and a tool's output.
const programSrc = `lgx: 1
name: prog
pools:
  p: {concurrency: 1}
state:
  a: {type: any}
  b: {type: any}
tools:
  t:
    description: d
    parameters: {type: object}
    node: {type: set, with: {v: 1}}
    output: "got ${{ result }}"
nodes:
  s:
    type: set
    with:
      lit: &lit {x: 1, y: [true, null]}
      one: &expr "${{ state.a }}"
      plain: *lit
      text: "a ${{ state.a }} b ${{ 1 + 1 }}"
      nested: {k: ["${{ state.b }}", 2]}
      ali: *expr
    output: a
  r:
    type: template
    with:
      template: "hello ${{ not an expression }}"
    for_each: ${{ [1, 2] }}
    pool: {name: p, key: "tenant-${{ item }}"}
    output:
      b: ${{ result }}
  q:
    type: set
    for_each: [1, "${{ state.a }}"]
edges:
  - from: START
    to: [s, q]
  - from: s
    when:
      - if: state.a == 1
        to: r
    else: END
`

func TestProgramTrees(t *testing.T) {
	w, ds := Load("prog.yaml", []byte(programSrc))
	if ds.HasErrors() {
		t.Fatal(ds.String())
	}
	nodes := map[string]*Node{}
	for _, n := range w.Nodes {
		nodes[n.Name] = n
	}
	with := func(node, key string) *Value {
		t.Helper()
		wt := nodes[node].WithTree
		if wt == nil || wt.Kind != ValueMap {
			t.Fatalf("node %s: WithTree = %+v, want a map", node, wt)
		}
		for i, k := range wt.Keys {
			if k == key {
				return wt.Elems[i]
			}
		}
		t.Fatalf("node %s: no with.%s", node, key)
		return nil
	}
	tests := []struct {
		name string
		got  *Value
		want *Value
	}{
		{"literal through an alias", with("s", "plain"),
			&Value{Kind: ValueLiteral, Pos: Pos{18, 12}, At: Pos{20, 14}, Lit: map[string]any{"x": 1, "y": []any{true, nil}}}},
		{"one expression", with("s", "one"),
			&Value{Kind: ValueExpr, Pos: Pos{19, 12}, At: Pos{19, 12}, Src: "state.a"}},
		{"interpolation", with("s", "text"),
			&Value{Kind: ValueInterp, Pos: Pos{21, 13}, At: Pos{21, 13}, Parts: []*Value{
				{Kind: ValueLiteral, Pos: Pos{21, 13}, At: Pos{21, 13}, Lit: "a "},
				{Kind: ValueExpr, Pos: Pos{21, 13}, At: Pos{21, 13}, Src: "state.a"},
				{Kind: ValueLiteral, Pos: Pos{21, 13}, At: Pos{21, 13}, Lit: " b "},
				{Kind: ValueExpr, Pos: Pos{21, 13}, At: Pos{21, 13}, Src: "1 + 1"},
			}}},
		{"map and list with an expression below", with("s", "nested"),
			&Value{Kind: ValueMap, Pos: Pos{22, 15}, At: Pos{22, 15}, Keys: []string{"k"}, Elems: []*Value{
				{Kind: ValueList, Pos: Pos{22, 19}, At: Pos{22, 19}, Elems: []*Value{
					{Kind: ValueExpr, Pos: Pos{22, 20}, At: Pos{22, 20}, Src: "state.b"},
					{Kind: ValueLiteral, Pos: Pos{22, 38}, At: Pos{22, 38}, Lit: 2},
				}},
			}}},
		{"expression through an alias: its text at the anchor, written at the alias", with("s", "ali"),
			&Value{Kind: ValueExpr, Pos: Pos{19, 12}, At: Pos{23, 12}, Src: "state.a"}},
		{"a Static input is a literal, ${{ }} and all", with("r", "template"),
			&Value{Kind: ValueLiteral, Pos: Pos{28, 17}, At: Pos{28, 17}, Lit: "hello ${{ not an expression }}"}},
		{"output: key is ${{ result }}", nodes["s"].Output[0].Tree,
			&Value{Kind: ValueExpr, Pos: Pos{24, 13}, At: Pos{24, 13}, Src: "result"}},
		{"output mapping", nodes["r"].Output[0].Tree,
			&Value{Kind: ValueExpr, Pos: Pos{32, 10}, At: Pos{32, 10}, Src: "result"}},
		{"for_each string", nodes["r"].ForEachTree,
			&Value{Kind: ValueExpr, Pos: Pos{29, 15}, At: Pos{29, 15}, Src: "[1, 2]"}},
		{"for_each list", nodes["q"].ForEachTree,
			&Value{Kind: ValueList, Pos: Pos{35, 15}, At: Pos{35, 15}, Elems: []*Value{
				{Kind: ValueLiteral, Pos: Pos{35, 16}, At: Pos{35, 16}, Lit: 1},
				{Kind: ValueExpr, Pos: Pos{35, 19}, At: Pos{35, 19}, Src: "state.a"},
			}}},
		{"pool key", nodes["r"].PoolKey.KeyTree,
			&Value{Kind: ValueInterp, Pos: Pos{30, 26}, At: Pos{30, 26}, Parts: []*Value{
				{Kind: ValueLiteral, Pos: Pos{30, 26}, At: Pos{30, 26}, Lit: "tenant-"},
				{Kind: ValueExpr, Pos: Pos{30, 26}, At: Pos{30, 26}, Src: "item"},
			}}},
		{"bare condition", w.Edges[1].When[0].IfTree,
			&Value{Kind: ValueExpr, Pos: Pos{41, 13}, At: Pos{41, 13}, Src: "state.a == 1"}},
		{"tool output", w.Tools[0].OutputTree,
			&Value{Kind: ValueInterp, Pos: Pos{13, 13}, At: Pos{13, 13}, Parts: []*Value{
				{Kind: ValueLiteral, Pos: Pos{13, 13}, At: Pos{13, 13}, Lit: "got "},
				{Kind: ValueExpr, Pos: Pos{13, 13}, At: Pos{13, 13}, Src: "result"},
			}}},
		{"tool node", w.Tools[0].Node.WithTree,
			&Value{Kind: ValueMap, Pos: Pos{12, 29}, At: Pos{12, 29}, Keys: []string{"v"}, Elems: []*Value{
				{Kind: ValueLiteral, Pos: Pos{12, 33}, At: Pos{12, 33}, Lit: 1},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got  %s\nwant %s", dumpValue(tt.got), dumpValue(tt.want))
			}
		})
	}
}

// TestProgramInvalid: what cannot be compiled is ValueInvalid with the
// parser's reason, at the value's position, for the compiler to report.
func TestProgramInvalid(t *testing.T) {
	tests := []struct {
		name string
		v    *Value
		want string
	}{
		{"unterminated", StringValue("a ${{ state.x", Pos{3, 4}), "${{"},
		{"condition mixing text", BareValue("x ${{ a }}", Pos{5, 6}), "mixes text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.v.Kind != ValueInvalid || tt.v.Err == nil || !strings.Contains(tt.v.Err.Error(), tt.want) {
				t.Fatalf("got %s, want ValueInvalid containing %q", dumpValue(tt.v), tt.want)
			}
			if tt.v.Pos.Line == 0 || tt.v.At != tt.v.Pos {
				t.Errorf("position %+v/%+v not kept", tt.v.Pos, tt.v.At)
			}
		})
	}
	w, _ := Load("w.yaml", []byte("lgx: 1\nname: x\nnodes:\n  a:\n    type: set\n    with: [1]\n"))
	if got := w.Nodes[0].WithTree; got != nil {
		t.Errorf("a `with` Load rejects gets a tree: %s", dumpValue(got))
	}
}

// TestStringValueLiteral: a string without expressions is a literal,
// even with a lone `$`.
func TestStringValueLiteral(t *testing.T) {
	for _, s := range []string{"", "plain", "costs $5", "{{ not ours }}"} {
		v := StringValue(s, Pos{1, 1})
		if v.Kind != ValueLiteral || v.Lit != s {
			t.Errorf("StringValue(%q) = %s, want the literal", s, dumpValue(v))
		}
	}
}

func dumpValue(v *Value) string {
	if v == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("{kind=%d pos=%v at=%v", v.Kind, v.Pos, v.At)
	if v.Src != "" {
		s += " src=" + v.Src
	}
	if v.Lit != nil {
		s += fmt.Sprintf(" lit=%#v", v.Lit)
	}
	if v.Err != nil {
		s += " err=" + v.Err.Error()
	}
	for _, p := range v.Parts {
		s += " " + dumpValue(p)
	}
	for i, e := range v.Elems {
		if i < len(v.Keys) {
			s += " " + v.Keys[i] + ":"
		}
		s += " " + dumpValue(e)
	}
	return s + "}"
}
