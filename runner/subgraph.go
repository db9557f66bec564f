package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// MaxSubgraphDepth is how deep subgraphs may nest (SPEC §9.2); a deeper
// invocation fails with kind limit.
const MaxSubgraphDepth = 16

// errTooDeep is the failure of a subgraph nested deeper than
// MaxSubgraphDepth: it depends on the workflow files alone, so a resume
// would meet it again (see childRepeats).
var errTooDeep = fmt.Errorf("nesting deeper than %d subgraphs", MaxSubgraphDepth)

// subgraphs are the child workflows a run can call, loaded, checked and
// compiled once when it starts, and their texts, recorded with the run so
// that resume runs what was started, from any directory (SPEC §9.2). One
// value serves a run and every subgraph under it; it is read-only once
// built.
type subgraphs struct {
	graphs  map[string]*Graph // by resolved path
	sources map[string][]byte
}

// parentLink ties a subgraph's run to the invocation that runs it.
type parentLink struct {
	prefix   string // the parent invocation's path and "/"
	topStep  int    // the top-level step, under which records are kept
	depth    int
	subs     *subgraphs
	rec      *recorder  // the top-level run's; nil without a store
	lease    *heldLease // the top-level run's; nil without a store
	recorded map[string]*store.Invocation
	answers  map[string]map[string]any
	red      redactor // the parent's: the child masks its parent's secrets too
	mcp      *mcpTree // the run tree's MCP sessions (see mcpTree)
	// stepCalls, for a child run step by step, are the tool calls the
	// engine ran (see run.stepCalls).
	stepCalls *stepCalls
	// httpRec records the child's requests as its own invocations' (nil:
	// not recorded; see steprecord.go).
	httpRec *httpRecorder
}

// pausedChild is a subgraph's run paused at interrupts: the subgraph
// invocation pauses, and the whole run with it (SPEC §9.2, §9.4). It
// unwraps to a *nodes.Interrupt so that attempts stop at once.
type pausedChild struct {
	intr nodes.Interrupt
	list []Interrupt
}

func (p *pausedChild) Error() string { return p.intr.Error() }
func (p *pausedChild) Unwrap() error { return &p.intr }

// ChildPaused marks the pause as a child's (nodes.ChildPause): a tools
// node whose call ran a subgraph passes it on, pausing the run.
func (p *pausedChild) ChildPaused() {}

// childInterrupts lists the interrupts that the paused children in err's
// tree wait at, in order: one subgraph's, or those of every paused call
// of a tools invocation (nodes.ChildPauses). ok is false when err holds
// no paused child.
func childInterrupts(err error) (list []Interrupt, ok bool) {
	switch e := err.(type) {
	case *pausedChild:
		return e.list, true
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			l, found := childInterrupts(x)
			list, ok = append(list, l...), ok || found
		}
		return list, ok
	case interface{ Unwrap() error }:
		return childInterrupts(e.Unwrap())
	}
	return nil, false
}

// resolveSubgraph resolves a subgraph's path relative to the file that
// names it. The result is the key its text is recorded under.
func resolveSubgraph(parentFile, rel string) string {
	if filepath.IsAbs(rel) || parentFile == "" {
		return filepath.Clean(rel)
	}
	return filepath.Join(filepath.Dir(parentFile), rel)
}

// subgraphRef is one node that runs a child workflow.
type subgraphRef struct {
	node string
	rel  string
	pos  spec.Pos
}

// subgraphRefs lists the nodes of g (tools' nodes included) that run a
// child workflow, in file order.
func (g *Graph) subgraphRefs() []subgraphRef {
	var refs []subgraphRef
	add := func(n *node) {
		comp, ok := n.typ.(nodes.Composite)
		if !ok {
			return
		}
		if rel := comp.Subworkflow(n.prep); rel != "" {
			refs = append(refs, subgraphRef{node: n.name, rel: rel, pos: withFieldPos(n.spec, "workflow")})
		}
	}
	for _, n := range g.nodes {
		add(n)
	}
	names := make([]string, 0, len(g.tools))
	for name := range g.tools {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		add(g.tools[name].node)
	}
	return refs
}

// withFieldPos is the position of with.FIELD's value, or of the node.
func withFieldPos(n *spec.Node, field string) spec.Pos {
	if n == nil {
		return spec.Pos{}
	}
	if w := n.WithTree; w != nil && w.Kind == spec.ValueMap {
		for i, k := range w.Keys {
			if k == field {
				return w.Elems[i].At
			}
		}
	}
	return n.Pos
}

// LoadSubgraphs loads, validates and compiles every workflow g can call as
// a subgraph, transitively, reading each file with read (the disk when a
// run starts, the recorded texts on resume). A workflow that can call
// itself is an *InvalidWorkflowError naming the cycle.
func loadSubgraphs(g *Graph, read func(path string) ([]byte, error)) (*subgraphs, error) {
	s := &subgraphs{graphs: map[string]*Graph{}, sources: map[string][]byte{}}
	if err := s.visit(g, []string{filepath.Clean(g.wf.File)}, read); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *subgraphs) visit(g *Graph, stack []string, read func(string) ([]byte, error)) error {
	for _, ref := range g.subgraphRefs() {
		key := resolveSubgraph(g.wf.File, ref.rel)
		diag := func(code, msg string) error {
			return &InvalidWorkflowError{File: g.wf.File, Diagnostics: spec.Diagnostics{{
				File: g.wf.File, Pos: ref.pos, Severity: spec.SeverityError, Code: code, Message: msg}}}
		}
		if i := slices.Index(stack, key); i >= 0 {
			cycle := strings.Join(append(slices.Clone(stack[i:]), key), " → ")
			return diag(spec.CodeSubgraphCycle, fmt.Sprintf("node %s: subgraph cycle: %s (a workflow must not call itself)", ref.node, cycle))
		}
		if _, done := s.graphs[key]; done {
			continue
		}
		src, err := read(key)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return diag(spec.CodeSubgraphMissing, fmt.Sprintf("node %s: subgraph workflow %s does not exist", ref.node, key))
			}
			return diag(spec.CodeSubgraphRead, fmt.Sprintf("node %s: subgraph workflow %s: %v", ref.node, key, err))
		}
		w, ds := spec.Load(key, src)
		if ds.HasErrors() {
			return &InvalidWorkflowError{File: key, Diagnostics: ds.Errors()}
		}
		cg, err := compileValid(w, read)
		if err != nil {
			return err
		}
		s.graphs[key], s.sources[key] = cg, src
		if err := s.visit(cg, append(stack, key), read); err != nil {
			return err
		}
	}
	return nil
}

// CheckSubgraphs loads every workflow w can call as a subgraph,
// transitively, from disk, and reports what keeps them from running: a
// cycle, a missing file, a child that is not valid. lgx validate calls it
// for workflows that are otherwise valid.
func CheckSubgraphs(w *spec.Workflow) error {
	if !callsSubgraphs(w) {
		return nil // the common case costs no compile
	}
	g, err := Compile(w)
	if err != nil {
		return err
	}
	_, err = loadSubgraphs(g, os.ReadFile)
	return err
}

// callsSubgraphs reports whether any node or tool of w has a composite type.
func callsSubgraphs(w *spec.Workflow) bool {
	composite := func(n *spec.Node) bool {
		if n == nil {
			return false
		}
		t, ok := nodes.Lookup(n.Type)
		if !ok {
			return false
		}
		_, ok = t.(nodes.Composite)
		return ok
	}
	for _, n := range w.Nodes {
		if composite(n) {
			return true
		}
	}
	for _, t := range w.Tools {
		if composite(t.Node) {
			return true
		}
	}
	return false
}

// childStubs is the stub lookup of the child run of the subgraph node
// named node: the parent's, asked for NODE/CHILD, so that a test can stub
// a node inside a subgraph by that name (nested: A/B/CHILD). When the
// subgraph runs once per for_each item (index >= 0), a child node without
// an item of its own is asked as that item: a list gives item i's child
// the i-th result, whichever child gets there first. Counting visits
// instead would hand the results out in the order the concurrent children
// happen to run.
func childStubs(stubs func(path, node string, index int) (any, bool), node string, index int) func(path, node string, index int) (any, bool) {
	if stubs == nil {
		return nil
	}
	return func(path, child string, i int) (any, bool) {
		if i < 0 {
			i = index
		}
		return stubs(path, node+"/"+child, i)
	}
}
