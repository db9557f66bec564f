package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestDedupe(t *testing.T) {
	long := make([]int, 0, 60)
	want := make([]int, 0, 30)
	for i := range 30 {
		long = append(long, 29-i, 29-i)
		want = append(want, 29-i)
	}
	for _, tc := range []struct {
		in, want []int
	}{
		{nil, nil},
		{[]int{3}, []int{3}},
		{[]int{3, 1, 3, 2, 1}, []int{3, 1, 2}},
		{long, want}, // past the quadratic search's length
	} {
		got := dedupe(slices.Clone(tc.in), 40)
		if !slices.Equal(got, tc.want) {
			t.Errorf("dedupe(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestTriggeredTwiceRunsOnce: a node triggered by several edges in one
// step (and by START twice, through a conditional and a plain edge) runs
// once in the next step.
func TestTriggeredTwiceRunsOnce(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("lgx: 1\nname: twice\nstate:\n  runs: {type: integer, reducer: sum, default: 0}\nnodes:\n")
	for i := range 20 {
		fmt.Fprintf(&sb, "  p%d: {type: set}\n", i)
	}
	sb.WriteString("  c: {type: set, output: {runs: 1}}\nedges:\n  - from: START\n    when:\n      - {if: \"${{ true }}\", to: c}\n  - {from: START, to: c}\n")
	for i := range 20 {
		fmt.Fprintf(&sb, "  - {from: START, to: p%d}\n  - {from: p%d, to: c}\n", i, i)
	}
	g := compileYAML(t, sb.String())
	res, err := Run(context.Background(), g, Options{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.State["runs"] != 2 || res.Steps != 2 {
		t.Fatalf("c ran %v times in %d steps, want 2 in 2 (once with START's nodes, once after them)", res.State["runs"], res.Steps)
	}
}
