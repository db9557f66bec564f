package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// exprEnv is the environment every expression runs against (SPEC §3.1).
// The loop variable is always `item` here: Compile renames a node's `as`
// name to it, so one struct type serves every expression and evaluation
// needs no map per call.
type exprEnv struct {
	State   map[string]any `expr:"state"`
	Item    any            `expr:"item"`
	Index   int            `expr:"index"`
	Result  any            `expr:"result"`
	Error   any            `expr:"error"`
	Args    map[string]any `expr:"args"`
	Env     map[string]any `expr:"env"`
	Secrets map[string]any `expr:"secrets"`
	Run     spec.ExprRun   `expr:"run"`
	// Budget is the running evaluation's size budget and deadline, which
	// the bounded functions receive (exprlimit.go); it points at budget.
	Budget *nodes.Budget `expr:"__budget"`

	budget nodes.Budget
	// ctx stops a running expression when done (nil = never); timeout is
	// the node's timeout for `with` and `output` (0 = none).
	ctx     context.Context
	timeout time.Duration

	// cloneState is set by a program that uses `state` as a whole value
	// (not `state.key`): it then sees a copy, so that the live state map
	// never leaks into a written value.
	stateCopy map[string]any
	// vals, when set, holds State's values by key index (core.vals): the
	// fast path reads `state.KEY` there without hashing the key. Set only
	// where State is the run's live state map, which only core.apply
	// changes, keeping both in step.
	vals []any
}

// cval is a compiled value of `with` or `output`: a literal, an expression,
// an interpolated string, or a map or list of those.
type cval interface {
	eval(env *exprEnv) (any, error)
}

type litVal struct{ v any }

func (l litVal) eval(*exprEnv) (any, error) { return l.v, nil }

var vmPool = sync.Pool{New: func() any { return new(vm.VM) }}

// progVal is one compiled expression.
type progVal struct {
	prog       *vm.Program
	src        string
	file       string // the workflow file, for run-time errors
	pos        spec.Pos
	wholeState bool // uses `state` other than as `state.key`
	// computedKeys: a map literal in it has a key that is not a string
	// literal ({(state.n): 'x'}), which may come out as no string.
	computedKeys bool
	fast         fastFn // nil = always the VM
	limit        int64  // config.max_value_bytes (0 = the default)
}

func (p *progVal) eval(env *exprEnv) (any, error) {
	if p.fast != nil {
		if v, ok := p.fast(env); ok {
			return normalize(v), nil
		}
	}
	if p.wholeState && env.State != nil {
		if env.stateCopy == nil {
			env.stateCopy = make(map[string]any, len(env.State))
			for k, v := range env.State {
				env.stateCopy[k] = v
			}
		}
		live := env.State
		env.State = env.stateCopy
		defer func() { env.State = live }()
	}
	env.budget.Reset(env.ctx, p.limit, "expression value")
	env.budget.SetDeadline(env.timeout)
	env.Budget = &env.budget
	m := vmPool.Get().(*vm.VM)
	// The VM counts elements (ranges, list and map literals); 16 bytes each.
	m.MemoryBudget = uint(max(env.budget.Limit()/16, 1))
	v, err := m.Run(p.prog, env)
	vmPool.Put(m)
	if err == nil {
		if size := nodes.ValueSize(v, env.budget.Limit()+1); size > env.budget.Limit() {
			err = &nodes.Error{Kind: nodes.KindLimit, Err: &nodes.LimitError{What: "expression value", Limit: env.budget.Limit()}}
		}
	}
	limit := env.budget.Limit()
	env.budget.Release()
	if err != nil {
		return nil, fmt.Errorf("%s:%d:%d: ${{ %s }}: %w", p.file, p.pos.Line, p.pos.Col, p.src, runtimeError(p.prog.Source().String(), limitErr(err, limit)))
	}
	return normalize(v), nil
}

// interpVal is a string mixing text and expressions; each part is rendered
// to text and the parts concatenated.
type interpVal struct{ parts []cval }

func (s *interpVal) eval(env *exprEnv) (any, error) {
	var b strings.Builder
	for _, p := range s.parts {
		v, err := p.eval(env)
		if err != nil {
			return nil, err
		}
		appendText(&b, v)
	}
	return b.String(), nil
}

// appendText renders a value as text: strings as they are, null as empty,
// lists and objects as JSON.
func appendText(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
	case string:
		b.WriteString(x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	default:
		j, err := json.Marshal(x)
		if err != nil {
			fmt.Fprint(b, x)
			return
		}
		b.Write(j)
	}
}

type mapVal struct {
	keys []string
	vals []cval
}

func (m *mapVal) eval(env *exprEnv) (any, error) {
	return m.evalMap(env)
}

func (m *mapVal) evalMap(env *exprEnv) (map[string]any, error) {
	out := make(map[string]any, len(m.keys))
	for i, k := range m.keys {
		v, err := m.vals[i].eval(env)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

type listVal struct{ vals []cval }

func (l *listVal) eval(env *exprEnv) (any, error) {
	out := make([]any, len(l.vals))
	for i, c := range l.vals {
		v, err := c.eval(env)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out[i] = v
	}
	return out, nil
}

// compiler compiles the expressions of one node (or tool, or provider):
// loopVar is the node's `as` name, renamed to `item`.
type compiler struct {
	file    string
	loopVar string
	// result, when set, collects how the compiled expressions read
	// `result` (set while compiling a node's `output`).
	result *resultUse
	// readsEnv, when set, is set to true once an expression compiled reads
	// `env` or `secrets`.
	readsEnv *bool
	// limit is config.max_value_bytes (0 = the default).
	limit int64
	// keys are the graph's state keys by name, for the fast path's slot
	// reads (nil: read the state map).
	keys map[string]int
	// cache holds the expressions compiled so far by source and loop
	// variable (nil = none): Compile compiles each distinct expression of
	// a workflow once (`${{ result }}` is in most nodes).
	cache map[progKey]*compiled
}

// progKey identifies a compiled expression: the loop variable is renamed
// to `item` while compiling, so it is part of the key.
type progKey struct{ src, loopVar string }

// compiled is one compiled expression, shared by every place it is
// written: a *vm.Program is immutable and safe for concurrent runs.
type compiled struct {
	prog *vm.Program
	use  stateUse // what the expression reads
	fast fastFn   // nil = always the VM
}

// resultUse is how a node's `output` reads its result: the top-level
// fields read as `result.NAME` (or `result["NAME"]`), and whether any
// expression uses `result` in another way (then every field is needed).
type resultUse struct {
	fields map[string]bool
	all    bool
}

// wanted is the node's nodes.Invocation.ResultFields: nil when every
// field may be read.
func (u *resultUse) wanted() map[string]bool {
	if u.all {
		return nil
	}
	if u.fields == nil {
		return map[string]bool{}
	}
	return u.fields
}

// stateUse counts uses of the `state` identifier (as the base of a member
// access, and in total) and collects the fields of `result` read.
type stateUse struct {
	member, total int
	loopVar       string
	// computedKeys: a map literal has a key that is not a string literal.
	computedKeys bool

	resultTotal  int
	resultFields []string
	// env counts uses of `env` and `secrets`.
	env int
}

func (s *stateUse) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.IdentifierNode:
		if s.loopVar != "" && s.loopVar != "item" && x.Value == s.loopVar {
			x.Value = "item"
		}
		switch x.Value {
		case "state":
			s.total++
		case "result":
			s.resultTotal++
		case "env", "secrets":
			s.env++
		}
	case *ast.PairNode:
		if _, ok := x.Key.(*ast.StringNode); !ok {
			s.computedKeys = true
		}
	case *ast.MemberNode:
		id, ok := x.Node.(*ast.IdentifierNode)
		switch {
		case !ok:
		case id.Value == "state":
			s.member++
		case id.Value == "result":
			if f, ok := x.Property.(*ast.StringNode); ok {
				s.resultFields = append(s.resultFields, f.Value)
			}
		}
	}
}

// program compiles one expression found at pos.
func (c *compiler) program(src string, pos spec.Pos) (*progVal, error) {
	key := progKey{src: src, loopVar: c.loopVar}
	cp := c.cache[key]
	if cp == nil {
		use := &stateUse{loopVar: c.loopVar}
		prog, err := expr.Compile(src, append([]expr.Option{expr.Env(exprEnv{}), expr.Patch(use)}, limitOptions()...)...)
		if err != nil {
			return nil, fmt.Errorf("%s:%d:%d: expression %q: %w", c.file, pos.Line, pos.Col, src, err)
		}
		cp = &compiled{prog: prog, use: *use}
		if use.total <= use.member {
			cp.fast = compileFast(prog.Node(), c.keys)
		}
		if c.cache != nil {
			c.cache[key] = cp
		}
	}
	use := &cp.use
	if c.readsEnv != nil && use.env > 0 {
		*c.readsEnv = true
	}
	if u := c.result; u != nil {
		if use.resultTotal > len(use.resultFields) {
			u.all = true
		}
		for _, f := range use.resultFields {
			if u.fields == nil {
				u.fields = make(map[string]bool)
			}
			u.fields[f] = true
		}
	}
	return &progVal{prog: cp.prog, src: src, file: c.file, pos: pos, wholeState: use.total > use.member,
		computedKeys: use.computedKeys, fast: cp.fast, limit: c.limit}, nil
}

// str compiles a string that may contain `${{ }}`.
func (c *compiler) str(s string, pos spec.Pos) (cval, error) {
	return c.value(spec.StringValue(s, pos))
}

// value compiles a value tree from spec. Literal subtrees were decoded
// once by spec; they are normalised here.
func (c *compiler) value(v *spec.Value) (cval, error) {
	switch v.Kind {
	case spec.ValueLiteral:
		if v.Err != nil {
			return nil, v.Err
		}
		return litVal{normalize(v.Lit)}, nil
	case spec.ValueExpr:
		return c.program(v.Src, v.Pos)
	case spec.ValueInterp:
		iv := &interpVal{parts: make([]cval, 0, len(v.Parts))}
		for _, p := range v.Parts {
			cp, err := c.value(p)
			if err != nil {
				return nil, err
			}
			iv.parts = append(iv.parts, cp)
		}
		return iv, nil
	case spec.ValueMap:
		m := &mapVal{keys: v.Keys, vals: make([]cval, 0, len(v.Elems))}
		for _, e := range v.Elems {
			ce, err := c.value(e)
			if err != nil {
				return nil, err
			}
			m.vals = append(m.vals, ce)
		}
		return m, nil
	case spec.ValueList:
		l := &listVal{vals: make([]cval, 0, len(v.Elems))}
		for _, e := range v.Elems {
			ce, err := c.value(e)
			if err != nil {
				return nil, err
			}
			l.vals = append(l.vals, ce)
		}
		return l, nil
	case spec.ValueInvalid:
		return nil, fmt.Errorf("%s:%d:%d: %w", c.file, v.Pos.Line, v.Pos.Col, v.Err)
	}
	return nil, fmt.Errorf("%s:%d:%d: unsupported value", c.file, v.Pos.Line, v.Pos.Col)
}
