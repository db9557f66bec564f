package spec

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// AddRanges sets End on every diagnostic that points at the first character
// of a single-line YAML scalar (a key or a value) of its file, so that
// annotations can underline the whole token rather than one column.
// Diagnostics inside a scalar (an expression's sub-term) or on a block,
// mapping or multi-line value keep a zero End: their extent is not a token
// a reader would recognise. sources maps a file name to its bytes.
func (ds Diagnostics) AddRanges(sources map[string][]byte) {
	ends := map[string]map[Pos]Pos{}
	for i := range ds {
		d := &ds[i]
		if d.Pos.Line == 0 || d.End.Line != 0 {
			continue
		}
		m, ok := ends[d.File]
		if !ok {
			m = scalarEnds(sources[d.File])
			ends[d.File] = m
		}
		if end, ok := m[d.Pos]; ok {
			d.End = end
		}
	}
}

// scalarEnds maps the start of each single-line scalar of src to the
// position of its last character (the closing quote for quoted scalars).
func scalarEnds(src []byte) map[Pos]Pos {
	out := map[Pos]Pos{}
	if len(src) == 0 {
		return out
	}
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil {
		return out
	}
	lines := strings.Split(string(src), "\n")
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		// Bounded like the loader: a hostile file cannot recurse forever.
		if n == nil || depth > 200 {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Line >= 1 && n.Line <= len(lines) {
			if end, ok := scalarEnd(lines[n.Line-1], n); ok {
				out[Pos{Line: n.Line, Col: n.Column}] = Pos{Line: n.Line, Col: end}
			}
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(&root, 0)
	return out
}

// scalarEnd returns the 1-based rune column of the last character of the
// scalar n that starts on line, when the scalar ends on that line.
func scalarEnd(line string, n *yaml.Node) (int, bool) {
	runes := []rune(strings.TrimRight(line, "\r"))
	start := n.Column - 1
	if start < 0 || start >= len(runes) {
		return 0, false
	}
	switch n.Style {
	case yaml.SingleQuotedStyle:
		for i := start + 1; i < len(runes); i++ {
			if runes[i] == '\'' {
				if i+1 < len(runes) && runes[i+1] == '\'' { // '' is an escaped quote
					i++
					continue
				}
				return i + 1, true
			}
		}
	case yaml.DoubleQuotedStyle:
		for i := start + 1; i < len(runes); i++ {
			switch runes[i] {
			case '\\':
				i++
			case '"':
				return i + 1, true
			}
		}
	case 0, yaml.TaggedStyle:
		v := []rune(n.Value)
		if len(v) == 0 || strings.ContainsRune(n.Value, '\n') {
			return 0, false
		}
		if start+len(v) <= len(runes) && string(runes[start:start+len(v)]) == n.Value {
			return start + len(v), true
		}
	}
	return 0, false
}
