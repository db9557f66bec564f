package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// Each command's run function takes its options directly, without cobra:
// tests fill the options and read the fake streams.
func TestRunFunctions(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	tests := []struct {
		name   string
		run    func(a *app, ctx context.Context) error
		code   int
		stdout string // a substring of stdout
		stderr string // a substring of the error
	}{
		{"nodes lists the catalog", func(a *app, ctx context.Context) error {
			return a.runNodes(ctx, nodesOptions{format: "text"})
		}, exitOK, "http_fetch", ""},
		{"nodes describes a type", func(a *app, ctx context.Context) error {
			return a.runNodes(ctx, nodesOptions{typ: "set", format: "json"})
		}, exitOK, `"name": "set"`, ""},
		{"nodes: an unknown type is a usage error", func(a *app, ctx context.Context) error {
			return a.runNodes(ctx, nodesOptions{typ: "sett", format: "text"})
		}, exitUsage, "", `did you mean set?`},
		{"graph: an unknown format", func(a *app, ctx context.Context) error {
			return a.runGraph(ctx, graphOptions{file: missing, format: "svg"})
		}, exitUsage, "", `--format must be mermaid, not "svg"`},
		{"validate: a missing file", func(a *app, ctx context.Context) error {
			return a.runValidate(ctx, validateOptions{paths: []string{missing}, format: "text"})
		}, exitUsage, "error: no such file [no-file]", ""},
		{"run: negative concurrency", func(a *app, ctx context.Context) error {
			return a.runRun(ctx, runOptions{file: missing, concurrency: -1, out: outputFlags{output: "text"}})
		}, exitUsage, "", "--concurrency must be positive"},
		{"resume: --empty with -i", func(a *app, ctx context.Context) error {
			return a.runResume(ctx, resumeOptions{runID: "R", inputs: []string{"a=1"}, empty: true, out: outputFlags{output: "text"}})
		}, exitUsage, "", "--empty answers with no values"},
		{"runs: an unknown format", func(a *app, ctx context.Context) error {
			return a.runsList(ctx, runsOptions{format: "yaml"})
		}, exitUsage, "", "-o must be text or json"},
		{"runs prune: no age", func(a *app, ctx context.Context) error {
			return a.runsPrune(ctx, runsOptions{format: "text"})
		}, exitUsage, "", "--older-than is required"},
		{"schema", func(a *app, ctx context.Context) error {
			return a.runSchema(ctx, schemaOptions{})
		}, exitOK, `"$schema"`, ""},
		{"mcp list: an unknown format", func(a *app, ctx context.Context) error {
			return a.runMCPList(ctx, mcpListOptions{file: missing, format: "xml"})
		}, exitUsage, "", "-o must be text or json"},
		{"test: an unknown format", func(a *app, ctx context.Context) error {
			return a.runTests(ctx, testOptions{format: "tap", parallel: 1})
		}, exitUsage, "", "--format must be text, github or junit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			a := &app{ios: &IOStreams{Out: &out, Err: &errb, Width: 80}}
			err := tt.run(a, t.Context())
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.code)
			}
			if tt.stderr != "" && (err == nil || !strings.Contains(err.Error(), tt.stderr)) {
				t.Errorf("error %v, want it to say %q", err, tt.stderr)
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%.400s", tt.stdout, out.String())
			}
		})
	}
}
