// Package value is lgx's one model of values: what a state value, an input, a
// node result or a recorded write is once decoded, how numbers are normalised,
// how types are named in messages, and whether a value fits a declared state
// type. Inputs, nodes, templates, the runner and resume all go through it, so a
// number read from a flag, a response body, a rendered template or a stored
// checkpoint comes out the same.
//
// The canonical forms are nil, string, bool, int (an integer written as one:
// no fraction, no exponent, within int range), float64 (every other number),
// []any and map[string]any. int is 64 bits on every platform lgx ships for.
//
// It imports no lgx package: spec, runner, nodes and cmd/lgx all import it.
package value

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// State key types (SPEC §2). This is the one declaration of the type names;
// spec re-exports them for the workflow format.
const (
	TypeString   = "string"
	TypeNumber   = "number"
	TypeInteger  = "integer"
	TypeBoolean  = "boolean"
	TypeList     = "list"
	TypeObject   = "object"
	TypeMessages = "messages"
	TypeAny      = "any"
)

var types = []string{TypeString, TypeNumber, TypeInteger, TypeBoolean, TypeList, TypeObject, TypeMessages, TypeAny}

// Types returns every state key type, in the order SPEC §2 lists them.
func Types() []string { return slices.Clone(types) }

// TypeName names v's type in the vocabulary of state types, for messages
// ("expected integer, got string"). null is "null"; a Go value outside the
// model is named by its Go type.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return TypeString
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return TypeInteger
	case float32, float64, json.Number:
		return TypeNumber
	case bool:
		return TypeBoolean
	case []any:
		return TypeList
	case map[string]any:
		return TypeObject
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return TypeList
	case reflect.Map, reflect.Struct:
		return TypeObject
	}
	return fmt.Sprintf("%T", v)
}

// goTypeWords finds the Go type names expr-lang's run-time messages carry
// ("interface {} is nil, not string", "mismatched types string and
// <nil>"), longest first so that "map[string]interface {}" is one match.
var goTypeWords = regexp.MustCompile(`map\[string\]interface \{\}|\[\]interface \{\}|interface \{\}|<nil>|\bnil\b|\bu?int(8|16|32|64)?\b|\bfloat(32|64)\b|\bbool\b|\bjson\.Number\b`)

// GoTypeNames rewrites the Go type names in msg (a message from a library
// that names Go types, like expr-lang's run-time errors) into the names of
// TypeName: "<nil>" and "nil" become null, "float64" number,
// "map[string]interface {}" object, and so on. A word that names a field
// or key ("cannot fetch int from …", `"bool"`) is the user's, not a type,
// and is left alone.
func GoTypeNames(msg string) string {
	var b strings.Builder
	last := 0
	for _, m := range goTypeWords.FindAllStringIndex(msg, -1) {
		w := msg[m[0]:m[1]]
		before := msg[:m[0]]
		if strings.HasSuffix(before, "fetch ") || strings.HasSuffix(before, "field ") ||
			strings.HasSuffix(before, "key ") || strings.HasSuffix(before, "method ") ||
			strings.HasSuffix(before, `"`) || strings.HasSuffix(before, "'") || strings.HasSuffix(before, ".") {
			continue
		}
		b.WriteString(msg[last:m[0]])
		b.WriteString(goTypeName(w))
		last = m[1]
	}
	if last == 0 {
		return msg
	}
	b.WriteString(msg[last:])
	return b.String()
}

// goTypeName is TypeName's name for the Go type name w.
func goTypeName(w string) string {
	switch {
	case w == "map[string]interface {}":
		return TypeObject
	case w == "[]interface {}":
		return TypeList
	case w == "interface {}":
		return TypeAny
	case w == "<nil>" || w == "nil":
		return "null"
	case w == "bool":
		return TypeBoolean
	case strings.HasPrefix(w, "float") || w == "json.Number":
		return TypeNumber
	}
	return TypeInteger
}
