package spec

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// check loads and validates a file as `lgx validate` does.
func check(t testing.TB, path string) (*Workflow, Diagnostics) {
	t.Helper()
	w, ds, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ds = append(ds, Validate(w)...)
	ds.Sort()
	return w, ds
}

// golden compares got with the golden file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./spec -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./spec -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

var wantRE = regexp.MustCompile(`#\s*want:\s*(.*)$`)

// wants reads `# want: code[:col], …` annotations: each expects a
// diagnostic with that code on the annotated line (and at that column).
func wants(src []byte) []string {
	var out []string
	for i, line := range strings.Split(string(src), "\n") {
		m := wantRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, w := range strings.Split(m[1], ",") {
			if w = strings.TrimSpace(w); w != "" {
				out = append(out, fmt.Sprintf("%d:%s", i+1, w))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestValidateCases checks every testdata/validate/*.yaml: the diagnostics
// must be exactly the annotated ones, and the text output must match the
// .golden file next to it.
func TestValidateCases(t *testing.T) {
	files, err := filepath.Glob("testdata/validate/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no test cases", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			w, ds := check(t, f)
			want := wants(w.Source)
			var got []string
			for _, d := range ds {
				got = append(got, fmt.Sprintf("%d:%s", d.Pos.Line, d.Code))
				// An annotation may pin the column: `code:col`.
				got = append(got, fmt.Sprintf("%d:%s:%d", d.Pos.Line, d.Code, d.Pos.Col))
			}
			sort.Strings(got)
			// Every annotation must be matched, and every diagnostic annotated.
			gotSet := map[string]int{}
			for _, g := range got {
				gotSet[g]++
			}
			matched := map[string]bool{}
			for _, w := range want {
				if gotSet[w] == 0 {
					t.Errorf("missing diagnostic %s", w)
				}
				gotSet[w]--
				matched[w] = true
			}
			for _, d := range ds {
				k1 := fmt.Sprintf("%d:%s", d.Pos.Line, d.Code)
				k2 := fmt.Sprintf("%d:%s:%d", d.Pos.Line, d.Code, d.Pos.Col)
				if !matched[k1] && !matched[k2] {
					t.Errorf("unexpected diagnostic %s", d)
				}
			}
			var buf bytes.Buffer
			if err := ds.WriteText(&buf, map[string][]byte{w.File: w.Source}); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(f, ".yaml")+".golden", buf.Bytes())
		})
	}
}

// TestFormats checks the JSON and GitHub renderings.
func TestFormats(t *testing.T) {
	_, ds := check(t, "testdata/validate/expr.yaml")
	var j, g bytes.Buffer
	if err := ds.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/format.json.golden", j.Bytes())
	if err := ds.WriteGitHub(&g); err != nil {
		t.Fatal(err)
	}
	golden(t, "testdata/format.github.golden", g.Bytes())

	var empty bytes.Buffer
	if err := Diagnostics(nil).WriteJSON(&empty); err != nil || strings.TrimSpace(empty.String()) != "[]" {
		t.Errorf("empty JSON = %q, %v", empty.String(), err)
	}
}

// TestValidExamples checks that valid workflows produce no diagnostics.
func TestValidExamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, ds := check(t, f)
			if len(ds) > 0 {
				t.Errorf("diagnostics:\n%s", ds.String())
			}
		})
	}
}
