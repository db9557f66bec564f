package wftest

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Update rewrites, in the test files, each exact-value state expectation
// that failed to the value the case produced, and drops those failures
// from the results. Only the value's own text changes (it is written as
// JSON, which YAML reads as a flow value), so the rest of the file keeps
// its layout and comments; a block (multi-line) value that no longer holds
// is left as a failure to fix by hand.
func Update(results []*Result) error {
	edits := map[*File][]edit{}
	for _, r := range results {
		sm, _ := jsonValue(r.State).(map[string]any)
		kept := r.Failures[:0]
		for _, f := range r.Failures {
			se := stateAt(r.Case, f.Pos)
			got, ok := sm[se.keyOr()]
			if se == nil || se.Op != "equals" || !ok || !singleLine(se.node) {
				kept = append(kept, f)
				continue
			}
			b, err := json.Marshal(got)
			if err != nil {
				kept = append(kept, f)
				continue
			}
			edits[r.File] = append(edits[r.File], edit{line: se.node.Line, col: se.node.Column, text: string(b)})
		}
		r.Failures = kept
	}
	for f, es := range edits {
		if err := f.rewrite(es); err != nil {
			return err
		}
	}
	return nil
}

type edit struct {
	line, col int
	text      string
}

func stateAt(c *Case, pos Pos) *StateExpect {
	for _, se := range c.Expect.State {
		if se.Pos == pos {
			return se
		}
	}
	return nil
}

func (se *StateExpect) keyOr() string {
	if se == nil {
		return ""
	}
	return se.Key
}

// singleLine reports whether n is written on one line up to its end (a
// plain or quoted scalar, or a flow collection closed on its line).
func singleLine(n *yaml.Node) bool {
	switch {
	case n.Kind == yaml.ScalarNode:
		return n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 && !strings.Contains(n.Value, "\n")
	case n.Style&yaml.FlowStyle != 0:
		for _, c := range n.Content {
			if c.Line != n.Line || !singleLine(c) {
				return false
			}
		}
		return true
	}
	return false
}

// rewrite replaces, on each edited line, the value's text (from its
// column to where it ends: the end of the line, a trailing comment, or the
// , } or ] closing it inside a flow collection) by the new value.
func (f *File) rewrite(es []edit) error {
	lines := strings.SplitAfter(string(f.src), "\n")
	for _, e := range es {
		if e.line < 1 || e.line > len(lines) || e.col < 1 || e.col > len(lines[e.line-1]) {
			return fmt.Errorf("%s:%d:%d: cannot rewrite the value", f.Path, e.line, e.col)
		}
		l := lines[e.line-1]
		nl := ""
		if strings.HasSuffix(l, "\n") {
			l, nl = l[:len(l)-1], "\n"
		}
		rest := l[e.col-1:]
		lines[e.line-1] = l[:e.col-1] + e.text + rest[valueEnd(rest):] + nl
	}
	f.src = []byte(strings.Join(lines, ""))
	return os.WriteFile(f.Path, f.src, 0o644)
}

// valueEnd returns where the YAML value at the start of rest ends: at an
// unbalanced , } or ] or before a comment (outside quotes), or at the end.
func valueEnd(rest string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']' || c == ',':
			if depth == 0 {
				return len(strings.TrimRight(rest[:i], " \t"))
			}
			if c != ',' {
				depth--
			}
		case c == '#' && i > 0 && (rest[i-1] == ' ' || rest[i-1] == '\t'):
			return len(strings.TrimRight(rest[:i], " \t"))
		}
	}
	return len(strings.TrimRight(rest, " \t"))
}
