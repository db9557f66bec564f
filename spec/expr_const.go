package spec

import (
	"math"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// Constant parts of an expression that fail at run time fail at every run
// (SPEC §9.6: constant expressions that cannot succeed are validation
// errors): `int('abc')`, `[1, 2][5]`. Validate evaluates them: parts made
// of literals alone that hold an operation able to fail (a builtin, an
// index, a slice, a member access), of a bounded size, without the
// builtins that build large values from small ones.

// maxConstNodes bounds the constant subtrees validate evaluates.
const maxConstNodes = 64

// constDeny are builtins not evaluated at validate time: repeat builds a
// string of any size from a short literal.
var constDeny = map[string]bool{"repeat": true}

// constProblems reports the first constant part of the expression that
// fails when evaluated. Only maximal constant parts are evaluated, each
// as a whole (so `true ? 1 : [1][5]` is fine), and never one that only
// runs under a condition: a branch of `?:`, the right side of `&&`,
// `||` or `??`, a predicate (`state.x ? [1][5] : 0` can succeed).
func constProblems(src string, tree *parser.Tree) []exprProblem {
	var found *exprProblem
	var check func(n ast.Node)
	checkAll := func(ns []ast.Node) {
		for _, n := range ns {
			check(n)
		}
	}
	check = func(n ast.Node) {
		if n == nil || found != nil {
			return
		}
		size := 0
		if constant(n, &size) {
			if risky(n) {
				if err := evalConst(n); err != "" {
					found = &exprProblem{offset: runeToByte(src, n.Location().From), code: CodeExpr,
						message: err + ": this expression can never succeed"}
				}
			}
			return
		}
		switch x := n.(type) {
		case *ast.UnaryNode:
			check(x.Node)
		case *ast.BinaryNode:
			check(x.Left)
			switch x.Operator {
			case "&&", "||", "and", "or", "??":
			default:
				check(x.Right)
			}
		case *ast.ChainNode:
			check(x.Node)
		case *ast.MemberNode:
			check(x.Node)
			check(x.Property)
		case *ast.SliceNode:
			check(x.Node)
			check(x.From)
			check(x.To)
		case *ast.BuiltinNode:
			checkAll(x.Arguments)
		case *ast.CallNode:
			checkAll(x.Arguments)
		case *ast.ConditionalNode:
			check(x.Cond)
		case *ast.ArrayNode:
			checkAll(x.Nodes)
		case *ast.MapNode:
			checkAll(x.Pairs)
		case *ast.PairNode:
			check(x.Key)
			check(x.Value)
		}
	}
	check(tree.Node)
	if found == nil {
		return nil
	}
	return []exprProblem{*found}
}

// risky reports whether a constant subtree holds an operation that can
// fail at run time though it type-checks: a builtin (a conversion), an
// index, a slice or a member access.
func risky(n ast.Node) bool {
	r := false
	visit(n, func(n ast.Node) {
		switch n.(type) {
		case *ast.BuiltinNode, *ast.MemberNode, *ast.SliceNode:
			r = true
		}
	})
	return r
}

// constant reports whether n is made of literals and operations on them
// only (no variable, function of the environment, closure or range),
// counting its nodes in size; false past maxConstNodes.
func constant(n ast.Node, size *int) bool {
	if n == nil {
		return true
	}
	if *size++; *size > maxConstNodes {
		return false
	}
	switch x := n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.BoolNode, *ast.NilNode, *ast.ConstantNode:
		return true
	case *ast.UnaryNode:
		return constant(x.Node, size)
	case *ast.BinaryNode:
		return x.Operator != ".." && constant(x.Left, size) && constant(x.Right, size)
	case *ast.ChainNode:
		return constant(x.Node, size)
	case *ast.MemberNode:
		return !x.Method && constant(x.Node, size) && constant(x.Property, size)
	case *ast.SliceNode:
		return constant(x.Node, size) && constant(x.From, size) && constant(x.To, size)
	case *ast.BuiltinNode:
		if constDeny[x.Name] || clockFuncs[x.Name] || x.Map != nil {
			return false
		}
		for _, a := range x.Arguments {
			if !constant(a, size) {
				return false
			}
		}
		return true
	case *ast.ConditionalNode:
		return constant(x.Cond, size) && constant(x.Exp1, size) && constant(x.Exp2, size)
	case *ast.ArrayNode:
		for _, e := range x.Nodes {
			if !constant(e, size) {
				return false
			}
		}
		return true
	case *ast.MapNode:
		for _, p := range x.Pairs {
			if !constant(p, size) {
				return false
			}
		}
		return true
	case *ast.PairNode:
		return constant(x.Key, size) && constant(x.Value, size)
	}
	return false
}

// evalConst runs a constant subtree and returns its failure, "" when it
// succeeds or cannot be judged (it does not compile on its own).
func evalConst(n ast.Node) (problem string) {
	_, err, ok := runConst(n)
	if !ok || err == nil {
		return ""
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	// expr appends the position within the subtree, " (1:7)": the
	// diagnostic gives the one within the file instead.
	if i := strings.LastIndex(msg, " ("); i > 0 && strings.HasSuffix(msg, ")") {
		msg = msg[:i]
	}
	return msg
}

// nonJSONConstant returns the value of an expression made of literals
// alone that JSON cannot hold (`2 ** 2000` is +Inf), "" for any other
// expression. Written as a node's output it fails every run (SPEC §9.6:
// only JSON is stored); inside text it prints "+Inf".
func nonJSONConstant(tree *parser.Tree) string {
	size := 0
	if !constant(tree.Node, &size) {
		return ""
	}
	out, err, ok := runConst(tree.Node)
	if f, isFloat := out.(float64); ok && err == nil && isFloat && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return ""
}

// runConst evaluates a constant subtree on its own: its value or its
// failure, ok false when it cannot be judged (it does not compile alone,
// or expr panics: never a validation failure).
func runConst(n ast.Node) (out any, err error, ok bool) {
	defer func() {
		if recover() != nil {
			out, err, ok = nil, nil, false
		}
	}()
	prog, cerr := expr.Compile(n.String())
	if cerr != nil {
		return nil, nil, false
	}
	out, err = expr.Run(prog, nil)
	return out, err, true
}
