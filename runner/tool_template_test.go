package runner

import (
	"context"
	"testing"

	"github.com/lgx-run/lgx/store"
)

// TestTemplateToolReadsArgs: a tool whose node is a template renders from
// its call's arguments ({{ .args.NAME }}), as a tool's expressions read
// `args`, and from the state.
func TestTemplateToolReadsArgs(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: tpltool
state:
  who: {type: string, default: team}
  out: {type: list, reducer: append, default: []}
tools:
  greet:
    description: Greet someone
    parameters: {type: object, properties: {name: {type: string}}, required: [name]}
    node: {type: template, with: {template: "Hello {{ .args.name }}, from the {{ .state.who }}"}}
nodes:
  act:
    type: tools
    with: {calls: [{id: c1, name: greet, arguments: {name: Ada}}]}
    output: {out: "${{ result.messages }}"}
edges:
  - {from: START, to: act}
`)
	res, err := Run(context.Background(), g, Options{Store: store.NewMemory(), Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := res.State["out"].([]any)
	if got := msgs[0].(map[string]any)["content"]; got != "Hello Ada, from the team" {
		t.Errorf("tool message %q", got)
	}
}
