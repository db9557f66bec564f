package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	yaml4 "go.yaml.in/yaml/v4"
)

// LoadFile reads and loads a workflow file. The error is only for I/O
// problems; everything wrong with the content is in the diagnostics.
func LoadFile(path string) (*Workflow, Diagnostics, error) {
	src, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	w, ds := Load(path, src)
	return w, ds, nil
}

// readFile reads at most MaxFileSize+1 bytes of path: enough for Load to
// tell a file that is too large, never a whole huge file in memory.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return src, nil
}

// Load parses a workflow file and decodes every construct of the format into
// a Workflow, in file order, with positions and defaults. It never panics and
// never stops at the first problem: it returns the Workflow as far as it
// could be decoded, and every structural problem (unknown keys, values of
// the wrong kind, bad durations, …) as diagnostics, sorted by position.
// Semantic checks (names, references, expressions, conflicts) are
// Validate's; callers run Load, then Validate.
func Load(file string, src []byte) (w *Workflow, ds Diagnostics) {
	w = &Workflow{File: file, Source: src, Config: defaultConfig()}
	d := &decoder{w: w}
	defer func() {
		if r := recover(); r != nil {
			d.errorf(Pos{Line: 1, Col: 1}, CodeYAML, "", "internal error while loading the workflow (please report it): %v", r)
			ds = d.diags
		}
		ds.Sort()
	}()
	if len(src) > MaxFileSize {
		d.errorf(Pos{Line: 1, Col: 1}, CodeTooLarge, "", "file is larger than %d MiB", MaxFileSize>>20)
		return w, d.diags
	}
	w.lines = lineStarts(src)
	if off := invalidUTF8(src); off >= 0 {
		// yaml.v3 reports bad UTF-8 at line 1 column 1, wherever it is.
		d.errorf(posAt(src, w.lines, off), CodeYAML, "lgx reads workflow files as UTF-8: save the file in that encoding",
			"invalid UTF-8: byte 0x%02X here is not part of a UTF-8 character", src[off])
		return w, d.diags
	}
	w.synthetic = map[*yaml.Node]bool{}
	if line := tooIndented(src); line > 0 {
		d.errorf(Pos{Line: line, Col: 1}, CodeTooLarge, "",
			"line is indented more than %d columns: the document is nested too deeply", MaxIndent)
		return w, d.diags
	}

	root, ok, withinLimits := parseYAMLPieces(src, w.lines)
	var err error
	if !ok {
		root, err = parseYAML(src)
	}
	if err != nil {
		p := yamlErrorPos(src, err)
		d.errorf(p, CodeYAML, yamlErrorHint(src, p), "%s", yamlErrorMessage(err))
		return w, d.diags
	}
	w.Root = root
	if root == nil || len(root.Content) == 0 {
		d.errorf(Pos{Line: 1, Col: 1}, CodeMissingKey, "start with `lgx: 1`, `name:` and `nodes:`", "the file is empty")
		return w, d.diags
	}
	if !withinLimits { // else measured as its pieces were parsed
		if n, msg := checkLimits(root); n != nil {
			d.errorf(posOf(n), CodeTooLarge, "", "%s", msg)
			return w, d.diags
		}
	}
	d.workflow(root.Content[0])
	for _, n := range d.synthetic {
		w.synthetic[n] = true
	}
	buildProgram(w)
	return w, d.diags
}

// MaxIndent is the deepest indentation, in columns, a line may have.
// Checked before parsing: yaml.v3 parses about 1.5 MB/s, so a file of
// ever-deeper block nesting would otherwise take seconds to reject; real
// workflows stay far below (MaxDepth levels at a few columns each).
const MaxIndent = 1000

// tooIndented returns the 1-based number of the first line indented by
// more than MaxIndent spaces, or 0.
func tooIndented(src []byte) int {
	line, col := 1, 0
	leading := true
	for _, c := range src {
		switch {
		case c == '\n':
			line, col, leading = line+1, 0, true
		case leading && c == ' ':
			if col++; col > MaxIndent {
				return line
			}
		default:
			leading = false
		}
	}
	return 0
}

// parseYAML parses the first document of src into a node tree; a second
// document is an error.
func parseYAML(src []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytesReader(src))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("yaml: line %d: a workflow file holds one YAML document; remove the `---` and what follows", max(extra.Line, 1))
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	return &root, nil
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlErrorPos finds where a yaml.v3 syntax error in src is. yaml.v3
// reports the line of the enclosing construct (a mis-indented key at line 6
// comes out as "line 3", the parent mapping's), so the position is taken
// from yaml.v4, whose LoadError carries the line and column of the problem
// itself; v3's own line is the fallback.
// YAMLErrorPos is where a YAML syntax error err of src is, for other
// readers of YAML files (test files): see yamlErrorPos.
func YAMLErrorPos(src []byte, err error) Pos { return yamlErrorPos(src, err) }

func yamlErrorPos(src []byte, err error) Pos {
	var n yaml4.Node
	var le *yaml4.LoadError
	if err4 := yaml4.Unmarshal(src, &n); errors.As(err4, &le) && le.Mark.Line > 0 {
		m := le.Mark
		if m.Index >= len(src) {
			// At the end of the file (an unclosed bracket or quote), the
			// construct left open is what to show: yaml.v4's context, or
			// the line yaml.v3 names.
			if c := le.ContextMark; c.Line > 0 && c.Index < len(src) {
				m = c
			} else if p, ok := v3Line(err); ok {
				return p
			}
		}
		return Pos{Line: m.Line, Col: max(m.Column, 1)}
	}
	if p, ok := v3Line(err); ok {
		return p
	}
	if strings.Contains(err.Error(), "control characters are not allowed") {
		// yaml.v3 says where the reading started, not where the character is.
		if off := controlChar(src); off >= 0 {
			return posAt(src, lineStarts(src), off)
		}
	}
	return Pos{Line: 1, Col: 1}
}

// v3Line is the line a yaml.v3 error names ("yaml: line N: ..."), if any.
func v3Line(err error) (Pos, bool) {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil && m[1] != "" {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
			return Pos{Line: n, Col: 1}, true
		}
	}
	return Pos{}, false
}

// controlChar returns the byte offset of the first character of src (valid
// UTF-8) that YAML does not allow in a file (outside its printable set:
// C0 controls but tab, line feed and carriage return; DEL; C1 controls but
// U+0085; U+FFFE and U+FFFF), or -1.
func controlChar(src []byte) int {
	for off := 0; off < len(src); {
		r, size := utf8.DecodeRune(src[off:])
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		case r < 0x20 || (r >= 0x7F && r <= 0x9F) || r == 0xFFFE || r == 0xFFFF:
			return off
		}
		off += size
	}
	return -1
}

// tabIndentHint is the hint of a YAML error on a line indented with a tab:
// yaml.v3 says only "found character that cannot start any token" (or
// "found a tab character that violates indentation").
const tabIndentHint = "YAML indents with spaces, never tabs: replace the tab at the start of this line with spaces"

// yamlErrorHint explains a YAML error at p whose message does not: a line
// indented with a tab, a mistake that editors hide.
func yamlErrorHint(src []byte, p Pos) string {
	line, ok := sourceLine(src, p.Line)
	if !ok {
		return ""
	}
	indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	if strings.Contains(indent, "\t") {
		return tabIndentHint
	}
	return ""
}

// yamlErrorMessage strips yaml.v3's "yaml: line N:" prefix.
func yamlErrorMessage(err error) string {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return "invalid YAML: " + m[2]
	}
	return "invalid YAML: " + err.Error()
}

// checkLimits walks the document as if every alias were expanded, without
// expanding anything: each node's expanded size and height are memoised, so
// the walk is linear in the file. It returns the node at which MaxNodes or
// MaxDepth is exceeded, or at which an alias refers to itself.
func checkLimits(root *yaml.Node) (*yaml.Node, string) {
	l := limitWalker{memo: map[*yaml.Node]extent{}, active: map[*yaml.Node]bool{}}
	e, bad, msg := l.walk(root)
	if bad != nil {
		return bad, msg
	}
	if e.size > MaxNodes {
		return root, fmt.Sprintf("document too large: %d YAML nodes once aliases are expanded (limit %d)", e.size, MaxNodes)
	}
	return nil, ""
}

// extent is the expanded size and height of a subtree.
type extent struct{ size, height int }

type limitWalker struct {
	memo   map[*yaml.Node]extent
	active map[*yaml.Node]bool
}

func (l *limitWalker) walk(n *yaml.Node) (extent, *yaml.Node, string) {
	if n == nil {
		return extent{}, nil, ""
	}
	// Only an anchored node can be reached twice (through an alias), or
	// from inside itself: memoising and tracking the others would cost a
	// map insert and delete per node, 15 % of loading a 10,000-node file.
	if n.Anchor == "" {
		return l.expand(n)
	}
	if e, ok := l.memo[n]; ok {
		return e, nil, ""
	}
	if l.active[n] {
		return extent{}, n, "an alias refers to the node that contains it (recursive anchor)"
	}
	l.active[n] = true
	e, bad, msg := l.expand(n)
	delete(l.active, n)
	if bad == nil {
		l.memo[n] = e
	}
	return e, bad, msg
}

// expand sums the extents of n's children (its alias target for an alias).
func (l *limitWalker) expand(n *yaml.Node) (extent, *yaml.Node, string) {
	e := extent{size: 1, height: 1}
	children := n.Content
	if n.Kind == yaml.AliasNode {
		children = []*yaml.Node{n.Alias}
		e.size = 0
		e.height = 0
	}
	for _, c := range children {
		ce, bad, msg := l.walk(c)
		if bad != nil {
			return extent{}, bad, msg
		}
		e.size += ce.size
		e.height = max(e.height, ce.height+1)
		if n.Kind == yaml.AliasNode {
			e.height--
		}
		if e.size > MaxNodes {
			return extent{}, n, fmt.Sprintf("document too large: more than %d YAML nodes once aliases are expanded (the limit)", MaxNodes)
		}
		if e.height > MaxDepth {
			return extent{}, n, fmt.Sprintf("document nested too deeply: more than %d levels", MaxDepth)
		}
	}
	return e, nil, ""
}

// invalidUTF8 returns the byte offset of the first byte of src that is not
// part of a valid UTF-8 sequence, or -1 when src is valid UTF-8 or starts
// with a UTF-16 byte order mark (which yaml.v3 decodes itself).
func invalidUTF8(src []byte) int {
	if utf8.Valid(src) || bytes.HasPrefix(src, []byte{0xFE, 0xFF}) || bytes.HasPrefix(src, []byte{0xFF, 0xFE}) {
		return -1
	}
	for off := 0; off < len(src); {
		r, size := utf8.DecodeRune(src[off:])
		if r == utf8.RuneError && size == 1 {
			return off
		}
		off += size
	}
	return -1
}
