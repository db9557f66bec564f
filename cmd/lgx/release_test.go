package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestReleasePackages checks what .goreleaser.yaml ships beside the
// binary (goreleaser check runs in .ci/extra when goreleaser is
// installed): the before hooks make the man pages and the bash, zsh and
// fish completions; archives, the .deb and .rpm packages and the Homebrew
// cask carry them; and the cask lists exactly the pages `lgx man` writes,
// so a new command cannot be left out of it.
func TestReleasePackages(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Before struct {
			Hooks []string `yaml:"hooks"`
		} `yaml:"before"`
		Archives []struct {
			Files []string `yaml:"files"`
		} `yaml:"archives"`
		Nfpms []struct {
			IDs      []string `yaml:"ids"`
			Formats  []string `yaml:"formats"`
			Bindir   string   `yaml:"bindir"`
			Contents []struct {
				Src, Dst, Packager string
			} `yaml:"contents"`
		} `yaml:"nfpms"`
		Casks []struct {
			Name        string            `yaml:"name"`
			Binaries    []string          `yaml:"binaries"`
			Manpages    []string          `yaml:"manpages"`
			Completions map[string]string `yaml:"completions"`
			Repository  struct {
				Owner, Name string
			} `yaml:"repository"`
		} `yaml:"homebrew_casks"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf(".goreleaser.yaml: %v", err)
	}
	shells := []string{"bash", "zsh", "fish"}

	hooks := strings.Join(cfg.Before.Hooks, "\n")
	for _, want := range []string{
		`-o "$tmp/lgx" ./cmd/lgx`,
		`"$tmp/lgx" man man`,
		"for sh in " + strings.Join(shells, " ") + `; do "$tmp/lgx" completion $sh > completions/lgx.$sh; done`,
	} {
		if !strings.Contains(hooks, want) {
			t.Errorf("before hooks lack %q (lgx builds the man pages and completions):\n%s", want, hooks)
		}
	}

	if len(cfg.Archives) == 0 || !slices.Contains(cfg.Archives[0].Files, "man/*.1") || !slices.Contains(cfg.Archives[0].Files, "completions/*") {
		t.Errorf("archives do not ship man/*.1 and completions/*: %+v", cfg.Archives)
	}

	if len(cfg.Nfpms) != 1 {
		t.Fatalf("%d nfpms, want 1", len(cfg.Nfpms))
	}
	p := cfg.Nfpms[0]
	if !slices.Equal(p.Formats, []string{"deb", "rpm"}) || p.Bindir != "/usr/bin" {
		t.Errorf("nfpm formats %v bindir %q", p.Formats, p.Bindir)
	}
	dst := map[string]string{}
	for _, c := range p.Contents {
		dst[c.Packager+" "+c.Src] = c.Dst
	}
	for key, want := range map[string]string{
		" ./man/*.1":                "/usr/share/man/man1/",
		" ./completions/lgx.bash":   "/usr/share/bash-completion/completions/lgx",
		"deb ./completions/lgx.zsh": "/usr/share/zsh/vendor-completions/_lgx",
		"rpm ./completions/lgx.zsh": "/usr/share/zsh/site-functions/_lgx",
		" ./completions/lgx.fish":   "/usr/share/fish/vendor_completions.d/lgx.fish",
	} {
		if dst[key] != want {
			t.Errorf("nfpm contents: %s goes to %q, want %q", key, dst[key], want)
		}
	}

	if len(cfg.Casks) != 1 {
		t.Fatalf("%d homebrew_casks, want 1", len(cfg.Casks))
	}
	c := cfg.Casks[0]
	if c.Name != "lgx" || !slices.Equal(c.Binaries, []string{"lgx"}) || c.Repository.Owner == "" || c.Repository.Name == "" {
		t.Errorf("cask %+v", c)
	}
	for _, sh := range shells {
		if c.Completions[sh] != "completions/lgx."+sh {
			t.Errorf("cask %s completion %q", sh, c.Completions[sh])
		}
	}
	dir := t.TempDir()
	root := (&app{ios: &IOStreams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}, Width: 80}}).rootCmd()
	if _, err := writeManPages(root, filepath.Join(dir, "man")); err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "man", "*.1"))
	var made []string
	for _, pg := range pages {
		made = append(made, "man/"+filepath.Base(pg))
	}
	slices.Sort(made)
	listed := slices.Sorted(slices.Values(c.Manpages))
	if !slices.Equal(made, listed) {
		t.Errorf("homebrew_casks manpages in .goreleaser.yaml differ from the pages lgx man writes (a command was added or removed: list its page)\n listed %q\n   made %q", listed, made)
	}
}
