package spec

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes"
)

// typeNameAllowed lists the string literals of spec/ and runner/ that
// equal a node type's name but do not name a node type, keyed by
// "dir/file.go decl literal" (decl: the top-level declaration holding the
// literal: a function, or the const or var it initialises). Each says why.
var typeNameAllowed = map[string]string{
	"spec/types.go BudgetInterrupt interrupt":    "an on_exhausted value: pause the run when a budget runs out",
	"runner/events.go EventInterrupt interrupt":  "the event emitted when a run pauses",
	"spec/diagnostic.go CodeTemplate template":   "a diagnostic code (a type's Prepare rejected a static field)",
	"runner/mermaid.go mermaidKeywords subgraph": "a word Mermaid reserves, which a node id must not be",
	"spec/decode.go workflow tools":              "the top-level `tools:` key of a workflow",
	"spec/decode.go mcpServer tools":             "the `tools:` allowlist key of an MCP server",
	"spec/fields.go Blocks tools":                "the `tools:` keys of a workflow and of an MCP server in the format table",
	"spec/fields.go Blocks http_fetch":           "the example value of `type:` in the generated reference, paired with an http_fetch `with:` example",
}

// TestNoNodeTypeNames holds the catalog to being the one table: no code of
// spec/ or runner/ (tests aside) branches on or builds a node type by its
// name. What a type means to validation and the engine is declared as its
// nodes.Capabilities. A literal equal to a type name fails the test
// unless typeNameAllowed says why it is not a type reference.
func TestNoNodeTypeNames(t *testing.T) {
	names := map[string]bool{}
	for _, n := range nodes.Names() {
		names[n] = true
	}
	if len(names) == 0 {
		t.Fatal("the catalog is empty")
	}
	fset := token.NewFileSet()
	for _, dir := range []struct{ path, name string }{{".", "spec"}, {"../runner", "runner"}} {
		files, err := filepath.Glob(filepath.Join(dir.path, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", dir.path)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			file := dir.name + "/" + filepath.Base(path)
			for _, u := range declUnits(f) {
				ast.Inspect(u.node, func(n ast.Node) bool {
					lit, ok := n.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						return true
					}
					s, err := strconv.Unquote(lit.Value)
					if err != nil || !names[s] {
						return true
					}
					key := file + " " + u.name + " " + s
					if _, ok := typeNameAllowed[key]; !ok {
						t.Errorf("%s: the node type name %q in %s: declare what the code needs as a capability of the type (nodes.Capabilities), or add %q to typeNameAllowed with the reason it is not a type reference",
							fset.Position(lit.Pos()), s, u.name, key)
					}
					return true
				})
			}
		}
	}
}

// declUnit is a top-level function, or one const, var or type spec, and
// its name.
type declUnit struct {
	name string
	node ast.Node
}

// declUnits splits a file into the units typeNameAllowed names: functions
// (by name) and each spec of a const, var or type declaration (by its
// first name). Imports are left out: their paths are not type names.
func declUnits(f *ast.File) []declUnit {
	var out []declUnit
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			out = append(out, declUnit{d.Name.Name, d})
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.ValueSpec:
					out = append(out, declUnit{s.Names[0].Name, s})
				case *ast.TypeSpec:
					out = append(out, declUnit{s.Name.Name, s})
				}
			}
		}
	}
	return out
}
