package runner

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoYAMLImport keeps spec the only package that reads YAML: runner
// compiles the value trees spec checked (spec.Value), never YAML nodes.
func TestNoYAMLImport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range parsed.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			if isYAMLPackage(path) {
				t.Errorf("%s imports %s: runner takes spec's value trees (spec.Value), not YAML", f, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no non-test Go files found in runner/")
	}
}

// isYAMLPackage reports whether an import path is a YAML library.
func isYAMLPackage(path string) bool {
	for _, p := range []string{"go.yaml.in/yaml/", "gopkg.in/yaml.", "github.com/goccy/go-yaml", "sigs.k8s.io/yaml"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
