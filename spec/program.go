package spec

import (
	"errors"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
)

// ValueKind is the kind of a Value.
type ValueKind uint8

// Kinds of Value.
const (
	// ValueLiteral is a subtree without expressions, decoded once: Lit,
	// or Err when it does not decode.
	ValueLiteral ValueKind = iota + 1
	// ValueExpr is one expression, the whole value: Src, without `${{ }}`.
	// Its result keeps its type.
	ValueExpr
	// ValueInterp is text mixed with expressions, rendered to a string:
	// Parts, each a string ValueLiteral or a ValueExpr.
	ValueInterp
	// ValueMap is a mapping with an expression somewhere below: Keys and
	// Elems, in file order.
	ValueMap
	// ValueList is a sequence with an expression somewhere below: Elems.
	ValueList
	// ValueInvalid cannot be compiled: Err says why (a `${{` without its
	// `}}`, a condition mixing text and expressions).
	ValueInvalid
)

// Value is a value the workflow computes at run time (a node's `with`,
// `for_each` and `output`, an edge's condition, a tool's output, a pool
// key, a provider's string fields), as a tree that needs no YAML: spec is
// the only package that reads YAML, and runner compiles these trees.
// Subtrees without expressions are literals, already decoded with the one
// value model (DecodeValue); positions say where each piece is, for
// run-time errors.
type Value struct {
	Kind ValueKind
	// Pos is where the value's text is (for an alias, its anchor's);
	// expressions report their errors there.
	Pos Pos
	// At is where the value is written: the alias itself for an alias,
	// Pos otherwise.
	At Pos

	Lit   any      // ValueLiteral
	Src   string   // ValueExpr: the expression source
	Parts []*Value // ValueInterp
	Keys  []string // ValueMap
	Elems []*Value // ValueMap (one per key) and ValueList
	Err   error    // ValueLiteral that does not decode; ValueInvalid
}

// LiteralValue is a Value of a decoded literal (nil, a string, a number, a
// bool, a []any or a map[string]any), at no position: what a program that
// synthesises a node writes.
func LiteralValue(lit any) *Value {
	return &Value{Kind: ValueLiteral, Lit: lit}
}

// MapValue is a ValueMap of the given keys and values.
func MapValue(keys []string, elems []*Value) *Value {
	return &Value{Kind: ValueMap, Keys: keys, Elems: elems}
}

// StringValue is the Value of a string that may contain `${{ }}`: a
// literal, one expression (keeping its type), or an interpolation.
func StringValue(s string, pos Pos) *Value {
	v := &Value{Pos: pos, At: pos}
	in, err := ParseInterpolation(s)
	switch {
	case err != nil:
		v.Kind, v.Err = ValueInvalid, err
		return v
	case !in.HasExpr():
		v.Kind, v.Lit = ValueLiteral, s
		return v
	case in.Single():
		for _, seg := range in.Segments {
			if seg.IsExpr {
				v.Kind, v.Src = ValueExpr, seg.Text
				return v
			}
		}
	}
	v.Kind = ValueInterp
	v.Parts = make([]*Value, 0, len(in.Segments))
	for _, seg := range in.Segments {
		if seg.IsExpr {
			v.Parts = append(v.Parts, &Value{Kind: ValueExpr, Pos: pos, At: pos, Src: seg.Text})
		} else {
			v.Parts = append(v.Parts, &Value{Kind: ValueLiteral, Pos: pos, At: pos, Lit: seg.Text})
		}
	}
	return v
}

// BareValue is the Value of an `if:` condition or a `for_each:` string:
// one expression, with or without `${{ }}`.
func BareValue(s string, pos Pos) *Value {
	src, _, err := BareExpression(s)
	if err != nil {
		return &Value{Kind: ValueInvalid, Pos: pos, At: pos, Err: err}
	}
	return &Value{Kind: ValueExpr, Pos: pos, At: pos, Src: src}
}

// errUnsupported is a YAML node a value cannot be made of (a document
// that is not one value).
var errUnsupported = errors.New("unsupported YAML value")

// maxExprDepth bounds the search for expressions in a value; deeper
// subtrees are taken as literals (and then meet DecodeValue's limits).
const maxExprDepth = 200

// valueOf builds the Value of a YAML node: subtrees without expressions
// become one literal.
func valueOf(n *yaml.Node) *Value {
	at := posOf(n)
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if !hasExpr(n, 0) {
		return literalOf(n, at)
	}
	pos := posOf(n)
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 1 {
			return valueOf(n.Content[0])
		}
	case yaml.ScalarNode:
		v := StringValue(n.Value, pos)
		v.At = at
		return v
	case yaml.MappingNode:
		// Keys as written: a node type's inputs are plain keys; merge keys
		// are the literal decoder's (see literalOf).
		v := &Value{Kind: ValueMap, Pos: pos, At: at}
		for i := 0; i+1 < len(n.Content); i += 2 {
			v.Keys = append(v.Keys, n.Content[i].Value)
			v.Elems = append(v.Elems, valueOf(n.Content[i+1]))
		}
		return v
	case yaml.SequenceNode:
		v := &Value{Kind: ValueList, Pos: pos, At: at}
		for _, e := range n.Content {
			v.Elems = append(v.Elems, valueOf(e))
		}
		return v
	}
	return &Value{Kind: ValueInvalid, Pos: pos, At: at, Err: errUnsupported}
}

// literalOf decodes n whole, expressions or not (a Static input is
// passed to the type as written).
func literalOf(n *yaml.Node, at Pos) *Value {
	lit, err := DecodeValue(n)
	return &Value{Kind: ValueLiteral, Pos: posOf(resolveAlias(n)), At: at, Lit: lit, Err: err}
}

// hasExpr reports whether a YAML subtree holds a string with `${{`.
func hasExpr(n *yaml.Node, depth int) bool {
	if n == nil || depth > maxExprDepth {
		return false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Tag == "!!str" && strings.Contains(n.Value, "${{")
	case yaml.AliasNode:
		return hasExpr(n.Alias, depth+1)
	}
	for _, c := range n.Content {
		if hasExpr(c, depth+1) {
			return true
		}
	}
	return false
}

// buildProgram gives every value of w its tree (the *Tree fields), once
// Load has decoded the file.
func buildProgram(w *Workflow) {
	// The nodes' trees are built as they are decoded (decoder.nodes), on
	// every core for a large workflow.
	for _, t := range w.Tools {
		if t.Node != nil {
			t.Node.buildTrees()
		}
		if t.Output != nil {
			t.OutputTree = valueOf(t.Output)
		}
	}
	for _, e := range w.Edges {
		for _, c := range e.When {
			if c.If != nil {
				c.IfTree = BareValue(c.If.Value, posOf(c.If))
			}
		}
	}
}

// buildTrees builds a node's value trees from its YAML.
func (n *Node) buildTrees() {
	if n.With != nil {
		n.WithTree = withTree(n.Type, n.With)
	}
	if fe := n.ForEach; fe != nil {
		for fe.Kind == yaml.AliasNode && fe.Alias != nil {
			fe = fe.Alias
		}
		if fe.Kind == yaml.ScalarNode && fe.Tag == "!!str" {
			n.ForEachTree = BareValue(fe.Value, posOf(fe))
		} else {
			n.ForEachTree = valueOf(fe)
		}
	}
	for _, o := range n.Output {
		if o.Value != nil {
			o.Tree = valueOf(o.Value)
		}
	}
	if pk := n.PoolKey; pk != nil && pk.Key != nil {
		pk.KeyTree = StringValue(pk.Key.Value, posOf(pk.Key))
	}
}

// withTree is the tree of a node's `with` mapping: the type's Static
// inputs decoded whole (they feed its Prepare as written), the others
// with their expressions. A `with` that is not a mapping is ValueInvalid.
func withTree(typ string, w *yaml.Node) *Value {
	at := posOf(w)
	for w.Kind == yaml.AliasNode && w.Alias != nil {
		w = w.Alias
	}
	if w.Kind != yaml.MappingNode {
		return &Value{Kind: ValueInvalid, Pos: posOf(w), At: at, Err: errors.New("with must be a mapping")}
	}
	var static map[string]bool
	if t, ok := nodes.Lookup(typ); ok {
		for _, f := range t.Doc().With {
			if f.Static {
				if static == nil {
					static = map[string]bool{}
				}
				static[f.Name] = true
			}
		}
	}
	v := &Value{Kind: ValueMap, Pos: posOf(w), At: at,
		Keys: make([]string, 0, len(w.Content)/2), Elems: make([]*Value, 0, len(w.Content)/2)}
	for i := 0; i+1 < len(w.Content); i += 2 {
		k, vn := w.Content[i].Value, w.Content[i+1]
		var e *Value
		if static[k] {
			e = literalOf(vn, posOf(vn))
		} else {
			e = valueOf(vn)
		}
		v.Keys = append(v.Keys, k)
		v.Elems = append(v.Elems, e)
	}
	return v
}
