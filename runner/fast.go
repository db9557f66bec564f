package runner

import (
	"cmp"

	"github.com/expr-lang/expr/ast"
)

// fastFn evaluates a common, simple expression without the expr VM: state,
// loop and result lookups, literals, arithmetic or comparisons of ints,
// floats and strings, and `cond ? a : b` of those. ok is false when the operands are of other types; the
// caller then runs the compiled program, which defines the semantics.
type fastFn func(env *exprEnv) (v any, ok bool)

// compileFast returns a fastFn for the (patched, optimised) AST of an
// expression, or nil when the expression is outside the fast subset.
//
// keys are the graph's state keys by name (nil: none known): `state.KEY`
// of a declared key then reads the state's slot (exprEnv.vals) when the
// environment has one, not the map.
func compileFast(n ast.Node, keys map[string]int) fastFn {
	switch x := n.(type) {
	case *ast.IntegerNode:
		v := any(x.Value)
		return func(*exprEnv) (any, bool) { return v, true }
	case *ast.FloatNode:
		v := any(x.Value)
		return func(*exprEnv) (any, bool) { return v, true }
	case *ast.StringNode:
		v := any(x.Value)
		return func(*exprEnv) (any, bool) { return v, true }
	case *ast.BoolNode:
		v := any(x.Value)
		return func(*exprEnv) (any, bool) { return v, true }
	case *ast.NilNode:
		return func(*exprEnv) (any, bool) { return nil, true }
	case *ast.IdentifierNode:
		switch x.Value {
		case "item":
			return func(e *exprEnv) (any, bool) { return e.Item, true }
		case "result":
			return func(e *exprEnv) (any, bool) { return e.Result, true }
		case "index":
			return func(e *exprEnv) (any, bool) { return e.Index, true }
		}
	case *ast.MemberNode:
		id, ok := x.Node.(*ast.IdentifierNode)
		prop, ok2 := x.Property.(*ast.StringNode)
		if !ok || !ok2 || x.Method {
			return nil
		}
		key := prop.Value
		switch id.Value {
		case "state":
			if idx, ok := keys[key]; ok {
				return func(e *exprEnv) (any, bool) {
					if e.vals != nil {
						return e.vals[idx], true
					}
					return e.State[key], true
				}
			}
			return func(e *exprEnv) (any, bool) { return e.State[key], true }
		case "result", "item", "args":
			var get func(e *exprEnv) any
			switch id.Value {
			case "result":
				get = func(e *exprEnv) any { return e.Result }
			case "item":
				get = func(e *exprEnv) any { return e.Item }
			default:
				get = func(e *exprEnv) any { return e.Args }
			}
			return func(e *exprEnv) (any, bool) {
				switch m := get(e).(type) {
				case map[string]any:
					return m[key], true
				}
				return nil, false
			}
		}
	case *ast.ConditionalNode:
		c, a, b := compileFast(x.Cond, keys), compileFast(x.Exp1, keys), compileFast(x.Exp2, keys)
		if c == nil || a == nil || b == nil {
			return nil
		}
		return func(e *exprEnv) (any, bool) {
			cv, ok := c(e)
			if !ok {
				return nil, false
			}
			cond, isBool := cv.(bool)
			switch {
			case !isBool:
				return nil, false // the VM reports the error
			case cond:
				return a(e)
			}
			return b(e)
		}
	case *ast.CallNode:
		// `a + b` that may join strings, as limitPatch rewrote it.
		id, ok := x.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != addFn || len(x.Arguments) != 3 {
			return nil
		}
		return fastBinary("+", x.Arguments[1], x.Arguments[2], keys)
	case *ast.BinaryNode:
		return fastBinary(x.Operator, x.Left, x.Right, keys)
	}
	return nil
}

// fastBinary compiles `left op right` when both sides are in the fast
// subset.
func fastBinary(op string, left, right ast.Node, keys map[string]int) fastFn {
	l, r := compileFast(left, keys), compileFast(right, keys)
	if l == nil || r == nil {
		return nil
	}
	o, ok := fastOps[op]
	if !ok {
		return nil
	}
	return func(e *exprEnv) (any, bool) {
		a, ok := l(e)
		if !ok {
			return nil, false
		}
		b, ok := r(e)
		if !ok {
			return nil, false
		}
		return binary(o, a, b)
	}
}

// fastOp is an operator of the fast subset, decoded once when compiling
// (a switch on the operator's string per evaluation cost S1 2 %).
type fastOp uint8

const (
	opAdd fastOp = iota
	opSub
	opMul
	opLT
	opLE
	opGT
	opGE
	opEQ
	opNE
)

var fastOps = map[string]fastOp{"+": opAdd, "-": opSub, "*": opMul, "<": opLT, "<=": opLE, ">": opGT, ">=": opGE, "==": opEQ, "!=": opNE}

// maxFastConcat is the longest string the fast path joins; longer ones go
// through the VM's bounded `+`, which counts them against
// config.max_value_bytes, so the fast path never bypasses the budget.
const maxFastConcat = 4 << 10

// binary applies op to ints, floats (or an int and a float) or strings.
func binary(op fastOp, a, b any) (any, bool) {
	switch x := a.(type) {
	case int:
		switch y := b.(type) {
		case int:
			return arith(op, x, y)
		case float64:
			return arith(op, float64(x), y)
		}
	case float64:
		switch y := b.(type) {
		case int:
			return arith(op, x, float64(y))
		case float64:
			return arith(op, x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			if op == opAdd {
				if len(x)+len(y) > maxFastConcat {
					return nil, false // the VM counts it against the budget
				}
				return x + y, true
			}
			return compareOp(op, x, y)
		}
	}
	return nil, false
}

// arith applies an arithmetic or comparison operator to two numbers of
// one type.
func arith[T int | float64](op fastOp, x, y T) (any, bool) {
	switch op {
	case opAdd:
		return x + y, true
	case opSub:
		return x - y, true
	case opMul:
		return x * y, true
	}
	return compareOp(op, x, y)
}

// compareOp applies a comparison operator.
func compareOp[T cmp.Ordered](op fastOp, x, y T) (any, bool) {
	switch op {
	case opLT:
		return x < y, true
	case opLE:
		return x <= y, true
	case opGT:
		return x > y, true
	case opGE:
		return x >= y, true
	case opEQ:
		return x == y, true
	case opNE:
		return x != y, true
	}
	return nil, false
}
