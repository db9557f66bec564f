package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestStubsReachSubgraphs: Options.Stubs is asked for the invocations of
// subgraphs too, with node SUBGRAPH/NODE (nested: A/B/NODE) and the
// invocation's own path; what it does not answer runs for real.
func TestStubsReachSubgraphs(t *testing.T) {
	g := loadParentGraph(t, map[string]string{
		"parent.yaml": `
lgx: 1
name: parent
state: {out: any, deep: any}
nodes:
  sub: {type: subgraph, with: {workflow: child.yaml}, output: {out: "${{ result.v }}"}}
  mid: {type: subgraph, with: {workflow: middle.yaml}, output: {deep: "${{ result.v }}"}}
edges:
  - {from: START, to: [sub, mid]}
`,
		"middle.yaml": `
lgx: 1
name: middle
state: {v: any}
nodes:
  inner: {type: subgraph, with: {workflow: child.yaml}, output: {v: "${{ result.v }}"}}
edges:
  - {from: START, to: inner}
`,
		"child.yaml": `
lgx: 1
name: child
state: {v: any}
nodes:
  leaf: {type: set, output: {v: real}}
  pick: {type: template, with: {template: "{{ .state.v }}"}, output: {v: "${{ result }}"}}
edges:
  - {from: START, to: leaf}
  - {from: leaf, to: pick}
`,
	})
	var mu sync.Mutex
	var asked []string
	stubs := func(path, node string, index int) (any, bool) {
		mu.Lock()
		asked = append(asked, node+" @ "+path)
		mu.Unlock()
		switch node {
		case "sub/pick":
			return "stubbed", true
		case "mid/inner/pick":
			return "deep stub", true
		}
		return nil, false
	}
	res, err := Run(context.Background(), g, Options{Store: store.NewMemory(), Stubs: stubs})
	if err != nil {
		t.Fatal(err)
	}
	if res.State["out"] != "stubbed" || res.State["deep"] != "deep stub" {
		t.Errorf("state = %v", res.State)
	}
	slices.Sort(asked)
	want := []string{
		"mid @ 1/mid", "mid/inner @ 1/mid/1/inner",
		"mid/inner/leaf @ 1/mid/1/inner/1/leaf", "mid/inner/pick @ 1/mid/1/inner/2/pick",
		"sub @ 1/sub", "sub/leaf @ 1/sub/1/leaf", "sub/pick @ 1/sub/2/pick",
	}
	if !slices.Equal(asked, want) {
		t.Errorf("stubs asked for\n%q\nwant\n%q", asked, want)
	}
}

// TestStubsInForEachSubgraphTakeTheItem: the child run of for_each item i
// asks Options.Stubs with index i for its nodes that have no item of their
// own, so a list of results goes to the items in order however the
// concurrent children are scheduled (counting visits gave them out in
// arrival order, and CI once saw item 0 get item 1's result). A for_each
// inside the child keeps its own index.
func TestStubsInForEachSubgraphTakeTheItem(t *testing.T) {
	g := loadParentGraph(t, map[string]string{
		"parent.yaml": `
lgx: 1
name: parent
state: {items: {type: list, default: [a, b, c, d]}}
nodes:
  each: {type: subgraph, for_each: "${{ state.items }}", with: {workflow: child.yaml}}
edges:
  - {from: START, to: each}
`,
		"child.yaml": `
lgx: 1
name: child
state: {v: any, w: {type: list, reducer: append}}
nodes:
  leaf: {type: set, output: {v: real}}
  fan: {type: set, for_each: "${{ [1, 2] }}", output: {w: "${{ item }}"}}
edges:
  - {from: START, to: leaf}
  - {from: leaf, to: fan}
`,
	})
	var mu sync.Mutex
	var asked []string
	stubs := func(path, node string, index int) (any, bool) {
		mu.Lock()
		asked = append(asked, fmt.Sprintf("%s @ %s = %d", node, path, index))
		mu.Unlock()
		return nil, false
	}
	if _, err := Run(context.Background(), g, Options{Store: store.NewMemory(), Stubs: stubs}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(asked)
	var want []string
	for i := range 4 {
		want = append(want,
			fmt.Sprintf("each @ 1/each[%d] = %d", i, i),
			fmt.Sprintf("each/fan @ 1/each[%d]/2/fan[0] = 0", i),
			fmt.Sprintf("each/fan @ 1/each[%d]/2/fan[1] = 1", i),
			fmt.Sprintf("each/leaf @ 1/each[%d]/1/leaf = %d", i, i))
	}
	slices.Sort(want)
	if !slices.Equal(asked, want) {
		t.Errorf("stubs asked for\n%q\nwant\n%q", asked, want)
	}
}

// loadParentGraph writes files to a temporary directory and loads its
// parent.yaml, children included.
func loadParentGraph(t *testing.T, files map[string]string) *Graph {
	t.Helper()
	dir := t.TempDir()
	writeWorkflows(t, dir, "", files)
	g, err := LoadGraph(filepath.Join(dir, "parent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return g
}
