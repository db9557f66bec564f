package runner

import (
	"context"
	"strconv"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestSubgraphNodeConcurrency: a subgraph node's `concurrency` caps its
// items (children) in flight, as any node's caps its invocations (SPEC §3,
// §4.2), while the children's own nodes take their slots as usual; a
// global cap of 1 does not deadlock, since the subgraph node holds no
// global slot.
func TestSubgraphNodeConcurrency(t *testing.T) {
	for _, tc := range []struct {
		name       string
		global     int
		cap, items int
		atMost     int // the most probes in flight at once
		beyond     int // without the cap, more than this many overlap (0: not checked)
	}{
		{"one child at a time", 16, 1, 4, 3, 0},
		{"two children at a time", 16, 2, 4, 6, 0},
		{"global cap of one", 1, 2, 3, 1, 0},
		{"no cap", 16, 0, 4, 12, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := resetGroup("sub-cap")
			dir := t.TempDir()
			capField := ""
			if tc.cap > 0 {
				capField = ", concurrency: " + strconv.Itoa(tc.cap)
			}
			writeWorkflows(t, dir, "", map[string]string{
				"parent.yaml": `
lgx: 1
name: parent
config: {concurrency: ` + strconv.Itoa(tc.global) + `}
state:
  xs: {type: list, default: [` + listOf(tc.items) + `]}
nodes:
  each: {type: subgraph, for_each: "${{ state.xs }}"` + capField + `, with: {workflow: child.yaml}}
edges:
  - {from: START, to: each}
`,
				"child.yaml": `
lgx: 1
name: child
state: {n: any}
nodes:
  work: {type: probe, for_each: "${{ [1, 2, 3] }}", with: {sleep_ms: 50, group: sub-cap}}
edges:
  - {from: START, to: work}
`})
			t.Chdir(dir)
			gr, err := LoadGraph("parent.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Run(context.Background(), gr, Options{Store: store.NewMemory(), Environ: []string{}}); err != nil {
				t.Fatal(err)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.calls != 3*tc.items {
				t.Errorf("%d probes ran, want %d", g.calls, 3*tc.items)
			}
			if g.max > tc.atMost {
				t.Errorf("%d probes in flight at once, the caps allow %d", g.max, tc.atMost)
			}
			if g.max <= tc.beyond {
				t.Errorf("at most %d probes in flight without a cap: children did not overlap", g.max)
			}
		})
	}
}

func listOf(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(i)
	}
	return s
}
