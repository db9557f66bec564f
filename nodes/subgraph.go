package nodes

import (
	"context"
	"fmt"
)

func init() { Register(subgraphType{}) }

// subgraphType is the `subgraph` type (SPEC §5.6): its invocation names a
// child workflow, which the executor runs sharing the parent's caps; the
// result is the child's final state.
type subgraphType struct{}

func (subgraphType) Name() string { return "subgraph" }

// Capabilities: the child's invocations hold the slots; validate checks
// the child file and the input's keys.
func (subgraphType) Capabilities() Capabilities {
	return Capabilities{HoldsNoSlot: true, ChildField: "workflow", ChildInputField: "input"}
}

func (subgraphType) Doc() Doc {
	return Doc{
		Summary: "Runs a child workflow file with the given input and returns its final state. The child shares the parent's global cap and pools; the subgraph node itself holds no slot.",
		With: []Field{
			{Name: "workflow", Type: "string", Required: true, Static: true, Doc: "Path of the child workflow, relative to this file."},
			{Name: "input", Type: "object", Default: "{}", Doc: "The child's inputs (its state keys)."},
		},
		Result: []Field{{Name: "(state)", Type: "object", Doc: "The child's final state."}},
	}
}

// Prepare checks the workflow path.
func (subgraphType) Prepare(static map[string]any) (any, error) {
	p, ok := static["workflow"].(string)
	if !ok || p == "" {
		return nil, fmt.Errorf("subgraph: with.workflow must be a path to a workflow file")
	}
	return p, nil
}

// Subworkflow returns the child's path from the prepared value.
func (subgraphType) Subworkflow(prepared any) string {
	p, _ := prepared.(string)
	return p
}

// Run asks the executor to run the child workflow: it returns a
// *ChildRun, which the runner replaces by the child's final state.
func (subgraphType) Run(ctx context.Context, inv *Invocation) (any, error) {
	path, _ := inv.Prepared.(string)
	if path == "" {
		path, _ = inv.With["workflow"].(string)
	}
	if path == "" {
		return nil, Errorf(KindInput, "subgraph: with.workflow is required")
	}
	var input map[string]any
	switch v := inv.With["input"].(type) {
	case nil:
	case map[string]any:
		input = v
	default:
		return nil, Errorf(KindInput, "subgraph: with.input must be an object, got %T", v)
	}
	return &ChildRun{Workflow: path, Input: input}, nil
}
