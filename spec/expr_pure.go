package spec

import (
	"math"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// Expressions are deterministic and constant failures are caught early
// (SPEC §9.6): a resumed or replayed run must take the same branches, so
// nothing may read the clock, and an expression that can never succeed
// (`1 % 0`) is a validation error rather than a failure hours into a run.

// clockFuncs are the expr-lang builtins that read the clock. expr has no
// randomness; `date` and `duration` parse their arguments and are pure.
var clockFuncs = map[string]bool{"now": true}

// pureProblems reports clock reads and divisions by a constant zero.
func pureProblems(src string, tree *parser.Tree, scope ExprScope) []exprProblem {
	var ps []exprProblem
	visit(tree.Node, func(n ast.Node) {
		switch x := n.(type) {
		case *ast.BuiltinNode:
			if clockFuncs[x.Name] {
				ps = append(ps, clockProblem(src, x.Name, x.Location().From))
			}
		case *ast.CallNode:
			if id, ok := x.Callee.(*ast.IdentifierNode); ok && clockFuncs[id.Value] && id.Value != scope.LoopVar {
				ps = append(ps, clockProblem(src, id.Value, x.Location().From))
			}
		case *ast.BinaryNode:
			if x.Operator != "/" && x.Operator != "%" {
				return
			}
			if v, ok := constNumber(x.Right, 0); ok && v == 0 {
				p := exprProblem{offset: runeToByte(src, x.Location().From), code: CodeExpr,
					message: "division by zero: this expression can never succeed"}
				if x.Operator == "/" {
					p.hint = "a number divided by 0 is ±Inf or NaN, which no state value can hold"
				}
				ps = append(ps, p)
			}
		}
	})
	return ps
}

func clockProblem(src, name string, at int) exprProblem {
	return exprProblem{offset: runeToByte(src, at), code: CodeExpr,
		message: name + "() reads the clock; a resumed run could take another branch than the original",
		hint:    "pass the time in as an input (lgx run -i now=…) and read it from state"}
}

// constNumber evaluates n when it is a constant arithmetic expression of
// number literals (after expr's own folding, `2 - 2` is still written out
// here), without running anything user-defined.
func constNumber(n ast.Node, depth int) (float64, bool) {
	if depth > 64 {
		return 0, false
	}
	switch x := n.(type) {
	case *ast.IntegerNode:
		return float64(x.Value), true
	case *ast.FloatNode:
		return x.Value, true
	case *ast.UnaryNode:
		v, ok := constNumber(x.Node, depth+1)
		switch {
		case !ok:
		case x.Operator == "-":
			return -v, true
		case x.Operator == "+":
			return v, true
		}
	case *ast.BinaryNode:
		a, ok := constNumber(x.Left, depth+1)
		if !ok {
			return 0, false
		}
		b, ok := constNumber(x.Right, depth+1)
		if !ok {
			return 0, false
		}
		switch x.Operator {
		case "+":
			return a + b, true
		case "-":
			return a - b, true
		case "*":
			return a * b, true
		case "/":
			if b != 0 {
				return a / b, true
			}
		case "%":
			if b != 0 && a == math.Trunc(a) && b == math.Trunc(b) {
				return math.Mod(a, b), true
			}
		}
	}
	return 0, false
}
