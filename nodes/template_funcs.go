package nodes

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// boundedFuncs returns the template functions of one execution, bound to b
// (SPEC §9.6). Every function ticks b (so loops stop at the deadline) and
// counts the value it returns; the functions whose output size is chosen by
// an argument are replaced by versions that refuse before allocating.
func boundedFuncs(b *Budget, owned ownedMaps) template.FuncMap {
	fm := TemplateFuncs()
	for name, fn := range ownedFuncs(owned) {
		fm[name] = fn
	}
	for name, fn := range fm {
		fm[name] = wrapFunc(fn, b)
	}
	for name, fn := range generatorFuncs(b) {
		fm[name] = fn
	}
	return fm
}

// BoundedTemplateFuncs lists the functions replaced by versions that check
// the budget before allocating (for the docs and tests).
func BoundedTemplateFuncs() []string {
	var names []string
	for name := range generatorFuncs(&Budget{}) {
		names = append(names, name)
	}
	return names
}

// wrapFunc ticks the budget before calling fn and counts the value it
// returns. A refusal panics with the *Error: text/template turns a panic in
// a function into an execution error that wraps it.
func wrapFunc(fn any, b *Budget) any {
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.Kind() != reflect.Func {
		return fn
	}
	return reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		if err := b.Check(); err != nil {
			panic(err)
		}
		var out []reflect.Value
		if t.IsVariadic() {
			out = v.CallSlice(args)
		} else {
			out = v.Call(args)
		}
		if len(out) > 0 && out[0].IsValid() && out[0].CanInterface() {
			must(charge(b, out[0].Interface()))
		}
		return out
	}).Interface()
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// charge counts a value a function built. Every value counts, small ones
// too: the budget bounds what an execution builds, so a loop that keeps
// building values (doubling a string, appending to a list) soon runs out.
func charge(b *Budget, v any) error {
	return b.Reserve(ValueSize(v, b.Remaining()+1))
}

// ValueSize estimates the bytes v holds, as in memory: a string its length,
// a number 8, each list element or map entry 16 more. Shared references
// count every time they are reached (they are printed every time), and the
// walk stops once the size passes limit, so a cyclic or exponentially
// shared value costs at most limit steps.
func ValueSize(v any, limit int64) int64 {
	var n int64
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		if n > limit {
			return
		}
		if depth > 10000 {
			n = limit + 1 // deeper than anything printable stays printable
			return
		}
		switch v.Kind() {
		case reflect.Invalid:
			n += 8
		case reflect.Interface, reflect.Pointer:
			if v.IsNil() {
				n += 8
				return
			}
			walk(v.Elem(), depth+1)
		case reflect.String:
			n += int64(v.Len())
		case reflect.Slice, reflect.Array:
			if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
				n += int64(v.Len())
				return
			}
			n += 16
			if k := v.Type().Elem().Kind(); k != reflect.Interface && k <= reflect.Complex128 {
				n += int64(v.Len()) * 24 // scalars: no walk
				return
			}
			for i := 0; i < v.Len() && n <= limit; i++ {
				n += 16
				walk(v.Index(i), depth+1)
			}
		case reflect.Map:
			n += 48
			it := v.MapRange()
			for it.Next() && n <= limit {
				n += 16
				walk(it.Key(), depth+1)
				walk(it.Value(), depth+1)
			}
		default:
			n += 8
		}
	}
	walk(reflect.ValueOf(v), 0)
	return n
}

// mulSize is a*b, or -1 (never fits) on overflow or a negative factor.
func mulSize(a, b int64) int64 {
	if a < 0 || b < 0 {
		return -1
	}
	if a != 0 && b > math.MaxInt64/a {
		return -1
	}
	return a * b
}

// rangeLen is the length of sprig's untilStep(start, stop, step), or -1 when
// it is endless or overflows.
func rangeLen(start, stop, step int) int64 {
	switch {
	case step == 0:
		if start == stop {
			return 0
		}
		return -1 // sprig would loop forever
	case stop < start && step > 0, stop > start && step < 0:
		return 0
	}
	d := absDiff(stop, start)
	if d < 0 {
		return -1
	}
	s := int64(step)
	if s < 0 {
		s = -s
	}
	return (d + s - 1) / s
}

// absDiff is |a-b|, or -1 when it does not fit int64.
func absDiff(a, b int) int64 {
	x, y := int64(a), int64(b)
	if x < y {
		x, y = y, x
	}
	if y < 0 && x > math.MaxInt64+y {
		return -1
	}
	return x - y
}

// generatorFuncs are the functions whose output size an argument chooses,
// each checking the budget before it allocates.
func generatorFuncs(b *Budget) template.FuncMap {
	sp := sprig.HermeticTxtFuncMap()
	untilStep := sp["untilStep"].(func(int, int, int) []int)
	seq := sp["seq"].(func(...int) string)
	wrapWith := sp["wrapWith"].(func(int, string, string) string)
	return template.FuncMap{
		"until": func(n int) ([]int, error) {
			step := 1
			if n < 0 {
				step = -1
			}
			if err := b.Reserve(mulSize(rangeLen(0, n, step), 24)); err != nil {
				return nil, err
			}
			return untilStep(0, n, step), nil
		},
		"untilStep": func(start, stop, step int) ([]int, error) {
			if err := b.Reserve(mulSize(rangeLen(start, stop, step), 24)); err != nil {
				return nil, err
			}
			return untilStep(start, stop, step), nil
		},
		"seq": func(params ...int) (string, error) {
			var n int64
			switch len(params) {
			case 1:
				n = rangeLen(1, params[0], sign(params[0]-1))
			case 2:
				n = rangeLen(params[0], params[1], sign(params[1]-params[0]))
			case 3:
				n = rangeLen(params[0], params[2], params[1])
			}
			if err := b.Reserve(mulSize(n+1, 21)); err != nil { // 20 digits and a blank each
				return "", err
			}
			return seq(params...), nil
		},
		"repeat": func(count int, str string) (string, error) {
			if count < 0 {
				return "", fmt.Errorf("repeat: negative count %d", count)
			}
			if err := b.Reserve(mulSize(int64(count), int64(len(str)))); err != nil {
				return "", err
			}
			return strings.Repeat(str, count), nil
		},
		"indent": func(spaces int, v string) (string, error) {
			return indent(b, spaces, v, "")
		},
		"nindent": func(spaces int, v string) (string, error) {
			return indent(b, spaces, v, "\n")
		},
		"replace": func(old, new, src string) (string, error) {
			n := int64(strings.Count(src, old))
			if grow := int64(len(new) - len(old)); grow > 0 {
				if err := b.Reserve(addSize(int64(len(src)), mulSize(n, grow))); err != nil {
					return "", err
				}
			}
			return strings.ReplaceAll(src, old, new), nil
		},
		"wrapWith": func(l int, sep, str string) (string, error) {
			breaks := int64(len(str))/int64(max(l, 1)) + int64(strings.Count(str, " ")) + 1
			if err := b.Reserve(addSize(int64(len(str)), mulSize(breaks, int64(len(sep))))); err != nil {
				return "", err
			}
			return wrapWith(l, sep, str), nil
		},
		"regexReplaceAll":            regexReplace(b, false, false),
		"mustRegexReplaceAll":        regexReplace(b, false, true),
		"regexReplaceAllLiteral":     regexReplace(b, true, false),
		"mustRegexReplaceAllLiteral": regexReplace(b, true, true),
		"printf":                     func(format string, args ...any) (string, error) { return printf(b, format, args) },
		"print":                      func(args ...any) (string, error) { return sprint(b, fmt.Sprint, args) },
		"println":                    func(args ...any) (string, error) { return sprint(b, fmt.Sprintln, args) },
		"toPrettyJson":               func(v any) (string, error) { return prettyJSON(b, v) },
		"mustToPrettyJson":           func(v any) (string, error) { return prettyJSON(b, v) },
	}
}

func sign(n int) int {
	if n < 0 {
		return -1
	}
	return 1
}

// addSize is a+b, or -1 when either is -1 or the sum overflows.
func addSize(a, b int64) int64 {
	if a < 0 || b < 0 || a > math.MaxInt64-b {
		return -1
	}
	return a + b
}

func indent(b *Budget, spaces int, v, prefix string) (string, error) {
	if spaces < 0 {
		return "", fmt.Errorf("indent: negative count %d", spaces)
	}
	lines := int64(strings.Count(v, "\n")) + 1
	if err := b.Reserve(addSize(int64(len(v)+len(prefix)), mulSize(lines, int64(spaces)))); err != nil {
		return "", err
	}
	pad := strings.Repeat(" ", spaces)
	return prefix + pad + strings.ReplaceAll(v, "\n", "\n"+pad), nil
}

// regexReplace is sprig's regexReplaceAll(+Literal): the output is bounded
// by the input plus, per match, the replacement with every `$` reference
// expanded to at most the longest match.
func regexReplace(b *Budget, literal, mustForm bool) func(regex, s, repl string) (string, error) {
	return func(regex, s, repl string) (string, error) {
		r, err := regexp.Compile(regex)
		if err != nil {
			if mustForm {
				return "", err
			}
			panic(err) // sprig's non-must form panics too; text/template reports it
		}
		matches := r.FindAllStringIndex(s, -1)
		longest := 0
		for _, m := range matches {
			longest = max(longest, m[1]-m[0])
		}
		per := int64(len(repl))
		if !literal {
			per = addSize(per, mulSize(int64(strings.Count(repl, "$")), int64(longest)))
		}
		if err := b.Reserve(addSize(int64(len(s)), mulSize(int64(len(matches)), per))); err != nil {
			return "", err
		}
		if literal {
			return r.ReplaceAllLiteralString(s, repl), nil
		}
		return r.ReplaceAllString(s, repl), nil
	}
}

// printf bounds fmt.Sprintf: each verb prints at most its width (fmt caps
// widths and precisions at 1e6) plus the largest argument (an explicit
// index like %[1]s can print one argument many times).
func printf(b *Budget, format string, args []any) (string, error) {
	var largest int64
	for _, a := range args {
		largest = max(largest, ValueSize(a, b.Remaining()+1))
	}
	verbs := int64(strings.Count(format, "%"))
	var widths int64
	for _, f := range strings.FieldsFunc(format, func(r rune) bool { return r < '0' || r > '9' }) {
		w := int64(1e6 + 1)
		if len(f) < 7 {
			fmt.Sscan(f, &w)
		}
		widths += min(w, 1e6+1)
	}
	est := addSize(addSize(int64(len(format)), widths), mulSize(verbs, mulSize(largest, 2)))
	if err := b.Fits(est); err != nil {
		return "", err
	}
	s := fmt.Sprintf(format, args...)
	return s, charge(b, s)
}

func sprint(b *Budget, f func(...any) string, args []any) (string, error) {
	var total int64
	for _, a := range args {
		total = addSize(total, mulSize(ValueSize(a, b.Remaining()+1), 2))
	}
	if err := b.Fits(total); err != nil {
		return "", err
	}
	s := f(args...)
	return s, charge(b, s)
}

// prettyJSON bounds indentation: each element may be indented by two
// blanks per level of nesting.
func prettyJSON(b *Budget, v any) (string, error) {
	size := ValueSize(v, b.Remaining()+1)
	depth := int64(nesting(v, 0))
	if err := b.Fits(mulSize(size, addSize(6, mulSize(depth, 2)))); err != nil {
		return "", err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	s := string(out)
	return s, charge(b, s)
}

// nesting is how deeply lists and objects nest in v (capped).
func nesting(v any, depth int) int {
	if depth > 1000 {
		return depth
	}
	deepest := depth
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			deepest = max(deepest, nesting(e, depth+1))
		}
	case map[string]any:
		for _, e := range x {
			deepest = max(deepest, nesting(e, depth+1))
		}
	}
	return deepest
}
