package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsSelfContained: the specification lives in the repository, the
// README and decisions point at it (not outside the repository), and every
// relative link of these pages resolves to a file.
func TestDocsSelfContained(t *testing.T) {
	root := filepath.Join("..", "..")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	pages := []string{"README.md", "docs/spec.md", "docs/langgraph.md", "docs/decisions.md"}
	for _, page := range pages {
		src, err := os.ReadFile(filepath.Join(root, page))
		if err != nil {
			t.Fatal(err)
		}
		text := string(src)
		if strings.Contains(text, "../shared") {
			t.Errorf("%s points outside the repository (../shared)", page)
		}
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, filepath.Dir(page), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", page, target)
			}
		}
	}
	readme, _ := os.ReadFile(filepath.Join(root, "README.md"))
	decisions, _ := os.ReadFile(filepath.Join(root, "docs/decisions.md"))
	if !strings.Contains(string(readme), "docs/spec.md") || !strings.Contains(string(decisions), "(spec.md)") {
		t.Error("README.md and docs/decisions.md must point at docs/spec.md")
	}
	spec, _ := os.ReadFile(filepath.Join(root, "docs/spec.md"))
	for _, sec := range []string{"§9.1 ", "§9.2 ", "§9.3 ", "§9.4 ", "§9.5 ", "§9.6 ", "§9.7 ", "§9.8 ", "§9.9 "} {
		if !strings.Contains(string(spec), sec) {
			t.Errorf("docs/spec.md lacks the v1.1 section %s", strings.TrimSpace(sec))
		}
	}
}
