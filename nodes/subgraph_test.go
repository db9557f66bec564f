package nodes

import (
	"context"
	"reflect"
	"testing"
)

// TestSubgraphAsksForChild: the subgraph type never runs a child itself
// (it has no way into the run): it returns the *ChildRun the executor is
// to run, from its prepared path or, failing that, with.workflow. It
// needs no host.
func TestSubgraphAsksForChild(t *testing.T) {
	typ, ok := Lookup("subgraph")
	if !ok {
		t.Fatal("subgraph is not registered")
	}
	tests := []struct {
		name     string
		prepared any
		with     map[string]any
		want     *ChildRun
		wantKind Kind
	}{
		{"prepared path and input", "child.yaml", map[string]any{"input": map[string]any{"url": "u"}},
			&ChildRun{Workflow: "child.yaml", Input: map[string]any{"url": "u"}}, ""},
		{"path from with, no input", nil, map[string]any{"workflow": "sub/c.yaml"},
			&ChildRun{Workflow: "sub/c.yaml"}, ""},
		{"no path", nil, map[string]any{}, nil, KindInput},
		{"input not an object", "c.yaml", map[string]any{"input": []any{1}}, nil, KindInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := typ.Run(context.Background(), &Invocation{Node: "sub", Index: -1, Attempt: 1, Prepared: tt.prepared, With: tt.with})
			if tt.wantKind != "" {
				if KindOf(err) != tt.wantKind {
					t.Fatalf("err = %v (kind %s), want kind %s", err, KindOf(err), tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := res.(*ChildRun); !ok || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("result = %#v, want %#v", res, tt.want)
			}
		})
	}
}
