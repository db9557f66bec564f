package wftest

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// Check validates f's cases against their workflow, as validate checks a
// workflow: every node a stub, resume, path or max_in_flight names exists,
// every state key an input sets or an expectation reads is declared, every
// resume names a node that can pause the run, and every stub result fits
// its node type's result fields. Every problem is reported, as Errors.
func (f *File) Check(wf *spec.Workflow) error {
	var errs Errors
	add := func(err error) { errs.add(f.Path, err) }
	byName := map[string]*spec.Node{}
	var names []string
	for _, n := range wf.Nodes {
		byName[n.Name] = n
		names = append(names, n.Name)
	}
	keys := map[string]bool{}
	for _, k := range wf.State {
		keys[k.Name] = true
	}
	unknown := func(pos Pos, name string) error {
		return &Error{Pos: pos, Msg: fmt.Sprintf("no node %q in %s (nodes: %s)", name, f.Workflow, strings.Join(names, ", "))}
	}
	children := map[string]*spec.Workflow{} // loaded subgraphs, by resolved path
	for _, c := range f.Cases {
		for _, s := range c.Stubs {
			var n *spec.Node
			if strings.Contains(s.Node, "/") {
				var err error
				if n, err = f.childNode(wf, s, children); err != nil {
					add(err)
					continue
				}
			} else if n = byName[s.Node]; n == nil {
				add(unknown(s.Pos, s.Node))
				continue
			}
			t, ok := nodes.Lookup(n.Type)
			if !ok {
				continue
			}
			fields := t.Doc().Result
			for i, r := range s.Results {
				if err := fits(r, fields); err != "" {
					add(&Error{Pos: s.ResPos[i], Msg: fmt.Sprintf("stub for %s (type %s): %s", s.Node, n.Type, err)})
				}
			}
		}
		inputs := make([]string, 0, len(c.Inputs))
		for k := range c.Inputs {
			inputs = append(inputs, k)
		}
		slices.Sort(inputs)
		for _, k := range inputs {
			if !keys[k] {
				// The runner refuses it when the case runs; here it is
				// the entry to fix, like a state expectation's key.
				add(&Error{Pos: c.InputPos[k], Msg: fmt.Sprintf("no state key %q in %s (inputs set state keys: %s)", k, f.Workflow, strings.Join(stateNames(wf), ", "))})
			}
		}
		for _, r := range c.Resume {
			name := resumeNode(r.Node)
			n, ok := byName[name]
			if !ok {
				add(unknown(r.Pos, name))
				continue
			}
			if !canPause(wf, n) {
				add(&Error{Pos: r.Pos, Msg: fmt.Sprintf("resume: node %s (type %s) cannot pause the run: a resume answers an interrupt node, a subgraph's interrupt, or an llm_call paused by a budget with on_exhausted: interrupt", name, n.Type)})
			}
		}
		for _, name := range c.Expect.Path {
			if _, ok := byName[name]; !ok {
				add(unknown(c.Expect.PathPos, name))
			}
		}
		for _, m := range c.Expect.MaxInFlight {
			if _, ok := byName[m.Node]; !ok {
				add(unknown(m.Pos, m.Node))
			}
		}
		for _, se := range c.Expect.State {
			if !keys[se.Key] {
				add(&Error{Pos: se.Pos, Msg: fmt.Sprintf("no state key %q in %s", se.Key, f.Workflow)})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func stateNames(wf *spec.Workflow) []string {
	names := make([]string, len(wf.State))
	for i, k := range wf.State {
		names[i] = k.Name
	}
	return names
}

// canPause reports whether an invocation of n can leave the run waiting
// for a resume, which the runner answers by the waiting invocation's node
// name or path (runner.answers, limits.budgetAnswer): a type that pauses
// (interrupt), one that starts invocations of its own (a subgraph, whose
// child may pause; a tools node), or one that calls a provider while a
// budget of the workflow pauses when exhausted. Which budget a call takes
// depends on its provider and pool, so any interrupt-mode budget counts:
// a false "cannot pause" would reject a valid file.
func canPause(wf *spec.Workflow, n *spec.Node) bool {
	t, ok := nodes.Lookup(n.Type)
	if !ok {
		return true // validate reports the type; do not guess
	}
	caps := nodes.CapabilitiesOf(t)
	if caps.Pauses || caps.HoldsNoSlot {
		return true
	}
	if _, ok := t.(nodes.Composite); ok {
		return true
	}
	return caps.ProviderField != "" && interruptBudget(wf)
}

// interruptBudget reports whether any budget of wf (the run's, a pool's,
// a provider's) pauses the run when exhausted.
func interruptBudget(wf *spec.Workflow) bool {
	pauses := func(b *spec.Budget) bool { return b != nil && b.OnExhausted == spec.BudgetInterrupt }
	if pauses(wf.Config.Budget) {
		return true
	}
	for _, p := range wf.Pools {
		if pauses(p.Budget) {
			return true
		}
	}
	for _, p := range wf.Providers {
		if pauses(p.Budget) {
			return true
		}
	}
	return false
}

// resumeNode is the top-level node a resume entry names: the entry
// itself, or for an invocation path (1/research[0]/2/ask, SPEC §9.1) the
// node of its first step. Only that node can be checked before the run:
// what a child waits at is known once it pauses, and the run then reports
// a path it does not wait at with the paths it does.
func resumeNode(node string) string {
	step, rest, ok := strings.Cut(node, "/")
	if !ok || step == "" || strings.Trim(step, "0123456789") != "" {
		return node
	}
	name, _, _ := strings.Cut(rest, "/")
	name, _, _ = strings.Cut(name, "[")
	return name
}

// childNode resolves the stub of a node inside a subgraph,
// SUBGRAPH/NODE (SUBGRAPH/SUBGRAPH/NODE… when they nest): each name but
// the last is a subgraph node of the workflow before it, the last a node
// of the innermost child. The children are loaded, and kept in loaded, by
// their resolved path.
func (f *File) childNode(wf *spec.Workflow, s *Stub, loaded map[string]*spec.Workflow) (*spec.Node, error) {
	names := strings.Split(s.Node, "/")
	cur := wf
	for i, name := range names {
		n := nodeNamed(cur, name)
		if n == nil {
			msg := fmt.Sprintf("no node %q in %s (nodes: %s)", name, cur.File, strings.Join(nodeNames(cur), ", "))
			if i > 0 {
				msg = fmt.Sprintf("stub %s: %s, the subgraph of node %s", s.Node, msg, strings.Join(names[:i], "/"))
			}
			return nil, &Error{Pos: s.Pos, Msg: msg}
		}
		if i == len(names)-1 {
			return n, nil
		}
		rel := subgraphPath(n)
		if rel == "" {
			return nil, &Error{Pos: s.Pos, Msg: fmt.Sprintf("stub %s: node %s is of type %s, not a subgraph with a literal workflow path: only a subgraph's nodes are named NODE/CHILD", s.Node, strings.Join(names[:i+1], "/"), n.Type)}
		}
		path := inDir(filepath.Dir(cur.File), rel)
		child := loaded[path]
		if child == nil {
			w, ds, err := spec.LoadFile(path)
			if err == nil && ds.HasErrors() {
				err = errors.New(ds.Errors().String())
			}
			if err != nil {
				return nil, &Error{Pos: s.Pos, Msg: fmt.Sprintf("stub %s: the subgraph of node %s: %v", s.Node, strings.Join(names[:i+1], "/"), err)}
			}
			child, loaded[path] = w, w
		}
		cur = child
	}
	return nil, &Error{Pos: s.Pos, Msg: fmt.Sprintf("stub %q names no node", s.Node)} // unreachable: Split returns at least one name
}

func nodeNamed(wf *spec.Workflow, name string) *spec.Node {
	for _, n := range wf.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func nodeNames(wf *spec.Workflow) []string {
	names := make([]string, len(wf.Nodes))
	for i, n := range wf.Nodes {
		names[i] = n.Name
	}
	return names
}

// subgraphPath is the child workflow a node runs (a composite type, with
// its path written literally, as the runner requires), or "".
func subgraphPath(n *spec.Node) string {
	t, ok := nodes.Lookup(n.Type)
	if !ok {
		return ""
	}
	comp, ok := t.(nodes.Composite)
	if !ok {
		return ""
	}
	var static map[string]any
	if n.With != nil {
		_ = n.With.Decode(&static)
	}
	var prep any = static
	if p, ok := t.(nodes.Preparer); ok {
		var err error
		if prep, err = p.Prepare(static); err != nil {
			return ""
		}
	}
	return comp.Subworkflow(prep)
}

// fits returns why result does not fit a node type's result fields, or ""
// when it does. A type without declared fields takes any result.
func fits(result any, fields []nodes.Field) string {
	if len(fields) == 0 {
		return ""
	}
	if len(fields) == 1 && strings.HasPrefix(fields[0].Name, "(") {
		// The result is one value, not fields: a subgraph's (state), an
		// interrupt's (values), a template's (value).
		if !typeFits(result, fields[0].Type) {
			return fmt.Sprintf("the result %s must be of type %s, got %s", fields[0].Name, fields[0].Type, kindOf(result))
		}
		return ""
	}
	m, ok := result.(map[string]any)
	if !ok {
		return fmt.Sprintf("a result is a mapping of %s", fieldNames(fields))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.IndexFunc(fields, func(f nodes.Field) bool { return f.Name == k })
		if i < 0 {
			return fmt.Sprintf("unknown result field %q (fields: %s)", k, fieldNames(fields))
		}
		if !typeFits(m[k], fields[i].Type) {
			return fmt.Sprintf("result field %s must be of type %s, got %s", k, fields[i].Type, kindOf(m[k]))
		}
	}
	return ""
}

func fieldNames(fields []nodes.Field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func typeFits(v any, typ string) bool {
	if v == nil {
		return true
	}
	switch typ {
	case "string", "duration", "bytes":
		_, ok := v.(string)
		return ok
	case "integer":
		_, ok := v.(int)
		return ok
	case "number":
		switch v.(type) {
		case int, float64:
			return true
		}
		return false
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "list", "messages":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return true
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int:
		return "integer"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}
