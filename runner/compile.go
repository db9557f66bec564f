package runner

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// Graph is a compiled workflow: expressions compiled, templates prepared,
// edges resolved to node indexes. It is immutable and may be run many times,
// concurrently.
type Graph struct {
	wf *spec.Workflow

	keys   []*keyInfo
	keyIdx map[string]int
	nodes  []*node
	byName map[string]int

	start *outEdges // edges out of START
	joins []*join

	providers map[string]*provider
	tools     map[string]*tool

	concurrency    int
	recursionLimit int
	timeout        time.Duration

	// noCaps are the caps of a node that takes no node cap and no pool,
	// shared read-only by every run of the graph ([1]: one that holds no
	// slot): a run allocates caps only for the nodes that need their own.
	noCaps [2]caps
	// caps is the per-node cap table of a run when no node has caps of
	// its own (ownCaps == 0): every entry points into noCaps, so runs
	// share it read-only instead of building it (S1: a sixth of the bytes
	// a run allocated). ownCaps counts the nodes with a node cap or pools.
	caps    []*caps
	ownCaps int
	// slabs recycles the nodeRun slabs of finished runs (see takeSlab).
	slabs *sync.Pool

	// progs are the expressions compiled so far, while Compile runs (nil
	// after: nodes compiled at run time, MCP tools', compile on their own).
	progs map[progKey]*compiled
}

// Workflow returns the workflow the graph was compiled from.
func (g *Graph) Workflow() *spec.Workflow { return g.wf }

// keyInfo is a declared state key.
type keyInfo struct {
	name        string
	jsonName    []byte // name as a JSON string, for invocation records
	idx         int
	typ         string
	reducerName string
	reduce      reducer
	replace     bool
	extends     bool // the reducer only appends: the core extends the list in place (core.spare)
	def         any
	hasDef      bool
	required    bool
	// asIs holds the scalar kinds (asIs* bits) that fitWrite returns
	// unchanged for this key, so that the common writes skip it.
	asIs uint8
}

// Scalar kinds of keyInfo.asIs.
const (
	asIsInt uint8 = 1 << iota
	asIsFloat
	asIsString
	asIsBool
)

// scalarsAsIs probes fitWrite with one value of each scalar kind and
// returns the kinds it passes unchanged (type and value). fitWrite
// decides by the value's type only for these kinds, except that an
// integral float may become an int: the probe uses 1.5, so a key that
// converts floats never gets asIsFloat.
func scalarsAsIs(k *keyInfo) uint8 {
	var bits uint8
	for _, p := range []struct {
		v   any
		bit uint8
	}{{7, asIsInt}, {1.5, asIsFloat}, {"s", asIsString}, {true, asIsBool}} {
		if got, bad := fitWrite(k, p.v); bad == "" && got == p.v {
			bits |= p.bit
		}
	}
	return bits
}

// fitsAsIs reports whether fitWrite(k, v) would return v unchanged, for
// the scalars of asIs (false means: ask fitWrite).
func (k *keyInfo) fitsAsIs(v any) bool {
	switch v.(type) {
	case int:
		return k.asIs&asIsInt != 0
	case string:
		return k.asIs&asIsString != 0
	case bool:
		return k.asIs&asIsBool != 0
	case float64:
		return k.asIs&asIsFloat != 0
	}
	return false
}

// takeSlab returns at least n zero nodeRuns in one slice: a finished
// run's, or new ones. A 10,000-branch fan-out allocated 2.5 MB of them per
// run, which the GC then marked and swept; runs of one graph need the same
// sizes, so they pass them on.
func (g *Graph) takeSlab(n int) []nodeRun {
	if g.slabs != nil {
		if p, _ := g.slabs.Get().(*[]nodeRun); p != nil {
			if len(*p) >= n {
				return *p
			}
			g.slabs.Put(p) // too small for this step: another run may use it
		}
	}
	return make([]nodeRun, n)
}

// recycleSlabs hands the run's slabs to the graph's pool, zeroed (so that
// a pooled slab keeps no value of this run alive). Called when the loop
// ends, after the dispatcher's workers did: no nodeRun is read after.
func (r *run) recycleSlabs() {
	if r.g.slabs == nil {
		return
	}
	for _, s := range r.slabs {
		for i := range s {
			// A for_each's results are kept, zeroed, for the node runs
			// of the graph's next run: 2,000 items' results are 400 KB,
			// which a new run would allocate and fault in again.
			res := s[i].res
			if cap(res) > 1 {
				clear(res[:cap(res)])
				res = res[:0]
			} else {
				res = nil
			}
			s[i] = nodeRun{res: res}
		}
		r.g.slabs.Put(&s)
	}
	r.slabs, r.slab, r.pool = nil, nil, nil
}

// ownCaps reports whether n takes a node cap or pools: each run then
// gives it caps of its own (semaphores of that run).
func (n *node) ownCaps() bool { return n.spec.Concurrency > 0 || len(n.poolNames) > 0 }

// node is a compiled node.
type node struct {
	name  string
	self  []string // []string{name}, shared by events
	idx   int
	typ   nodes.Type
	spec  *spec.Node
	with  *mapVal // nil = no `with`
	prep  any     // from nodes.Preparer
	each  cval    // for_each; nil = not a loop
	caps  caps
	retry retryPolicy
	// timeout per attempt; 0 = none (types that do no work)
	timeout   time.Duration
	continue_ bool
	// readsEnv: an expression of the node (with, output, for_each, pool
	// key) reads env or secrets, which a resume may give other values.
	readsEnv bool
	// pure nodes have no effect outside the run (nodes.Capabilities.Pure): steps made
	// only of them may be recorded in batches.
	pure   bool
	output []outWrite
	// resultFields is nodes.Invocation.ResultFields: what output reads.
	resultFields map[string]bool
	edges        outEdges
	joins        []joinRef
	// terminal: no edge or join leaves the node for another node, so a
	// step of terminal nodes is the run's last.
	terminal bool
	// doneWithHTTP: once an invocation has started, it sends no request
	// after its first is answered (nodes.Capabilities.OneRequest), or it
	// sends none (pure and instant types).
	doneWithHTTP bool
	poolNames    []string // pools taken per attempt, sorted
	// keyPool is the pool taken with a key (`pool: {name, key}`), poolKey
	// the key's compiled value; "" and nil when none.
	keyPool string
	poolKey cval
	// fallbacks are the providers an llm_call falls back to, in order.
	fallbacks []string
	// instant: the type does no work (set, interrupt); it runs inline.
	instant bool
	// wantsData: the type reads Invocation.Data (the template data root).
	wantsData bool
}

// outWrite is one compiled `output` entry.
type outWrite struct {
	key *keyInfo
	val cval
}

// outEdges are the single-source edges leaving one node (or START).
type outEdges struct {
	plain []int // targets of plain edges (END dropped)
	conds []*condEdge
	// readsEnv: a condition reads env or secrets, which a resume may
	// give other values (so its failure may not repeat).
	readsEnv bool
}

// condEdge is a `when:` edge: first matching case wins, else Else.
type condEdge struct {
	cases []condCase
	els   []int
}

type condCase struct {
	cond *progVal
	src  string
	to   []int
}

// join is a multi-source edge; it fires when every source completed since
// it last fired.
type join struct {
	idx     int
	sources []int // node indexes; -1 is START
	names   []string
	edge    outEdges
}

// joinRef says that a node is source number slot of a join.
type joinRef struct {
	j    *join
	slot int
}

// provider is a compiled LLM provider: string fields may be expressions.
type provider struct {
	name, kind          string
	model, baseURL, key cval
	pool                string
}

// tool is a compiled top-level tool.
type tool struct {
	spec   nodes.ToolSpec
	node   *node
	output cval // nil = result
}

// Compile turns a workflow that passed spec.Validate into a Graph: every
// expression compiled once, Static `with` fields passed to the type's
// Prepare, reducers resolved and edges turned into per-node adjacency, so
// that running parses and reflects over nothing.
func Compile(w *spec.Workflow) (*Graph, error) {
	g := &Graph{
		wf:             w,
		keyIdx:         make(map[string]int, len(w.State)),
		byName:         make(map[string]int, len(w.Nodes)),
		providers:      map[string]*provider{},
		tools:          map[string]*tool{},
		concurrency:    w.Config.Concurrency,
		recursionLimit: w.Config.RecursionLimit,
		timeout:        w.Config.Timeout,
		noCaps:         [2]caps{{}, {none: true}},
		start:          &outEdges{},
		progs:          map[progKey]*compiled{},
		slabs:          new(sync.Pool),
	}
	if g.concurrency <= 0 {
		g.concurrency = spec.DefaultConcurrency
	}
	if g.recursionLimit <= 0 {
		g.recursionLimit = spec.DefaultRecursionLimit
	}
	for i, k := range w.State {
		red := k.Reducer
		if red == "" {
			red = spec.ReducerReplace
			if k.Type == spec.TypeMessages {
				red = spec.ReducerMessages
			}
		}
		fn, ok := reducerFor(red)
		if !ok {
			return nil, fmt.Errorf("%s:%d:%d: state key %s: unknown reducer %q", w.File, k.Pos.Line, k.Pos.Col, k.Name, red)
		}
		typ := k.Type
		if typ == "" {
			typ = spec.TypeAny
		}
		def := k.Default
		if k.HasDefault {
			fitted, bad := fitType(typ, def)
			if bad != "" {
				return nil, fmt.Errorf("%s:%d:%d: state key %s: default is %s, expected %s", w.File, k.Pos.Line, k.Pos.Col, k.Name, bad, typ)
			}
			def = fitted
		}
		jsonName, _ := json.Marshal(k.Name) // a string always marshals
		ki := &keyInfo{name: k.Name, jsonName: jsonName, idx: i, typ: typ, reducerName: red, reduce: fn,
			replace: red == spec.ReducerReplace, def: def, hasDef: k.HasDefault, required: k.Required}
		ki.asIs = scalarsAsIs(ki)
		ki.extends = extendsOnly(red)
		g.keys = append(g.keys, ki)
		g.keyIdx[k.Name] = i
	}
	for i, n := range w.Nodes {
		g.byName[n.Name] = i
	}
	for i, n := range w.Nodes {
		cn, err := g.compileNode(n, i)
		if err != nil {
			return nil, err
		}
		g.nodes = append(g.nodes, cn)
	}
	g.caps = make([]*caps, len(g.nodes))
	for i, n := range g.nodes {
		n.poolNames = g.poolNames(n)
		n.fallbacks = g.fallbackChain(n)
		switch {
		case n.ownCaps():
			g.ownCaps++
		case n.caps.none:
			g.caps[i] = &g.noCaps[1]
		default:
			g.caps[i] = &g.noCaps[0]
		}
	}
	if err := g.compileEdges(); err != nil {
		return nil, err
	}
	for _, p := range w.Providers {
		cp, err := g.compileProvider(p)
		if err != nil {
			return nil, err
		}
		g.providers[p.Name] = cp
	}
	for _, t := range w.Tools {
		ct, err := g.compileTool(t)
		if err != nil {
			return nil, err
		}
		g.tools[t.Name] = ct
	}
	g.progs = nil
	return g, nil
}

func (g *Graph) errorf(pos spec.Pos, format string, args ...any) error {
	return fmt.Errorf("%s:%d:%d: %s", g.wf.File, pos.Line, pos.Col, fmt.Sprintf(format, args...))
}

// compileNode compiles one node; idx is its file position (-1 for a tool's node).
func (g *Graph) compileNode(n *spec.Node, idx int) (*node, error) {
	typ, ok := nodes.Lookup(n.Type)
	if !ok {
		return nil, g.errorf(n.TypePos, "node %s: unknown type %q", n.Name, n.Type)
	}
	c := &compiler{file: g.wf.File, limit: g.wf.Config.MaxValueBytes, loopVar: n.As, cache: g.progs, keys: g.keyIdx}
	cn := &node{name: n.Name, self: []string{n.Name}, idx: idx, typ: typ, spec: n, continue_: n.OnError == spec.OnErrorContinue}
	capab := nodes.CapabilitiesOf(typ)
	cn.pure = capab.Pure
	cn.doneWithHTTP = capab.OneRequest || capab.Pure || capab.Instant
	c.readsEnv = &cn.readsEnv
	cn.retry = resolveRetry(n.Retry, g.wf.Config.Retry)
	cn.timeout = n.Timeout
	if cn.timeout <= 0 {
		cn.timeout = g.wf.Config.NodeTimeout
	}
	if cn.timeout <= 0 {
		cn.timeout = spec.DefaultNodeTimeout
	}
	if capab.Instant {
		cn.timeout = 0
		cn.instant = true
	}
	if capab.HoldsNoSlot && n.Timeout <= 0 {
		// Its inner invocations have their own timeouts; their cap waits
		// must not count against one of the outer node (SPEC §4.2).
		cn.timeout = 0
	}

	// with: Static fields stay literal (spec decoded them whole) and feed
	// Prepare.
	static := map[string]bool{}
	for _, f := range typ.Doc().With {
		if f.Static {
			static[f.Name] = true
		}
	}
	staticVals := map[string]any{}
	if w := n.WithTree; w != nil {
		if w.Kind != spec.ValueMap {
			return nil, g.errorf(w.Pos, "node %s: with must be a mapping", n.Name)
		}
		cn.with = &mapVal{keys: make([]string, 0, len(w.Keys)), vals: make([]cval, 0, len(w.Keys))}
		for i, k := range w.Keys {
			vn := w.Elems[i]
			var v cval
			if static[k] {
				if vn.Kind != spec.ValueLiteral {
					return nil, g.errorf(vn.At, "node %s: with.%s: not decoded as a literal", n.Name, k)
				}
				if vn.Err != nil {
					return nil, g.errorf(vn.At, "node %s: with.%s: %v", n.Name, k, vn.Err)
				}
				lit := normalize(vn.Lit)
				staticVals[k] = lit
				v = litVal{lit}
			} else {
				var err error
				if v, err = c.value(vn); err != nil {
					return nil, fmt.Errorf("node %s: with.%s: %w", n.Name, k, err)
				}
			}
			cn.with.keys = append(cn.with.keys, k)
			cn.with.vals = append(cn.with.vals, v)
		}
	}
	if p, ok := typ.(nodes.Preparer); ok {
		prep, err := p.Prepare(staticVals)
		if err != nil {
			return nil, g.errorf(n.Pos, "node %s: %v", n.Name, err)
		}
		cn.prep = prep
	}

	if n.ForEachTree != nil {
		v, err := c.value(n.ForEachTree)
		if err != nil {
			return nil, fmt.Errorf("node %s: for_each: %w", n.Name, err)
		}
		cn.each = v
	}

	use := &resultUse{}
	c.result = use
	for _, o := range n.Output {
		ki, ok := g.keyIdx[o.Key]
		if !ok {
			return nil, g.errorf(o.Pos, "node %s: output to undeclared state key %q", n.Name, o.Key)
		}
		if o.Tree == nil {
			return nil, g.errorf(o.Pos, "node %s: output.%s: no value", n.Name, o.Key)
		}
		v, err := c.value(o.Tree)
		if err != nil {
			return nil, fmt.Errorf("node %s: output.%s: %w", n.Name, o.Key, err)
		}
		cn.output = append(cn.output, outWrite{key: g.keys[ki], val: v})
	}
	c.result = nil
	cn.resultFields = use.wanted()

	if pk := n.PoolKey; pk != nil && pk.KeyTree != nil && idx >= 0 {
		v, err := c.value(pk.KeyTree)
		if err != nil {
			return nil, fmt.Errorf("node %s: pool.key: %w", n.Name, err)
		}
		cn.keyPool, cn.poolKey = pk.Pool.Value, v
	}

	// Caps: the node's own semaphore is created per run (see newRunCaps);
	// here only the pool names, sorted for a deadlock-free acquire order.
	cn.caps.none = capab.HoldsNoSlot
	cn.wantsData = capab.ReadsData
	return cn, nil
}

// poolNames returns the pools a node takes, sorted: the ones it names plus,
// for a type that calls a provider (llm_call), the provider's pool, and for
// one that calls an MCP server (mcp_call), the server's.
func (g *Graph) poolNames(n *node) []string {
	var names []string
	for _, p := range n.spec.Pools {
		names = append(names, p.Value)
	}
	capab := nodes.CapabilitiesOf(n.typ)
	if field := capab.ProviderField; field != "" {
		prov := "default"
		if lit, ok := n.withLiteral(field); ok {
			if s, ok := lit.(string); ok && s != "" {
				prov = s
			}
		}
		for _, p := range g.wf.Providers {
			if p.Name == prov && p.Pool.Value != "" {
				names = append(names, p.Pool.Value)
			}
		}
	}
	if field := capab.ServerField; field != "" {
		names = append(names, g.mcpServerCaps(n, field)...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// withLiteral returns a `with` field's value when it is a literal.
func (n *node) withLiteral(field string) (any, bool) {
	if n.with == nil {
		return nil, false
	}
	for i, k := range n.with.keys {
		if k == field {
			if l, ok := n.with.vals[i].(litVal); ok {
				return l.v, true
			}
		}
	}
	return nil, false
}

// targets resolves edge target names to node indexes, dropping END.
func (g *Graph) targets(names []spec.Name) ([]int, error) {
	out := make([]int, 0, len(names))
	for _, t := range names {
		if t.Value == spec.End {
			continue
		}
		i, ok := g.byName[t.Value]
		if !ok {
			return nil, g.errorf(t.Pos, "edge to unknown node %q", t.Value)
		}
		out = append(out, i)
	}
	return out, nil
}

func (g *Graph) compileOut(e *spec.Edge, into *outEdges) error {
	// `when: []` with an `else` is conditional too: no case matches, so
	// the else fires (SPEC §4).
	if len(e.When) == 0 && !e.HasElse {
		t, err := g.targets(e.To)
		if err != nil {
			return err
		}
		into.plain = append(into.plain, t...)
		return nil
	}
	ce := &condEdge{}
	c := &compiler{file: g.wf.File, limit: g.wf.Config.MaxValueBytes, cache: g.progs, keys: g.keyIdx, readsEnv: &into.readsEnv}
	for _, cs := range e.When {
		if cs.IfTree == nil {
			return g.errorf(cs.Pos, "when case without if")
		}
		cv, err := c.value(cs.IfTree)
		if err != nil {
			return err
		}
		p, ok := cv.(*progVal)
		if !ok {
			return g.errorf(cs.Pos, "when case: if is not an expression")
		}
		t, err := g.targets(cs.To)
		if err != nil {
			return err
		}
		ce.cases = append(ce.cases, condCase{cond: p, src: p.src, to: t})
	}
	if e.HasElse {
		t, err := g.targets(e.Else)
		if err != nil {
			return err
		}
		ce.els = t
	}
	into.conds = append(into.conds, ce)
	return nil
}

func (g *Graph) compileEdges() error {
	for _, e := range g.wf.Edges {
		if len(e.From) == 0 {
			return g.errorf(e.Pos, "edge without from")
		}
		if !e.IsJoin() {
			from := e.From[0]
			into := g.start
			if from.Value != spec.Start {
				i, ok := g.byName[from.Value]
				if !ok {
					return g.errorf(from.Pos, "edge from unknown node %q", from.Value)
				}
				into = &g.nodes[i].edges
			}
			if err := g.compileOut(e, into); err != nil {
				return err
			}
			continue
		}
		j := &join{idx: len(g.joins)}
		for _, f := range e.From {
			src := -1
			if f.Value != spec.Start {
				i, ok := g.byName[f.Value]
				if !ok {
					return g.errorf(f.Pos, "edge from unknown node %q", f.Value)
				}
				src = i
			}
			j.sources = append(j.sources, src)
			j.names = append(j.names, f.Value)
		}
		if err := g.compileOut(e, &j.edge); err != nil {
			return err
		}
		for slot, src := range j.sources {
			if src >= 0 {
				g.nodes[src].joins = append(g.nodes[src].joins, joinRef{j: j, slot: slot})
			}
		}
		g.joins = append(g.joins, j)
	}
	for _, n := range g.nodes {
		n.terminal = len(n.joins) == 0 && n.edges.leadsNowhere()
	}
	return nil
}

// leadsNowhere reports whether the edges trigger no node: none, or only
// to END.
func (o *outEdges) leadsNowhere() bool {
	if len(o.plain) > 0 {
		return false
	}
	for _, ce := range o.conds {
		if len(ce.els) > 0 {
			return false
		}
		for _, cc := range ce.cases {
			if len(cc.to) > 0 {
				return false
			}
		}
	}
	return true
}

func (g *Graph) compileProvider(p *spec.Provider) (*provider, error) {
	c := &compiler{file: g.wf.File, limit: g.wf.Config.MaxValueBytes, cache: g.progs, keys: g.keyIdx}
	cp := &provider{name: p.Name, kind: p.Kind, pool: p.Pool.Value}
	var err error
	if cp.model, err = c.str(p.Model, p.Pos); err != nil {
		return nil, err
	}
	if cp.baseURL, err = c.str(p.BaseURL, p.Pos); err != nil {
		return nil, err
	}
	if cp.key, err = c.str(p.APIKey, p.Pos); err != nil {
		return nil, err
	}
	return cp, nil
}

func (g *Graph) compileTool(t *spec.Tool) (*tool, error) {
	ct := &tool{spec: nodes.ToolSpec{Name: t.Name, Description: t.Description, Parameters: t.Parameters}}
	if t.Node == nil {
		return nil, g.errorf(t.Pos, "tool %s: no node", t.Name)
	}
	tn := *t.Node
	if tn.Name == "" {
		tn.Name = t.Name
	}
	cn, err := g.compileNode(&tn, -1)
	if err != nil {
		return nil, fmt.Errorf("tool %s: %w", t.Name, err)
	}
	cn.poolNames = g.poolNames(cn)
	cn.fallbacks = g.fallbackChain(cn) // an llm_call tool falls back like a node
	ct.node = cn
	if t.OutputTree != nil {
		c := &compiler{file: g.wf.File, limit: g.wf.Config.MaxValueBytes, cache: g.progs, keys: g.keyIdx}
		if ct.output, err = c.value(t.OutputTree); err != nil {
			return nil, fmt.Errorf("tool %s: output: %w", t.Name, err)
		}
	}
	return ct, nil
}
