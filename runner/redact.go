package runner

import (
	"slices"
	"strings"
)

// redactor replaces declared secret values by `***` in text and values
// (SPEC §8). The zero redactor (no secrets) returns its input unchanged.
type redactor struct {
	r *strings.Replacer
}

func newRedactor(secrets []string) redactor {
	var pairs []string
	vals := slices.Clone(secrets)
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	for _, s := range slices.Compact(vals) {
		if s != "" {
			pairs = append(pairs, s, "***")
		}
	}
	if len(pairs) == 0 {
		return redactor{}
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

// str redacts a string.
func (rd redactor) str(s string) string {
	if rd.r == nil {
		return s
	}
	return rd.r.Replace(s)
}

// value returns v with secrets replaced in every string it holds; v itself
// is never modified (containers holding a secret are copied).
func (rd redactor) value(v any) any {
	if rd.r == nil {
		return v
	}
	out, _ := rd.walk(v, 0)
	return out
}

func (rd redactor) walk(v any, depth int) (any, bool) {
	if depth > 100 {
		return v, false
	}
	switch x := v.(type) {
	case string:
		s := rd.r.Replace(x)
		return s, s != x
	case []any:
		var out []any
		for i, e := range x {
			ne, changed := rd.walk(e, depth+1)
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
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			ne, changed := rd.walk(e, depth+1)
			if changed {
				if out == nil {
					out = make(map[string]any, len(x))
					for k2, v2 := range x {
						out[k2] = v2
					}
				}
				out[k] = ne
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}
