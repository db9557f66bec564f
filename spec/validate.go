package spec

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
)

// Validate runs every static check on a loaded workflow: names, state types
// and reducers, references (pools, providers, tools, state keys, nodes),
// node types and their `with` fields (asking the catalog, including each
// type's Prepare), every expression type-checked against the state schema,
// the graph (reachability, conditional edges without else, joins that
// cannot fire) and writers that would conflict on a `replace` key. It
// returns the diagnostics Load did not already report, sorted; callers run
// Load first and append. It tolerates a partially loaded workflow.
func Validate(w *Workflow) (ds Diagnostics) {
	return ValidateReading(w, os.ReadFile)
}

// ValidateReading is Validate with the files a workflow names (subgraph
// children) read by read instead of from disk: a resumed run validates
// against the texts recorded when it started.
func ValidateReading(w *Workflow, read func(path string) ([]byte, error)) (ds Diagnostics) {
	if w == nil || w.Root == nil {
		return nil
	}
	v := newValidator(w)
	v.read = read
	defer func() {
		if r := recover(); r != nil {
			v.errorf(Pos{Line: 1, Col: 1}, CodeBadValue, "", "internal error while validating the workflow (please report it): %v", r)
		}
		ds = v.diags
		ds.Sort()
	}()
	v.header()
	v.stateKeys()
	v.checkPools()
	v.checkCaps()
	v.checkProviders()
	v.checkTools()
	v.checkMCP()
	v.nodesAndGraph()
	v.workflowOutput()
	v.conflicts()
	return v.diags
}

// nodesAndGraph checks every node, then the graph. The two read only what
// the checks before them built, so a large workflow's are run at once: the
// nodes by a copy of v with a diagnostics list and an expression checker
// (whose caches fill as it goes) of its own.
func (v *validator) nodesAndGraph() {
	if runtime.GOMAXPROCS(0) < 2 || len(v.w.Nodes) < 2*nodesPerCore {
		for _, n := range v.w.Nodes {
			v.node(n)
		}
		v.graph()
		return
	}
	nv := *v
	nv.diags, nv.exprs = nil, newExprChecker(v.w)
	nv.armCache, nv.outEdges, nv.sources = nil, nil, nil // the graph's
	done := make(chan any, 1)
	go func() {
		// ValidateReading recovers from a bug as a diagnostic, on its
		// own goroutine: hand it the panic.
		defer func() { done <- recover() }()
		for _, n := range v.w.Nodes {
			nv.node(n)
		}
	}()
	// A panic in either waits for the other, so that no check outlives
	// ValidateReading.
	var graphPanic any
	func() {
		defer func() { graphPanic = recover() }()
		v.graph()
	}()
	nodesPanic := <-done
	for _, r := range []any{graphPanic, nodesPanic} {
		if r != nil {
			panic(r)
		}
	}
	v.diags = append(v.diags, nv.diags...)
}

// validator holds what the checks share.
type validator struct {
	w     *Workflow
	diags Diagnostics
	read  func(path string) ([]byte, error) // files the workflow names

	state     map[string]*StateKey
	nodes     map[string]*Node
	pools     map[string]*Pool
	providers map[string]*Provider
	tools     map[string]*Tool
	exprs     *exprChecker

	armCache map[*Edge][]arm    // graph index, built on first use
	outEdges map[string][]*Edge // edges by source name
	sources  map[*Edge]int      // distinct sources of each join
}

func newValidator(w *Workflow) *validator {
	v := &validator{
		w:         w,
		state:     map[string]*StateKey{},
		nodes:     make(map[string]*Node, len(w.Nodes)),
		pools:     map[string]*Pool{},
		providers: map[string]*Provider{},
		tools:     map[string]*Tool{},
		exprs:     newExprChecker(w),
	}
	for _, k := range w.State {
		v.state[k.Name] = k
	}
	for _, n := range w.Nodes {
		v.nodes[n.Name] = n
	}
	for _, p := range w.Pools {
		v.pools[p.Name] = p
	}
	for _, p := range w.Providers {
		v.providers[p.Name] = p
	}
	for _, t := range w.Tools {
		v.tools[t.Name] = t
	}
	return v
}

func (v *validator) errorf(p Pos, code, hint, format string, args ...any) {
	v.diags = append(v.diags, Diagnostic{File: v.w.File, Pos: p, Severity: SeverityError,
		Code: code, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (v *validator) warnf(p Pos, code, hint, format string, args ...any) {
	v.diags = append(v.diags, Diagnostic{File: v.w.File, Pos: p, Severity: SeverityWarning,
		Code: code, Message: fmt.Sprintf(format, args...), Hint: hint})
}

var workflowNameRE = regexp.MustCompile(workflowNamePattern)

// isIdent reports whether s matches namePattern, without the regexp
// engine: every node, state key and loop variable is checked, and the
// regexp was 5 % of validating a 10,000-node workflow.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// identSpelling suggests an identifier for a name that is not one:
// `fetch-docs` → `fetch_docs`, `2nd` → `_2nd`.
func identSpelling(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			b.WriteRune(r)
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// identifier checks that a node, state key, pool, provider or tool name can
// be used in expressions.
func (v *validator) identifier(kind, name string, p Pos) bool {
	if isIdent(name) {
		return true
	}
	v.errorf(p, CodeBadName, fmt.Sprintf("write %s; names are letters, digits and _ so that expressions can use them", identSpelling(name)),
		"%s name %q is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", kind, name)
	return false
}

func (v *validator) header() {
	w := v.w
	if w.Name != "" && !workflowNameRE.MatchString(w.Name) {
		hint := strings.Trim(strings.Map(func(r rune) rune {
			switch {
			case r >= 'A' && r <= 'Z':
				return r + 'a' - 'A'
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
				return r
			}
			return '-'
		}, w.Name), "-_0123456789")
		if hint != "" {
			hint = "write " + hint + "; "
		}
		v.errorf(w.NamePos, CodeBadName, hint+"a workflow name is lower-case letters, digits, _ and -, starting with a letter",
			"workflow name %q does not match [a-z][a-z0-9_-]*", w.Name)
	}
	seen := map[string]Pos{}
	for _, s := range w.Secrets {
		if !isIdent(s.Value) {
			v.errorf(s.Pos, CodeBadName, "", "secret %q is not an environment variable name", s.Value)
		}
		if p, dup := seen[s.Value]; dup {
			v.warnf(s.Pos, CodeDuplicate, "", "secret %q is listed twice (first at line %d)", s.Value, p.Line)
		}
		seen[s.Value] = s.Pos
	}
}

// reducerTypes lists the key types each reducer accepts.
var reducerTypes = map[string][]string{
	ReducerReplace:  {TypeString, TypeNumber, TypeInteger, TypeBoolean, TypeList, TypeObject, TypeMessages, TypeAny},
	ReducerAppend:   {TypeList, TypeAny},
	ReducerUnion:    {TypeList, TypeAny},
	ReducerMerge:    {TypeObject, TypeAny},
	ReducerSum:      {TypeNumber, TypeInteger, TypeAny},
	ReducerMin:      {TypeNumber, TypeInteger, TypeString, TypeAny},
	ReducerMax:      {TypeNumber, TypeInteger, TypeString, TypeAny},
	ReducerMessages: {TypeMessages, TypeAny},
}

var (
	allTypes    = value.Types()
	allReducers = []string{ReducerReplace, ReducerAppend, ReducerMerge, ReducerSum, ReducerMin, ReducerMax, ReducerUnion, ReducerMessages}
)

func (v *validator) stateKeys() {
	for _, k := range v.w.State {
		v.identifier("state key", k.Name, k.Pos)
		typeOK := contains(allTypes, k.Type)
		if k.Type != "" && !typeOK {
			v.errorf(k.TypePos, CodeBadType, typeHint(k.Type), "state key %s: unknown type %q", k.Name, k.Type)
		}
		if !contains(allReducers, k.Reducer) {
			hint := didYouMean(k.Reducer, allReducers)
			if hint == "" {
				hint = "reducers: " + strings.Join(allReducers, ", ")
			}
			v.errorf(k.ReducerPos, CodeBadReducer, hint, "state key %s: unknown reducer %q", k.Name, k.Reducer)
		} else if typeOK && !contains(reducerTypes[k.Reducer], k.Type) {
			v.errorf(k.ReducerPos, CodeBadReducer, reducerHint(k.Reducer),
				"state key %s: reducer %s does not fit type %s", k.Name, k.Reducer, k.Type)
		}
		if k.HasDefault && typeOK && k.Default != nil {
			// bad says what the default is, down to the element that does
			// not fit, as the runner says of a write or an input.
			if _, bad := value.Fit(k.Type, k.Default); bad != "" {
				v.errorf(k.DefaultPos, CodeBadValue, "", "state key %s: default is %s, not %s", k.Name, bad, k.Type)
			}
		}
		if k.Required && k.HasDefault {
			v.warnf(k.Pos, CodeBadValue, "drop one of them", "state key %s is required and has a default; the default is never used", k.Name)
		}
	}
}

func reducerHint(r string) string {
	switch r {
	case ReducerAppend, ReducerUnion:
		return r + " needs type list"
	case ReducerMerge:
		return "merge needs type object"
	case ReducerSum:
		return "sum needs type number or integer"
	case ReducerMin, ReducerMax:
		return r + " needs type number, integer or string"
	case ReducerMessages:
		return "messages needs type messages"
	}
	return ""
}

func (v *validator) checkPools() {
	for _, p := range v.w.Pools {
		if p.Config != "" {
			continue // checked with the user config (userconfig.go)
		}
		v.identifier("pool", p.Name, p.Pos)
		if !p.capsWritten && p.Budget == nil { // a budget alone caps spending
			v.warnf(p.Pos, CodeBadValue, "set concurrency, rate or both", "pool %s caps nothing", p.Name)
		}
	}
}

// poolRef checks a reference to a pool.
func (v *validator) poolRef(n Name, who string) {
	if _, ok := v.pools[n.Value]; ok {
		return
	}
	hint := didYouMean(n.Value, sortedKeys(v.pools))
	if hint == "" {
		hint = "declare it under `pools:`"
	}
	v.errorf(n.Pos, CodeUnknownPool, hint, "%s: unknown pool %q", who, n.Value)
}

func (v *validator) checkProviders() {
	for _, p := range v.w.Providers {
		if p.Config != "" {
			continue // checked with the user config (userconfig.go)
		}
		v.identifier("provider", p.Name, p.Pos)
		if p.Kind != "" && !contains(providerKinds, p.Kind) {
			hint := didYouMean(p.Kind, providerKinds)
			if hint == "" {
				hint = "kind is openai (any OpenAI-compatible endpoint: set base_url) or anthropic"
			}
			v.errorf(p.KindPos, CodeBadValue, hint, "provider %s: unknown kind %q", p.Name, p.Kind)
		}
		if p.Pool.Value != "" {
			v.poolRef(p.Pool, "provider "+p.Name)
		}
		// A field written empty would silently become the SDK's default
		// (the public endpoint, a key from the environment): fail closed
		// (SPEC §9.6).
		if p.Node != nil && p.Node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(p.Node.Content); i += 2 {
				k, f := p.Node.Content[i], resolveAlias(p.Node.Content[i+1])
				if contains([]string{"model", "base_url", "api_key"}, k.Value) && f.Kind == yaml.ScalarNode && f.ShortTag() == "!!str" && strings.TrimSpace(f.Value) == "" {
					v.errorf(posOf(f), CodeBadValue, "leave "+k.Value+" out to use the default, or give a value",
						"provider %s: %s is empty", p.Name, k.Value)
				}
			}
		}
		// Provider fields may read env and secrets.
		o := v.providerFields(p)
		for _, f := range o {
			if f.ShortTag() == "!!str" && strings.Contains(f.Value, "${{") {
				v.checkString(f, ExprScope{EnvOnly: true})
			}
		}
	}
}

func (v *validator) checkTools() {
	for _, t := range v.w.Tools {
		v.identifier("tool", t.Name, t.Pos)
		if t.Node != nil {
			v.nodeType(t.Node, ExprScope{Args: true}, "tool "+t.Name)
			for _, p := range t.Node.Pools {
				v.poolRef(p, "tool "+t.Name)
			}
		}
		if t.Output != nil {
			scope := ExprScope{Args: true, Output: true}
			if t.Node != nil {
				scope.ResultType = t.Node.Type
			}
			v.checkValue(t.Output, scope)
		}
	}
}

// node checks one node of `nodes:`.
func (v *validator) node(n *Node) {
	if n.Name == Start || n.Name == End {
		v.errorf(n.Pos, CodeReserved, "rename the node", "%s is reserved: edges use it for the graph's entry and exit", n.Name)
	} else {
		v.identifier("node", n.Name, n.Pos)
	}
	scope := ExprScope{}
	if n.ForEach != nil {
		scope.LoopVar = n.As
		if contains(reservedVars, n.As) {
			v.errorf(n.AsPos, CodeBadName, "pick another name, e.g. as: entry", "node %s: the loop variable cannot be called %s", n.Name, n.As)
		} else if n.AsPos != (Pos{}) {
			v.identifier("loop variable", n.As, n.AsPos)
		}
		v.forEach(n)
	}
	v.nodeType(n, scope, "node "+n.Name)
	for _, p := range n.Pools {
		v.poolRef(p, "node "+n.Name)
	}
	if t, ok := nodes.Lookup(n.Type); ok && nodes.CapabilitiesOf(t).HoldsNoSlot {
		for _, p := range n.Pools {
			v.warnf(p.Pos, CodeBadValue, "name the pool on the nodes that do the work: the child workflow's, or the tools'",
				"node %s: a %s node holds no pool slot, so pool %s caps nothing here", n.Name, n.Type, p.Value)
		}
	}
	out := scope
	out.Output = true
	out.ResultType = n.Type
	for _, o := range n.Output {
		if _, ok := v.state[o.Key]; !ok {
			hint := didYouMean(o.Key, stateNames(v.w))
			if hint == "" {
				hint = "declare it under `state:`"
			}
			v.errorf(o.Pos, CodeUnknownState, hint, "node %s writes %q, which is not a state key", n.Name, o.Key)
		}
		if v.w.synthetic[o.Value] {
			continue
		}
		typ := v.checkValue(o.Value, out)
		if k := v.state[o.Key]; k != nil {
			v.writeType(n, k, o, typ)
		}
	}
}

// writeType warns about a write that can never fit its key: a literal of
// another type, or an expression whose type is known and different. Writes
// through append and union fit any value; merge needs an object; messages
// a message or a list of them.
func (v *validator) writeType(n *Node, k *StateKey, o *OutputEntry, exprType reflect.Type) {
	val := resolveAlias(o.Value)
	var got string
	switch {
	case exprType != nil:
		got = kindName(exprType)
	case val.Kind == yaml.ScalarNode && val.ShortTag() == "!!str" && strings.Contains(val.Value, "${{"):
		in, err := ParseInterpolation(val.Value)
		if err != nil || in.Single() {
			return // unknown type, or already reported
		}
		got = TypeString
	default:
		lit, err := DecodeValue(val)
		if err != nil || lit == nil {
			return
		}
		got = value.TypeName(lit)
		if k.Type == TypeMessages && !exprMessage(lit) {
			// Say what is wrong inside, as the runner will: which element,
			// which role.
			var bad string
			switch k.Reducer {
			case ReducerReplace:
				_, bad = value.Fit(TypeMessages, lit)
			case ReducerMessages:
				_, bad = value.FitMessagesWrite(lit)
			}
			if bad != "" {
				got = bad
			}
		}
	}
	want := k.Type
	ok := true
	switch k.Reducer {
	case ReducerAppend, ReducerUnion:
		ok = true
	case ReducerMerge:
		ok = got == TypeObject || k.Type == TypeAny
	case ReducerMessages:
		ok = got == TypeList || got == TypeObject
		want = "message or list of messages"
	default:
		switch k.Type {
		case TypeAny, "":
		case TypeNumber, TypeInteger:
			ok = got == TypeNumber || got == TypeInteger
		case TypeMessages:
			ok = got == TypeList
		default:
			ok = got == k.Type
		}
	}
	if !ok && contains(allTypes, k.Type) {
		// A warning: SPEC §2 makes such a write fail the node at run time
		// (exit 1, with on_error honoured), so it must not stop the run.
		what := got
		if !strings.HasPrefix(got, "a ") && !strings.HasPrefix(got, "an ") {
			what = article(got)
		}
		v.warnf(posOf(val), CodeWriteType, "the node fails when it writes this", "node %s writes %s to state key %s, which is %s", n.Name, what, k.Name, article(want))
	}
}

// exprMessage reports whether a literal written to a messages key has an
// expression where a message is checked (an element, a role, remove):
// whether it is a message is known only at run time.
func exprMessage(lit any) bool {
	isExpr := func(x any) bool {
		s, ok := x.(string)
		return ok && strings.Contains(s, "${{")
	}
	one := func(x any) bool {
		m, ok := x.(map[string]any)
		if !ok {
			return isExpr(x)
		}
		return isExpr(m["role"]) || isExpr(m["remove"])
	}
	if l, ok := lit.([]any); ok {
		for _, e := range l {
			if one(e) {
				return true
			}
		}
		return false
	}
	return one(lit)
}

// forEach checks a node's for_each: an expression that yields a list, or
// a literal list (whose strings may hold expressions).
func (v *validator) forEach(n *Node) {
	fe := resolveAlias(n.ForEach)
	switch {
	case fe.Kind == yaml.SequenceNode:
		v.checkValue(fe, ExprScope{})
	case fe.Kind == yaml.ScalarNode && fe.ShortTag() == "!!str":
		if t := v.checkBare(fe, ExprScope{}); t != nil && !isListType(t) {
			v.errorf(posOf(fe), CodeBadValue, "", "node %s: for_each must be a list, not %s", n.Name, kindName(t))
		}
	default:
		v.errorf(posOf(fe), CodeBadValue, "write an expression, e.g. for_each: ${{ state.urls }}", "node %s: for_each must be a list, not %s", n.Name, describe(fe))
	}
}

// isListType reports whether an expression type is a list.
func isListType(t reflect.Type) bool {
	return t.Kind() == reflect.Slice || t.Kind() == reflect.Array
}

// providerFields returns the string values of a provider's mapping.
func (v *validator) providerFields(p *Provider) []*yaml.Node {
	var out []*yaml.Node
	if p.Node == nil || p.Node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(p.Node.Content); i += 2 {
		if f := resolveAlias(p.Node.Content[i+1]); f.Kind == yaml.ScalarNode {
			out = append(out, f)
		}
	}
	return out
}

func (v *validator) workflowOutput() {
	for _, o := range v.w.Output {
		if _, ok := v.state[o.Value]; !ok {
			hint := didYouMean(o.Value, stateNames(v.w))
			if hint == "" {
				hint = "output lists state keys"
			}
			v.errorf(o.Pos, CodeUnknownState, hint, "output %q is not a state key", o.Value)
		}
	}
}
