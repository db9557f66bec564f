package spec

import "strings"

// arm is one way an edge can fire: the `to` of a plain edge, one `when`
// case, or the `else`. Arms of one conditional edge exclude each other
// (first match wins); arms of different edges do not.
type arm struct {
	edge    *Edge
	index   int // 0 for a plain edge; case index; len(When) for else
	targets []string
	plain   bool // an unconditional, non-join edge
}

// arms lists the arms of an edge with their known target names (cached).
func (v *validator) arms(e *Edge) []arm {
	if a, ok := v.armCache[e]; ok {
		return a
	}
	if v.armCache == nil {
		v.armCache = map[*Edge][]arm{}
	}
	a := v.computeArms(e)
	v.armCache[e] = a
	return a
}

// edgesFrom returns the edges that name n among their sources (cached).
func (v *validator) edgesFrom(n string) []*Edge {
	v.indexEdges()
	return v.outEdges[n]
}

// distinctSources counts the different names of a join's from list
// (cached: a 10,000-branch join is visited 10,000 times per reach).
func (v *validator) distinctSources(e *Edge) int {
	v.indexEdges()
	return v.sources[e]
}

// indexEdges builds outEdges and sources once.
func (v *validator) indexEdges() {
	if v.outEdges != nil {
		return
	}
	v.outEdges = make(map[string][]*Edge, len(v.nodes)+1)
	v.sources = map[*Edge]int{}
	var seen map[string]bool
	for _, e := range v.w.Edges {
		// Most edges have one source or a few: comparing with the earlier
		// ones is cheaper than a map, which only large joins get.
		large := len(e.From) > smallMapping
		if large {
			seen = make(map[string]bool, len(e.From))
		}
		distinct := 0
		for i, f := range e.From {
			if large {
				if seen[f.Value] {
					continue
				}
				seen[f.Value] = true
			} else if containsName(e.From[:i], f.Value) {
				continue
			}
			distinct++
			v.outEdges[f.Value] = append(v.outEdges[f.Value], e)
		}
		if e.IsJoin() {
			v.sources[e] = distinct
		}
	}
}

func containsName(ns []Name, s string) bool {
	for _, n := range ns {
		if n.Value == s {
			return true
		}
	}
	return false
}

func (v *validator) computeArms(e *Edge) []arm {
	known := func(ns []Name) []string {
		var out []string
		for _, n := range ns {
			if _, ok := v.nodes[n.Value]; ok || n.Value == End {
				out = append(out, n.Value)
			}
		}
		return out
	}
	if len(e.When) == 0 && !e.HasElse {
		return []arm{{edge: e, targets: known(e.To), plain: !e.IsJoin()}}
	}
	var out []arm
	for i, c := range e.When {
		out = append(out, arm{edge: e, index: i, targets: known(c.To)})
	}
	if e.HasElse {
		out = append(out, arm{edge: e, index: len(e.When), targets: known(e.Else)})
	}
	return out
}

// graph checks the edges: names, conditions, the entry, reachability and
// joins.
func (v *validator) graph() {
	w := v.w
	hasEntry := false
	// The node names are sorted only for a hint about an unknown node:
	// sorting 10,000 names on every valid file cost ~3 % of validate.
	var names []string
	unknown := func(n Name) {
		if names == nil {
			names = append(sortedKeys(v.nodes), Start, End)
		}
		v.unknownNode(n, names)
	}
	checkTarget := func(n Name) {
		switch {
		case n.Value == Start:
			v.errorf(n.Pos, CodeEdge, "", "an edge cannot lead to START")
		case n.Value == End:
		case v.nodes[n.Value] == nil:
			unknown(n)
		}
	}
	for _, e := range w.Edges {
		for _, f := range e.From {
			switch {
			case f.Value == Start:
				hasEntry = true
				if len(e.From) > 1 {
					v.errorf(f.Pos, CodeEdge, "START fires once, before every node; write a separate edge from START", "START cannot be part of a join")
				}
			case f.Value == End:
				v.errorf(f.Pos, CodeEdge, "", "an edge cannot leave END")
			case v.nodes[f.Value] == nil:
				unknown(f)
			}
		}
		for _, t := range e.To {
			checkTarget(t)
		}
		v.listedTwice(e.From, "from")
		v.listedTwice(e.To, "to")
		v.listedTwice(e.Else, "else")
		for _, c := range e.When {
			for _, t := range c.To {
				checkTarget(t)
			}
			v.listedTwice(c.To, "to")
			if c.If != nil {
				if t := v.checkBare(c.If, ExprScope{}); t != nil && kindName(t) != TypeBoolean {
					v.errorf(posOf(c.If), CodeExpr, "compare it, e.g. len(x) > 0", "a condition must be a boolean, not %s", kindName(t))
				}
			}
		}
		for _, t := range e.Else {
			checkTarget(t)
		}
		switch {
		case e.HasElse:
		case e.HasWhen && len(e.When) == 0:
			v.warnf(e.Pos, CodeNoElse, "add a case, or `else: NODE`, or remove the edge", "when has no cases and there is no else: this edge never fires anything")
		case len(e.When) > 0:
			v.warnf(e.Pos, CodeNoElse, "add `else: END` to say so", "when no case matches, this edge fires nothing")
		}
	}
	if !hasEntry && len(w.Nodes) > 0 {
		v.warnf(Pos{Line: 1, Col: 1}, CodeNoEntry, "add an edge, e.g. {from: START, to: "+w.Nodes[0].Name+"}", "no edge leaves START: a run does nothing")
		return
	}
	reached := v.reach(nil, -1)
	for _, n := range w.Nodes {
		if !reached[n.Name] && n.Name != Start && n.Name != End {
			v.warnf(n.Pos, CodeUnreachable, "add an edge to it, or remove it", "node %s is unreachable from START", n.Name)
		}
	}
	v.joins(reached)
}

func (v *validator) unknownNode(n Name, names []string) {
	hint := didYouMean(n.Value, names)
	if hint == "" {
		hint = "nodes: " + strings.Join(names[:len(names)-2], ", ")
	}
	v.errorf(n.Pos, CodeUnknownNode, hint, "edge names unknown node %q", n.Value)
}

// reach returns the nodes that can run, starting from START. A join's
// targets count only once all its sources can run. When skip is set, the
// arm skipArm of that edge is left out.
func (v *validator) reach(skip *Edge, skipArm int) map[string]bool {
	reached := make(map[string]bool, len(v.nodes)+2)
	reached[Start] = true
	queue := make([]string, 1, len(v.nodes)+2)
	queue[0] = Start
	joined := map[*Edge]int{} // sources of a join reached so far
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, e := range v.edgesFrom(n) {
			if e.IsJoin() {
				joined[e]++
				if joined[e] < v.distinctSources(e) {
					continue
				}
			}
			for _, a := range v.arms(e) {
				if e == skip && a.index == skipArm {
					continue
				}
				for _, t := range a.targets {
					if !reached[t] {
						reached[t] = true
						queue = append(queue, t)
					}
				}
			}
		}
	}
	return reached
}

// joins warns about joins that can never fire: a source that never runs,
// or two sources reachable only through different cases of one
// conditional edge (first match wins, so only one of them runs) that no
// loop brings back.
func (v *validator) joins(reached map[string]bool) {
	var joins []*Edge
	for _, e := range v.w.Edges {
		if e.IsJoin() {
			joins = append(joins, e)
		}
	}
	if len(joins) == 0 {
		return
	}
	for _, j := range joins {
		for _, f := range j.From {
			if v.nodes[f.Value] != nil && !reached[f.Value] {
				v.warnf(j.Pos, CodeJoin, "", "this join never fires: its source %s never runs", f.Value)
			}
		}
	}
	// dependsOn[arm] = the nodes that only that arm makes reachable.
	type armKey struct {
		edge *Edge
		arm  int
	}
	depends := map[armKey]map[string]bool{}
	var order []armKey // file order, for deterministic messages
	for _, e := range v.w.Edges {
		if len(e.When)+btoi(e.HasElse) < 2 {
			continue
		}
		for i := 0; i < len(e.When)+btoi(e.HasElse); i++ {
			without := v.reach(e, i)
			lost := map[string]bool{}
			for n := range reached {
				if !without[n] {
					lost[n] = true
				}
			}
			depends[armKey{e, i}] = lost
			order = append(order, armKey{e, i})
		}
	}
	// The first pair (x < y) of sources, in from order, with a needing
	// arm ak and b needing another arm of the same edge, and no loop back
	// to the edge from either. Whether a pair qualifies splits into a test
	// of a and a test of b, so one pass over the sources finds it: testing
	// every pair was quadratic in the sources of the join (2 s for a
	// 10,000-branch join behind a conditional edge).
	var into map[string][]*Edge
	ancestors := map[*Edge]map[string]bool{}
	for _, j := range joins {
		for _, ak := range order {
			lost := depends[ak]
			if len(lost) == 0 {
				continue
			}
			anc, ok := ancestors[ak.edge]
			if !ok {
				if into == nil {
					into = v.edgesInto()
				}
				anc = ancestorsOf(into, ak.edge.From[0].Value)
				ancestors[ak.edge] = anc
			}
			needsA := func(name string) bool { return lost[name] && !anc[name] }
			needsB := func(name string) bool {
				if lost[name] || anc[name] {
					return false
				}
				for _, bk := range order {
					if bk.edge == ak.edge && bk.arm != ak.arm && depends[bk][name] {
						return true
					}
				}
				return false
			}
			lastB := -1
			for y := len(j.From) - 1; y > 0; y-- {
				if needsB(j.From[y].Value) {
					lastB = y
					break
				}
			}
			x := 0
			for x < lastB && !needsA(j.From[x].Value) {
				x++
			}
			if x >= lastB {
				continue
			}
			y := x + 1
			for !needsB(j.From[y].Value) {
				y++
			}
			v.warnf(j.Pos, CodeJoin, "join nodes that all run, or use separate edges",
				"this join never fires: %s and %s are reached through different cases of the conditional edge at line %d, so only one of them runs",
				j.From[x].Value, j.From[y].Value, ak.edge.Pos.Line)
			break
		}
	}
}

// ancestorsOf returns the names from which edges (into, by target) lead to n (joins treated as
// plain edges), n included only when a cycle leads back to it: the names
// whose successors include n.
func ancestorsOf(into map[string][]*Edge, n string) map[string]bool {
	out := map[string]bool{}
	done := map[*Edge]bool{}
	stack := []string{n}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, e := range into[cur] {
			if done[e] {
				continue
			}
			done[e] = true
			for _, f := range e.From {
				if !out[f.Value] {
					out[f.Value] = true
					stack = append(stack, f.Value)
				}
			}
		}
	}
	return out
}

// edgesInto returns, by name, the edges with an arm leading to it.
func (v *validator) edgesInto() map[string][]*Edge {
	into := map[string][]*Edge{}
	for _, e := range v.w.Edges {
		for _, a := range v.arms(e) {
			for _, t := range a.targets {
				if l := into[t]; len(l) == 0 || l[len(l)-1] != e {
					into[t] = append(l, e)
				}
			}
		}
	}
	return into
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// listedTwice warns about a name an edge's list holds twice: a node runs
// once per step however often it is triggered, so the second says nothing
// (or is a typo for another node).
func (v *validator) listedTwice(names []Name, field string) {
	if len(names) < 2 {
		return
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n.Value] {
			v.warnf(n.Pos, CodeEdge, "remove it, or name the node you meant", "%s lists %s twice", field, n.Value)
		}
		seen[n.Value] = true
	}
}
