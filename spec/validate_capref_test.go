package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes"
)

// capType is a test catalog type with capabilities: validation must check
// the references it declares whatever the type is called, since spec
// names no node type.
type capType struct {
	testType
	caps nodes.Capabilities
}

func (c capType) Capabilities() nodes.Capabilities { return c.caps }

func init() {
	nodes.Register(capType{testType{name: "test_caller", doc: nodes.Doc{With: []nodes.Field{
		{Name: "via", Type: "string", Static: true},
		{Name: "use", Type: "list", Static: true},
		{Name: "format", Type: "object"},
	}}}, nodes.Capabilities{ProviderField: "via", ToolsField: "use",
		ProviderNeeds: []nodes.ProviderNeed{{Field: "format", Capability: nodes.ProviderCapStructuredOutput}}}})
	nodes.Register(capType{testType{name: "test_child", doc: nodes.Doc{With: []nodes.Field{
		{Name: "path", Type: "string", Static: true},
		{Name: "args", Type: "object"},
	}}}, nodes.Capabilities{ChildField: "path", ChildInputField: "args"}})
	nodes.Register(capType{testType{name: "test_server", doc: nodes.Doc{With: []nodes.Field{
		{Name: "srv", Type: "string", Static: true},
		{Name: "op", Type: "string", Static: true},
	}}}, nodes.Capabilities{ServerField: "srv", ServerToolField: "op"}})
}

// TestCapabilityReferences checks the reference checks that follow a
// type's declared fields (nodes.Capabilities): provider, tools, provider
// capabilities and budgets, child workflow and input, MCP server and tool.
func TestCapabilityReferences(t *testing.T) {
	dir := t.TempDir()
	child := "lgx: 1\nname: child\nstate: {q: string}\nnodes:\n  a: {type: test_set}\nedges: [{from: START, to: a}, {from: a, to: END}]\n"
	if err := os.WriteFile(filepath.Join(dir, "child.yaml"), []byte(child), 0o644); err != nil {
		t.Fatal(err)
	}
	const providers = "providers:\n  main: {kind: openai, model: m, capabilities: [tools]}\n"
	tests := []struct {
		name, head, with string
		want             string // a message part; "" = no diagnostic
		code             string
		sev              Severity
	}{
		{name: "declared provider", head: providers, with: "{type: test_caller, with: {via: main}}"},
		{name: "unknown provider", head: providers, with: "{type: test_caller, with: {via: mian}}",
			want: `node n: unknown provider "mian"`, code: CodeUnknownProvider, sev: SeverityError},
		{name: "default provider not declared", head: providers, with: "{type: test_caller}",
			want: `node n: test_caller uses provider "default", which is not declared`, code: CodeUnknownProvider, sev: SeverityError},
		{name: "unknown tool", head: providers, with: "{type: test_caller, with: {via: main, use: [ghost]}}",
			want: `node n: unknown tool "ghost"`, code: CodeUnknownTool, sev: SeverityError},
		{name: "field needs a capability the provider lacks", head: providers, with: "{type: test_caller, with: {via: main, format: {}}}",
			want: "node n: with.format needs structured_output, which provider main does not declare", code: CodeCapability, sev: SeverityWarning},
		{name: "budget covers an unpriced provider", head: "pools:\n  p: {budget: {usd: 1}}\n" + providers, with: "{type: test_caller, pool: p, with: {via: main}}",
			want: "pool p: budget.usd covers provider main, which has no price", code: CodeBadValue, sev: SeverityError},
		{name: "child found", with: "{type: test_child, with: {path: child.yaml, args: {q: x}}}"},
		{name: "child missing", with: "{type: test_child, with: {path: nope.yaml}}",
			want: "node n: child workflow nope.yaml", code: CodeBadValue, sev: SeverityError},
		{name: "child input key unknown", with: "{type: test_child, with: {path: child.yaml, args: {z: x}}}",
			want: `child workflow child.yaml has no state key "z"`, code: CodeUnknownState, sev: SeverityError},
		{name: "server and tool known", head: "mcp:\n  s: {command: x, tools: [echo]}\n", with: "{type: test_server, with: {srv: s, op: echo}}"},
		{name: "unknown server", head: "mcp:\n  s: {command: x}\n", with: "{type: test_server, with: {srv: z}}",
			want: `node n: unknown mcp server "z"`, code: CodeUnknownTool, sev: SeverityError},
		{name: "tool outside the allowlist", head: "mcp:\n  s: {command: x, tools: [echo]}\n", with: "{type: test_server, with: {srv: s, op: add}}",
			want: `node n: tool "add" is not in the tools of mcp server s`, code: CodeUnknownTool, sev: SeverityError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "lgx: 1\nname: t\n" + tt.head + "state: {}\nnodes:\n  n: " + tt.with + "\nedges: [{from: START, to: n}]\n"
			path := filepath.Join(dir, "wf.yaml")
			w, ds := Load(path, []byte(src))
			if !ds.HasErrors() {
				ds = append(ds, Validate(w)...)
			}
			if tt.want == "" {
				if len(ds) > 0 {
					t.Fatalf("diagnostics:\n%s", ds)
				}
				return
			}
			for _, d := range ds {
				if strings.Contains(d.Message, tt.want) {
					if d.Code != tt.code || d.Severity != tt.sev {
						t.Errorf("%s: want code %s, severity %s", d, tt.code, tt.sev)
					}
					return
				}
			}
			t.Errorf("no diagnostic says %q:\n%s", tt.want, ds)
		})
	}
}
