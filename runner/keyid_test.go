package runner

import (
	"os"
	"testing"
)

// A key on a pool that the parent declares too runs step by step, at any
// depth: plans give keys stable ids (PlannedNode.KeyIDs), so a scheduler
// counts the one pool's keys across the parent's and the children's plans.
func TestDistributableKeyOnSharedPool(t *testing.T) {
	g := compileUnvalidated(t, `
lgx: 1
name: parent
pools: {p: {concurrency: 4, per_key: {concurrency: 1}}}
state: {x: {type: integer}}
nodes:
  child: {type: subgraph, with: {workflow: child.yaml}}
edges: [{from: START, to: child}]
`)
	files := map[string]string{
		"child.yaml": "lgx: 1\nname: child\nstate: {x: {type: integer}}\nnodes:\n  deeper: {type: subgraph, with: {workflow: leaf.yaml}}\nedges: [{from: START, to: deeper}]\n",
		"leaf.yaml":  "lgx: 1\nname: leaf\npools: {p: {concurrency: 2, per_key: {concurrency: 1}}}\nstate: {x: {type: integer}}\nnodes:\n  one: {type: set, pool: {name: p, key: a}, output: {x: 1}}\nedges: [{from: START, to: one}]\n",
	}
	subs, err := loadSubgraphs(g, func(path string) ([]byte, error) {
		if src, ok := files[path]; ok {
			return []byte(src), nil
		}
		return nil, os.ErrNotExist
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := distributableChildren(g, subs); err != nil {
		t.Fatalf("distributableChildren = %v, want nil", err)
	}
}

// A key's id is the same for the same pool and value, whatever the plan,
// differs with either, and does not hold the value.
func TestKeyID(t *testing.T) {
	a := keyID("hosts", "secret-host")
	if a != keyID("hosts", "secret-host") {
		t.Error("the same key has two ids")
	}
	if a == keyID("hosts", "other-host") || a == keyID("other", "secret-host") {
		t.Error("different keys share an id")
	}
	if len(a) != 16 {
		t.Errorf("id %q: want 16 hex digits", a)
	}
}

// A key on a machine-wide pool runs step by step: the scheduler holds the
// keys' caps (the run's, as locally) and the workers take the total from
// the config's store.
func TestDistributableKeyOnMachinePool(t *testing.T) {
	cfg, _ := machineFixture(t, "pools: {hosts: {concurrency: 3, per_key: {concurrency: 1}}}\n")
	g := compileWithConfig(t, cfg, `lgx: 1
name: t
nodes:
  f: {type: probe, for_each: "${{ 1..4 }}", pool: {name: hosts, key: "${{ item % 2 }}"}, with: {value: 1}}
edges:
  - {from: START, to: f}
`)
	if err := Distributable(g); err != nil {
		t.Fatalf("Distributable = %v, want nil", err)
	}
}
