package spec

import (
	"cmp"
	"fmt"
	"slices"
)

// Static replace-conflict check (SPEC §2, §8).
//
// Two writes to a `replace` key in one super-step fail the run. This check
// finds writers that would do so before anything runs:
//
//   - Errors: writers that certainly share a step whenever the edge that
//     triggers them fires: two targets of one arm (a plain edge's `to` list,
//     one `when` case's `to`, an `else` list), two targets of unconditional
//     plain edges out of one node (a fan-out written as several edges), a
//     `for_each` node (its items all write in one step), and, closing over
//     these, targets of unconditional edges out of two nodes certain to
//     share a step (SPEC §9.5): both complete at one barrier, so what
//     their plain edges trigger runs together next.
//   - Warnings: writers that may share a step on some path. The relation
//     "may run in the same step" is the smallest symmetric relation such
//     that (1) two targets of edges out of one node are related unless they
//     are only in exclusive cases of one conditional edge, and (2) if a and
//     b are related, every target of a's edges is related to every target
//     of b's. A join's target counts as a target of each of its sources
//     (it fires when the last one completes, whichever that is). This
//     over-approximates every run, so any conflict the run-time check can
//     meet between two nodes is reported; it stays quiet for writers that
//     only ever run in different steps (a chain, exclusive branches). The
//     relation is computed only for nodes that can reach two writers of one
//     key, and is capped at maxPairs pairs.
const maxPairs = 200_000

// write is one node's write of a key.
type write struct {
	node  *Node
	entry *OutputEntry
}

type nodePair struct{ a, b string }

func orderedPair(a, b string) nodePair {
	if a > b {
		a, b = b, a
	}
	return nodePair{a, b}
}

func (v *validator) conflicts() {
	// Writers of each replace key, in file order.
	writers := map[string][]write{}
	for _, n := range v.w.Nodes {
		seen := map[string]bool{}
		for _, o := range n.Output {
			k := v.state[o.Key]
			if k == nil || k.Reducer != ReducerReplace || seen[o.Key] {
				continue
			}
			seen[o.Key] = true
			writers[o.Key] = append(writers[o.Key], write{n, o})
		}
	}
	keys := sortedKeys(writers)
	for _, key := range keys {
		for _, wr := range writers[key] {
			if wr.node.ForEach != nil {
				v.errorf(wr.entry.Pos, CodeReplaceConflict, reducerSuggestion(v.state[key]),
					"node %s runs once per item of for_each, and every item writes replace key %q in the same super-step",
					wr.node.Name, key)
			}
		}
	}
	// Keys with two or more writers.
	byNode := map[string]map[string]write{} // node → key → write
	var contested []string
	for _, key := range keys {
		if len(writers[key]) < 2 {
			continue
		}
		contested = append(contested, key)
		for _, wr := range writers[key] {
			if byNode[wr.node.Name] == nil {
				byNode[wr.node.Name] = map[string]write{}
			}
			byNode[wr.node.Name][key] = wr
		}
	}
	if len(contested) == 0 {
		return
	}
	reported := map[string]map[nodePair]bool{}
	report := func(key string, a, b write, why string, certain bool) {
		p := orderedPair(a.node.Name, b.node.Name)
		if reported[key] == nil {
			reported[key] = map[nodePair]bool{}
		}
		if reported[key][p] {
			return
		}
		reported[key][p] = true
		first, second := a, b
		if second.node.Index < first.node.Index {
			first, second = second, first
		}
		if certain {
			v.errorf(second.entry.Pos, CodeReplaceConflict, reducerSuggestion(v.state[key]),
				"replace key %q is written by both %s (line %d) and %s (line %d), which run in the same super-step (%s)",
				key, first.node.Name, first.entry.Pos.Line, second.node.Name, second.entry.Pos.Line, why)
		} else {
			v.warnf(second.entry.Pos, CodeReplaceConflict, reducerSuggestion(v.state[key])+"; the run fails if they do",
				"replace key %q is written by %s (line %d) and %s (line %d), which may run in the same super-step (%s)",
				key, first.node.Name, first.entry.Pos.Line, second.node.Name, second.entry.Pos.Line, why)
		}
	}
	// pairWriters reports every contested key that both x and y write.
	pairWriters := func(x, y, why string, certain bool) {
		if x == y {
			return
		}
		wx, wy := byNode[x], byNode[y]
		if len(wx) == 0 || len(wy) == 0 {
			return
		}
		for _, key := range contested {
			a, okA := wx[key]
			b, okB := wy[key]
			if okA && okB {
				report(key, a, b, why, certain)
			}
		}
	}

	// Certain: targets of one arm, of the plain edges out of one node, and
	// (closing over that) of plain edges out of two nodes certain to share
	// a step.
	plainOut := map[string][]string{}
	for _, e := range v.w.Edges {
		for _, a := range v.arms(e) {
			if a.plain {
				src := e.From[0].Value
				plainOut[src] = append(plainOut[src], a.targets...)
			}
		}
	}
	// together holds the pairs certain to share a step whenever the
	// edge (or source) that triggers them fires; why says which.
	together := map[nodePair]string{}
	var work []nodePair
	addTogether := func(a, b, why string) {
		if a == b || len(together) >= maxPairs {
			return
		}
		p := orderedPair(a, b)
		if _, ok := together[p]; !ok {
			together[p] = why
			work = append(work, p)
		}
	}
	for _, e := range v.w.Edges {
		for _, a := range v.arms(e) {
			ts := dedupe(a.targets)
			for i := range ts {
				for j := i + 1; j < len(ts); j++ {
					addTogether(ts[i], ts[j], fmt.Sprintf("both targets of the edge at line %d", e.Pos.Line))
				}
			}
		}
	}
	for _, src := range sortedKeys(plainOut) {
		ts := dedupe(plainOut[src])
		plainOut[src] = ts
		for i := range ts {
			for j := i + 1; j < len(ts); j++ {
				addTogether(ts[i], ts[j], fmt.Sprintf("both triggered when %s completes", src))
			}
		}
	}
	// Two nodes that run in one step both complete at its barrier (a
	// failure or an interrupt ends the step as a whole), so the targets of
	// their unconditional edges run together in the next step.
	for len(work) > 0 && len(together) < maxPairs {
		p := work[0]
		work = work[1:]
		for _, x := range plainOut[p.a] {
			for _, y := range plainOut[p.b] {
				addTogether(x, y, fmt.Sprintf("%s and %s run in one step, and unconditional edges lead from them to both", p.a, p.b))
			}
		}
	}
	pairs := make([]nodePair, 0, len(together))
	for p := range together {
		pairs = append(pairs, p)
	}
	slices.SortFunc(pairs, func(x, y nodePair) int {
		return cmp.Or(cmp.Compare(v.nodes[x.a].Index, v.nodes[y.a].Index), cmp.Compare(v.nodes[x.b].Index, v.nodes[y.b].Index))
	})
	for _, p := range pairs {
		pairWriters(p.a, p.b, together[p], true)
	}

	// May: the closure described above.
	for p := range v.mayShareStep() {
		pairWriters(p.a, p.b, "on some path through the graph", false)
	}
}

// mayShareStep computes the "may run in the same super-step" relation.
func (v *validator) mayShareStep() map[nodePair]bool {
	type target struct {
		edge *Edge
		arm  int
		name string
	}
	out := map[string][]target{}
	for _, e := range v.w.Edges {
		for _, a := range v.arms(e) {
			for _, t := range dedupe(a.targets) {
				if t == End {
					continue
				}
				for _, f := range e.From {
					out[f.Value] = append(out[f.Value], target{e, a.index, t})
				}
			}
		}
	}
	rel := map[nodePair]bool{}
	var work []nodePair
	add := func(a, b string) {
		if a == b || len(rel) >= maxPairs {
			return
		}
		p := orderedPair(a, b)
		if !rel[p] {
			rel[p] = true
			work = append(work, p)
		}
	}
	for _, src := range sortedKeys(out) {
		ts := out[src]
		for i := range ts {
			for j := i + 1; j < len(ts); j++ {
				if ts[i].edge == ts[j].edge && ts[i].arm != ts[j].arm {
					continue // exclusive cases of one conditional edge
				}
				add(ts[i].name, ts[j].name)
			}
		}
	}
	for len(work) > 0 && len(rel) < maxPairs {
		p := work[len(work)-1]
		work = work[:len(work)-1]
		for _, x := range out[p.a] {
			for _, y := range out[p.b] {
				add(x.name, y.name)
			}
		}
	}
	return rel
}

// reducerSuggestion is the hint of a replace conflict.
func reducerSuggestion(k *StateKey) string {
	switch k.Type {
	case TypeList:
		return "declare a reducer, e.g. reducer: append, or write different keys"
	case TypeObject:
		return "declare a reducer, e.g. reducer: merge, or write different keys"
	case TypeNumber, TypeInteger:
		return "declare a reducer, e.g. reducer: sum (or max), or write different keys"
	case TypeMessages:
		return "declare a reducer, e.g. reducer: messages, or write different keys"
	}
	return "declare a reducer, e.g. reducer: append (with type: list), or write different keys"
}

// dedupe drops repeated names, keeping order (a node triggered twice for one
// step runs once).
func dedupe(ns []string) []string {
	seen := make(map[string]bool, len(ns))
	out := ns[:0:0]
	for _, n := range ns {
		if !seen[n] && n != End {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
