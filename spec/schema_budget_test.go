package spec

import (
	"testing"

	"github.com/lgx-run/lgx/nodes"
)

// The schema refuses what validate refuses in budgets, prices and
// capabilities, so an editor flags them as `lgx validate` does.
func TestJSONSchemaBudgetsAndCapabilities(t *testing.T) {
	src, err := JSONSchemaFor([]nodes.Type{noop{}})
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t, src)
	const head = "lgx: 1\nname: t\n"
	tests := []struct {
		name, doc string
		valid     bool
	}{
		{"budget and price", head + "config: {budget: {usd: 0.5, tokens: 10}}\nproviders: {p: {kind: openai, price: {input_per_mtok: 0, output_per_mtok: 0.6}, capabilities: [tools, structured_output]}}\n", true},
		{"usd zero", head + "config: {budget: {usd: 0}}\n", false},
		{"usd negative", head + "pools: {p: {budget: {usd: -1}}}\n", false},
		{"negative input price", head + "providers: {p: {kind: openai, price: {input_per_mtok: -1, output_per_mtok: 1}}}\n", false},
		{"negative output price", head + "providers: {p: {kind: openai, price: {input_per_mtok: 1, output_per_mtok: -0.1}}}\n", false},
		{"unknown capability", head + "providers: {p: {kind: openai, capabilities: [vision]}}\n", false},
		{"rate", head + "pools: {p: {rate: 10/min, per_key: {rate: \" 010 / s \"}}}\n", true},
		{"rate zero", head + "pools: {p: {rate: 0/s}}\n", false},
		{"per_key rate zero", head + "pools: {p: {per_key: {rate: 00/h}}}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(yamlToJSONValue(t, tt.doc))
			if tt.valid && err != nil {
				t.Errorf("valid document rejected: %v\n%s", err, tt.doc)
			}
			if !tt.valid && err == nil {
				t.Errorf("invalid document accepted:\n%s", tt.doc)
			}
		})
	}
}
