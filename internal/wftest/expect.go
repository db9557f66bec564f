package wftest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"
)

// check compares a finished case with its expectations. Without an exit
// expectation the run must complete (exit 0).
func check(r *Result, runErr error, obs *observer) {
	e := &r.Case.Expect
	fail := func(pos Pos, format string, args ...any) {
		r.Failures = append(r.Failures, Failure{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	want, pos := 0, r.Case.Pos
	if e.Exit != nil {
		want, pos = *e.Exit, e.ExitPos
	}
	if r.Exit != want {
		msg := fmt.Sprintf("exit: expected %d, got %d", want, r.Exit)
		if runErr != nil {
			msg += " (" + runErr.Error() + ")"
		}
		fail(pos, "%s", msg)
	}
	state := jsonValue(r.State)
	sm, _ := state.(map[string]any)
	for _, se := range e.State {
		got, present := sm[se.Key]
		if msg := se.check(got, present); msg != "" {
			fail(se.Pos, "state.%s: %s", se.Key, msg)
		}
	}
	obs.mu.Lock()
	path := obs.path
	obs.mu.Unlock()
	if e.Path != nil && !slices.Equal(e.Path, path) {
		fail(e.PathPos, "path: expected [%s], got [%s]", strings.Join(e.Path, ", "), strings.Join(path, ", "))
	}
	for _, a := range e.Assert {
		ok, err := evalBool(a.Expr, sm, jsonValue(r.Case.Inputs))
		switch {
		case err != nil:
			fail(a.Pos, "assert %s: %v", a.Expr, err)
		case !ok:
			fail(a.Pos, "assert %s: false", a.Expr)
		}
	}
	for _, m := range e.MaxInFlight {
		if got := obs.maxInFlight(m.Node); got > m.Max {
			fail(m.Pos, "max_in_flight.%s: expected at most %d, got %d", m.Node, m.Max, got)
		}
	}
	slices.SortStableFunc(r.Failures, func(a, b Failure) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}

// check returns how got differs from the expectation ("" when it holds).
func (se *StateExpect) check(got any, present bool) string {
	if !present {
		return "expected a value, the key is not set"
	}
	want := jsonValue(se.Want)
	switch se.Op {
	case "len":
		n := -1
		switch g := got.(type) {
		case string:
			n = utf8.RuneCountInString(g)
		case []any:
			n = len(g)
		case map[string]any:
			n = len(g)
		}
		if n < 0 {
			return fmt.Sprintf("len: %s has no length", short(got))
		}
		if float64(n) != want {
			return fmt.Sprintf("len: expected %v, got %d", want, n)
		}
	case "contains":
		switch g := got.(type) {
		case string:
			if s, ok := want.(string); ok && strings.Contains(g, s) {
				return ""
			}
		case []any:
			for _, el := range g {
				if reflect.DeepEqual(el, want) {
					return ""
				}
			}
		case map[string]any:
			if s, ok := want.(string); ok {
				if _, ok := g[s]; ok {
					return ""
				}
			}
		}
		return fmt.Sprintf("contains: expected %s in %s", short(want), short(got))
	case "matches":
		re, err := regexp.Compile(se.Want.(string))
		if err != nil {
			return fmt.Sprintf("matches: %v", err)
		}
		s, ok := got.(string)
		if !ok {
			s = short(got)
		}
		if !re.MatchString(s) {
			return fmt.Sprintf("matches: %s does not match %s", short(got), se.Want)
		}
	default:
		if !reflect.DeepEqual(want, got) {
			return diff("", want, got)
		}
	}
	return ""
}

// jsonValue returns v as encoding/json would decode its JSON: the state
// and the YAML expectations compared on one footing (numbers float64).
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}

// diff names the first place where want and got differ.
func diff(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !wok:
				return fmt.Sprintf("%s.%s: not expected, got %s", path, k, short(gv))
			case !gok:
				return fmt.Sprintf("%s.%s: expected %s, missing", path, k, short(wv))
			case !reflect.DeepEqual(wv, gv):
				return diff(path+"."+k, wv, gv)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		for i := range min(len(w), len(g)) {
			if !reflect.DeepEqual(w[i], g[i]) {
				return diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])
			}
		}
		if len(w) != len(g) {
			return fmt.Sprintf("%sexpected %d items, got %d", prefix(path), len(w), len(g))
		}
	}
	return fmt.Sprintf("%sexpected %s, got %s", prefix(path), short(want), short(got))
}

// prefix renders a diff path as "a.b[1]: " ("" at the top).
func prefix(path string) string {
	if path == "" {
		return ""
	}
	return strings.TrimPrefix(path, ".") + ": "
}

// short is v as JSON for a message: <, > and & as themselves (a message
// is read by people, not pasted into HTML), cut at 200 bytes on a rune
// boundary so that the reports stay valid UTF-8.
func short(v any) string {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if len(s) > 200 {
		cut := 197
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return s[:cut] + "..."
	}
	return s
}

// evalBool evaluates an assertion with `state` and `inputs` in scope.
func evalBool(src string, state map[string]any, inputs any) (bool, error) {
	env := map[string]any{"state": state, "inputs": inputs}
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		return false, err
	}
	out, err := expr.Run(prog, env)
	if err != nil {
		return false, err
	}
	return out.(bool), nil
}
