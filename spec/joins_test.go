package spec

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestJoinsMatchPairwiseReference compares the join check with the
// pairwise search it replaced (kept below as the reference) on random
// graphs: the same joins are reported, naming the same two sources.
func TestJoinsMatchPairwiseReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	warned := 0
	for i := range 3000 {
		src := randomJoinGraph(rng)
		w, ds := Load("j.yaml", []byte(src))
		if ds.HasErrors() {
			t.Fatalf("graph %d does not load:\n%s\n%s", i, src, ds.String())
		}
		v := newValidator(w)
		reached := v.reach(nil, -1)
		v.joins(reached)
		got := joinMessages(v.diags)
		want := joinsReference(newValidator(w), reached)
		if !slices.Equal(got, want) {
			t.Fatalf("graph %d:\n%s\ngot  %q\nwant %q", i, src, got, want)
		}
		warned += len(got)
	}
	if warned < 150 {
		t.Fatalf("only %d join warnings in 3,000 graphs: the generator misses the case", warned)
	}
}

func joinMessages(ds Diagnostics) []string {
	var out []string
	for _, d := range ds {
		if d.Code == CodeJoin && strings.Contains(d.Message, "different cases") {
			out = append(out, fmt.Sprintf("%d: %s", d.Pos.Line, d.Message))
		}
	}
	return out
}

// randomJoinGraph writes a workflow of six nodes with random plain,
// conditional and join edges.
func randomJoinGraph(rng *rand.Rand) string {
	names := []string{"a", "b", "c", "d", "e", "f"}
	// Mostly forward edges (i < j), so that few loops hide the conflict.
	pair := func() (string, string) {
		i, j := rng.IntN(len(names)), rng.IntN(len(names))
		if i > j && rng.IntN(5) > 0 {
			i, j = j, i
		}
		return names[i], names[j]
	}
	pick := func() string { return names[1+rng.IntN(len(names)-1)] }
	var b strings.Builder
	b.WriteString("lgx: 1\nname: j\nstate: {ok: {type: boolean}}\nnodes:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s: {type: test_set}\n", n)
	}
	b.WriteString("edges:\n  - {from: START, to: a}\n")
	for range 2 + rng.IntN(5) {
		switch rng.IntN(5) {
		case 0:
			f, t := pair()
			fmt.Fprintf(&b, "  - {from: %s, to: %s}\n", f, t)
		case 1, 2:
			f, _ := pair()
			fmt.Fprintf(&b, "  - from: %s\n    when:\n", f)
			for range 1 + rng.IntN(2) {
				fmt.Fprintf(&b, "      - {if: state.ok, to: %s}\n", pick())
			}
			fmt.Fprintf(&b, "    else: %s\n", pick())
		default:
			from := make([]string, 2+rng.IntN(3))
			for i := range from {
				from[i] = pick()
			}
			fmt.Fprintf(&b, "  - {from: [%s], to: %s}\n", strings.Join(from, ", "), pick())
		}
	}
	return b.String()
}

// joinsReference is the pairwise search the join check used before issue
// #13: every pair of sources of every join, for every arm.
func joinsReference(v *validator, reached map[string]bool) []string {
	var joins []*Edge
	for _, e := range v.w.Edges {
		if e.IsJoin() {
			joins = append(joins, e)
		}
	}
	type armKey struct {
		edge *Edge
		arm  int
	}
	depends := map[armKey]map[string]bool{}
	var order []armKey
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
	var out []string
	for _, j := range joins {
		reported := false
		for _, ak := range order {
			lost := depends[ak]
			if reported {
				break
			}
			for x := 0; x < len(j.From) && !reported; x++ {
				for y := x + 1; y < len(j.From) && !reported; y++ {
					a, b := j.From[x].Value, j.From[y].Value
					if !lost[a] || lost[b] {
						continue
					}
					for _, bk := range order {
						if bk.edge != ak.edge || bk.arm == ak.arm || !depends[bk][b] {
							continue
						}
						src := ak.edge.From[0].Value
						if successorsReference(v, a)[src] || successorsReference(v, b)[src] {
							continue
						}
						out = append(out, fmt.Sprintf("%d: this join never fires: %s and %s are reached through different cases of the conditional edge at line %d, so only one of them runs",
							j.Pos.Line, a, b, ak.edge.Pos.Line))
						reported = true
						break
					}
				}
			}
		}
	}
	return out
}

// successorsReference returns every node reachable from n by edges (joins
// treated as plain edges), n excluded unless a cycle leads back to it.
func successorsReference(v *validator, n string) map[string]bool {
	out := map[string]bool{}
	stack := []string{n}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, e := range v.edgesFrom(cur) {
			for _, a := range v.arms(e) {
				for _, t := range a.targets {
					if !out[t] {
						out[t] = true
						stack = append(stack, t)
					}
				}
			}
		}
	}
	return out
}

// TestAncestorsInvertSuccessors: a is an ancestor of n exactly when n is a
// successor of a.
func TestAncestorsInvertSuccessors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 500 {
		src := randomJoinGraph(rng)
		w, _ := Load("j.yaml", []byte(src))
		v := newValidator(w)
		into := v.edgesInto()
		names := append(sortedKeys(v.nodes), Start, End)
		for _, n := range names {
			anc := ancestorsOf(into, n)
			for _, a := range names {
				if anc[a] != successorsReference(v, a)[n] {
					t.Fatalf("graph %d:\n%s\nancestor(%s) of %s = %v, successor says %v", i, src, a, n, anc[a], !anc[a])
				}
			}
		}
	}
}
