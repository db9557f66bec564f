package spec

import (
	"strings"
	"testing"
)

// loadValidate loads and validates src, returning every diagnostic.
func loadValidate(t *testing.T, src string) Diagnostics {
	t.Helper()
	w, ds := Load("t.yaml", []byte(src))
	if !ds.HasErrors() {
		ds = append(ds, Validate(w)...)
	}
	return ds
}

// Money budgets: usd is decoded; a usd budget covering a provider without
// a price is an error at the usd value; prices and on_exhausted are
// checked.
func TestBudgetUSDAndPrice(t *testing.T) {
	const node = "\nstate: {}\nnodes:\n  ask: {type: llm_call, with: {provider: main, prompt: hi}%s}\nedges:\n  - {from: START, to: ask}\n"
	tests := []struct {
		name, head, pools, want string
		line, col               int
	}{
		{name: "priced run budget", head: "config: {budget: {usd: 5, on_exhausted: interrupt}}\nproviders:\n  main: {kind: openai, price: {input_per_mtok: 0.15, output_per_mtok: 0.6}}"},
		{name: "run budget, unpriced provider", head: "config: {budget: {usd: 5}}\nproviders:\n  main: {kind: openai}",
			want: "config: budget.usd covers provider main, which has no price", line: 3, col: 24},
		{name: "run budget, unpriced fallback", head: "config: {budget: {usd: 5}}\nproviders:\n  main: {kind: openai, price: {input_per_mtok: 1, output_per_mtok: 2}, fallbacks: [b]}\n  b: {kind: openai}",
			want: "covers provider b, which has no price"},
		{name: "pool budget via provider pool", head: "pools:\n  llm: {budget: {usd: 1}}\nproviders:\n  main: {kind: openai, pool: llm}",
			want: "pool llm: budget.usd covers provider main"},
		{name: "pool budget via node pool", head: "pools:\n  llm: {budget: {usd: 1}}\nproviders:\n  main: {kind: openai}", pools: ", pool: llm",
			want: "pool llm: budget.usd covers provider main"},
		{name: "pool budget, other provider unpriced", head: "pools:\n  llm: {budget: {usd: 1}}\nproviders:\n  main: {kind: openai, pool: llm, price: {input_per_mtok: 1, output_per_mtok: 2}}\n  other: {kind: openai}"},
		{name: "provider budget", head: "providers:\n  main: {kind: openai, budget: {usd: 2, tokens: 100}}",
			want: "provider main: budget.usd covers provider main"},
		{name: "no tokens nor usd", head: "config: {budget: {on_exhausted: fail}}\nproviders:\n  main: {kind: openai}",
			want: "give `tokens`, `usd` or both"},
		{name: "usd zero", head: "config: {budget: {usd: 0}}\nproviders:\n  main: {kind: openai}", want: "usd must be above 0"},
		{name: "usd text", head: "config: {budget: {usd: five}}\nproviders:\n  main: {kind: openai}", want: "usd must be a number"},
		{name: "bad mode", head: "config: {budget: {tokens: 5, on_exhausted: interupt}}\nproviders:\n  main: {kind: openai}", want: "on_exhausted must be fail, wait or interrupt"},
		{name: "negative price", head: "providers:\n  main: {kind: openai, price: {input_per_mtok: -1, output_per_mtok: 2}}", want: "input_per_mtok must not be negative"},
		{name: "price missing output", head: "providers:\n  main: {kind: openai, price: {input_per_mtok: 1}}", want: "missing required key `output_per_mtok`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := loadValidate(t, "lgx: 1\nname: t\n"+tt.head+strings.Replace(node, "%s", tt.pools, 1))
			if tt.want == "" {
				if len(ds) != 0 {
					t.Fatalf("diagnostics: %q", ds)
				}
				return
			}
			if len(ds) != 1 || !strings.Contains(ds[0].Message, tt.want) || ds[0].Severity != SeverityError {
				t.Fatalf("diagnostics %q, want one error containing %q", ds, tt.want)
			}
			if tt.line != 0 && (ds[0].Pos.Line != tt.line || ds[0].Pos.Col != tt.col) {
				t.Errorf("at %d:%d, want %d:%d", ds[0].Pos.Line, ds[0].Pos.Col, tt.line, tt.col)
			}
		})
	}
}

// validate warns when an llm_call uses tools or response_format and its
// provider, or a fallback it may reach, declares capabilities without it.
func TestFallbackCapabilityWarnings(t *testing.T) {
	const tail = "\nstate: {}\ntools:\n  lookup: {description: d, parameters: {type: object}, node: {type: set, with: {}}}\nnodes:\n  ask: {type: llm_call, with: {provider: main, prompt: hi%s}}\nedges:\n  - {from: START, to: ask}\n"
	tests := []struct {
		name, providers, with, want string
	}{
		{"undeclared capabilities", "main: {kind: openai, fallbacks: [b]}\n  b: {kind: anthropic}", ", tools: [lookup]", ""},
		{"fallback lacks tools", "main: {kind: openai, fallbacks: [b]}\n  b: {kind: openai, capabilities: [structured_output]}", ", tools: [lookup]",
			"node ask: with.tools needs tools, which fallback provider b (of main) does not declare"},
		{"second fallback lacks structured output", "main: {kind: openai, fallbacks: [b]}\n  b: {kind: openai, fallbacks: [c]}\n  c: {kind: openai, capabilities: [tools]}",
			", response_format: {json_schema: {type: object}}", "with.response_format needs structured_output, which fallback provider c (of main)"},
		{"primary lacks tools", "main: {kind: openai, capabilities: []}", ", tools: [lookup]", "which provider main does not declare"},
		{"fallback has what is used", "main: {kind: openai, fallbacks: [b]}\n  b: {kind: openai, capabilities: [tools]}", ", tools: [lookup]", ""},
		{"call uses neither", "main: {kind: openai, fallbacks: [b]}\n  b: {kind: openai, capabilities: []}", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := loadValidate(t, "lgx: 1\nname: t\nproviders:\n  "+tt.providers+strings.Replace(tail, "%s", tt.with, 1))
			if tt.want == "" {
				if len(ds) != 0 {
					t.Fatalf("diagnostics: %q", ds)
				}
				return
			}
			if len(ds) != 1 || ds[0].Severity != SeverityWarning || ds[0].Code != CodeCapability || !strings.Contains(ds[0].Message, tt.want) {
				t.Fatalf("diagnostics %v, want one capability warning containing %q", ds, tt.want)
			}
			if ds[0].Pos.Line == 0 {
				t.Errorf("no position: %+v", ds[0])
			}
		})
	}
	ds := loadValidate(t, "lgx: 1\nname: t\nproviders:\n  main: {kind: openai, capabilities: [tool]}"+strings.Replace(tail, "%s", "", 1))
	if len(ds) != 1 || !strings.Contains(ds[0].Message, `unknown capability "tool"`) {
		t.Errorf("unknown capability: %v", ds)
	}
}
