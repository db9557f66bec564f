package wftest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// Check validates f's cases against their workflow, as validate checks a
// workflow: every node a stub, resume, path or max_in_flight names exists,
// every state key an expectation reads is declared, and every stub result
// fits its node type's result fields.
func (f *File) Check(wf *spec.Workflow) error {
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
	for _, c := range f.Cases {
		for _, s := range c.Stubs {
			n, ok := byName[s.Node]
			if !ok {
				return unknown(s.Pos, s.Node)
			}
			t, ok := nodes.Lookup(n.Type)
			if !ok {
				continue
			}
			fields := t.Doc().Result
			for i, r := range s.Results {
				if err := fits(r, fields); err != "" {
					return &Error{Pos: s.ResPos[i], Msg: fmt.Sprintf("stub for %s (type %s): %s", s.Node, n.Type, err)}
				}
			}
		}
		for _, r := range c.Resume {
			if _, ok := byName[r.Node]; !ok {
				return unknown(r.Pos, r.Node)
			}
		}
		for _, name := range c.Expect.Path {
			if _, ok := byName[name]; !ok {
				return unknown(c.Expect.PathPos, name)
			}
		}
		for _, m := range c.Expect.MaxInFlight {
			if _, ok := byName[m.Node]; !ok {
				return unknown(m.Pos, m.Node)
			}
		}
		for _, se := range c.Expect.State {
			if !keys[se.Key] {
				return &Error{Pos: se.Pos, Msg: fmt.Sprintf("no state key %q in %s", se.Key, f.Workflow)}
			}
		}
	}
	return nil
}

// fits returns why result does not fit a node type's result fields, or ""
// when it does. A type without declared fields takes any result.
func fits(result any, fields []nodes.Field) string {
	if len(fields) == 0 {
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
