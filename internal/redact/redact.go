// Package redact replaces secret values by `***` in everything lgx prints,
// streams or stores (SPEC §8, §9.7): strings, the keys and strings of JSON
// values, errors, and streamed text (Stream). A secret is found in each of
// the encoded forms it takes on its way out of the process (see Forms).
package redact

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Mask replaces every form of every secret.
const Mask = "***"

// Redactor replaces the forms of a set of secrets. A nil *Redactor (no
// secrets) returns its input unchanged without allocating, so the common
// run with no secrets pays nothing. A Redactor is safe for concurrent use.
type Redactor struct {
	forms []string // every form of every secret, longest first, unique
	// byFirst indexes forms (longest first) by their first byte.
	byFirst [256][]string
	// pairs has bit a<<8|b set when some form starts with bytes a, b; single
	// marks the bytes that are whole forms. Together they let the scan skip
	// almost every position of text that holds no secret with one load.
	pairs  [1 << 16 / 64]uint64
	single [256]bool
}

// New returns a Redactor for secrets, or nil when none is non-empty.
// Forms are matched longest first, so that a secret containing another (or
// a form of one containing a form of another) is replaced whole.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		for _, f := range Forms(s) {
			if !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	if len(forms) == 0 {
		return nil
	}
	// At each position the scan takes the first form that matches: longest
	// first makes that the longest match. Ties are broken by text so that
	// the order, and so the result, is stable.
	slices.SortFunc(forms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	rd := &Redactor{forms: forms}
	for _, f := range forms {
		rd.byFirst[f[0]] = append(rd.byFirst[f[0]], f)
		if len(f) == 1 {
			rd.single[f[0]] = true
		} else {
			k := uint16(f[0])<<8 | uint16(f[1])
			rd.pairs[k>>6] |= 1 << (k & 63)
		}
	}
	return rd
}

// Active reports whether rd has any secret to replace.
func (rd *Redactor) Active() bool { return rd != nil }

// String returns s with every form of every secret replaced by Mask.
func (rd *Redactor) String(s string) string {
	if rd == nil || s == "" {
		return s
	}
	out, _ := rd.scan(s, true)
	return out
}

// Error returns err with its message redacted: err itself when nothing
// changes, else an error whose Error() is the redacted message and which
// unwraps to err (errors.Is and errors.As still see the original).
func (rd *Redactor) Error(err error) error {
	if rd == nil || err == nil {
		return err
	}
	msg := err.Error()
	if red := rd.String(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Value returns v with every string it holds redacted, object keys
// included; v itself is never modified (containers that change are copied,
// the rest shared). Values are the runner's JSON-like forms (string, []any,
// map[string]any, numbers, bool, nil, []string, map[string]string); any
// other type that holds a secret is returned as its redacted JSON form
// decoded into those.
func (rd *Redactor) Value(v any) any {
	if rd == nil {
		return v
	}
	out, _ := rd.walk(v)
	return out
}

func (rd *Redactor) walk(v any) (any, bool) {
	switch x := v.(type) {
	case nil, bool, int, int64, float64, json.Number:
		return v, false
	case string:
		s := rd.String(x)
		return s, s != x
	case []any:
		var out []any
		for i, e := range x {
			ne, changed := rd.walk(e)
			if changed && out == nil {
				out = slices.Clone(x)
			}
			if out != nil {
				out[i] = ne
			}
		}
		if out != nil {
			return out, true
		}
		return v, false
	case map[string]any:
		return rd.walkMap(x)
	case []string:
		var out []string
		for i, e := range x {
			ne := rd.String(e)
			if ne != e && out == nil {
				out = slices.Clone(x)
			}
			if out != nil {
				out[i] = ne
			}
		}
		if out != nil {
			return out, true
		}
		return v, false
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = e
		}
		if out, changed := rd.walkMap(m); changed {
			return out, true
		}
		return v, false
	}
	// An unusual type: redact its JSON form.
	b, err := json.Marshal(v)
	if err != nil {
		return v, false
	}
	red := rd.String(string(b))
	if red == string(b) {
		return v, false
	}
	var out any
	if err := json.Unmarshal([]byte(red), &out); err != nil {
		return Mask, true
	}
	return out, true
}

// walkMap redacts a map's values and keys. Keys that redact to the same
// text (two secrets, or a secret and a literal `***`) are kept apart with a
// `#2`, `#3`… suffix, assigned in the order of the original keys so that
// the result does not depend on map iteration order.
func (rd *Redactor) walkMap(x map[string]any) (any, bool) {
	var out map[string]any
	var renamed []string // original keys whose text changes
	clone := func() {
		if out == nil {
			out = make(map[string]any, len(x))
			for k, e := range x {
				out[k] = e
			}
		}
	}
	for k, e := range x {
		if rk := rd.String(k); rk != k {
			renamed = append(renamed, k)
		}
		if ne, changed := rd.walk(e); changed {
			clone()
			out[k] = ne
		}
	}
	if len(renamed) > 0 {
		clone()
		sort.Strings(renamed)
		vals := make([]any, len(renamed))
		for i, k := range renamed {
			vals[i] = out[k]
			delete(out, k)
		}
		for i, k := range renamed {
			rk := rd.String(k)
			name := rk
			for n := 2; ; n++ {
				if _, taken := out[name]; !taken {
					break
				}
				name = rk + "#" + strconv.Itoa(n)
			}
			out[name] = vals[i]
		}
	}
	if out != nil {
		return out, true
	}
	return x, false
}
