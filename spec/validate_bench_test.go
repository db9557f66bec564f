package spec

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// generated returns a valid workflow of n nodes: chains of fan-outs of four
// nodes joined again, with expressions in `with`, `output` and conditions,
// a for_each node per group and a conditional loop edge.
func generated(n int) []byte {
	var b strings.Builder
	b.WriteString("lgx: 1\nname: big\nsecrets: [TOKEN]\nstate:\n")
	b.WriteString("  query: {type: string, required: true}\n  urls: {type: list, default: []}\n")
	b.WriteString("  docs: {type: list, reducer: append, default: []}\n  total: {type: integer, reducer: sum, default: 0}\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "  k%d: {type: string}\n", i)
	}
	b.WriteString("nodes:\n")
	groups := n / 5
	for g := 0; g < groups; g++ {
		fmt.Fprintf(&b, "  head%d:\n    type: test_echo\n    with: {msg: \"${{ state.query }} ${{ state.k%d ?? '' }}\", count: \"${{ len(state.urls) }}\"}\n    output: {k%d: \"${{ result.msg }}\", total: 1}\n", g, g%50, g%50)
		for j := 0; j < 3; j++ {
			fmt.Fprintf(&b, "  n%d_%d:\n    type: test_echo\n    with: {msg: \"${{ upper(state.query) }}-%d\", items: \"${{ state.urls }}\"}\n    output: {docs: \"${{ result.msg }}\", total: \"${{ len(state.docs) }}\"}\n", g, j, j)
		}
		fmt.Fprintf(&b, "  each%d:\n    type: test_echo\n    for_each: ${{ state.urls }}\n    as: url\n    with: {msg: \"${{ url }} ${{ index }}\"}\n    output: {docs: \"${{ result.msg }}\"}\n", g)
	}
	b.WriteString("edges:\n  - {from: START, to: head0}\n")
	for g := 0; g < groups; g++ {
		fmt.Fprintf(&b, "  - {from: head%d, to: [n%d_0, n%d_1, n%d_2, each%d]}\n", g, g, g, g, g)
		next := "END"
		if g+1 < groups {
			next = fmt.Sprintf("head%d", g+1)
		}
		fmt.Fprintf(&b, "  - {from: [n%d_0, n%d_1, n%d_2, each%d], to: %s}\n", g, g, g, g, next)
	}
	fmt.Fprintf(&b, "  - from: head%d\n    when:\n      - if: state.total < 3 && len(state.docs) > 0\n        to: head0\n    else: END\n", groups-1)
	return []byte(b.String())
}

func TestGenerated(t *testing.T) {
	src := generated(1000)
	w, ds := Load("big.yaml", src)
	ds = append(ds, Validate(w)...)
	if len(ds) > 0 {
		t.Fatalf("generated workflow is not clean:\n%s", ds.String())
	}
	if len(w.Nodes) != 1000 {
		t.Fatalf("%d nodes", len(w.Nodes))
	}
}

// BenchmarkValidate1000Nodes loads and validates a generated 1,000-node
// workflow (target: well under 200 ms).
func BenchmarkValidate1000Nodes(b *testing.B) {
	src := generated(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		w, ds := Load("big.yaml", src)
		ds = append(ds, Validate(w)...)
		if ds.HasErrors() {
			b.Fatal(ds.String())
		}
	}
}

// BenchmarkValidateExample loads and validates a realistic workflow.
func BenchmarkValidateExample(b *testing.B) {
	src, err := os.ReadFile("testdata/valid/chain.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w, ds := Load("chain.yaml", src)
		ds = append(ds, Validate(w)...)
		if len(ds) > 0 {
			b.Fatal(ds.String())
		}
	}
}
