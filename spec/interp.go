package spec

import (
	"fmt"
	"strings"
)

// Segment is one piece of a string that may contain `${{ EXPR }}`
// interpolations: either literal text or an expression.
type Segment struct {
	Text   string // literal text, or the expression source (trimmed)
	IsExpr bool
	Offset int // byte offset of Text within the original string
}

// Interpolation is a string split into literal and expression segments.
type Interpolation struct {
	Segments []Segment
}

// Single reports whether the string is exactly one `${{ … }}` and nothing
// else; such a string keeps the expression's type instead of being
// rendered to text (SPEC §3.1). `" ${{ n }}"` is text (" 7"): the space
// was written. Only line breaks after the expression are let pass, the
// one a YAML block scalar (`|`, `>`) ends with unless written `|-`.
func (in Interpolation) Single() bool {
	switch len(in.Segments) {
	case 1:
		return in.Segments[0].IsExpr
	case 2:
		return in.Segments[0].IsExpr && strings.Trim(in.Segments[1].Text, "\r\n") == ""
	}
	return false
}

// HasExpr reports whether any segment is an expression.
func (in Interpolation) HasExpr() bool {
	for _, s := range in.Segments {
		if s.IsExpr {
			return true
		}
	}
	return false
}

// InterpError is a malformed interpolation (an unclosed `${{`), with the
// byte offset of the opening delimiter.
type InterpError struct {
	Offset int
	Msg    string
}

func (e *InterpError) Error() string { return e.Msg }

// ParseInterpolation splits s at `${{` … `}}`. The closing `}}` is the first
// one outside the expression's quoted string literals and map literals, so
// `${{ {a: {b: 1}} }}` and `${{ {a: 1}}}` work.
func ParseInterpolation(s string) (Interpolation, error) {
	var in Interpolation
	pos := 0
	for {
		i := strings.Index(s[pos:], "${{")
		if i < 0 {
			if pos < len(s) {
				in.Segments = append(in.Segments, Segment{Text: s[pos:], Offset: pos})
			}
			return in, nil
		}
		start := pos + i
		if start > pos {
			in.Segments = append(in.Segments, Segment{Text: s[pos:start], Offset: pos})
		}
		body := start + 3
		end := closingBraces(s, body)
		if end < 0 {
			return in, &InterpError{Offset: start, Msg: "unclosed ${{: expected }}"}
		}
		raw := s[body:end]
		lead := len(raw) - len(strings.TrimLeft(raw, " \t\n\r"))
		expr := strings.TrimSpace(raw)
		if expr == "" {
			return in, &InterpError{Offset: start, Msg: "empty expression ${{ }}"}
		}
		in.Segments = append(in.Segments, Segment{Text: expr, IsExpr: true, Offset: body + lead})
		pos = end + 2
	}
}

// closingBraces finds the index of the `}}` that closes an expression
// starting at from, skipping quoted strings and the braces of map literals;
// -1 if there is none.
func closingBraces(s string, from int) int {
	var quote byte
	depth := 0 // open map literals
	for i := from; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '{':
			depth++
		case c == '}' && depth > 0:
			depth--
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

// BareExpression returns the expression of an `if:` or `for_each:` value,
// which may be written either bare (`state.n > 3`) or wrapped
// (`${{ state.n > 3 }}`), and the byte offset of the expression in s.
func BareExpression(s string) (string, int, error) {
	in, err := ParseInterpolation(s)
	if err != nil {
		return "", 0, err
	}
	if !in.HasExpr() {
		lead := len(s) - len(strings.TrimLeft(s, " \t\n\r"))
		return strings.TrimSpace(s), lead, nil
	}
	// White space around the one expression is only layout here: the
	// value is an expression either way, never text.
	var expr *Segment
	for i, seg := range in.Segments {
		switch {
		case seg.IsExpr && expr == nil:
			expr = &in.Segments[i]
		case seg.IsExpr || strings.TrimSpace(seg.Text) != "":
			return "", 0, &InterpError{Offset: 0, Msg: fmt.Sprintf("%q mixes text and ${{ }}; write one expression", s)}
		}
	}
	return expr.Text, expr.Offset, nil
}
