package spec

import (
	"strings"
	"testing"
)

// Keyed pools: the forms of a node's `pool:`, and the checks of the key.
func TestKeyedPoolValidation(t *testing.T) {
	const head = `lgx: 1
name: t
pools:
  crawl: {concurrency: 4, per_key: {concurrency: 2, rate: 2/s}}
  web: {concurrency: 2}
state: {urls: {type: list}}
edges:
  - {from: START, to: f}
nodes:
  f:
    type: http_fetch
    for_each: ${{ state.urls }}
    with: {url: "${{ item }}"}
`
	tests := []struct {
		name, pool string
		want       string // substring of the one diagnostic; "" = clean
		warning    bool
	}{
		{"name", "web", "", false},
		{"list of names", "[web, crawl]", "", false},
		{"keyed", `{name: crawl, key: '${{ split(item, "/")[2] }}'}`, "", false},
		{"keyed in a list", `[web, {name: crawl, key: "${{ index % 2 }}"}]`, "", false},
		{"two keyed", `[{name: web, key: "${{ item }}"}, {name: crawl, key: "${{ item }}"}]`, "at most one pool with a key", false},
		{"unknown pool", `{name: crowl, key: "${{ item }}"}`, `unknown pool "crowl"`, false},
		{"missing key", `{name: crawl}`, "missing required key `key`", false},
		{"unknown key", `{name: crawl, key: "${{ item }}", per: 1}`, `unknown key "per"`, false},
		{"unknown variable in key", `{name: crawl, key: "${{ host }}"}`, "host", false},
		{"constant key", `{name: crawl, key: all}`, "constant", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := head + "    pool: " + tt.pool + "\n"
			w, ds := Load("t.yaml", []byte(src))
			if !ds.HasErrors() {
				ds = append(ds, Validate(w)...)
			}
			if tt.want == "" {
				if len(ds) != 0 {
					t.Fatalf("diagnostics: %v", ds)
				}
				return
			}
			if len(ds) != 1 || !strings.Contains(ds[0].Message, tt.want) || (ds[0].Severity == SeverityWarning) != tt.warning {
				t.Fatalf("diagnostics %v, want one %s containing %q", ds, map[bool]string{true: "warning", false: "error"}[tt.warning], tt.want)
			}
		})
	}
}

// A tool's node cannot take a keyed pool: its calls have no loop scope.
func TestKeyedPoolNotInTools(t *testing.T) {
	src := `lgx: 1
name: t
pools: {web: {concurrency: 1}}
tools:
  get:
    parameters: {type: object}
    node: {type: http_fetch, with: {url: "http://127.0.0.1/"}, pool: {name: web, key: "${{ args.x }}"}}
state: {}
nodes:
  f: {type: set, with: {}}
edges:
  - {from: START, to: f}
`
	w, ds := Load("t.yaml", []byte(src))
	ds = append(ds, Validate(w)...)
	if !strings.Contains(ds.Error(), "keyed pools are for workflow nodes") {
		t.Fatalf("diagnostics %v", ds)
	}
}

// Provider fallbacks: declared, not the provider itself, no cycle.
func TestFallbackValidation(t *testing.T) {
	tests := []struct {
		name, providers, want string
	}{
		{"fine", "main: {kind: openai, fallbacks: [backup]}\n  backup: {kind: anthropic, fallbacks: local}\n  local: {kind: openai}", ""},
		{"unknown", "main: {kind: openai, fallbacks: [bakup]}\n  backup: {kind: openai}", `unknown fallback provider "bakup"`},
		{"itself", "main: {kind: openai, fallbacks: [main]}", "falls back to itself"},
		{"cycle", "a: {kind: openai, fallbacks: [b]}\n  b: {kind: openai, fallbacks: [c]}\n  c: {kind: openai, fallbacks: [a]}", "cycle: a → b → c → a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "lgx: 1\nname: t\nproviders:\n  " + tt.providers + "\nstate: {}\nnodes:\n  f: {type: set, with: {}}\nedges:\n  - {from: START, to: f}\n"
			w, ds := Load("t.yaml", []byte(src))
			if !ds.HasErrors() {
				ds = append(ds, Validate(w)...)
			}
			if tt.want == "" {
				if ds.HasErrors() {
					t.Fatalf("diagnostics: %v", ds)
				}
				return
			}
			if len(ds) != 1 || !strings.Contains(ds[0].Message, tt.want) {
				t.Fatalf("diagnostics %v, want one containing %q", ds, tt.want)
			}
		})
	}
}
