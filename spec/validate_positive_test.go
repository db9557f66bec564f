package spec

import (
	"strings"
	"testing"
)

// A literal of a `with` field that must be a positive integer (llm_call's
// max_tokens and reserve, tools' concurrency) is checked by validate at
// its line and column, as the run would refuse it only after starting.
func TestWithPositiveIntegers(t *testing.T) {
	const src = "lgx: 1\nname: t\nproviders:\n  default: {kind: openai}\nstate:\n  m: {type: messages, default: []}\nnodes:\n  n: {type: %s, with: {%s}}\nedges:\n  - {from: START, to: n}\n"
	tests := []struct {
		name, typ, with, want string
		col                   int
	}{
		{"reserve negative", "llm_call", "prompt: hi, reserve: -5", "llm_call.reserve must be at least 1, not -5", 51},
		{"max_tokens zero", "llm_call", "prompt: hi, max_tokens: 0", "llm_call.max_tokens must be at least 1, not 0", 54},
		{"tools concurrency zero", "tools", "calls: [], concurrency: 0", "tools.concurrency must be at least 1, not 0", 51},
		{"reserve one", "llm_call", "prompt: hi, reserve: 1", "", 0},
		{"max_tokens expression", "llm_call", "prompt: hi, max_tokens: \"${{ 0 + 1 }}\"", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := loadValidate(t, strings.Replace(strings.Replace(src, "%s", tt.typ, 1), "%s", tt.with, 1))
			if tt.want == "" {
				if ds.HasErrors() {
					t.Fatalf("diagnostics: %q", ds)
				}
				return
			}
			if len(ds) != 1 || !strings.Contains(ds[0].Message, tt.want) || ds[0].Pos.Line != 8 || ds[0].Pos.Col != tt.col {
				t.Fatalf("diagnostics %q, want one at 8:%d containing %q", ds, tt.col, tt.want)
			}
		})
	}
}
