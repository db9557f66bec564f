package runner

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestCoreFileIsDeterministic: core.go, the step core, reaches nothing that
// could make two runs with the same outcomes differ or block: no clock,
// randomness, goroutines, channels, locks, store, sink or I/O. Its imports
// are an allowlist, so a new one has to be argued for here.
func TestCoreFileIsDeterministic(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "core.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"context": true, // only to stop a running expression
		"fmt":     true, "maps": true, "slices": true, "strings": true,
		"github.com/lgx-run/lgx/nodes": true, // error kinds
		"github.com/lgx-run/lgx/spec":  true, // START, suggestions
	}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if !allowed[p] {
			t.Errorf("%s: core.go imports %q", fset.Position(imp.Pos()), p)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.GoStmt:
			t.Errorf("%s: core.go starts a goroutine", fset.Position(x.Pos()))
		case *ast.SelectStmt, *ast.SendStmt:
			t.Errorf("%s: core.go uses a channel", fset.Position(x.Pos()))
		case *ast.ChanType:
			t.Errorf("%s: core.go declares a channel", fset.Position(x.Pos()))
		case *ast.SelectorExpr:
			// The run's shared parts live on run, not core: a method of
			// core that reached them would not compile, but a field of
			// the Graph could still carry a store or sink in.
			if id, ok := x.X.(*ast.Ident); ok && id.Name == "c" && (x.Sel.Name == "st" || x.Sel.Name == "sink" || x.Sel.Name == "rec") {
				t.Errorf("%s: core.go reaches c.%s", fset.Position(x.Pos()), x.Sel.Name)
			}
		}
		return true
	})
}

// coreWorkflow loops `work` until a counter reaches 3, fanning out to two
// branches that meet at a join each round.
const coreWorkflow = `
lgx: 1
name: core
state:
  n:    {type: integer, default: 0}
  seen: {type: list, reducer: append, default: []}
nodes:
  work: {type: set, output: {n: "${{ state.n + 1 }}"}}
  a:    {type: set, output: {seen: "a"}}
  b:    {type: set, output: {seen: "b"}}
  join: {type: set, output: {seen: "join"}}
edges:
  - {from: START, to: work}
  - {from: work, to: [a, b]}
  - {from: [a, b], to: join}
  - from: join
    when:
      - {if: "state.n < 3", to: work}
    else: END
`

// driveCore runs g's steps on a core alone, without dispatcher or journal:
// each step's invocations succeed with the writes outcome gives them.
// It returns the node names of every step.
func driveCore(t *testing.T, g *Graph, outcome func(c *core, n *node) []write) (*core, [][]string) {
	t.Helper()
	ctx := context.Background()
	c := &core{}
	c.init(g)
	if err := c.initState(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.begin(ctx); err != nil {
		t.Fatal(err)
	}
	var steps [][]string
	var cur []int
	for len(c.next) > 0 {
		var err error
		if cur, err = c.plan(cur); err != nil {
			t.Fatal(err)
		}
		var runs []*nodeRun
		var names []string
		for _, ni := range cur {
			n := g.nodes[ni]
			nr := &nodeRun{n: n}
			nr.one[0] = invResult{writes: outcome(c, n), status: store.InvocationOK}
			nr.res = nr.one[:]
			runs = append(runs, nr)
			names = append(names, n.name)
		}
		steps = append(steps, names)
		if err := c.planConflicts(runs); err != nil {
			t.Fatal(err)
		}
		if out := c.outcome(runs); out.failure != nil || len(out.intrs) > 0 || out.cancelled {
			t.Fatalf("outcome %+v", out)
		}
		if err := c.commit(ctx, runs); err != nil {
			t.Fatal(err)
		}
		if len(steps) > 50 {
			t.Fatal("the loop did not end")
		}
	}
	return c, steps
}

// TestCoreDrivenAlone: the core, given each step's outcomes, forms the
// steps a run takes (a loop, a fan-out and its join) and folds the writes
// through the reducers; fed the same outcomes twice it gives the same
// state and steps.
func TestCoreDrivenAlone(t *testing.T) {
	g := compileYAML(t, coreWorkflow)
	key := func(name string) *keyInfo { return g.keys[g.keyIdx[name]] }
	outcome := func(c *core, n *node) []write {
		switch n.name {
		case "work":
			return []write{{key: key("n"), val: c.state["n"].(int) + 1}}
		default:
			return []write{{key: key("seen"), val: n.name}}
		}
	}
	c1, steps := driveCore(t, g, outcome)
	round := [][]string{{"work"}, {"a", "b"}, {"join"}}
	var want [][]string
	for range 3 {
		want = append(want, round...)
	}
	if !reflect.DeepEqual(steps, want) {
		t.Errorf("steps = %v, want %v", steps, want)
	}
	if c1.state["n"] != 3 || c1.step != 9 {
		t.Errorf("n = %v at step %d, want 3 at 9", c1.state["n"], c1.step)
	}
	seen := c1.state["seen"].([]any)
	if len(seen) != 9 || seen[0] != "a" || seen[1] != "b" || seen[2] != "join" {
		t.Errorf("seen = %v", seen)
	}
	c2, steps2 := driveCore(t, g, outcome)
	if !reflect.DeepEqual(c1.state, c2.state) || !reflect.DeepEqual(steps, steps2) {
		t.Errorf("same outcomes, different runs:\n%v %v\n%v %v", c1.state, steps, c2.state, steps2)
	}
}

// TestCoreRefusesConflictAndRecursion: the core alone reports a step that
// writes a replace key twice before anything runs, and stops a loop at the
// recursion limit naming the nodes it would have run.
func TestCoreRefusesConflictAndRecursion(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: spin
config: {recursion_limit: 4}
state: {n: {type: integer, default: 0}}
nodes:
  spin: {type: set, output: {n: "${{ state.n + 1 }}"}}
edges:
  - {from: START, to: spin}
  - {from: spin, to: spin}
`)
	c := &core{}
	c.init(g)
	if err := c.initState(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	var cur []int
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		if cur, err = c.plan(cur); err == nil {
			nr := &nodeRun{n: g.nodes[cur[0]]}
			nr.one[0] = invResult{status: store.InvocationOK}
			nr.res = nr.one[:]
			err = c.commit(context.Background(), []*nodeRun{nr})
		}
	}
	re, ok := err.(*RecursionError)
	if !ok || re.Limit != 4 || !slices.Equal(re.Nodes, []string{"spin"}) || c.step != 4 {
		t.Fatalf("err = %v at step %d, want the recursion limit 4 at step 4", err, c.step)
	}

	g = compileUnvalidated(t, `
lgx: 1
name: fan
state: {x: {type: string, default: ""}}
nodes:
  a: {type: set, output: {x: a}}
  b: {type: set, output: {x: b}}
edges:
  - {from: START, to: a}
  - {from: START, to: b}
`)
	c = &core{}
	c.init(g)
	if err := c.initState(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.begin(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cur, err = c.plan(nil); err != nil {
		t.Fatal(err)
	}
	var runs []*nodeRun
	for _, ni := range cur {
		runs = append(runs, &nodeRun{n: g.nodes[ni]})
	}
	ce, ok := c.planConflicts(runs).(*ConflictError)
	if !ok || ce.Key != "x" || !slices.Equal(ce.Writers, []string{"a", "b"}) {
		t.Errorf("planConflicts = %v, want a conflict on x by a and b", ce)
	}
}
