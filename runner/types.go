package runner

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/lgx-run/lgx/spec"
)

// typeName names a value's type in the vocabulary of state types.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return spec.TypeString
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return spec.TypeInteger
	case float32, float64, json.Number:
		return spec.TypeNumber
	case bool:
		return spec.TypeBoolean
	case []any:
		return spec.TypeList
	case map[string]any:
		return spec.TypeObject
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return spec.TypeList
	case reflect.Map, reflect.Struct:
		return spec.TypeObject
	}
	return fmt.Sprintf("%T", v)
}

// normalize turns the JSON-like values that node types and expressions
// produce into the runner's canonical forms: int for integers, float64 for
// other numbers, []any and map[string]any for lists and objects.
func normalize(v any) any {
	switch x := v.(type) {
	case nil, string, int, float64, bool, []any, map[string]any:
		return v
	case int64:
		return int(x)
	case int32:
		return int(x)
	case int16:
		return int(x)
	case int8:
		return int(x)
	case uint:
		return int(x)
	case uint8:
		return int(x)
	case uint16:
		return int(x)
	case uint32:
		return int(x)
	case uint64:
		return int(x)
	case float32:
		return float64(x)
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if i, err := x.Int64(); err == nil {
				return int(i)
			}
		}
		f, _ := x.Float64()
		return f
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []map[string]any:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			out := make(map[string]any, rv.Len())
			it := rv.MapRange()
			for it.Next() {
				out[it.Key().String()] = normalize(it.Value().Interface())
			}
			return out
		}
	}
	return v
}

// fitType checks that v fits a key of type typ and returns it normalised:
// an integral float64 becomes int for an integer key and an int becomes
// float64 for a number key. It returns "" and the fitted value, or the
// actual type name when v does not fit.
func fitType(typ string, v any) (any, string) {
	v = normalize(v)
	if v == nil {
		return nil, ""
	}
	switch typ {
	case spec.TypeAny, "":
		return v, ""
	case spec.TypeString:
		if _, ok := v.(string); ok {
			return v, ""
		}
	case spec.TypeInteger:
		switch x := v.(type) {
		case int:
			return v, ""
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return int(x), ""
			}
		}
	case spec.TypeNumber:
		switch x := v.(type) {
		case float64:
			return v, ""
		case int:
			return float64(x), ""
		}
	case spec.TypeBoolean:
		if _, ok := v.(bool); ok {
			return v, ""
		}
	case spec.TypeList:
		if _, ok := v.([]any); ok {
			return v, ""
		}
	case spec.TypeObject:
		if _, ok := v.(map[string]any); ok {
			return v, ""
		}
	case spec.TypeMessages:
		if l, ok := v.([]any); ok {
			for _, m := range l {
				if _, ok := m.(map[string]any); !ok {
					return nil, "list with a " + typeName(m) + " element"
				}
			}
			return v, ""
		}
	}
	return nil, typeName(v)
}

// fitWrite checks a write against its key: for append and union keys any
// element (or list) fits; for messages a message object or a list of them;
// for the others the write must fit the key's type.
func fitWrite(k *keyInfo, v any) (any, string) {
	switch k.reducerName {
	case spec.ReducerAppend, spec.ReducerUnion:
		if k.typ == spec.TypeList || k.typ == spec.TypeAny {
			return normalize(v), ""
		}
	case spec.ReducerMessages:
		v = normalize(v)
		if m, ok := v.(map[string]any); ok {
			return m, ""
		}
		return fitType(spec.TypeMessages, v)
	}
	return fitType(k.typ, v)
}

// expectedType describes what fitWrite accepts, for error messages.
func expectedType(k *keyInfo) string {
	switch k.reducerName {
	case spec.ReducerAppend, spec.ReducerUnion:
		if k.typ == spec.TypeList {
			return "list or list element"
		}
	case spec.ReducerMessages:
		return "message or list of messages"
	}
	return k.typ
}
