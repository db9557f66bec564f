package runner

import (
	"context"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// TestSlabsRecycled: runs of one graph, concurrent, pass their nodeRun
// slabs on (Graph.takeSlab) and each still ends in its own state; a slab
// in the pool is zero, holding no value of the run that used it.
func TestSlabsRecycled(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("lgx: 1\nname: slabs\nstate:\n  base: {type: integer, default: 0}\n  hits: {type: integer, reducer: sum, default: 0}\n  items: {type: list, reducer: append, default: []}\n  count: {type: integer}\nnodes:\n")
	names := make([]string, 50)
	for i := range names {
		names[i] = fmt.Sprintf("b%d", i)
		fmt.Fprintf(&sb, "  %s: {type: set, output: {hits: \"${{ state.base }}\", items: %d}}\n", names[i], i)
	}
	sb.WriteString("  each: {type: set, for_each: \"${{ state.items }}\", output: {hits: \"${{ item }}\"}}\n")
	sb.WriteString("  join: {type: set, output: {count: \"${{ len(state.items) }}\"}}\n")
	fmt.Fprintf(&sb, "edges:\n  - {from: START, to: [%s]}\n  - {from: [%s], to: each}\n  - {from: each, to: join}\n", strings.Join(names, ", "), strings.Join(names, ", "))
	g := compileYAML(t, sb.String())

	var wg sync.WaitGroup
	errs := make(chan error, 4*20)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				base := w*100 + i
				res, err := Run(context.Background(), g, Options{Environ: []string{}, Inputs: map[string]any{"base": base}})
				if err != nil {
					errs <- err
					return
				}
				want := 50*base + 49*50/2
				if res.State["hits"] != want || res.State["count"] != 50 {
					errs <- fmt.Errorf("base %d: hits %v (want %d), count %v", base, res.State["hits"], want, res.State["count"])
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A GC empties a sync.Pool: none runs between the run and the check.
	// A Put may still be lost (the race detector drops a quarter of them
	// on purpose, and a Get on another P does not see the first P's
	// private slot): a few runs in a row must hand one back.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var p *[]nodeRun
	for range 50 {
		if _, err := Run(context.Background(), g, Options{Environ: []string{}}); err != nil {
			t.Fatal(err)
		}
		if p, _ = g.slabs.Get().(*[]nodeRun); p != nil {
			break
		}
	}
	if p == nil {
		t.Fatal("no slab was handed back in 50 runs")
	}
	for i := range *p {
		if !reflect.ValueOf((*p)[i]).IsZero() {
			t.Fatalf("pooled slab: nodeRun %d is not zero: %+v", i, (*p)[i])
		}
	}
}
