package spec

import (
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// posOf is the position of a YAML node (the zero Pos for nil).
func posOf(n *yaml.Node) Pos {
	if n == nil {
		return Pos{}
	}
	return Pos{Line: n.Line, Col: n.Column}
}

// lineStarts returns the byte offset at which each line of src starts.
func lineStarts(src []byte) []int {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// byteOffset converts a position (1-based line, 1-based column counted in
// characters, as yaml.v3 reports them) into a byte offset of src; -1 when it
// is outside src.
func byteOffset(src []byte, starts []int, p Pos) int {
	if p.Line < 1 || p.Line > len(starts) || p.Col < 1 {
		return -1
	}
	off := starts[p.Line-1]
	for col := 1; col < p.Col; col++ {
		if off >= len(src) || src[off] == '\n' {
			return -1
		}
		_, size := utf8.DecodeRune(src[off:])
		off += size
	}
	return off
}

// posAt converts a byte offset of src into a position.
func posAt(src []byte, starts []int, off int) Pos {
	// Binary search for the line containing off.
	lo, hi := 0, len(starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if off > len(src) {
		off = len(src)
	}
	return Pos{Line: lo + 1, Col: utf8.RuneCount(src[starts[lo]:off]) + 1}
}

// ScalarPos returns the position of byte offset of n.Value (the scalar's
// value, as decoded) in the workflow file, so that an error inside a string,
// such as an unknown identifier in an expression, can point at the very
// character. It reads w.Source to account for quotes, escapes (`\n`,
// `\u00e9`, `”`), line folding and block scalars (`|`, `>`). When the
// position cannot be found (a synthesised value, a scalar from elsewhere)
// it returns the node's own position.
func ScalarPos(w *Workflow, n *yaml.Node, offset int) Pos {
	if n == nil {
		return Pos{}
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	base := posOf(n)
	if w == nil || w.Source == nil || n.Kind != yaml.ScalarNode || w.synthetic[n] || offset < 0 {
		return base
	}
	src := w.Source
	starts := w.lines
	if starts == nil {
		starts = lineStarts(src)
	}
	si := byteOffset(src, starts, base)
	if si < 0 {
		return base
	}
	val := n.Value
	if offset > len(val) {
		offset = len(val)
	}
	switch n.Style &^ (yaml.TaggedStyle | yaml.FlowStyle) {
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if si < len(src) && (src[si] == '"' || src[si] == '\'') {
			si++
		}
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The value starts on the line after the block header (`|`, `>-`, …).
		for si < len(src) && src[si] != '\n' {
			si++
		}
		si++
	}
	double := n.Style&yaml.DoubleQuotedStyle != 0
	single := n.Style&yaml.SingleQuotedStyle != 0
	vi := 0
	for vi < offset && si < len(src) {
		c := src[si]
		switch {
		case double && c == '\\':
			consumed, produced := escapeLen(src[si:])
			if produced == 0 {
				// An escaped line break: it and the next line's indentation
				// produce nothing.
				si += consumed
				for si < len(src) && (src[si] == ' ' || src[si] == '\t') {
					si++
				}
				continue
			}
			if vi+produced > offset {
				return posAt(src, starts, si)
			}
			vi += produced
			si += consumed
		case single && c == '\'' && si+1 < len(src) && src[si+1] == '\'':
			vi++
			si += 2
		case c == val[vi]:
			vi++
			si++
		default:
			// Indentation, a folded line break, trailing blanks: source bytes
			// the value does not contain.
			si++
		}
	}
	if vi < offset {
		return base
	}
	// Skip indentation between the last matched byte and the target one.
	if offset < len(val) {
		for si < len(src) && src[si] != val[offset] && (src[si] == ' ' || src[si] == '\t' || src[si] == '\n' || src[si] == '\r') {
			si++
		}
	}
	return posAt(src, starts, si)
}

// escapeLen returns how many source bytes a double-quoted escape sequence
// at s[0] ('\\') spans and how many value bytes it produces.
func escapeLen(s []byte) (consumed, produced int) {
	if len(s) < 2 {
		return len(s), 0
	}
	hex := 0
	switch s[1] {
	case '\n':
		return 2, 0
	case '\r':
		if len(s) > 2 && s[2] == '\n' {
			return 3, 0
		}
		return 2, 0
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	case 'N':
		return 2, 2 // U+0085
	case '_':
		return 2, 2 // U+00A0
	case 'L', 'P':
		return 2, 3 // U+2028, U+2029
	default:
		return 2, 1
	}
	if len(s) < 2+hex {
		return len(s), 1
	}
	r, err := strconv.ParseUint(string(s[2:2+hex]), 16, 32)
	if err != nil {
		return 2 + hex, 1
	}
	n := utf8.RuneLen(rune(r))
	if n < 0 {
		n = 3
	}
	return 2 + hex, n
}
