package runner

import (
	"fmt"
	"testing"
)

// A for_each gets a turnstile only when its items could wait for a slot or
// someone watches the order they start in; otherwise the turn would only
// make items wait for one another's goroutines (issue 13). Any of a sink,
// a pool, a node cap or global cap smaller than the workers, a parent's
// limits or another node in the step brings it back.
func TestTurnstileOnlyWhenOrderCanMatter(t *testing.T) {
	const wf = `
lgx: 1
name: t
config: {concurrency: %d}
pools:
  p: {concurrency: 64}
state: {}
nodes:
  f: {type: probe, for_each: "${{ 0..99 }}" %s}
edges:
  - {from: START, to: f}
`
	tests := []struct {
		name      string
		global    int
		node      string // extra keys of f
		workers   int
		sink      bool
		parent    bool
		solo      bool
		turnstile bool
	}{
		{name: "no sink, caps at least the workers", global: 64, node: ", concurrency: 64", workers: 64, solo: true},
		{name: "no sink, global cap only", global: 8, workers: 8, solo: true},
		{name: "events sent", global: 64, node: ", concurrency: 64", workers: 64, sink: true, solo: true, turnstile: true},
		{name: "node cap below the workers", global: 64, node: ", concurrency: 10", workers: 64, solo: true, turnstile: true},
		{name: "global cap below the workers", global: 8, workers: 16, solo: true, turnstile: true},
		{name: "a pool", global: 64, node: ", pool: p", workers: 64, solo: true, turnstile: true},
		{name: "a parent's limits", global: 64, workers: 64, parent: true, solo: true, turnstile: true},
		{name: "another node in the step", global: 64, workers: 64, turnstile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := compileYAML(t, fmt.Sprintf(wf, tt.global, tt.node))
			opts := Options{Environ: []string{}}
			if tt.sink {
				opts.Sink = &eventLog{}
			}
			r, err := newRun(g, opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.parent {
				r.opts.limits = r.lim
			}
			n := g.nodes[g.byName["f"]]
			nr := &nodeRun{n: n, items: make([]any, 100), res: make([]invResult, 100)}
			d := &localDispatcher{r: r, workers: tt.workers}
			if got := d.turnstileFor(nr, tt.solo) != nil; got != tt.turnstile {
				t.Errorf("turnstile = %v, want %v", got, tt.turnstile)
			}
		})
	}
}
