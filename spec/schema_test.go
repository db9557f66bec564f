package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
)

// fetchy is a catalog type for schema tests, independent of the real
// catalog: one of each field kind, a required field and a one-of group.
type fetchy struct{}

func (fetchy) Name() string { return "fetchy" }
func (fetchy) Doc() nodes.Doc {
	return nodes.Doc{
		Summary: "Test type.",
		With: []nodes.Field{
			{Name: "url", Type: "string", Required: true, Doc: "URL."},
			{Name: "count", Type: "integer", Default: "1", Doc: "Count."},
			{Name: "mode", Type: "string", Enum: []string{"fast", "slow"}, Doc: "Mode."},
			{Name: "wait", Type: "duration", Doc: "Wait."},
			{Name: "max", Type: "bytes", Doc: "Max."},
			{Name: "tmpl", Type: "integer", Static: true, Doc: "Static integer."},
			{Name: "body", Type: "string", Doc: "Body."},
			{Name: "json", Type: "any", Doc: "JSON."},
		},
		Result: []nodes.Field{{Name: "ok", Type: "boolean", Doc: "OK."}},
		OneOf:  []nodes.OneOf{{Fields: []string{"body", "json"}}},
	}
}
func (fetchy) Run(context.Context, *nodes.Invocation) (any, error) { return nil, nil }

// noop has no fields, so `with` may be absent.
type noop struct{}

func (noop) Name() string                                        { return "noop" }
func (noop) Doc() nodes.Doc                                      { return nodes.Doc{Summary: "Nothing."} }
func (noop) Run(context.Context, *nodes.Invocation) (any, error) { return nil, nil }

// pick needs exactly one of a or b.
type pick struct{}

func (pick) Name() string { return "pick" }
func (pick) Doc() nodes.Doc {
	return nodes.Doc{Summary: "Pick.", With: []nodes.Field{{Name: "a", Type: "string"}, {Name: "b", Type: "string"}},
		OneOf: []nodes.OneOf{{Fields: []string{"a", "b"}, Required: true}}}
}
func (pick) Run(context.Context, *nodes.Invocation) (any, error) { return nil, nil }

// compileSchema compiles a generated schema with a draft 2020-12 validator,
// which also checks it against the meta-schema.
func compileSchema(t *testing.T, src []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("lgx.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("lgx.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return sch
}

// yamlToJSONValue decodes a YAML document into the JSON-like value the
// validator expects (numbers as json.Number).
func yamlToJSONValue(t *testing.T, src string) any {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("yaml: %v\n%s", err, src)
	}
	v, err := DecodeValue(n.Content[0])
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJSONSchemaValidatesWorkflows(t *testing.T) {
	src, err := JSONSchemaFor([]nodes.Type{fetchy{}, noop{}, pick{}})
	if err != nil {
		t.Fatal(err)
	}
	sch := compileSchema(t, src)

	const head = "lgx: 1\nname: t\n"
	node := func(body string) string {
		return head + "nodes:\n  a:\n" + indent(body, "    ") + "edges:\n  - {from: START, to: a}\n"
	}
	tests := []struct {
		name  string
		doc   string
		valid bool
	}{
		{"minimal", head, true},
		{"every top-level block", head + `description: d
secrets: [KEY]
config: {concurrency: 4, recursion_limit: 10, timeout: 1m30s, node_timeout: 500ms, retry: {attempts: 2, backoff: 1s, max_backoff: 5s, on: [timeout, "429", 5xx]}}
pools: {web: {concurrency: 3}, llm: {concurrency: 4, rate: 60/min, burst: 4}}
providers: {default: {kind: openai, model: m, base_url: "http://127.0.0.1/v1", api_key: "${{ secrets.KEY }}", pool: llm}}
state:
  q: {type: string, required: true, description: what}
  docs: {type: list, reducer: append, default: []}
  score: number
  meta: {type: object, reducer: merge, default: {}}
tools:
  look: {description: d, parameters: {type: object}, node: {type: fetchy, with: {url: "u/${{ args.x }}"}, pool: web, timeout: 2s}, output: "${{ result }}"}
nodes:
  a: {type: noop, output: score}
  b: {type: fetchy, for_each: "${{ state.docs }}", as: d, concurrency: 2, pool: [web], timeout: 10s, retry: {attempts: 1}, on_error: continue, with: {url: x}, output: {docs: "${{ d }}"}}
edges:
  - {from: START, to: [a, b]}
  - {from: [a, b], to: END}
  - from: a
    when:
      - {if: state.score > 1, to: b}
      - {if: true, to: [b]}
    else: END
output: [score]
`, true},
		{"with fields, literal and expression", node("type: fetchy\nwith: {url: u, count: 3, mode: fast, wait: 2s, max: 10MiB, tmpl: 4, body: b}\n"), true},
		{"with fields as expressions", node("type: fetchy\nwith: {url: u, count: \"${{ state.n }}\", mode: \"${{ x }}\", wait: \"${{ w }}\", max: 100}\n"), true},
		{"retry on: statuses as numbers, a scalar", head + "config: {retry: {on: [429, 5xx, network]}}\nnodes: {a: {type: noop, retry: {on: timeout}}}\n", true},
		{"retry on: unknown kind", head + "config: {retry: {on: [sometimes]}}\n", false},
		{"retry on: bad class", head + "config: {retry: {on: [6xx]}}\n", false},
		{"no with for a type without required fields", node("type: noop\n"), true},
		{"required one-of: one given", node("type: pick\nwith: {a: x}\n"), true},

		{"missing lgx", "name: t\n", false},
		{"lgx 2", "lgx: 2\nname: t\n", false},
		{"bad workflow name", "lgx: 1\nname: Bad Name\n", false},
		{"unknown top-level key", head + "nodez: {}\n", false},
		{"unknown config key", head + "config: {concurency: 3}\n", false},
		{"bad duration", head + "config: {timeout: 10 minutes}\n", false},
		{"zero concurrency", head + "config: {concurrency: 0}\n", false},
		{"bad rate", head + "pools: {p: {rate: 60 per minute}}\n", false},
		{"bad provider kind", head + "providers: {p: {kind: gemini}}\n", false},
		{"bad state type", head + "state: {k: {type: str}}\n", false},
		{"bad state shorthand", head + "state: {k: strng}\n", false},
		{"bad reducer", head + "state: {k: {type: list, reducer: concat}}\n", false},
		{"bad node name", head + "nodes: {a-b: {type: noop}}\n", false},
		{"node without type", head + "nodes: {a: {with: {}}}\n", false},
		{"unknown node type", node("type: fetchx\n"), false},
		{"unknown node key", node("type: noop\nouptut: x\n"), false},
		{"bad on_error", node("type: noop\non_error: ignore\n"), false},
		{"unknown with field", node("type: fetchy\nwith: {url: u, urls: v}\n"), false},
		{"missing required with field", node("type: fetchy\nwith: {count: 1}\n"), false},
		{"missing with when a field is required", node("type: fetchy\n"), false},
		{"with field of the wrong type", node("type: fetchy\nwith: {url: u, count: many}\n"), false},
		{"with enum violated", node("type: fetchy\nwith: {url: u, mode: medium}\n"), false},
		{"static field is not an expression", node("type: fetchy\nwith: {url: u, tmpl: \"${{ x }}\"}\n"), false},
		{"bad byte size", node("type: fetchy\nwith: {url: u, max: 10 lots}\n"), false},
		{"one-of fields both given", node("type: fetchy\nwith: {url: u, body: b, json: {}}\n"), false},
		{"required one-of: none given", node("type: pick\nwith: {}\n"), false},
		{"required one-of: both given", node("type: pick\nwith: {a: x, b: y}\n"), false},
		{"edge without from", head + "edges: [{to: END}]\n", false},
		{"unknown edge key", head + "edges: [{from: START, too: END}]\n", false},
		{"case without if", head + "edges: [{from: START, when: [{to: END}]}]\n", false},
		{"unknown tool key", head + "tools: {t: {node: {type: noop}, params: {}}}\n", false},
		{"tool without node", head + "tools: {t: {description: d}}\n", false},
		{"unknown with field in a tool node", head + "tools: {t: {node: {type: fetchy, with: {url: u, x: 1}}}}\n", false},
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

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString(prefix + l)
		}
	}
	return b.String()
}

func TestJSONSchemaCarriesDocs(t *testing.T) {
	src, err := JSONSchemaFor([]nodes.Type{fetchy{}})
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(src, &root); err != nil {
		t.Fatal(err)
	}
	if root["$schema"] != SchemaDraft {
		t.Errorf("$schema = %v", root["$schema"])
	}
	defs := root["$defs"].(map[string]any)
	// Every block of the table is a definition (the top level is the root),
	// and every field has a description.
	for _, b := range Blocks {
		var props map[string]any
		if b.Name == BlockWorkflow {
			props = root["properties"].(map[string]any)
		} else {
			def, ok := defs[b.Name].(map[string]any)
			if !ok {
				t.Fatalf("no $defs/%s", b.Name)
			}
			if b.Shorthand != "" {
				def = def["anyOf"].([]any)[1].(map[string]any)
			}
			props = def["properties"].(map[string]any)
		}
		for _, f := range b.Fields {
			p, ok := props[f.Name].(map[string]any)
			if !ok {
				t.Errorf("%s.%s missing from the schema", b.Name, f.Name)
				continue
			}
			if d, _ := p["description"].(string); d == "" || f.Description == "" {
				t.Errorf("%s.%s has no description", b.Name, f.Name)
			}
		}
	}
	with := defs["with_fetchy"].(map[string]any)
	url := with["properties"].(map[string]any)["url"].(map[string]any)
	if url["description"] != "URL." {
		t.Errorf("with_fetchy.url description = %v", url["description"])
	}
	count := with["properties"].(map[string]any)["count"].(map[string]any)
	if !strings.Contains(count["description"].(string), "Default: 1.") {
		t.Errorf("with_fetchy.count description lacks the default: %v", count["description"])
	}
	nodeType := defs[BlockNode].(map[string]any)["properties"].(map[string]any)["type"].(map[string]any)
	if got := nodeType["enum"]; len(got.([]any)) != 1 || got.([]any)[0] != "fetchy" {
		t.Errorf("node type enum = %v", got)
	}
}

func TestJSONSchemaIsDeterministic(t *testing.T) {
	a, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	b, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("two generations differ")
	}
	compileSchema(t, a)
}
