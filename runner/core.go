package runner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// core is the step core (DESIGN.md, "Executor"): the deterministic part of
// a run. Given the compiled graph, the state and the outcomes of one
// step's invocations, it applies their writes through the reducers, checks
// replace conflicts, evaluates the edges and joins and forms the next
// step. It starts no goroutine and reads no clock, store, sink or network:
// the loop around it (run.loop) plans a step with it, hands the
// invocations to a dispatcher, gives the journal what must be durable,
// then commits the outcomes here. The same outcomes in the same order
// always give the same state and next step, which is what makes a resumed
// or replayed run take the original's path. core_test.go drives it alone
// and checks that this file imports nothing that could break that.
//
// ctx parameters only stop a running expression; expressions cannot read
// the clock (`now()` is refused by validate, SPEC §9.7).
type core struct {
	g *Graph

	state map[string]any
	// vals mirrors state by key index (nil until the state is built):
	// the fast path reads it instead of hashing a key. Whatever sets state
	// calls syncVals; apply, the only writer after that, writes both.
	vals      []any
	step      int
	joinDone  [][]bool
	joinLeft  []int // per join, sources not done since it last fired: a wide join is O(1) per source, not O(sources)
	ownedAt   []int // step in which a key's value was created by a reducer
	changedAt []int // step in which a key last changed
	writers   []int // writes to each replace key in step wstamp
	wstamp    []int
	next      []int // the nodes of the next step, in file order once sorted
	changed   []int // keys the last commit changed (the checkpoint's delta)
	eenv      exprEnv

	// spare holds, per key whose reducer only appends (extendsOnly), the
	// list the core last made for it with the capacity append left; after
	// the step the state holds the same list capped (l[:n:n]), so a
	// reader's append copies and only the core writes past n. The next
	// step's append then extends it in place: O(1) per step, not a copy
	// of the list (issue 13).
	spare []any // boxed []any, or nil

	// env, secrets and runInfo are what expressions read besides state
	// and item: fixed for the run (runInfo.Step follows step).
	env     map[string]any
	secrets map[string]any
	runInfo spec.ExprRun
}

// init sizes the core's bookkeeping for g; the state is set by initState
// (a new run) or replay (a resume).
func (c *core) init(g *Graph) {
	c.g = g
	c.joinDone = make([][]bool, len(g.joins))
	c.joinLeft = make([]int, len(g.joins))
	for i, j := range g.joins {
		c.joinDone[i] = make([]bool, len(j.sources))
		c.joinLeft[i] = len(j.sources)
	}
	nk := len(g.keys)
	c.ownedAt = make([]int, nk)
	c.changedAt = make([]int, nk)
	c.writers = make([]int, nk)
	c.wstamp = make([]int, nk)
	for i := range c.ownedAt {
		c.ownedAt[i], c.changedAt[i], c.wstamp[i] = -1, -1, -1
	}
}

// begin is step 0: the joins' START sources count as done, the nodes START
// leads to are triggered, and every key counts as changed (the first
// checkpoint holds the whole initial state).
func (c *core) begin(ctx context.Context) error {
	g := c.g
	for _, j := range g.joins {
		for slot, src := range j.sources {
			if src < 0 {
				c.markJoin(j, slot)
			}
		}
	}
	env := c.edgeEnv(ctx)
	if err := c.fire(g.start, env); err != nil {
		return stateFailure(0, spec.Start, -1, nodes.KindExpr, err, g.start.readsEnv)
	}
	for _, j := range g.joins {
		if err := c.tryJoin(j, env); err != nil {
			return stateFailure(0, spec.Start, -1, exprKind(err), err, j.edge.readsEnv)
		}
	}
	c.next = dedupe(c.next, len(g.nodes))
	c.changed = c.changed[:0]
	for i := range g.keys {
		c.changed = append(c.changed, i)
	}
	return nil
}

// plan starts the next step: it moves the triggered nodes into cur (file
// order) and advances the step number, or fails when the step would pass
// the recursion limit. cur is reused: the previous step's slice.
func (c *core) plan(cur []int) ([]int, error) {
	if c.step >= c.g.recursionLimit {
		return cur, &RecursionError{Limit: c.g.recursionLimit, Nodes: c.nodeNames(c.next)}
	}
	cur, c.next = c.next, cur[:0]
	if len(cur) > 1 { // a chain's steps have one node: no sort call
		slices.Sort(cur)
	}
	c.step++
	c.runInfo.Step = c.step
	return cur, nil
}

// items evaluates n's for_each against the state before the step: nil for
// a node without for_each, an empty list for a null one.
func (c *core) items(ctx context.Context, n *node) ([]any, error) {
	if n.each == nil {
		return nil, nil
	}
	env := &exprEnv{State: c.state, vals: c.vals, Env: c.env, Secrets: c.secrets, Run: c.runInfo, ctx: ctx}
	v, err := n.each.eval(env)
	if err != nil {
		return nil, stateFailure(c.step, n.name, -1, exprKind(err), fmt.Errorf("for_each: %w", err), n.readsEnv)
	}
	switch x := v.(type) {
	case nil:
		return []any{}, nil
	case []any:
		return x, nil
	default:
		return nil, stateFailure(c.step, n.name, -1, nodes.KindExpr, fmt.Errorf("for_each must be a list, got %s", typeName(v)), n.readsEnv)
	}
}

// stepOutcome is what a step's invocations amount to, before any write is
// applied: the first failure in file and item order, every interrupt
// waited at, and whether some invocation was cancelled.
type stepOutcome struct {
	failure   *NodeError
	intrs     []Interrupt
	cancelled bool
}

// outcome reads the step's results in file order, then item order.
func (c *core) outcome(runs []*nodeRun) stepOutcome {
	var out stepOutcome
	for _, nr := range runs {
		for i := range nr.res {
			ir := &nr.res[i]
			switch {
			case ir.failed() && out.failure == nil:
				out.failure = &NodeError{Step: c.step, Node: nr.n.name, Index: itemIndex(nr, i), Kind: ir.kind, Err: ir.err, Repeats: ir.repeats}
			case ir.interrupted():
				out.intrs = append(out.intrs, ir.intrs...)
			case ir.status == "" && ir.err != nil:
				out.cancelled = true
			}
		}
	}
	return out
}

// commit ends a step whose invocations all succeeded: their writes are
// applied through the reducers, then the edges leaving its nodes and the
// joins they complete are evaluated against the new state, triggering the
// next step's nodes (c.next, in file order).
func (c *core) commit(ctx context.Context, runs []*nodeRun) error {
	if err := c.apply(runs); err != nil {
		return err
	}
	env := c.edgeEnv(ctx)
	for _, nr := range runs {
		if err := c.fire(&nr.n.edges, env); err != nil {
			return stateFailure(c.step, nr.n.name, -1, exprKind(err), err, nr.n.edges.readsEnv)
		}
		for _, jr := range nr.n.joins {
			c.markJoin(jr.j, jr.slot)
			if err := c.tryJoin(jr.j, env); err != nil {
				return stateFailure(c.step, nr.n.name, -1, exprKind(err), err, jr.j.edge.readsEnv)
			}
		}
	}
	if len(c.next) > 1 {
		slices.Sort(c.next)
		c.next = slices.Compact(c.next) // a node triggered by several edges
	}
	return nil
}

// edgeEnv is the environment of edge conditions: the state after the
// barrier. It is reused from step to step (edges are evaluated by the loop
// goroutine only).
//
// Assigned field by field, not as a whole (256 bytes, most of them
// pointers, written with barriers while the GC marks): edges only read
// state, env, secrets and run; stateCopy is the previous step's copy of
// the state and must go; the budget is reset by each evaluation.
func (c *core) edgeEnv(ctx context.Context) *exprEnv {
	e := &c.eenv
	e.State, e.vals, e.Env, e.Secrets, e.Run, e.ctx = c.state, c.vals, c.env, c.secrets, c.runInfo, ctx
	if e.stateCopy != nil {
		e.stateCopy = nil
	}
	return e
}

// trigger adds the nodes to to the next step; a node triggered twice is
// listed once by commit (or begin). A per-node stamp did that before, at
// a word per node per run: S1's largest allocation after the run itself.
func (c *core) trigger(to []int) {
	c.next = append(c.next, to...)
}

// dedupe removes repeated nodes from next, keeping the first of each (the
// order START triggered them in, which the first checkpoint names), in
// time linear in next.
func dedupe(next []int, nodes int) []int {
	if len(next) < 2 {
		return next
	}
	out := next[:1]
	if len(next) <= 16 {
		for _, t := range next[1:] {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
		return out
	}
	seen := make([]bool, nodes)
	seen[next[0]] = true
	for _, t := range next[1:] {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// fire evaluates edges leaving one node (or START, or a join).
func (c *core) fire(oe *outEdges, env *exprEnv) error {
	c.trigger(oe.plain)
	for _, ce := range oe.conds {
		matched := false
		for _, cs := range ce.cases {
			v, err := cs.cond.eval(env)
			if err != nil {
				return fmt.Errorf("edge condition: %w", err)
			}
			b, ok := v.(bool)
			if !ok && v != nil {
				return fmt.Errorf("edge condition %q is %s, not boolean", cs.src, typeName(v))
			}
			if b {
				c.trigger(cs.to)
				matched = true
				break
			}
		}
		if !matched {
			c.trigger(ce.els)
		}
	}
	return nil
}

// tryJoin fires j if every source completed since it last fired.
func (c *core) tryJoin(j *join, env *exprEnv) error {
	if c.joinLeft[j.idx] > 0 {
		return nil
	}
	done := c.joinDone[j.idx]
	for i := range done {
		done[i] = false
	}
	c.joinLeft[j.idx] = len(done)
	return c.fire(&j.edge, env)
}

// markJoin records that source slot of j completed; a slot already done
// since j last fired counts once.
func (c *core) markJoin(j *join, slot int) {
	if done := c.joinDone[j.idx]; !done[slot] {
		done[slot] = true
		c.joinLeft[j.idx]--
	}
}

// nodeNames names node indexes. The slice for one node is shared
// (read-only), which keeps steps of one node free of allocations.
func (c *core) nodeNames(idx []int) []string {
	if len(idx) == 1 {
		return c.g.nodes[idx[0]].self
	}
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = c.g.nodes[n].name
	}
	return out
}

// initState builds the initial state from defaults and inputs.
func (c *core) initState(inputs map[string]any) error {
	g := c.g
	for k := range inputs {
		if _, ok := g.keyIdx[k]; !ok {
			msg := fmt.Sprintf("input %q is not a declared state key", k)
			if s := spec.Suggest(k, slices.Collect(maps.Keys(g.keyIdx))); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return &InputError{Msg: msg}
		}
	}
	c.state = make(map[string]any, len(g.keys))
	var missing []string
	for _, k := range g.keys {
		v, given := inputs[k.name]
		if !given {
			if k.required {
				missing = append(missing, k.name)
			}
			c.state[k.name] = k.def
			continue
		}
		fitted, bad := fitType(k.typ, v)
		if bad != "" {
			return &InputError{Msg: fmt.Sprintf("input %q: expected %s, got %s", k.name, k.typ, bad), Hint: asJSONHint(k.name, k.typ, v)}
		}
		// Only JSON is stored (SPEC §9.6): a YAML input file's .inf or
		// .nan is refused here, named, rather than by the store's encoder.
		if _, problem := jsonValue(fitted); problem != "" {
			return &InputError{Msg: fmt.Sprintf("input %q: the value is not JSON: %s", k.name, problem)}
		}
		c.state[k.name] = fitted
	}
	if len(missing) > 0 {
		return &InputError{Msg: "missing required input(s): " + strings.Join(missing, ", "), Hint: "pass -i " + missing[0] + "=VALUE"}
	}
	c.syncVals()
	return nil
}

// syncVals rebuilds vals from state, once state was built.
func (c *core) syncVals() {
	c.vals = make([]any, len(c.g.keys))
	for i, k := range c.g.keys {
		c.vals[i] = c.state[k.name]
	}
}

// apply merges the step's writes into the state through the reducers, in
// node file order then item index order, after checking replace conflicts.
func (c *core) apply(runs []*nodeRun) error {
	c.changed = c.changed[:0]
	conflict := -1
	for _, nr := range runs {
		for i := range nr.res {
			for _, w := range nr.res[i].writes {
				k := w.key.idx
				if !w.key.replace {
					continue
				}
				if c.wstamp[k] != c.step {
					c.wstamp[k], c.writers[k] = c.step, 0
				}
				c.writers[k]++
				if c.writers[k] == 2 && conflict < 0 {
					conflict = k
				}
			}
		}
	}
	if conflict >= 0 {
		ce := &ConflictError{Key: c.g.keys[conflict].name, Step: c.step}
		for _, nr := range runs {
			for i := range nr.res {
				for _, w := range nr.res[i].writes {
					if w.key.idx == conflict {
						name := nr.n.name
						if nr.items != nil {
							name = fmt.Sprintf("%s[%d]", name, i)
						}
						ce.Writers = append(ce.Writers, name)
					}
				}
			}
		}
		return ce
	}
	for _, nr := range runs {
		for i := range nr.res {
			for _, w := range nr.res[i].writes {
				k := w.key
				nv := w.val
				if !k.replace { // replace needs no current value: one map lookup less
					var err error
					cur, owned := c.state[k.name], c.ownedAt[k.idx] == c.step
					if k.extends {
						cur, owned = c.ownedList(k.idx, cur, owned)
					}
					nv, err = k.reduce(cur, w.val, owned)
					if err != nil {
						return stateFailure(c.step, nr.n.name, itemIndex(nr, i), nodes.KindType,
							fmt.Errorf("state key %q (reducer %s): %w", k.name, k.reducerName, err), false)
					}
					if k.extends {
						c.noteSpare(k.idx, cur, nv, owned)
					}
				}
				c.state[k.name] = nv
				if c.vals != nil {
					c.vals[k.idx] = nv
				}
				if !k.replace && w.val != nil {
					c.ownedAt[k.idx] = c.step
				}
				if c.changedAt[k.idx] != c.step {
					c.changedAt[k.idx] = c.step
					c.changed = append(c.changed, k.idx)
				}
			}
		}
	}
	c.capSpares()
	return nil
}

// ownedList returns the list the core made for key k, boxed as the
// reducer returned it with its spare capacity, when cur is that list (the
// same elements in the same memory: a state value is never modified in
// place), so an appending reducer may extend it in place; else cur and
// owned unchanged.
func (c *core) ownedList(k int, cur any, owned bool) (any, bool) {
	if c.spare == nil || c.spare[k] == nil {
		return cur, owned
	}
	sp := c.spare[k].([]any)
	l, ok := cur.([]any)
	if !ok || len(l) != len(sp) || &l[0] != &sp[0] { // sp is never empty
		return cur, owned
	}
	return c.spare[k], true
}

// noteSpare remembers nv, the new value of key k that a reducer made from
// cur (owned or not), when it is a non-empty list the core made. A full
// list is remembered too: the next append to it then grows it by append's
// geometric rule, where an unowned list would be copied with room for a
// few elements only. A reducer returns an unowned cur itself for a null
// write: that list may be an input or the graph's default, shared with
// the caller or other runs, so it is never the core's to extend.
func (c *core) noteSpare(k int, cur, nv any, owned bool) {
	l, ok := nv.([]any)
	if ok && !owned {
		if cl, isList := cur.([]any); isList && len(cl) > 0 && len(l) > 0 && &cl[0] == &l[0] {
			ok = false
		}
	}
	if !ok || len(l) == 0 {
		if c.spare != nil {
			c.spare[k] = nil
		}
		return
	}
	if c.spare == nil { // allocated by the first list appended to, not per run
		c.spare = make([]any, len(c.g.keys))
	}
	c.spare[k] = nv
}

// capSpares ends a step's appends: the state gets each remembered list
// capped (l[:n:n]), so that a reader appending to it copies, and only the
// core writes past n. Once per key and step, not per write: within the
// step no reader sees the state.
func (c *core) capSpares() {
	if c.spare == nil {
		return
	}
	for _, ki := range c.changed {
		sv := c.spare[ki]
		if sv == nil || !c.g.keys[ki].extends {
			continue
		}
		if l := sv.([]any); cap(l) > len(l) {
			v := any(l[:len(l):len(l)])
			c.state[c.g.keys[ki].name] = v
			if c.vals != nil {
				c.vals[ki] = v
			}
		}
	}
}

func itemIndex(nr *nodeRun, i int) int {
	if nr.items == nil {
		return -1
	}
	return i
}
