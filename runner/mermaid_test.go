package runner

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/spec"
)

var updateMermaid = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestMermaidGolden draws every example workflow and every fixture in
// testdata/mermaid and compares with the golden .mmd next to it (for
// examples, testdata/mermaid/NAME.mmd). CI renders each golden file with
// the real mermaid library (.ci/mermaid-check), so a diagram that Mermaid
// cannot parse fails there.
func TestMermaidGolden(t *testing.T) {
	examples, _ := filepath.Glob("../workflows/*.yaml")
	fixtures, _ := filepath.Glob("testdata/mermaid/*.yaml")
	files := append(examples, fixtures...)
	if len(examples) == 0 || len(fixtures) == 0 {
		t.Fatalf("no workflows found (examples %d, fixtures %d)", len(examples), len(fixtures))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wf, diags := spec.Load(file, src)
			if diags.HasErrors() {
				t.Fatalf("load: %v", diags)
			}
			var got bytes.Buffer
			if err := WriteMermaid(&got, wf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata/mermaid", name+".mmd")
			if *updateMermaid {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./runner -run TestMermaidGolden -update)", err)
			}
			if got.String() != string(want) {
				t.Errorf("diagram of %s differs from %s:\n--- got\n%s--- want\n%s", file, golden, got.String(), want)
			}
		})
	}
}

// TestMermaidShapes checks the drawing rules on one workflow: dotted,
// labelled conditional edges; joins; loops; escaping; reserved words.
func TestMermaidShapes(t *testing.T) {
	src := `lgx: 1
name: shapes
state:
  score: {type: number, default: 0}
  items: {type: list, reducer: append, default: []}
nodes:
  a: {type: set}
  b: {type: set, for_each: "${{ [1, 2] }}", concurrency: 2}
  end: {type: set}
  gate: {type: interrupt, with: {message: "ok?"}}
edges:
  - {from: START, to: [a, b]}
  - {from: [a, b], to: gate}
  - from: gate
    when:
      - {if: 'state.score >= 0.8 && "x" < "y"', to: [end, a]}
    else: END
  - {from: end, to: END}
  - {from: end, to: [END, END]}
`
	wf, diags := spec.Load("shapes.yaml", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("load: %v", diags)
	}
	var b bytes.Buffer
	if err := WriteMermaid(&b, wf); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"---\ntitle: shapes\n---\nflowchart TD\n",
		"  START([START])\n",
		"  END([END])\n",
		`  b[["b<br/><i>set</i><br/>for_each [1, 2] · max 2"]]`,
		`  gate{{"gate<br/><i>interrupt</i>"}}`,
		`  n_end["end<br/><i>set</i>"]`,
		"  START --> a\n  START --> b\n",
		`  a & b -->|"join"| gate`,
		`  gate -.->|"state.score #gt;= 0.8 && #quot;x#quot; #lt; #quot;y#quot;"| n_end`,
		`  gate -.->|"state.score #gt;= 0.8 && #quot;x#quot; #lt; #quot;y#quot;"| a`,
		`  gate -.->|"else"| END`,
		"  n_end --> END\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diagram lacks %q:\n%s", want, out)
		}
	}
	// A target listed twice, or an edge written twice, is drawn once.
	if n := strings.Count(out, "n_end --> END"); n != 1 {
		t.Errorf("end --> END drawn %d times:\n%s", n, out)
	}
}
