package spec

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/parser"
)

// funcValues reports functions named without being called: `${{ now }}`,
// `len == nil`, `map(xs, upper)`. expr-lang's checker types such a name
// as a function value, which no state value can hold and which the
// runner cannot fetch, so the run would fail with an internal message
// (SPEC §3.1: an unknown function is a validation error; a function is
// not a value either). A loop variable that takes a builtin's name
// (`as: len`) is a value and is not reported; `let` cannot redeclare a
// builtin.
func funcValues(src string, tree *parser.Tree, scope ExprScope, cfg *conf.Config) []exprProblem {
	callees := map[*ast.IdentifierNode]bool{}
	// predicates are the identifiers that are a whole predicate: map(xs, upper).
	predicates := map[*ast.IdentifierNode]bool{}
	var idents []*ast.IdentifierNode
	visit(tree.Node, func(n ast.Node) {
		switch x := n.(type) {
		case *ast.IdentifierNode:
			idents = append(idents, x)
		case *ast.CallNode:
			if id, ok := x.Callee.(*ast.IdentifierNode); ok {
				callees[id] = true
			}
		case *ast.PredicateNode:
			if id, ok := x.Node.(*ast.IdentifierNode); ok {
				predicates[id] = true
			}
		}
	})
	var ps []exprProblem
	for _, id := range idents {
		name := id.Value
		if callees[id] || name == scope.LoopVar || !isFunc(cfg, name) {
			continue
		}
		at := id.Location().From
		if clockFuncs[name] {
			// Called, it is an error too (SPEC §9.6): say both at once.
			p := clockProblem(src, name, at)
			p.message = name + " is a function, and " + p.message
			ps = append(ps, p)
			continue
		}
		p := exprProblem{offset: runeToByte(src, at), code: CodeExpr,
			message: name + " is a function: call it, " + name + "(…)"}
		if predicates[id] {
			p.hint = "inside map, filter and the like, # is the element: " + name + "(#)"
		}
		ps = append(ps, p)
	}
	return ps
}

// isFunc reports whether name is a function of the expression language.
func isFunc(cfg *conf.Config, name string) bool {
	if _, ok := cfg.Functions[name]; ok {
		return true
	}
	_, ok := cfg.Builtins[name]
	return ok
}
