package runner

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr/file"

	"github.com/lgx-run/lgx/spec"
)

// Every written value is JSON (SPEC §9.6): state is recorded as JSON, so a
// value JSON cannot hold would be lost between the write and its record
// (stored as null, or failing a checkpoint that names no node). jsonValue
// finds such values at the write, where the node, item, key and the
// output's position are known.

// maxJSONDepth bounds the walk; deeper values are refused rather than
// overflowing the stack (decoded JSON and YAML values are far shallower).
const maxJSONDepth = 10_000

// jsonProblem is a value JSON cannot hold: what it is, and where inside the
// written value (segments innermost first, added as the walk unwinds, so
// that the common case builds no path).
type jsonProblem struct {
	what string
	hint string
	path []string
}

func (p *jsonProblem) String() string {
	s := p.what
	if len(p.path) > 0 {
		var b strings.Builder
		for i := len(p.path) - 1; i >= 0; i-- {
			b.WriteString(p.path[i])
		}
		s += " at " + b.String()
	}
	if p.hint != "" {
		s += " (" + p.hint + ")"
	}
	return s
}

// jsonValue checks that v is a JSON value and returns it in the runner's
// canonical form. Maps whose keys are strings held in interface values
// (expr's groupBy and fromPairs build map[any]…) become map[string]any;
// anything else JSON cannot hold (NaN, ±Inf, a map with a non-string key,
// a Go value of another kind) is a problem, described with where it is
// inside v ("" when v is fine). Containers are copied only where something
// changes, so the common case allocates nothing.
func jsonValue(v any) (any, string) {
	out, _, p := jsonWalk(v, 0)
	if p != nil {
		return nil, p.String()
	}
	return out, ""
}

// jsonWalk returns the canonical value, whether it differs from v, and the
// problem found.
func jsonWalk(v any, depth int) (any, bool, *jsonProblem) {
	if depth > maxJSONDepth {
		return nil, false, &jsonProblem{what: "a value nested deeper than " + strconv.Itoa(maxJSONDepth) + " levels"}
	}
	switch x := v.(type) {
	case nil, string, bool, int:
		return v, false, nil
	case float64:
		switch {
		case math.IsNaN(x):
			return nil, false, &jsonProblem{what: "NaN", hint: "JSON has no NaN: check for 0/0 or arithmetic on a missing number"}
		case math.IsInf(x, 0):
			what := "+Inf"
			if x < 0 {
				what = "-Inf"
			}
			return nil, false, &jsonProblem{what: what, hint: "JSON has no infinity: check for a division by zero"}
		}
		return v, false, nil
	case []any:
		out, p := jsonList(x, depth)
		if out == nil {
			return v, false, p // v, not x: no new interface value
		}
		return out, true, p
	case map[string]any:
		return jsonObject(x, depth)
	case spec.ExprRun:
		// `run` is a struct in the expression environment so that the
		// checker knows its fields; written out, it is the object the SPEC
		// names (§3.1: run is {id, step, workflow}).
		return map[string]any{"id": x.ID, "step": x.Step, "workflow": x.Workflow}, true, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		return jsonMap(rv, depth)
	case reflect.Slice, reflect.Array:
		l := make([]any, rv.Len())
		for i := range l {
			l[i] = rv.Index(i).Interface()
		}
		out, p := jsonList(l, depth)
		if out == nil {
			out = l
		}
		return out, true, p
	}
	if n := normalize(v); reflect.TypeOf(n) != reflect.TypeOf(v) {
		out, _, p := jsonWalk(n, depth)
		return out, true, p
	}
	return nil, false, &jsonProblem{what: fmt.Sprintf("a value of Go type %T", v)}
}

// jsonList returns the canonical copy of x, or nil when x is canonical.
func jsonList(x []any, depth int) ([]any, *jsonProblem) {
	var out []any
	for i, e := range x {
		ne, changed, p := jsonWalk(e, depth+1)
		if p != nil {
			p.path = append(p.path, "["+strconv.Itoa(i)+"]")
			return nil, p
		}
		if changed {
			if out == nil {
				out = slices.Clone(x)
			}
			out[i] = ne
		}
	}
	return out, nil
}

func jsonObject(x map[string]any, depth int) (any, bool, *jsonProblem) {
	var out map[string]any
	for k, e := range x {
		ne, changed, p := jsonWalk(e, depth+1)
		if p != nil {
			return nil, false, firstObjectProblem(x, depth)
		}
		if changed {
			if out == nil {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			out[k] = ne
		}
	}
	if out != nil {
		return out, true, nil
	}
	return x, false, nil
}

// firstObjectProblem reports the problem under the first key in sorted
// order, so that the message does not depend on map iteration order.
func firstObjectProblem(x map[string]any, depth int) *jsonProblem {
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, _, p := jsonWalk(x[k], depth+1); p != nil {
			p.path = append(p.path, keySegment(k))
			return p
		}
	}
	return &jsonProblem{what: "an object that is not JSON"} // not reached: some key had a problem
}

// jsonMap converts a Go map of another type: its keys must be strings
// (possibly held in interface values).
func jsonMap(rv reflect.Value, depth int) (any, bool, *jsonProblem) {
	out := make(map[string]any, rv.Len())
	var bad []string
	it := rv.MapRange()
	for it.Next() {
		k := it.Key()
		for k.Kind() == reflect.Interface && !k.IsNil() {
			k = k.Elem()
		}
		if k.Kind() != reflect.String {
			kv := "null"
			if k.IsValid() && k.Kind() != reflect.Interface {
				kv = fmt.Sprintf("%v (%s)", k.Interface(), typeName(k.Interface()))
			}
			bad = append(bad, kv)
			continue
		}
		out[k.String()] = it.Value().Interface()
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return nil, false, &jsonProblem{what: "an object with the non-string key " + bad[0],
			hint: "JSON object keys are strings: convert them, e.g. groupBy(list, string(#.n))"}
	}
	v, _, p := jsonObject(out, depth)
	return v, true, p
}

// keySegment is the path segment of an object key: .name, or ["odd key"].
func keySegment(k string) string {
	if k != "" && !strings.ContainsAny(k, ".[]\"' \t\n") {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

// outputPos is "file:line:col" of a node's i-th output value (of its key
// when the value has no position of its own).
func (r *run) outputPos(n *node, i int) string {
	file := r.g.wf.File
	if n.spec == nil || i >= len(n.spec.Output) {
		return file
	}
	o := n.spec.Output[i]
	line, col := o.Pos.Line, o.Pos.Col
	if v := o.Tree; v != nil && v.At.Line > 0 {
		line, col = v.At.Line, v.At.Col
	}
	return fmt.Sprintf("%s:%d:%d", file, line, col)
}

// mapKeyConversion is how expr fails to build a map whose computed key is
// not a string ({(state.n): 'x'}): a Go interface conversion.
var mapKeyConversion = regexp.MustCompile(`interface conversion: interface \{\} is ([\w.]+), not string`)

// nonStringKey reports an error of expression v that is a map literal's
// computed key that is not a string, with the key's type in lgx's words.
// Only an expression with such a key can fail so: the same conversion
// error from another cause (a string function given a number) stays an
// expression error.
func nonStringKey(v cval, err error) (string, bool) {
	if p, ok := v.(*progVal); !ok || !p.computedKeys {
		return "", false
	}
	msg := err.Error()
	if fe := (*file.Error)(nil); errors.As(err, &fe) {
		msg = fe.Message // not exprRunError's rewording
	}
	m := mapKeyConversion.FindStringSubmatch(msg)
	if m == nil {
		return "", false
	}
	switch m[1] {
	case "int", "int64", "uint", "uint64", "int32":
		return "an integer", true
	case "float64", "float32":
		return "a number", true
	case "bool":
		return "a boolean", true
	case "nil":
		return "null", true
	}
	return "a " + m[1], true
}
