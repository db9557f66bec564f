package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
)

// SchemaDraft is the JSON Schema dialect `lgx schema` emits.
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

// Patterns of the string syntaxes, as JSON Schema (ECMA-262) regexps. They
// accept what ParseDuration, ParseRate and ParseByteSize accept.
const (
	durationPattern = `^\s*[+]?(0|([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+)\s*$`
	ratePattern     = `^\s*0*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$`
	sizePattern     = `^\s*[0-9]+\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$`
	exprPattern     = `\$\{\{`
)

// retryOnPattern accepts a `retry.on` entry: a failure kind of the catalog,
// a status class (5xx) or a status (429).
var retryOnPattern = `^(` + strings.Join(retryKinds, "|") + `|[1-5]xx|[1-5][0-9][0-9])$`

// JSONSchema returns the JSON Schema (draft 2020-12) of a workflow file,
// generated from the format table (Blocks) and the node catalog, so that
// editors can complete and check workflow files. `lgx schema` prints it.
func JSONSchema() ([]byte, error) {
	var types []nodes.Type
	for _, name := range nodes.Names() {
		if t, ok := nodes.Lookup(name); ok {
			types = append(types, t)
		}
	}
	return JSONSchemaFor(types)
}

// JSONSchemaFor is JSONSchema for the given catalog types: each type's
// `with` fields are checked when a node names it.
func JSONSchemaFor(types []nodes.Type) ([]byte, error) {
	root, err := buildSchema(types)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode workflow schema: %w", err)
	}
	return buf.Bytes(), nil
}

type obj = map[string]any

func buildSchema(types []nodes.Type) (obj, error) {
	defs := obj{}
	for i := range Blocks {
		b := &Blocks[i]
		if b.Name == BlockWorkflow {
			continue
		}
		s, err := blockSchema(b)
		if err != nil {
			return nil, err
		}
		defs[b.Name] = s
	}
	for _, t := range types {
		defs[withDef(t.Name())] = withSchema(t)
	}
	for _, name := range []string{BlockNode, BlockToolNode} {
		addCatalog(defs[name].(obj), types)
	}
	wb, _ := BlockByName(BlockWorkflow)
	root, err := blockSchema(wb)
	if err != nil {
		return nil, err
	}
	root["$schema"] = SchemaDraft
	root["title"] = "lgx workflow"
	root["$defs"] = defs
	return root, nil
}

func withDef(typeName string) string { return "with_" + typeName }

// blockSchema is the object schema of one block; a block with a shorthand
// also accepts the shorthand field's bare value.
func blockSchema(b *Block) (obj, error) {
	props := obj{}
	var required []string
	for _, f := range b.Fields {
		fs, err := fieldSchema(f)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", b.Name, err)
		}
		props[f.Name] = fs
		if f.Required {
			required = append(required, f.Name)
		}
	}
	s := obj{
		"type":                 JSONObject,
		"description":          b.Description,
		"properties":           props,
		"additionalProperties": false,
	}
	if len(required) > 0 {
		s["required"] = required
	}
	if b.Shorthand == "" {
		return s, nil
	}
	f, ok := b.Field(b.Shorthand)
	if !ok {
		return nil, fmt.Errorf("block %s: shorthand field %q is not a field", b.Name, b.Shorthand)
	}
	short, err := fieldSchema(*f)
	if err != nil {
		return nil, err
	}
	delete(s, "description")
	return obj{"description": b.Description, "anyOf": []any{short, s}}, nil
}

// fieldSchema is the schema of one key of a block.
func fieldSchema(f BlockField) (obj, error) {
	s := obj{}
	switch {
	case f.Block != "" && hasType(f.Types, JSONString):
		// A name, a block, or a list of either (a node's `pool`).
		one := []any{obj{"type": JSONString, "pattern": namePattern}, obj{"$ref": "#/$defs/" + f.Block}}
		s["anyOf"] = append(one[:2:2], obj{"type": JSONArray, "minItems": 1, "items": obj{"anyOf": one}})
	case f.Block != "" && f.Map:
		s["type"] = JSONObject
		s["propertyNames"] = obj{"pattern": namePattern}
		s["additionalProperties"] = obj{"$ref": "#/$defs/" + f.Block}
	case f.Block != "" && hasType(f.Types, JSONArray):
		s["type"] = JSONArray
		s["items"] = obj{"$ref": "#/$defs/" + f.Block}
	case f.Block != "":
		s["$ref"] = "#/$defs/" + f.Block
	default:
		switch len(f.Types) {
		case 0:
		case 1:
			s["type"] = f.Types[0]
		default:
			s["type"] = f.Types
		}
	}
	if _, ok := BlockByName(f.Block); f.Block != "" && !ok {
		return nil, fmt.Errorf("field %s: unknown block %q", f.Name, f.Block)
	}
	if len(f.Enum) > 0 {
		s["enum"] = f.Enum
	}
	if p := formatPattern(f.Format); p != "" {
		s["pattern"] = p
	}
	if f.Pattern != "" {
		s["pattern"] = f.Pattern
	}
	if p := formatPattern(f.ItemFormat); p != "" && hasType(f.Types, JSONString) {
		s["pattern"] = p
	}
	if f.Items != "" {
		items := obj{"type": f.Items}
		if f.ItemFormat == FormatRetryOn {
			items["type"] = []string{JSONString, JSONInteger} // on: [429]
		}
		if p := formatPattern(f.ItemFormat); p != "" {
			items["pattern"] = p
		}
		if len(f.ItemEnum) > 0 {
			items["enum"] = f.ItemEnum
		}
		s["items"] = items
	}
	if f.Positive {
		s["minimum"] = 1
	}
	if f.AboveZero {
		s["exclusiveMinimum"] = 0
	}
	if f.NonNegative {
		s["minimum"] = 0
	}
	desc := f.Description
	if f.Default != "" {
		v, err := yamlValue(f.Default)
		if err != nil {
			return nil, fmt.Errorf("field %s: default: %w", f.Name, err)
		}
		s["default"] = v
		desc += " Default: " + f.Default + "."
	}
	if f.Example != "" {
		v, err := yamlValue(f.Example)
		if err != nil {
			return nil, fmt.Errorf("field %s: example: %w", f.Name, err)
		}
		s["examples"] = []any{v}
	}
	s["description"] = desc
	return s, nil
}

// formatPattern is the regexp of a string syntax ("" when free text).
func formatPattern(format string) string {
	switch format {
	case FormatDuration:
		return durationPattern
	case FormatRate:
		return ratePattern
	case FormatName:
		return namePattern
	case FormatRetryOn:
		return retryOnPattern
	}
	return ""
}

func hasType(types []string, t string) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// yamlValue decodes a YAML flow value into a JSON-like value.
func yamlValue(src string) (any, error) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		return nil, fmt.Errorf("%q: %w", src, err)
	}
	if len(n.Content) == 0 {
		return nil, nil
	}
	return DecodeValue(n.Content[0])
}

// addCatalog restricts a node block's `type` to the catalog and checks its
// `with` against the named type's fields.
func addCatalog(node obj, types []nodes.Type) {
	if len(types) == 0 {
		return
	}
	props := node["properties"].(obj)
	typeProp := props["type"].(obj)
	names := make([]any, len(types))
	lines := []string{typeProp["description"].(string)}
	var cases []any
	for i, t := range types {
		names[i] = t.Name()
		doc := t.Doc()
		lines = append(lines, fmt.Sprintf("%s: %s", t.Name(), doc.Summary))
		then := obj{"properties": obj{"with": obj{"$ref": "#/$defs/" + withDef(t.Name())}}}
		if hasRequired(doc) {
			then["required"] = []string{"with"}
		}
		cases = append(cases, obj{
			"if":   obj{"properties": obj{"type": obj{"const": t.Name()}}, "required": []string{"type"}},
			"then": then,
		})
	}
	typeProp["enum"] = names
	typeProp["description"] = strings.Join(lines, "\n")
	node["allOf"] = cases
}

func hasRequired(doc nodes.Doc) bool {
	for _, f := range doc.With {
		if f.Required {
			return true
		}
	}
	for _, g := range doc.OneOf {
		if g.Required {
			return true
		}
	}
	return false
}

// withSchema is the schema of a type's `with` block: its fields (a field
// that is not Static may also be a ${{ }} expression string), the required
// ones, and its mutually exclusive groups.
func withSchema(t nodes.Type) obj {
	doc := t.Doc()
	props := obj{}
	var required []string
	for _, f := range doc.With {
		props[f.Name] = withFieldSchema(f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	s := obj{
		"type":                 JSONObject,
		"description":          t.Name() + ": " + doc.Summary,
		"properties":           props,
		"additionalProperties": false,
	}
	if len(required) > 0 {
		s["required"] = required
	}
	var groups []any
	for _, g := range doc.OneOf {
		if g.Required {
			var alts []any
			for _, f := range g.Fields {
				alts = append(alts, obj{"required": []string{f}})
			}
			groups = append(groups, obj{"oneOf": alts})
			continue
		}
		for i := 0; i < len(g.Fields); i++ {
			for j := i + 1; j < len(g.Fields); j++ {
				groups = append(groups, obj{"not": obj{"required": []string{g.Fields[i], g.Fields[j]}}})
			}
		}
	}
	if len(groups) > 0 {
		s["allOf"] = groups
	}
	return s
}

// withFieldSchema is the schema of one `with` field.
func withFieldSchema(f nodes.Field) obj {
	base := catalogTypeSchema(f.Type)
	if len(f.Enum) > 0 {
		base["enum"] = f.Enum
	}
	if f.Positive {
		base["minimum"] = 1
	}
	desc := f.Doc
	if f.Default != "" {
		desc += " Default: " + f.Default + "."
	}
	var s obj
	if f.Static || len(base) == 0 || (f.Type == "string" && len(f.Enum) == 0) {
		s = base
	} else {
		s = obj{"anyOf": []any{base, obj{"type": JSONString, "pattern": exprPattern, "description": "a ${{ }} expression"}}}
	}
	s["description"] = desc
	return s
}

// catalogTypeSchema maps a nodes.Field type to a schema ({} = any value).
func catalogTypeSchema(t string) obj {
	switch t {
	case "string":
		return obj{"type": JSONString}
	case "integer":
		return obj{"type": JSONInteger}
	case "number":
		return obj{"type": JSONNumber}
	case "boolean":
		return obj{"type": JSONBoolean}
	case "duration":
		return obj{"type": JSONString, "pattern": durationPattern}
	case "bytes":
		return obj{"type": []string{JSONInteger, JSONString}, "minimum": 0, "pattern": sizePattern}
	case "list", "messages":
		return obj{"type": JSONArray}
	case "object":
		return obj{"type": JSONObject}
	case nodes.FieldTypes:
		return obj{"type": JSONObject, "additionalProperties": obj{"enum": allTypes}}
	}
	return obj{}
}
