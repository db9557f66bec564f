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
		{"two keyed", `[{name: crawl, key: "${{ item }}"}, {name: crawl, key: "${{ item }}"}]`, "at most one pool with a key", false},
		{"unknown pool", `{name: crowl, key: "${{ item }}"}`, `unknown pool "crowl"`, false},
		{"missing key", `{name: crawl}`, "missing required key `key`", false},
		{"unknown key", `{name: crawl, key: "${{ item }}", per: 1}`, `unknown key "per"`, false},
		{"unknown variable in key", `{name: crawl, key: "${{ host }}"}`, "host", false},
		{"constant key", `{name: crawl, key: all}`, "constant", true},
		{"keyed without per_key", `{name: web, key: "${{ item }}"}`, "pool web has no per_key, so its key caps nothing", true},
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

// The capability and price checks cover the llm_call nodes of declared
// tools, not only those of `nodes:`; a finding is placed in the tool's node.
func TestToolNodeCapabilitiesAndPrices(t *testing.T) {
	const head = "lgx: 1\nname: t\n"
	const tail = "state: {}\nnodes:\n  f: {type: set, with: {}}\nedges:\n  - {from: START, to: f}\n"
	tests := []struct {
		name, src, want string
		code            string
		sev             Severity
		line, col       int
	}{
		{"tool node lacks structured output",
			"providers:\n  main: {kind: openai, capabilities: [tools]}\ntools:\n  sum:\n    parameters: {type: object}\n    node: {type: llm_call, with: {provider: main, prompt: hi, response_format: {json_schema: {type: object}}}}\n",
			"tool sum: with.response_format needs structured_output, which provider main does not declare", CodeCapability, SeverityWarning, 8, 80},
		{"tool node's fallback lacks structured output",
			"providers:\n  main: {kind: openai, fallbacks: [b]}\n  b: {kind: openai, capabilities: []}\ntools:\n  sum:\n    parameters: {type: object}\n    node: {type: llm_call, with: {prompt: hi, provider: main, response_format: {json_schema: {type: object}}}}\n",
			"tool sum: with.response_format needs structured_output, which fallback provider b (of main)", CodeCapability, SeverityWarning, 0, 0},
		{"tool node's pool budget covers an unpriced provider",
			"pools:\n  llm: {budget: {usd: 1}}\nproviders:\n  main: {kind: openai}\ntools:\n  sum:\n    parameters: {type: object}\n    node: {type: llm_call, with: {provider: main, prompt: hi}, pool: llm}\n",
			"pool llm: budget.usd covers provider main, which has no price", CodeBadValue, SeverityError, 4, 23},
		{"tool node fine",
			"pools:\n  llm: {budget: {usd: 1}}\nproviders:\n  main: {kind: openai, capabilities: [tools], price: {input_per_mtok: 1, output_per_mtok: 2}}\ntools:\n  sum:\n    parameters: {type: object}\n    node: {type: llm_call, with: {provider: main, prompt: hi}, pool: llm}\n",
			"", "", "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := loadValidate(t, head+tt.src+tail)
			if tt.want == "" {
				if len(ds) != 0 {
					t.Fatalf("diagnostics: %q", ds)
				}
				return
			}
			if len(ds) != 1 || ds[0].Code != tt.code || ds[0].Severity != tt.sev || !strings.Contains(ds[0].Message, tt.want) {
				t.Fatalf("diagnostics %q, want one %s %s containing %q", ds, tt.sev, tt.code, tt.want)
			}
			if ds[0].Pos.Line == 0 || tt.line != 0 && (ds[0].Pos.Line != tt.line || ds[0].Pos.Col != tt.col) {
				t.Errorf("at %d:%d, want %d:%d", ds[0].Pos.Line, ds[0].Pos.Col, tt.line, tt.col)
			}
		})
	}
}
