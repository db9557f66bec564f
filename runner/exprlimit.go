package runner

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/lgx-run/lgx/nodes"
)

// Bounded evaluation of expressions (SPEC §9.6). expr-lang bounds the
// elements its VM allocates (vm.VM.MemoryBudget: ranges, list and map
// literals, sorts) but not the bytes its builtins build: `repeat` makes a
// 1 GB string before counting it, and `+` concatenates without counting.
// At compile time limitPatch rewrites every builtin call that builds a
// string, list or map, and every `+` that may join strings, into a call of
// a bounded twin that receives the evaluation's *nodes.Budget (the env
// field `__budget`) and checks the size before allocating; every predicate
// body ({…} of map, filter, reduce…) first calls `__tick`, so loops stop
// at the deadline. The names are not reachable from workflows: validation
// rejects identifiers that are not in scope.

const (
	budgetVar = "__budget"
	tickFn    = "__tick"
	addFn     = "__add"
	fnPrefix  = "__"
)

// boundedBuiltins are the builtins that build strings, lists or maps, and
// so are replaced by their bounded twins.
var boundedBuiltins = []string{
	"repeat", "join", "split", "splitAfter", "replace", "upper", "lower",
	"toJSON", "fromJSON", "toBase64", "fromBase64", "string",
	"keys", "values", "toPairs", "fromPairs", "reverse", "uniq", "concat", "flatten", "sort", "take",
}

// chargedPredicates are predicate builtins whose result the VM does not
// count (groupBy builds a map of lists); their result is counted after.
var chargedPredicates = map[string]bool{"groupBy": true}

// limitPatch is the ast.Visitor described above.
type limitPatch struct{}

func budgetArg() ast.Node { return &ast.IdentifierNode{Value: budgetVar} }

func (limitPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if isBounded(n.Name) {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: fnPrefix + n.Name},
				Arguments: append([]ast.Node{budgetArg()}, n.Arguments...),
			})
		} else if chargedPredicates[n.Name] {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: fnPrefix + "charge"},
				Arguments: []ast.Node{budgetArg(), n},
			})
		}
	case *ast.PredicateNode:
		n.Node = &ast.SequenceNode{Nodes: []ast.Node{
			&ast.CallNode{Callee: &ast.IdentifierNode{Value: tickFn}, Arguments: []ast.Node{budgetArg()}},
			n.Node,
		}}
	case *ast.BinaryNode:
		if n.Operator == "+" && !(isNumber(n.Left) && isNumber(n.Right)) {
			ast.Patch(node, &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: addFn},
				Arguments: []ast.Node{budgetArg(), n.Left, n.Right},
			})
		}
	}
}

func isBounded(name string) bool {
	for _, b := range boundedBuiltins {
		if b == name {
			return true
		}
	}
	return false
}

// isNumber reports whether the checker typed n as a number: `1 + 2` and
// `index + 1` stay VM additions.
func isNumber(n ast.Node) bool {
	t := n.Type()
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// limitOptions are the expr options that install the bounded functions;
// the patch runs after the caller's patches.
func limitOptions() []expr.Option {
	opts := []expr.Option{
		expr.Patch(limitPatch{}),
		expr.Function(tickFn, func(args ...any) (any, error) {
			return nil, budgetOf(args).Tick()
		}),
		expr.Function(addFn, func(args ...any) (any, error) {
			b := budgetOf(args)
			if x, ok := args[1].(string); ok {
				if y, ok := args[2].(string); ok {
					if err := b.Reserve(int64(len(x)) + int64(len(y))); err != nil {
						return nil, err
					}
					return x + y, nil
				}
			}
			return runtime.Add(args[1], args[2]), nil
		}),
		expr.Function(fnPrefix+"charge", func(args ...any) (any, error) {
			return args[1], budgetOf(args).Reserve(shallowSize(args[1]))
		}),
	}
	builtins := exprBuiltins()
	for _, name := range boundedBuiltins {
		opts = append(opts, expr.Function(fnPrefix+name, boundedCall(name, builtins[name])))
	}
	return opts
}

// exprBuiltins are expr-lang's builtins by name, looked up once: a fresh
// configuration builds the whole table, which, done per bounded builtin
// of every compiled expression, was most of Compile's time.
var exprBuiltins = sync.OnceValue(func() map[string]*builtin.Function {
	return conf.CreateNew().Builtins
})

func budgetOf(args []any) *nodes.Budget {
	b, _ := args[0].(*nodes.Budget)
	if b == nil {
		panic("runner: expression evaluated without a budget") // a bug, not user input
	}
	return b
}

// boundedCall is the twin of builtin f: it checks what the call will
// build before calling f, then counts what it built.
func boundedCall(name string, f *builtin.Function) func(args ...any) (any, error) {
	return func(args ...any) (any, error) {
		b := budgetOf(args)
		args = args[1:]
		counted, err := precheck(b, name, args)
		if err != nil {
			return nil, err
		}
		var out any
		switch {
		case f.Fast != nil && len(args) == 1:
			out = f.Fast(args[0])
		case f.Safe != nil:
			out, _, err = f.Safe(args...)
		default:
			out, err = f.Func(args...)
		}
		if err != nil {
			return nil, err
		}
		if !counted {
			err = b.Reserve(shallowSize(out))
		}
		return out, err
	}
}

// precheck refuses, before anything is allocated, a call whose output an
// argument makes large. counted is true when it reserved the output's
// exact size.
func precheck(b *nodes.Budget, name string, args []any) (counted bool, err error) {
	str := func(i int) string {
		if i < len(args) {
			s, _ := args[i].(string)
			return s
		}
		return ""
	}
	switch name {
	case "repeat":
		if len(args) != 2 {
			return false, nil
		}
		n := runtime.ToInt(args[1])
		if n < 0 {
			return false, fmt.Errorf("repeat: negative count %d", n)
		}
		return true, b.Reserve(mulSize(int64(len(str(0))), int64(n)))
	case "join":
		var total int64
		var count int64
		switch x := args[0].(type) {
		case []string:
			for _, s := range x {
				total += int64(len(s))
			}
			count = int64(len(x))
		case []any:
			for _, s := range x {
				if s, ok := s.(string); ok {
					total += int64(len(s))
				}
			}
			count = int64(len(x))
		}
		return true, b.Reserve(addSize(total, mulSize(max(count-1, 0), int64(len(str(1))))))
	case "split", "splitAfter":
		parts := int64(strings.Count(str(0), str(1))) + 1
		if len(args) == 3 {
			if n := int64(runtime.ToInt(args[2])); n > 0 {
				parts = min(parts, n)
			}
		}
		return true, b.Reserve(mulSize(parts, 16))
	case "replace":
		s, old, new := str(0), str(1), str(2)
		n := int64(strings.Count(s, old))
		if len(args) == 4 {
			if m := int64(runtime.ToInt(args[3])); m >= 0 {
				n = min(n, m)
			}
		}
		if grow := int64(len(new) - len(old)); grow > 0 {
			return true, b.Reserve(addSize(int64(len(s)), mulSize(n, grow)))
		}
	case "toJSON":
		// expr indents with two blanks per level.
		size := nodes.ValueSize(args[0], b.Remaining()+1)
		return false, b.Fits(mulSize(size, addSize(6, mulSize(int64(depth(args[0], 0)), 2))))
	case "string", "flatten", "concat":
		var size int64
		for _, a := range args {
			size = addSize(size, nodes.ValueSize(a, b.Remaining()+1))
		}
		return false, b.Fits(mulSize(size, 3))
	}
	return false, nil
}

// shallowSize is what a built value adds: a string its bytes, a list 16
// bytes an element, a map 48 bytes an entry (their elements are counted
// when they were built).
func shallowSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(x))
	case []any:
		return int64(len(x)) * 16
	case []string:
		return int64(len(x)) * 16
	case []int:
		return int64(len(x)) * 8
	case []float64:
		return int64(len(x)) * 8
	case map[string]any:
		return int64(len(x)) * 48
	case map[any][]any:
		n := int64(len(x)) * 48
		for _, g := range x {
			n += int64(len(g)) * 16
		}
		return n
	case map[any]any:
		return int64(len(x)) * 48
	case [][]any:
		return int64(len(x)) * 24
	}
	return 8
}

// depth is how deeply lists and maps nest in v (capped).
func depth(v any, d int) int {
	if d > 1000 {
		return d
	}
	deepest := d
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			deepest = max(deepest, depth(e, d+1))
		}
	case map[string]any:
		for _, e := range x {
			deepest = max(deepest, depth(e, d+1))
		}
	}
	return deepest
}

func mulSize(a, b int64) int64 {
	if a < 0 || b < 0 || (a != 0 && b > (1<<62)/a) {
		return -1
	}
	return a * b
}

func addSize(a, b int64) int64 {
	if a < 0 || b < 0 || a > (1<<62)-b {
		return -1
	}
	return a + b
}

// limitErr turns expr-lang's own refusal ("memory budget exceeded", from
// ranges and list literals past vm.VM.MemoryBudget) into kind limit.
func limitErr(err error, limit int64) error {
	if nodes.KindOf(err) == "" && strings.Contains(err.Error(), "memory budget exceeded") {
		return &nodes.Error{Kind: nodes.KindLimit, Err: fmt.Errorf("%w (%v)", &nodes.LimitError{What: "expression value", Limit: limit}, err)}
	}
	return err
}

// exprKind is the kind of an expression's failure: a limit, a timeout or a
// cancellation keeps its kind; anything else is an expression error.
func exprKind(err error) nodes.Kind {
	switch k := nodes.KindOf(err); k {
	case nodes.KindLimit, nodes.KindTimeout, nodes.KindCancelled:
		return k
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return nodes.KindTimeout
	case errors.Is(err, context.Canceled):
		return nodes.KindCancelled
	}
	return nodes.KindExpr
}
