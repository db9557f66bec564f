package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

//go:generate go test -run TestReferenceDocs -update .

// TestReferenceDocs generates the language, node and CLI references in
// docs/reference from the code that defines them (spec.Blocks, the node
// registry, the cobra commands) and fails when the committed files are
// stale. Regenerate with `go generate ./cmd/lgx`.
func TestReferenceDocs(t *testing.T) {
	want := map[string][]byte{
		"language.md": languageReference(),
		"nodes.md":    nodesReference(),
	}
	for name, content := range cliReference(t) {
		want[filepath.Join("cli", name)] = content
	}
	dir := filepath.Join("..", "..", "docs", "reference")
	if *update {
		if err := os.RemoveAll(filepath.Join(dir, "cli")); err != nil {
			t.Fatal(err)
		}
		for name, content := range want {
			path := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("docs/reference/%s is stale or missing; run go generate ./cmd/lgx", name)
		}
	}
	committed, _ := filepath.Glob(filepath.Join(dir, "cli", "*.md"))
	if len(committed) != len(want)-2 {
		t.Errorf("docs/reference/cli has %d files, the commands need %d; run go generate ./cmd/lgx", len(committed), len(want)-2)
	}
}

func languageReference() []byte {
	var b strings.Builder
	b.WriteString("# Workflow language reference\n\n")
	b.WriteString("Generated from `spec.Blocks` by `go generate ./cmd/lgx`; do not edit.\n")
	b.WriteString("The JSON Schema (`lgx schema`, docs/lgx.schema.json) is generated from the same table.\n")
	for _, blk := range spec.Blocks {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", blk.Name, blk.Description)
		if blk.Shorthand != "" {
			fmt.Fprintf(&b, "\nA bare scalar is shorthand for `{%s: VALUE}`.\n", blk.Shorthand)
		}
		b.WriteString("\n| key | type | default | required | meaning |\n|---|---|---|---|---|\n")
		for _, f := range blk.Fields {
			typ := strings.Join(f.Types, " \\| ")
			switch {
			case f.Block != "" && f.Map:
				typ = "map of " + f.Block
			case f.Block != "":
				typ += " (" + f.Block + ")"
			case f.Format != "":
				typ += " (" + f.Format + ")"
			}
			if len(f.Enum) > 0 {
				vals := make([]string, len(f.Enum))
				for i, v := range f.Enum {
					vals[i] = fmt.Sprint(v)
				}
				typ += ": " + strings.Join(vals, ", ")
			}
			if typ == "" {
				typ = "any"
			}
			req := ""
			if f.Required {
				req = "yes"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, typ, mdCode(f.Default), req, mdCell(f.Description))
		}
	}
	return []byte(b.String())
}

func nodesReference() []byte {
	var b strings.Builder
	b.WriteString("# Node reference\n\n")
	b.WriteString("Generated from the node registry by `go generate ./cmd/lgx`; do not edit. `lgx nodes TYPE` prints the same.\n")
	for _, name := range nodes.Names() {
		typ, _ := nodes.Lookup(name)
		d := typ.Doc()
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", name, d.Summary)
		if len(d.With) > 0 {
			b.WriteString("\n### with\n\n| field | type | default | required | meaning |\n|---|---|---|---|---|\n")
			for _, f := range d.With {
				req := ""
				if f.Required {
					req = "yes"
				}
				typ := f.Type
				if len(f.Enum) > 0 {
					typ += ": " + strings.Join(f.Enum, ", ")
				}
				doc := f.Doc
				if f.Static {
					doc += " (used as written: `${{ }}` is not evaluated)"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name, typ, mdCode(f.Default), req, mdCell(doc))
			}
		}
		for _, g := range d.OneOf {
			kind := "at most one of"
			if g.Required {
				kind = "exactly one of"
			}
			fmt.Fprintf(&b, "\nGive %s: `%s`.\n", kind, strings.Join(g.Fields, "`, `"))
		}
		if len(d.Result) > 0 {
			b.WriteString("\n### result\n\n| field | type | meaning |\n|---|---|---|\n")
			for _, f := range d.Result {
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.Name, f.Type, mdCell(f.Doc))
			}
		}
	}
	return []byte(b.String())
}

// cliReference renders every command's help as Markdown with cobra's own
// generator, one file per command.
func cliReference(t *testing.T) map[string][]byte {
	a := &app{ios: &IOStreams{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}, Width: 80, Getenv: os.Getenv}}
	root := a.rootCmd()
	root.DisableAutoGenTag = true
	out := map[string][]byte{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		var buf bytes.Buffer
		link := func(s string) string { return s }
		if err := doc.GenMarkdownCustom(c, &buf, link); err != nil {
			t.Fatal(err)
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
		out[name] = buf.Bytes()
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

func mdCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

func mdCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}
