package spec

import (
	"context"
	"errors"
	"text/template"

	"github.com/lgx-run/lgx/nodes"
)

// Fake catalog types for the validation tests. Their names start with
// test_ so that they never clash with real types.
func init() {
	nodes.Register(testType{name: "test_set"})
	nodes.Register(testType{name: "test_echo", doc: nodes.Doc{
		Summary: "echoes its inputs",
		With: []nodes.Field{
			{Name: "msg", Type: "string", Required: true},
			{Name: "count", Type: "integer"},
			{Name: "ratio", Type: "number"},
			{Name: "flag", Type: "boolean"},
			{Name: "delay", Type: "duration"},
			{Name: "size", Type: "bytes"},
			{Name: "mode", Type: "string", Enum: []string{"fast", "slow"}},
			{Name: "items", Type: "list"},
			{Name: "opts", Type: "object"},
			{Name: "body", Type: "string"},
			{Name: "json", Type: "any"},
		},
		OneOf: []nodes.OneOf{{Fields: []string{"body", "json"}}},
	}})
	nodes.Register(testTemplate{})
}

type testType struct {
	name string
	doc  nodes.Doc
}

func (t testType) Name() string   { return t.name }
func (t testType) Doc() nodes.Doc { return t.doc }
func (t testType) Run(ctx context.Context, inv *nodes.Invocation) (any, error) {
	return inv.With, nil
}

// testTemplate parses a static Go template in Prepare, like the real
// template type.
type testTemplate struct{}

func (testTemplate) Name() string { return "test_template" }
func (testTemplate) Doc() nodes.Doc {
	return nodes.Doc{With: []nodes.Field{
		{Name: "text", Type: "string", Required: true, Static: true},
		{Name: "format", Type: "string", Enum: []string{"text", "json"}},
	}}
}
func (testTemplate) Run(ctx context.Context, inv *nodes.Invocation) (any, error) { return nil, nil }
func (testTemplate) Prepare(static map[string]any) (any, error) {
	s, ok := static["text"].(string)
	if !ok {
		return nil, errors.New("text must be a string")
	}
	return template.New("text").Parse(s)
}
