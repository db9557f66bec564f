package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/internal/value"
	"github.com/lgx-run/lgx/nodes"
)

// nodeType checks a node's type and `with` fields against the catalog, and
// every expression in `with`.
func (v *validator) nodeType(n *Node, scope ExprScope, who string) {
	if n.Type == "" {
		v.checkValue(n.With, scope)
		return
	}
	t, ok := nodes.Lookup(n.Type)
	if !ok {
		names := nodes.Names()
		hint := didYouMean(n.Type, names)
		if hint == "" {
			hint = "`lgx nodes` lists the types: " + strings.Join(names, ", ")
		}
		v.errorf(n.TypePos, CodeUnknownType, hint, "%s: unknown node type %q", who, n.Type)
		v.checkValue(n.With, scope)
		return
	}
	doc := t.Doc()
	fields := map[string]*nodes.Field{}
	var fieldNames []string
	for i := range doc.With {
		fields[doc.With[i].Name] = &doc.With[i]
		fieldNames = append(fieldNames, doc.With[i].Name)
	}
	given := map[string]*yaml.Node{}
	givenKey := map[string]*yaml.Node{}
	badStatic := false // a static field was reported: Prepare would only repeat it
	for _, p := range withPairs(n.With) {
		name := resolveAlias(p.key).Value
		f, ok := fields[name]
		if !ok {
			hint := didYouMean(name, fieldNames)
			switch {
			case hint != "":
			case len(fieldNames) == 0:
				hint = fmt.Sprintf("%s takes no with fields (`lgx nodes %s`)", n.Type, n.Type)
			default:
				hint = fmt.Sprintf("%s takes: %s (`lgx nodes %s`)", n.Type, strings.Join(fieldNames, ", "), n.Type)
			}
			v.errorf(posOf(p.key), CodeUnknownField, hint, "%s: %s has no field %q", who, n.Type, name)
			v.checkValue(p.value, scope)
			continue
		}
		given[name] = resolveAlias(p.value)
		givenKey[name] = p.key
		if !v.withField(who, n.Type, f, resolveAlias(p.value), scope) && f.Static {
			badStatic = true
		}
	}
	missing := false
	for _, f := range doc.With {
		if f.Required && given[f.Name] == nil {
			missing = true
			v.errorf(n.TypePos, CodeMissingField, fmt.Sprintf("add `with: {%s: …}`", f.Name), "%s: %s needs the field %q", who, n.Type, f.Name)
		}
	}
	for _, g := range doc.OneOf {
		var set []string
		for _, f := range g.Fields {
			if given[f] != nil {
				set = append(set, f)
			}
		}
		switch {
		case len(set) > 1:
			v.errorf(posOf(givenKey[set[1]]), CodeOneOf, "keep one of them", "%s: give only one of %s (both %s and %s are set)", who, strings.Join(g.Fields, ", "), set[0], set[1])
		case len(set) == 0 && g.Required:
			missing = true
			v.errorf(n.TypePos, CodeMissingField, "", "%s: %s needs one of %s", who, n.Type, strings.Join(g.Fields, ", "))
		}
	}
	if p, ok := t.(nodes.Preparer); ok && !missing && !badStatic {
		v.prepare(p, who, doc, given)
	}
	// References to other declarations, as the type's capabilities name
	// the fields that hold them.
	caps := nodes.CapabilitiesOf(t)
	if caps.ProviderField != "" {
		v.providerRef(n, who, caps.ProviderField, given[caps.ProviderField])
	}
	if caps.ToolsField != "" {
		v.toolRefs(who, given[caps.ToolsField])
	}
	if caps.ChildField != "" {
		v.subgraphRef(who, given[caps.ChildField], given[caps.ChildInputField])
	}
	if caps.ServerField != "" {
		v.mcpCallRefs(who, given[caps.ServerField], given[caps.ServerToolField])
	}
}

// withPairs returns the pairs of a `with` mapping (none for nil).
func withPairs(n *yaml.Node) []pair {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	budget := MaxNodes
	ps, _ := mappingPairs(n, 0, &budget)
	return ps
}

// isExprString reports whether n is a string holding `${{`.
func isExprString(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.Contains(n.Value, "${{")
}

// withField checks one `with` value: a literal of the field's type, or an
// expression (compiled; its type is checked when it is known). false when
// it reported the value.
func (v *validator) withField(who, typ string, f *nodes.Field, val *yaml.Node, scope ExprScope) bool {
	if !f.Static && isExprString(val) {
		t := v.checkString(val, scope)
		if t != nil && !fieldAccepts(f.Type, t) {
			v.errorf(posOf(val), CodeFieldType, "", "%s: %s.%s is %s, but the expression gives %s", who, typ, f.Name, f.Type, kindName(t))
			return false
		}
		return true
	}
	if isNull(val) {
		return true
	}
	if f.Static || f.Type == nodes.FieldTypes {
		v.checkLiteral(val) // checkValue (below) walks only the others
	}
	if f.Type == nodes.FieldTypes && val.Kind == yaml.MappingNode {
		return v.typesField(who, typ, f, val)
	}
	if msg := literalMismatch(f, val); msg != "" {
		code := CodeFieldType
		switch f.Type {
		case "duration":
			code = CodeBadDuration
		case "bytes":
			code = CodeBadSize
		}
		hint := ""
		if len(f.Enum) > 0 && val.Kind == yaml.ScalarNode {
			hint = didYouMean(val.Value, f.Enum)
			if hint == "" {
				hint = "one of: " + strings.Join(f.Enum, ", ")
			}
		}
		v.errorf(posOf(val), code, hint, "%s: %s.%s %s", who, typ, f.Name, msg)
		return false
	}
	if !f.Static {
		v.checkValue(val, scope)
	}
	if f.Check != nil && !hasExpr(val, 0) {
		if lit, err := DecodeValue(val); err == nil {
			if msg := f.Check(lit); msg != "" {
				v.errorf(posOf(val), CodeBadValue, "", "%s: %s.%s %s", who, typ, f.Name, msg)
				return false
			}
		}
	}
	return true
}

// typesField checks a field of names and their state types
// (nodes.FieldTypes), reporting each type that is not one at its place.
func (v *validator) typesField(who, typ string, f *nodes.Field, val *yaml.Node) bool {
	ok := true
	budget := MaxNodes
	ps, _ := mappingPairs(val, 0, &budget)
	for _, p := range ps {
		name, t := resolveAlias(p.key).Value, resolveAlias(p.value)
		if t.Kind == yaml.ScalarNode && t.ShortTag() == "!!str" && contains(allTypes, t.Value) {
			continue
		}
		ok = false
		hint := "types: " + strings.Join(allTypes, ", ")
		if t.Kind == yaml.ScalarNode {
			hint = typeHint(t.Value)
		}
		v.errorf(posOf(t), CodeBadType, hint, "%s: %s.%s.%s: %s is not a type", who, typ, f.Name, name, describe(t))
	}
	return ok
}

// literalMismatch explains why a literal does not fit a field ("" when it
// does).
func literalMismatch(f *nodes.Field, n *yaml.Node) string {
	want := f.Type
	tag := n.ShortTag()
	scalar := n.Kind == yaml.ScalarNode
	bad := func() string { return fmt.Sprintf("must be %s, not %s", article(want), describe(n)) }
	switch want {
	case "string":
		if !scalar {
			return bad()
		}
	case "integer":
		if tag != "!!int" {
			return bad()
		}
		if i, err := strconv.ParseInt(n.Value, 0, 64); f.Positive && (err != nil || i < 1) {
			return fmt.Sprintf("must be at least 1, not %s", n.Value)
		}
	case "number":
		if tag != "!!int" && tag != "!!float" {
			return bad()
		}
	case "boolean":
		if tag != "!!bool" {
			return bad()
		}
	case "duration":
		if !scalar {
			return bad()
		}
		if _, err := ParseDuration(n.Value); err != nil {
			return fmt.Sprintf("is not a duration: %q (write e.g. 500ms, 10s, 2m)", n.Value)
		}
	case "bytes":
		if !scalar {
			return bad()
		}
		if _, err := sizeValue(n); err != nil {
			return fmt.Sprintf("is not a byte size: %q (write an integer or e.g. 512KB, 10MiB)", n.Value)
		}
	case "list", "messages":
		if n.Kind != yaml.SequenceNode {
			return bad()
		}
		if want == "messages" {
			// Which element is no message, and why, as for a state write.
			if lit, err := DecodeValue(n); err == nil && !exprMessage(lit) {
				if _, p := value.Fit(TypeMessages, lit); p != "" {
					return fmt.Sprintf("must be %s, not %s", article(want), article(p))
				}
			}
		}
	case "object", nodes.FieldTypes:
		if n.Kind != yaml.MappingNode {
			return fmt.Sprintf("must be an object, not %s", describe(n))
		}
	}
	if len(f.Enum) > 0 && scalar && !contains(f.Enum, n.Value) {
		return fmt.Sprintf("must be one of %s, not %q", strings.Join(f.Enum, ", "), n.Value)
	}
	return ""
}

func article(typ string) string {
	switch typ {
	case "integer", "object", "any":
		return "an " + typ
	case "messages":
		return "a list of messages"
	}
	return "a " + typ
}

// fieldAccepts reports whether an expression of type t may fill a field of
// the catalog type want. Only clear mismatches are rejected: a number for a
// list, a list for a boolean, …
func fieldAccepts(want string, t reflect.Type) bool {
	got := kindName(t)
	switch want {
	case "", "any", "string":
		return true // strings render anything
	case "integer", "number":
		return got == TypeInteger || got == TypeNumber
	case "duration", "bytes":
		return got == TypeString || got == TypeInteger || got == TypeNumber
	case "boolean":
		return got == TypeBoolean
	case "list", "messages":
		return got == TypeList
	case "object", nodes.FieldTypes:
		return got == TypeObject
	}
	return true
}

// templateLine finds "NAME:LINE:" or "NAME:LINE:COL:" in a Go template
// error.
var templateLine = regexp.MustCompile(`template: [^:]*:(\d+)(?::(\d+))?:`)

// prepare calls a type's Prepare with the literal values of its static
// fields, as a run would, and reports its error at the field it came from.
func (v *validator) prepare(p nodes.Preparer, who string, doc nodes.Doc, given map[string]*yaml.Node) {
	static := map[string]any{}
	var first *yaml.Node
	for _, f := range doc.With {
		n := given[f.Name]
		if !f.Static || n == nil {
			continue
		}
		val, err := DecodeValue(n)
		if err != nil {
			return
		}
		static[f.Name] = val
		if first == nil {
			first = n
		}
	}
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		_, err = p.Prepare(static)
		return err
	}()
	if err == nil {
		return
	}
	pos := Pos{}
	msg := err.Error()
	// Prefer the field the error names, then the first static field.
	at := first
	for name := range static {
		if strings.Contains(msg, name) && given[name] != nil {
			at = given[name]
		}
	}
	if at != nil {
		pos = posOf(at)
		if m := templateLine.FindStringSubmatch(msg); m != nil && at.Kind == yaml.ScalarNode {
			line, _ := strconv.Atoi(m[1])
			off := lineOffset(at.Value, line)
			if off >= len(at.Value) && off > 0 {
				// "unexpected EOF" is reported on the line after the last.
				off = lineOffset(at.Value, strings.Count(strings.TrimRight(at.Value, "\n"), "\n")+1)
			}
			if m[2] != "" {
				col, _ := strconv.Atoi(m[2])
				off += max(col-1, 0)
			}
			pos = ScalarPos(v.w, at, off)
		}
	}
	if pos == (Pos{}) {
		pos = Pos{Line: 1, Col: 1}
	}
	v.errorf(pos, CodeTemplate, "", "%s: %s", who, msg)
}

// lineOffset is the byte offset at which the 1-based line of s starts.
func lineOffset(s string, line int) int {
	off := 0
	for i := 1; i < line; i++ {
		j := strings.IndexByte(s[off:], '\n')
		if j < 0 {
			return off
		}
		off += j + 1
	}
	return off
}

// providerRef checks the provider a node names (p: the value of its
// provider field, nil when not given) against the declarations.
func (v *validator) providerRef(n *Node, who, field string, p *yaml.Node) {
	if p == nil {
		if _, ok := v.providers["default"]; !ok {
			v.errorf(n.TypePos, CodeUnknownProvider, "declare providers: {default: {kind: openai, model: …}} or set with."+field,
				"%s: %s uses provider \"default\", which is not declared", who, n.Type)
		}
	} else if p.Kind == yaml.ScalarNode && !isExprString(p) {
		if _, ok := v.providers[p.Value]; !ok {
			hint := didYouMean(p.Value, sortedKeys(v.providers))
			if hint == "" {
				hint = "declare it under `providers:`"
			}
			v.errorf(posOf(p), CodeUnknownProvider, hint, "%s: unknown provider %q", who, p.Value)
		}
	}
}

// toolRefs checks the literal names of a node's tools field (ts, nil when
// not given) against the declared tools and MCP servers.
func (v *validator) toolRefs(who string, ts *yaml.Node) {
	if ts != nil && ts.Kind == yaml.SequenceNode {
		for _, t := range ts.Content {
			t = resolveAlias(t)
			if t.Kind != yaml.ScalarNode || isExprString(t) {
				continue
			}
			if _, ok := v.tools[t.Value]; !ok && !v.mcpToolRef(t, who) {
				hint := didYouMean(t.Value, sortedKeys(v.tools))
				if hint == "" {
					hint = "declare it under `tools:`"
				}
				v.errorf(posOf(t), CodeUnknownTool, hint, "%s: unknown tool %q", who, t.Value)
			}
		}
	}
}

// subgraphRef checks that a literal child workflow path exists (relative
// to this file) and that the keys of a literal `input` mapping are state
// keys of the child. The child is loaded, not validated: `lgx validate` on
// the child file does that, and loading cannot recurse.
func (v *validator) subgraphRef(who string, n, input *yaml.Node) {
	if n == nil || n.Kind != yaml.ScalarNode || v.w.File == "" || n.Value == "" {
		return
	}
	path := n.Value
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(v.w.File), path)
	}
	data, err := v.read(path)
	var child *Workflow
	var ds Diagnostics
	if err == nil {
		child, ds = Load(path, data)
	}
	if err != nil {
		v.errorf(posOf(n), CodeBadValue, "the path is relative to this workflow file", "%s: child workflow %s: %v", who, n.Value, unwrapPathError(err))
		return
	}
	if ds.HasErrors() || child == nil {
		v.errorf(posOf(n), CodeBadValue, "run lgx validate "+path, "%s: child workflow %s is invalid: %s", who, n.Value, ds.Errors()[0].Message)
		return
	}
	if input == nil || input.Kind != yaml.MappingNode {
		return
	}
	keys := stateNames(child)
	for i := 0; i+1 < len(input.Content); i += 2 {
		k := resolveAlias(input.Content[i])
		if !contains(keys, k.Value) {
			hint := didYouMean(k.Value, keys)
			if hint == "" {
				hint = "its state keys: " + strings.Join(keys, ", ")
			}
			v.errorf(posOf(k), CodeUnknownState, hint, "%s: child workflow %s has no state key %q", who, n.Value, k.Value)
		}
	}
}

// unwrapPathError drops the path of an *os.PathError (the message names it
// already).
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
