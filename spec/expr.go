package spec

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
)

// ExprScope says which variables an expression sees (SPEC §3.1).
type ExprScope struct {
	// LoopVar is the loop variable of a for_each node (`item` or its `as`
	// name); with it, `index` is in scope too. "" outside for_each nodes.
	LoopVar string
	// Output adds `result` and `error` (a node's or a tool's `output`).
	Output bool
	// ResultType is the catalog type whose result `result` is: its
	// `result.FIELD` reads are checked against the type's result fields.
	// "" = not checked.
	ResultType string
	// Args adds `args` (a tool's node and output).
	Args bool
	// EnvOnly leaves only `env` and `secrets` (provider fields).
	EnvOnly bool

	// stateAsMap types `state` as map[string]any, for expressions that use
	// the state as a whole (`len(state)`, `keys(state)`); their `state.KEY`
	// reads are still checked against the schema by exprChecker.members.
	stateAsMap bool
}

// ExprRun is the type of the `run` variable: {id, step, workflow}, the one
// type both the checker (here) and the runner's environment use.
type ExprRun struct {
	ID       string `expr:"id" json:"id"`
	Step     int    `expr:"step" json:"step"`
	Workflow string `expr:"workflow" json:"workflow"`
}

// ExprError is the type of the `error` variable in `output`: {message,
// kind}, or null when the node succeeded.
type ExprError struct {
	Message string `expr:"message"`
	Kind    string `expr:"kind"`
}

// Go types of state keys in the typed expression environment.
var stateGoTypes = map[string]reflect.Type{
	TypeString:   reflect.TypeOf(""),
	TypeNumber:   reflect.TypeOf(0.0),
	TypeInteger:  reflect.TypeOf(0),
	TypeBoolean:  reflect.TypeOf(false),
	TypeList:     reflect.TypeOf([]any{}),
	TypeObject:   reflect.TypeOf(map[string]any{}),
	TypeMessages: reflect.TypeOf([]map[string]any{}),
	TypeAny:      reflect.TypeOf((*any)(nil)).Elem(),
}

var anyType = reflect.TypeOf((*any)(nil)).Elem()

// StateType is the struct type that stands for the state in type checks:
// one field per declared key, tagged `expr:"key"`, typed from the key's
// type (string → string, integer → int, number → float64, boolean → bool,
// list → []any, object → map[string]any, messages → []map[string]any,
// any → interface{}). Reading an undeclared key is then a type error.
func StateType(w *Workflow) reflect.Type {
	var fields []reflect.StructField
	seen := map[string]bool{}
	for i, k := range w.State {
		if seen[k.Name] || strings.ContainsAny(k.Name, "`\"") {
			continue
		}
		seen[k.Name] = true
		t := stateGoTypes[k.Type]
		if t == nil {
			t = anyType
		}
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: t, Tag: reflect.StructTag(`expr:"` + k.Name + `"`)})
	}
	return reflect.StructOf(fields)
}

// secretsType is a struct with one string field per declared secret.
func secretsType(w *Workflow) reflect.Type {
	var fields []reflect.StructField
	seen := map[string]bool{}
	for i, s := range w.Secrets {
		if seen[s.Value] || strings.ContainsAny(s.Value, "`\"") {
			continue
		}
		seen[s.Value] = true
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("S%d", i), Type: reflect.TypeOf(""), Tag: reflect.StructTag(`expr:"` + s.Value + `"`)})
	}
	return reflect.StructOf(fields)
}

// ExprEnv returns a value to pass to expr.Env (or conf.New) so that
// expressions are type-checked against the workflow's state schema and the
// variables of scope. It is a zero struct; only its type matters.
func ExprEnv(w *Workflow, scope ExprScope) any {
	return reflect.New(envType(w, scope, StateType(w), secretsType(w))).Elem().Interface()
}

func envType(w *Workflow, scope ExprScope, state, secrets reflect.Type) reflect.Type {
	field := func(name, tag string, t reflect.Type) reflect.StructField {
		return reflect.StructField{Name: name, Type: t, Tag: reflect.StructTag(`expr:"` + tag + `"`)}
	}
	fields := []reflect.StructField{
		field("Env", "env", reflect.TypeOf(map[string]string{})),
		field("Secrets", "secrets", secrets),
	}
	if !scope.EnvOnly {
		if scope.stateAsMap {
			state = reflect.TypeOf(map[string]any{})
		}
		fields = append(fields,
			field("State", "state", state),
			field("Run", "run", reflect.TypeOf(ExprRun{})))
		if scope.LoopVar != "" && !strings.ContainsAny(scope.LoopVar, "`\"") {
			fields = append(fields,
				field("Loop", scope.LoopVar, anyType),
				field("Index", "index", reflect.TypeOf(0)))
		}
		if scope.Output {
			fields = append(fields,
				field("Result", "result", anyType),
				field("Error", "error", reflect.TypeOf(&ExprError{})))
		}
		if scope.Args {
			fields = append(fields, field("Args", "args", reflect.TypeOf(map[string]any{})))
		}
	}
	return reflect.StructOf(fields)
}

// scopeNames lists the variables of a scope, for suggestions.
func scopeNames(scope ExprScope) []string {
	names := []string{"env", "secrets"}
	if scope.EnvOnly {
		return names
	}
	names = append(names, "state", "run")
	if scope.LoopVar != "" {
		names = append(names, scope.LoopVar, "index")
	}
	if scope.Output {
		names = append(names, "result", "error")
	}
	if scope.Args {
		names = append(names, "args")
	}
	return names
}

// reservedVars are the names a loop variable (`as`) must not take.
var reservedVars = []string{"state", "env", "secrets", "run", "index", "result", "error", "args"}

// exprChecker type-checks expressions of one workflow; it caches one
// checker configuration per scope.
type exprChecker struct {
	w       *Workflow
	state   reflect.Type
	secrets reflect.Type
	configs map[ExprScope]*conf.Config
	// checked memoises check: generated and fan-out workflows repeat the
	// same expression in thousands of nodes, and parsing and type-checking
	// one with expr costs a few µs. The result depends only on the source
	// and the scope (problems carry offsets into the source, not positions).
	checked map[exprKey]exprResult
	// typeNames maps Go type strings to what users call them, to keep
	// reflect.StructOf types out of messages.
	typeNames *strings.Replacer
}

func newExprChecker(w *Workflow) *exprChecker {
	c := &exprChecker{w: w, state: StateType(w), secrets: secretsType(w), configs: map[ExprScope]*conf.Config{}}
	c.typeNames = strings.NewReplacer(
		c.state.String(), "state",
		c.secrets.String(), "secrets",
		"spec.ExprRun", "run",
		"*spec.ExprError", "error",
		"spec.ExprError", "error",
		"map[string]interface {}", "object",
		"[]interface {}", "list",
		"interface {}", "any",
		"float64", "number",
	)
	return c
}

func (c *exprChecker) config(scope ExprScope) *conf.Config {
	if cfg, ok := c.configs[scope]; ok {
		return cfg
	}
	cfg := conf.New(reflect.New(envType(c.w, scope, c.state, c.secrets)).Elem().Interface())
	c.configs[scope] = cfg
	return cfg
}

// exprProblem is one problem in an expression: a message and hint, and the
// byte offset in the expression source it is about.
type exprProblem struct {
	offset  int
	code    string
	message string
	hint    string
}

type exprKey struct {
	src   string
	scope ExprScope
}

type exprResult struct {
	typ      reflect.Type
	problems []exprProblem
	// nonJSON is the value of an expression of literals alone that JSON
	// cannot hold (nonJSONConstant), "" otherwise.
	nonJSON string
}

// check parses and type-checks one expression. It returns the type of the
// result (nil when unknown or on error) and the problems found; callers
// must not modify the problems (they are shared by every occurrence).
func (c *exprChecker) check(src string, scope ExprScope) (reflect.Type, []exprProblem) {
	k := exprKey{src, scope}
	if r, ok := c.checked[k]; ok {
		return r.typ, r.problems
	}
	r := c.checkUncached(src, scope)
	if c.checked == nil {
		c.checked = map[exprKey]exprResult{}
	}
	c.checked[k] = r
	return r.typ, r.problems
}

// nonJSON returns the value JSON cannot hold that the expression, made of
// literals alone, always has ("" for any other); check must have seen it.
func (c *exprChecker) nonJSON(src string, scope ExprScope) string {
	return c.checked[exprKey{src, scope}].nonJSON
}

func (c *exprChecker) checkUncached(src string, scope ExprScope) exprResult {
	typ, ps, tree := c.checkTree(src, scope)
	r := exprResult{typ: typ, problems: ps}
	if len(ps) == 0 && tree != nil {
		r.nonJSON = nonJSONConstant(tree)
	}
	return r
}

func (c *exprChecker) checkTree(src string, scope ExprScope) (reflect.Type, []exprProblem, *parser.Tree) {
	cfg := c.config(scope)
	tree, err := parser.ParseWithConfig(src, cfg)
	if err != nil {
		return nil, []exprProblem{c.fromError(src, err, scope, nil)}, nil
	}
	if ps := c.members(src, tree, scope); len(ps) > 0 {
		return nil, ps, nil
	}
	if ps := dollarEnv(src, tree, scope); len(ps) > 0 {
		return nil, ps, nil
	}
	if ps := funcValues(src, tree, scope, cfg); len(ps) > 0 {
		return nil, ps, nil
	}
	if ps := pureProblems(src, tree, scope); len(ps) > 0 {
		return nil, ps, nil
	}
	if wholeState(tree.Node) {
		scope.stateAsMap = true
		cfg = c.config(scope)
	}
	typ, err := checker.Check(tree, cfg)
	if err != nil {
		return nil, []exprProblem{c.fromError(src, err, scope, tree)}, nil
	}
	if ps := constProblems(src, tree); len(ps) > 0 {
		return nil, ps, nil
	}
	if typ == nil || typ == anyType {
		return nil, nil, tree
	}
	return typ, nil, tree
}

// members reports `state.KEY`, `secrets.NAME`, `run.FIELD` and
// `error.FIELD` (and the `x["KEY"]` forms) that do not exist, with a
// message and a suggestion in lgx's terms rather than Go's.
func (c *exprChecker) members(src string, tree *parser.Tree, scope ExprScope) []exprProblem {
	var ps []exprProblem
	visit(tree.Node, func(n ast.Node) {
		m, ok := n.(*ast.MemberNode)
		if !ok {
			return
		}
		id, ok := m.Node.(*ast.IdentifierNode)
		if !ok {
			return
		}
		prop, ok := m.Property.(*ast.StringNode)
		if !ok {
			return
		}
		off := runeToByte(src, m.Property.Location().From)
		if !strings.HasPrefix(src[off:], prop.Value) {
			// `state["x"]` or `state?.x`: point at the property as written.
			if i := strings.Index(src[off:], prop.Value); i >= 0 {
				off += i
			}
		}
		switch id.Value {
		case "state":
			if scope.EnvOnly || c.has(c.state, prop.Value) {
				return
			}
			hint := didYouMean(prop.Value, stateNames(c.w))
			if hint == "" {
				hint = "declare it under `state:`"
			}
			ps = append(ps, exprProblem{off, CodeExpr, fmt.Sprintf("unknown state key %q", prop.Value), hint})
		case "secrets":
			if c.has(c.secrets, prop.Value) {
				return
			}
			names := make([]string, len(c.w.Secrets))
			for i, s := range c.w.Secrets {
				names[i] = s.Value
			}
			hint := didYouMean(prop.Value, names)
			if hint == "" {
				hint = "declare it: secrets: [" + prop.Value + "]"
			}
			ps = append(ps, exprProblem{off, CodeUnknownSecret, fmt.Sprintf("unknown secret %q", prop.Value), hint})
		case "run":
			if scope.EnvOnly || c.has(reflect.TypeOf(ExprRun{}), prop.Value) {
				return
			}
			ps = append(ps, exprProblem{off, CodeExpr, fmt.Sprintf("run has no field %q", prop.Value), "run has id, step and workflow"})
		case "error":
			if !scope.Output || c.has(reflect.TypeOf(ExprError{}), prop.Value) {
				return
			}
			ps = append(ps, exprProblem{off, CodeExpr, fmt.Sprintf("error has no field %q", prop.Value), "error has message and kind (and is null when the node succeeded)"})
		case "result":
			fields := resultFields(scope)
			if fields == nil || contains(fields, prop.Value) {
				return
			}
			if len(fields) == 0 {
				ps = append(ps, exprProblem{off, CodeExpr,
					fmt.Sprintf("%s has no result: result is null, so result.%s cannot be read", scope.ResultType, prop.Value),
					"compute the value from state (a " + scope.ResultType + " node does no work)"})
				return
			}
			hint := didYouMean(prop.Value, fields)
			if hint == "" {
				hint = fmt.Sprintf("%s results have: %s", scope.ResultType, strings.Join(fields, ", "))
			}
			ps = append(ps, exprProblem{off, CodeExpr, fmt.Sprintf("%s result has no field %q", scope.ResultType, prop.Value), hint})
		}
	})
	return ps
}

// has reports whether struct type t has a field tagged `expr:"name"`.
func (c *exprChecker) has(t reflect.Type, name string) bool {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("expr") == name {
			return true
		}
	}
	return false
}

func stateNames(w *Workflow) []string {
	names := make([]string, len(w.State))
	for i, k := range w.State {
		names[i] = k.Name
	}
	return names
}

// fromError turns an expr-lang error into a problem in lgx's terms.
func (c *exprChecker) fromError(src string, err error, scope ExprScope, tree *parser.Tree) exprProblem {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return exprProblem{0, CodeExpr, err.Error(), ""}
	}
	p := exprProblem{offset: runeToByte(src, fe.From), code: CodeExpr, message: value.GoTypeNames(c.typeNames.Replace(fe.Message))}
	if name, ok := strings.CutPrefix(fe.Message, "unknown name "); ok {
		p.message, p.hint = c.unknownName(name, scope, tree)
	}
	if strings.HasPrefix(fe.Message, "type string[") && strings.HasSuffix(fe.Message, "] is undefined") {
		// expr's checker refuses s[i] on a string (its VM would index a
		// byte); say what to write instead.
		p.message = "a string cannot be indexed"
		p.hint = `split(s, "")[i] is its character i; s[i:j] slices its bytes`
	}
	return p
}

// unknownName explains an identifier that is not in scope.
func (c *exprChecker) unknownName(name string, scope ExprScope, tree *parser.Tree) (string, string) {
	if tree != nil && isCallee(tree.Node, name) {
		hint := didYouMean(name, builtin.Names)
		if hint == "" {
			hint = "expressions can call the expr-lang builtins (len, upper, filter, map, join, toJSON, …); see https://expr-lang.org/docs/language-definition"
		}
		return fmt.Sprintf("unknown function %s", name), hint
	}
	msg := fmt.Sprintf("unknown name %s", name)
	switch {
	case scope.EnvOnly && !contains([]string{"env", "secrets"}, name):
		return msg, "provider fields see only env and secrets"
	case name == "item" || name == "index":
		if scope.LoopVar != "" {
			return msg, fmt.Sprintf("this node's loop variable is %s (as: %s)", scope.LoopVar, scope.LoopVar)
		}
		return msg, name + " is only defined in for_each nodes"
	case name == "result" || name == "error":
		return msg, name + " is only defined in output"
	case name == "args":
		return msg, "args is only defined in a tool's node and output"
	}
	for _, k := range c.w.State {
		if k.Name == name {
			return msg, "state keys are read as state." + name
		}
	}
	if hint := didYouMean(name, scopeNames(scope)); hint != "" {
		return msg, hint
	}
	for _, n := range c.w.Nodes {
		if n.ForEach != nil && n.As == name {
			return msg, name + " is the loop variable of node " + n.Name + " only"
		}
	}
	return msg, "in scope: " + strings.Join(scopeNames(scope), ", ")
}

// dollarEnv reports expr-lang's `$env`, the whole environment: it is not
// one of lgx's names (SPEC §3.1), and at run time it is the runner's own
// environment, whose internal fields (`$env["__budget"]`) and Go type
// would reach state and messages, and whose `$env.state` is the live
// state, not the step's snapshot.
func dollarEnv(src string, tree *parser.Tree, scope ExprScope) []exprProblem {
	var ps []exprProblem
	visit(tree.Node, func(n ast.Node) {
		if id, ok := n.(*ast.IdentifierNode); ok && id.Value == "$env" {
			ps = append(ps, exprProblem{runeToByte(src, id.Location().From), CodeExpr, "unknown name $env",
				"read the names in scope directly: " + strings.Join(scopeNames(scope), ", ")})
		}
	})
	return ps
}

// wholeState reports whether an expression uses `state` other than as the
// base of `state.KEY` or `state["KEY"]`.
func wholeState(n ast.Node) bool {
	idents, members := 0, 0
	visit(n, func(n ast.Node) {
		switch x := n.(type) {
		case *ast.IdentifierNode:
			if x.Value == "state" {
				idents++
			}
		case *ast.MemberNode:
			if id, ok := x.Node.(*ast.IdentifierNode); ok && id.Value == "state" {
				if _, ok := x.Property.(*ast.StringNode); ok {
					members++
				}
			}
		}
	})
	return idents > members
}

// isCallee reports whether name is called as a function somewhere in n.
func isCallee(n ast.Node, name string) bool {
	found := false
	visit(n, func(n ast.Node) {
		if call, ok := n.(*ast.CallNode); ok {
			if id, ok := call.Callee.(*ast.IdentifierNode); ok && id.Value == name {
				found = true
			}
		}
	})
	return found
}

// visitor adapts a function to ast.Visitor.
type visitor func(ast.Node)

func (f visitor) Visit(n *ast.Node) { f(*n) }

func visit(n ast.Node, f func(ast.Node)) {
	if n == nil {
		return
	}
	ast.Walk(&n, visitor(f))
}

// runeToByte converts a rune index of s into a byte offset.
func runeToByte(s string, runes int) int {
	if runes <= 0 {
		return 0
	}
	i := 0
	for off := range s {
		if i == runes {
			return off
		}
		i++
	}
	return len(s)
}

// kindName names a Go type the way the state schema does, for messages.
func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return TypeString
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return TypeInteger
	case reflect.Float64, reflect.Float32:
		return TypeNumber
	case reflect.Bool:
		return TypeBoolean
	case reflect.Slice, reflect.Array:
		return TypeList
	case reflect.Map, reflect.Struct:
		return TypeObject
	}
	return t.String()
}

// checkString checks every `${{ }}` of a string value n (an output value,
// a `with` field, a provider field) and reports problems at their
// positions. It returns the type of the value when it is exactly one
// expression whose type is known.
func (v *validator) checkString(n *yaml.Node, scope ExprScope) reflect.Type {
	in, err := ParseInterpolation(n.Value)
	if err != nil {
		var ie *InterpError
		off := 0
		if errors.As(err, &ie) {
			off = ie.Offset
		}
		v.errorf(ScalarPos(v.w, n, off), CodeExpr, "close it with }}", "%v", err)
		return nil
	}
	var typ reflect.Type
	for _, seg := range in.Segments {
		if !seg.IsExpr {
			continue
		}
		t, ps := v.exprs.check(seg.Text, scope)
		v.reportExpr(n, seg.Offset, ps)
		if in.Single() {
			typ = t
			// A node's output writes state, which holds only JSON (SPEC
			// §9.6); a `with` value or a tool's answer may be text.
			if val := v.exprs.nonJSON(seg.Text, scope); val != "" && scope.Output && !scope.Args {
				v.errorf(ScalarPos(v.w, n, seg.Offset), CodeExpr, "a number beyond ±1.8e308 is ±Inf, which no state value can hold",
					"this expression is always %s: every run would fail here", val)
			}
		}
	}
	return typ
}

// checkBare checks an `if:` or `for_each:` expression (with or without
// `${{ }}`) and returns its type when known.
func (v *validator) checkBare(n *yaml.Node, scope ExprScope) reflect.Type {
	src, off, err := BareExpression(n.Value)
	if err != nil {
		var ie *InterpError
		o := 0
		if errors.As(err, &ie) {
			o = ie.Offset
		}
		v.errorf(ScalarPos(v.w, n, o), CodeExpr, "", "%v", err)
		return nil
	}
	if src == "" {
		v.errorf(posOf(n), CodeExpr, "", "empty expression")
		return nil
	}
	t, ps := v.exprs.check(src, scope)
	v.reportExpr(n, off, ps)
	return t
}

func (v *validator) reportExpr(n *yaml.Node, base int, ps []exprProblem) {
	for _, p := range ps {
		v.errorf(ScalarPos(v.w, n, base+p.offset), p.code, p.hint, "%s", p.message)
	}
}

// checkValue checks every expression in a YAML value (strings in nested
// mappings and lists too).
func (v *validator) checkValue(n *yaml.Node, scope ExprScope) reflect.Type {
	n = resolveAlias(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" && strings.Contains(n.Value, "${{") {
			return v.checkString(n, scope)
		}
		v.checkTag(n)
	case yaml.MappingNode:
		v.checkKeys(n)
		for _, c := range n.Content {
			v.checkValue(c, scope)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			v.checkValue(c, scope)
		}
	}
	return nil
}

// checkLiteral checks a value passed to its type as written (a Static
// field, a field of types) as checkValue checks the literal parts of
// others: its mapping keys and its tagged scalars.
func (v *validator) checkLiteral(n *yaml.Node) {
	n = resolveAlias(n)
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		v.checkTag(n)
	case yaml.MappingNode:
		v.checkKeys(n)
		fallthrough
	case yaml.SequenceNode:
		for _, c := range n.Content {
			v.checkLiteral(c)
		}
	}
}

// checkTag reports a scalar whose explicit tag its text does not fit
// (`!!int abc`).
func (v *validator) checkTag(n *yaml.Node) {
	if _, err := scalarValue(n); err != nil {
		v.errorf(posOf(n), CodeBadValue, "drop the tag to keep the text a string",
			"%q cannot be read as %s (its tag %s says it is one)", n.Value, tagNoun(n.ShortTag()), n.ShortTag())
	}
}

// mergeable reports whether n can follow a merge key: a mapping or a
// list of mappings (aliases resolved), as mappingPairs applies them.
func mergeable(n *yaml.Node) bool {
	n = resolveAlias(n)
	if n.Kind == yaml.MappingNode {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		return false
	}
	for _, e := range n.Content {
		if resolveAlias(e).Kind != yaml.MappingNode {
			return false
		}
	}
	return true
}

// tagNoun names what a YAML core tag says a scalar is.
func tagNoun(tag string) string {
	switch tag {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return tag
}

// checkKeys reports the keys of a mapping in a value that the runner
// could not turn into an object's keys: a key that is not a scalar, and a
// key written twice, as the JSON key it becomes (`~` and `null` are one
// key). Without it, `validate` passed what `run` then refused to compile.
func (v *validator) checkKeys(n *yaml.Node) {
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			if !mergeable(n.Content[i+1]) {
				v.errorf(posOf(n.Content[i+1]), CodeBadValue, "", "a merge key `<<` needs a mapping or a list of mappings")
			}
			continue
		}
		kv, err := scalarValue(k)
		if err != nil {
			if resolveAlias(k).Kind != yaml.ScalarNode {
				v.errorf(posOf(k), CodeBadValue, "write the key as a string", "a mapping key must be a string, number or boolean")
			} // else the key's own tag does not fit it: reported as a scalar
			continue
		}
		ks := keyString(kv)
		if prev := seen[ks]; prev != nil {
			v.errorf(posOf(k), CodeDuplicate, "", "key %q is written twice in one mapping (first at line %d, column %d)", ks, prev.Line, prev.Column)
			continue
		}
		seen[ks] = k
	}
}

// resultFields lists the result fields of the scope's node type, or nil
// when `result.FIELD` is not checked: outside output, an unknown type, or
// a result that is a whole value (a pseudo field like `(state)`: a
// subgraph's state, a template's value), or a type that documents no
// result fields. A type whose result is always null (Doc.NoResult: set)
// has none, and every field is an error.
func resultFields(scope ExprScope) []string {
	if !scope.Output || scope.ResultType == "" {
		return nil
	}
	t, ok := nodes.Lookup(scope.ResultType)
	if !ok {
		return nil
	}
	doc := t.Doc()
	if doc.NoResult {
		return []string{} // result is always null: no field exists
	}
	var names []string
	for _, f := range doc.Result {
		if strings.HasPrefix(f.Name, "(") {
			return nil
		}
		names = append(names, f.Name)
	}
	return names
}
