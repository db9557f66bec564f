package runner

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

func TestTemplateNode(t *testing.T) {
	tests := []struct {
		name    string
		with    string
		want    any
		wantErr string
	}{
		{"text with sprig", `{template: '{{ .state.name | upper }} {{ join "," .state.tags }} {{ .run.workflow }}'}`, "ADA a,b t", ""},
		{"json format", `{template: '{"n": {{ len .state.tags }}, "name": "{{ .state.name }}"}', format: json}`,
			map[string]any{"n": 2, "name": "ada"}, ""},
		{"missing key is an error", `{template: '{{ .state.nope }}'}`, nil, "nope"},
		{"env function removed", `{template: '{{ .state.name }}'}`, "ada", ""},
		{"bad json", `{template: 'not json', format: json}`, nil, "not JSON"},
		{"expressions are not evaluated in the template", `{template: 'a {{ "${{ state.name }}" }}'}`, "a ${{ state.name }}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := runYAML(t, `
lgx: 1
name: t
state:
  name: {type: string, default: ada}
  tags: {type: list, default: [a, b]}
  out: {type: any}
nodes:
  r:
    type: template
    with: `+tt.with+`
    output: out
edges:
  - {from: START, to: r}
`, nil)
			if tt.wantErr != "" {
				var ne *NodeError
				if !errors.As(err, &ne) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.State["out"], tt.want) {
				t.Errorf("out = %#v, want %#v", res.State["out"], tt.want)
			}
		})
	}
}

func TestTemplateFuncsHermetic(t *testing.T) {
	fm := nodes.TemplateFuncs()
	for _, f := range []string{"env", "expandenv", "now", "date", "ago", "randAlpha", "randInt", "uuidv4", "shuffle",
		"genPrivateKey", "getHostByName", "bcrypt", "encryptAES", "toDate"} {
		if _, ok := fm[f]; ok {
			t.Errorf("template function %s is not hermetic", f)
		}
	}
	for _, f := range []string{"upper", "join", "toJson", "default", "dict"} {
		if _, ok := fm[f]; !ok {
			t.Errorf("template function %s missing", f)
		}
	}
}

// Subgraphs share the parent's global cap; a cap of 1 does not deadlock
// because the subgraph node holds no slot itself.
func TestSubgraphSharesCapsWithoutDeadlock(t *testing.T) {
	g := resetGroup("sub")
	pg, err := LoadGraph("testdata/sub/parent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), pg, Options{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	want := []any{11, 12, 13, 21, 22, 23}
	if !reflect.DeepEqual(res.State["results"], want) {
		t.Errorf("results = %v, want %v", res.State["results"], want)
	}
	if g.max != 1 || g.calls != 6 {
		t.Errorf("child invocations: max in flight %d (want 1), calls %d", g.max, g.calls)
	}
}

func TestInterruptNodeAndSet(t *testing.T) {
	res, err := runYAML(t, `
lgx: 1
name: t
state:
  x: {type: integer, default: 1}
nodes:
  noop: {type: set}
  stop: {type: interrupt, with: {message: "x is ${{ state.x }}"}}
edges:
  - {from: START, to: noop}
  - {from: noop, to: stop}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != store.StatusInterrupted || res.InterruptNode != "stop" || res.InterruptMessage != "x is 1" || res.InterruptIndex != -1 {
		t.Errorf("result %+v", res)
	}
}

// toolCaller is a test-only type that runs a tool through its ToolSource.
type toolCaller struct{}

func init() { nodes.Register(toolCaller{}) }

func (toolCaller) Name() string { return "tool_caller" }
func (toolCaller) Doc() nodes.Doc {
	return nodes.Doc{Summary: "test", With: []nodes.Field{{Name: "tool", Type: "string"}, {Name: "args", Type: "object"}}}
}
func (toolCaller) Run(ctx context.Context, inv *nodes.Invocation) (any, error) {
	name, _ := inv.With["tool"].(string)
	args, _ := inv.With["args"].(map[string]any)
	specs, err := inv.Tools.List([]string{name})
	if err != nil {
		return nil, err
	}
	out, err := inv.Tools.Call(ctx, nodes.ToolCall{ID: "c1", Name: name, Args: args})
	if err != nil {
		return nil, err
	}
	return map[string]any{"desc": specs[0].Description, "out": out}, nil
}

func TestHostRunTool(t *testing.T) {
	resetGroup("tool")
	res, err := runYAML(t, `
lgx: 1
name: t
state:
  out: {type: any}
tools:
  double:
    description: doubles n
    parameters: {type: object, properties: {n: {type: integer}}}
    node: {type: probe, with: {group: tool, value: "${{ args.n * 2 }}"}}
    output: "doubled: ${{ result }}"
nodes:
  call: {type: tool_caller, with: {tool: double, args: {n: 21}}, output: out}
edges:
  - {from: START, to: call}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"desc": "doubles n", "out": "doubled: 42"}
	if !reflect.DeepEqual(res.State["out"], want) {
		t.Errorf("out = %#v", res.State["out"])
	}
}

func TestHostProvider(t *testing.T) {
	g := compileYAML(t, `
lgx: 1
name: t
secrets: [BASE]
providers:
  default: {kind: openai, model: "${{ env.MODEL }}", base_url: "${{ secrets.BASE }}/v1"}
state: {}
nodes:
  a: {type: set}
edges:
  - {from: START, to: a}
`)
	r, err := newRun(g, Options{Environ: []string{"MODEL=m1", "BASE=http://127.0.0.1:9", "OPENAI_API_KEY=sk-1"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &call{r: r, n: g.nodes[0], index: -1}
	p, err := c.Provider("")
	if err != nil {
		t.Fatal(err)
	}
	want := nodes.Provider{Name: "default", Kind: "openai", Model: "m1", BaseURL: "http://127.0.0.1:9/v1", APIKey: "sk-1"}
	if *p != want {
		t.Errorf("provider %+v, want %+v", *p, want)
	}
	if got := r.red.str("key sk-1"); got != "key ***" {
		t.Errorf("API key from env not treated as a secret: %q", got)
	}
	if _, err := c.Provider("nope"); err == nil {
		t.Error("unknown provider resolved")
	}
}

// A tools node holds no slot itself, so its tool calls (which hold one
// each) run under a global cap of 1 without deadlock.
func TestToolsNodeUnderGlobalCapOne(t *testing.T) {
	g := resetGroup("tools1")
	res, err := runYAML(t, `
lgx: 1
name: t
config: {concurrency: 1}
state:
  messages: {type: messages, default: []}
tools:
  echo:
    description: echoes
    parameters: {type: object, properties: {s: {type: string}}}
    node: {type: probe, with: {group: tools1, sleep_ms: 2, value: "${{ args.s }}"}}
nodes:
  run_tools:
    type: tools
    with:
      calls:
        - {id: c1, name: echo, arguments: {s: one}}
        - {id: c2, name: echo, arguments: {s: two}}
        - {id: c3, name: echo, arguments: {s: three}}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: run_tools}
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := res.State["messages"].([]any)
	if len(msgs) != 3 || g.calls != 3 || g.max != 1 {
		t.Fatalf("messages %v, calls %d, max in flight %d", msgs, g.calls, g.max)
	}
	if c := msgs[2].(map[string]any)["content"]; c != "three" {
		t.Errorf("third tool message content %v", c)
	}
}
