// Package wftest reads and runs workflow test files (`*.test.yaml`, run by
// `lgx test`): each names a workflow and lists cases with inputs, a
// cassette or stubbed node results, interrupts to answer, and
// expectations on the exit code, the final state, the path of nodes and
// free assertions.
package wftest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/spec"
)

// Pos is a position in a test file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is a problem with a test file, at a position.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errors are every problem found in test files, in file and position
// order: a file reports them all at once, as lgx validate does, so one
// edit fixes them rather than one run per problem.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// add appends err to es, flattening Errors; an error that is not an
// *Error is placed at the start of file.
func (es *Errors) add(file string, err error) {
	var list Errors
	var one *Error
	switch {
	case err == nil:
	case errors.As(err, &list):
		*es = append(*es, list...)
	case errors.As(err, &one):
		*es = append(*es, one)
	default:
		*es = append(*es, &Error{Pos: Pos{file, 1, 1}, Msg: err.Error()})
	}
}

// sortErrors orders a file's problems by position (stable: a key's
// problems stay in the order they were found).
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}

// File is one parsed test file.
type File struct {
	Path     string
	Workflow string // resolved against the test file's directory
	WfPos    Pos
	Cases    []*Case
	src      []byte
}

// Case is one test case.
type Case struct {
	Name   string
	Pos    Pos
	Inputs map[string]any
	// InputPos locates each key of Inputs.
	InputPos map[string]Pos
	// Env adds to (and overrides) the process environment for the case:
	// the `env.*` and `secrets.*` the workflow reads.
	Env      map[string]string
	Cassette string // resolved path; "" = none
	Stubs    []*Stub
	Resume   []*ResumeStep
	Expect   Expect
}

// Stub gives the results of one node's invocations.
type Stub struct {
	Node string
	Pos  Pos
	// Results: one per invocation (for_each item, or visit) in order when
	// List; else Results[0] for every invocation.
	Results []any
	List    bool
	ResPos  []Pos
}

// ResumeStep answers one interrupt.
type ResumeStep struct {
	Node   string
	Values map[string]any
	Pos    Pos
}

// Expect holds a case's expectations; nil/empty ones are not checked.
type Expect struct {
	Exit        *int
	ExitPos     Pos
	State       []*StateExpect
	Path        []string
	PathPos     Pos
	Assert      []*Assertion
	MaxInFlight []*InFlightExpect
}

// StateExpect checks one state key: an exact value, or {len: N},
// {contains: V} or {matches: REGEX}.
type StateExpect struct {
	Key  string
	Pos  Pos
	Op   string // "equals", "len", "contains", "matches"
	Want any
	node *yaml.Node // the value as written, rewritten by --update
}

// Assertion is one `${{ expr }}` that must be true.
type Assertion struct {
	Expr string
	Pos  Pos
}

// InFlightExpect caps how many invocations of Node were in flight at once.
type InFlightExpect struct {
	Node string
	Max  int
	Pos  Pos
}

// Find returns the test files under paths (files named directly, and
// `*.test.yaml` found recursively in directories), sorted.
func Find(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && path != p && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			if !d.IsDir() && strings.HasSuffix(d.Name(), ".test.yaml") {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// yamlLine is yaml.v3's error prefix, which names the line of a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlError places a YAML syntax error where it is (spec.YAMLErrorPos:
// yaml.v3 names at best a line, and none for an unknown anchor).
func yamlError(path string, src []byte, err error) *Error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = m[2]
	}
	p := spec.YAMLErrorPos(src, err)
	return &Error{Pos: Pos{path, p.Line, p.Col}, Msg: "not valid YAML: " + msg}
}

// Parse reads a test file. Its structural problems are all reported, as
// Errors (a YAML syntax error alone, as the file then has no structure);
// the File returned with them holds what could be read, for Check to
// report the problems against the workflow too.
func Parse(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := &parser{file: path}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, Errors{yamlError(path, src, err)}
	}
	f := &File{Path: path, src: src}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, Errors{{Pos: Pos{path, 1, 1}, Msg: "a test file is a mapping with workflow: and cases:"}}
	}
	root := doc.Content[0]
	casesSeen := false
	p.add(p.mapping(root, "", map[string]func(k, v *yaml.Node) error{
		"workflow": func(k, v *yaml.Node) error {
			s, err := p.str(v, "workflow")
			f.Workflow, f.WfPos = inDir(filepath.Dir(path), s), p.pos(v)
			return err
		},
		"cases": func(k, v *yaml.Node) error {
			casesSeen = true // only an empty list is "no cases"
			if v.Kind != yaml.SequenceNode {
				return p.errf(v, "cases must be a list")
			}
			casesSeen = len(v.Content) > 0
			for _, c := range v.Content {
				// A case with problems is kept, as far as it could be
				// read, for Check to report its other problems.
				f.Cases = append(f.Cases, p.caseOf(c, filepath.Dir(path)))
			}
			return nil
		},
	}))
	if f.Workflow == "" && !p.has(f.WfPos) {
		p.add(&Error{Pos: p.pos(root), Msg: "missing workflow: (the workflow file, relative to this one)"})
	}
	if !casesSeen {
		p.add(&Error{Pos: p.pos(root), Msg: "no cases"})
	}
	seen := map[string]bool{}
	for _, c := range f.Cases {
		if c.Name != "" && seen[c.Name] {
			p.add(&Error{Pos: c.Pos, Msg: fmt.Sprintf("two cases are named %q", c.Name)})
		}
		seen[c.Name] = true
	}
	if len(p.errs) > 0 {
		sortErrors(p.errs)
		return f, p.errs
	}
	return f, nil
}

type parser struct {
	file string
	errs Errors
}

// add records a problem (nil: none) and parsing goes on.
func (p *parser) add(err error) { p.errs.add(p.file, err) }

// has reports whether a problem was recorded at pos.
func (p *parser) has(pos Pos) bool {
	return slices.ContainsFunc(p.errs, func(e *Error) bool { return e.Pos == pos })
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{p.file, n.Line, n.Column} }

func (p *parser) errf(n *yaml.Node, format string, args ...any) error {
	return &Error{Pos: p.pos(n), Msg: fmt.Sprintf(format, args...)}
}

// mapping calls the handler of each key of n; an unknown key is an error
// naming the keys allowed. The problems of the keys are recorded and the
// other keys still read; only n not being a mapping is returned.
func (p *parser) mapping(n *yaml.Node, what string, keys map[string]func(k, v *yaml.Node) error) error {
	at := n // an error is reported where the alias is written
	n = spec.ResolveAlias(n)
	if n.Kind != yaml.MappingNode {
		subject := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(what), "in "))
		if subject == "" {
			subject = "the test file"
		}
		return p.errf(at, "%s must be a mapping", subject)
	}
	pairs, err := spec.MappingPairs(n)
	if err != nil {
		return p.errf(at, "%v", err)
	}
	for _, kv := range pairs {
		k, v := kv[0], spec.ResolveAlias(kv[1])
		h, ok := keys[k.Value]
		if !ok {
			allowed := make([]string, 0, len(keys))
			for name := range keys {
				allowed = append(allowed, name)
			}
			slices.Sort(allowed)
			p.add(p.errf(k, "unknown key %q%s (allowed: %s)", k.Value, what, strings.Join(allowed, ", ")))
			continue
		}
		p.add(h(k, v))
	}
	return nil
}

func (p *parser) str(n *yaml.Node, what string) (string, error) {
	n = spec.ResolveAlias(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n, "%s must be a string", what)
	}
	return n.Value, nil
}

func (p *parser) value(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, p.errf(n, "%v", err)
	}
	return v, nil
}

func (p *parser) object(n *yaml.Node, what string) (map[string]any, error) {
	n = spec.ResolveAlias(n)
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, "%s must be a mapping", what)
	}
	v, err := p.value(n)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// caseOf reads a case, recording its problems.
func (p *parser) caseOf(n *yaml.Node, dir string) *Case {
	c := &Case{Pos: p.pos(n)}
	p.add(p.mapping(n, " in a case", map[string]func(k, v *yaml.Node) error{
		"name": func(k, v *yaml.Node) (err error) { c.Name, err = p.str(v, "name"); return },
		"inputs": func(k, v *yaml.Node) (err error) {
			c.Inputs, err = p.object(v, "inputs")
			if err == nil {
				c.InputPos = map[string]Pos{}
				for i := 0; i+1 < len(v.Content); i += 2 {
					c.InputPos[v.Content[i].Value] = p.pos(v.Content[i])
				}
			}
			return
		},
		"env": func(k, v *yaml.Node) error {
			if v.Kind != yaml.MappingNode {
				return p.errf(v, "env must map variable names to strings")
			}
			c.Env = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				s, err := p.str(v.Content[i+1], "env."+v.Content[i].Value)
				p.add(err)
				c.Env[v.Content[i].Value] = s
			}
			return nil
		},
		"cassette": func(k, v *yaml.Node) error {
			s, err := p.str(v, "cassette")
			c.Cassette = inDir(dir, s)
			return err
		},
		"stubs": func(k, v *yaml.Node) error {
			if v.Kind != yaml.MappingNode {
				return p.errf(v, "stubs must map node names to results")
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				name, res := v.Content[i], v.Content[i+1]
				s := &Stub{Node: name.Value, Pos: p.pos(name)}
				items := []*yaml.Node{res}
				if res.Kind == yaml.SequenceNode {
					s.List, items = true, res.Content
				}
				for _, it := range items {
					val, err := p.value(it)
					p.add(err)
					s.Results = append(s.Results, val)
					s.ResPos = append(s.ResPos, p.pos(it))
				}
				c.Stubs = append(c.Stubs, s)
			}
			return nil
		},
		"resume": func(k, v *yaml.Node) error {
			if v.Kind != yaml.SequenceNode {
				return p.errf(v, "resume must be a list of {node, values}")
			}
			for _, it := range v.Content {
				r := &ResumeStep{Pos: p.pos(it)}
				p.add(p.mapping(it, " in resume", map[string]func(k, v *yaml.Node) error{
					"node":   func(k, v *yaml.Node) (err error) { r.Node, err = p.str(v, "node"); return },
					"values": func(k, v *yaml.Node) (err error) { r.Values, err = p.object(v, "values"); return },
				}))
				c.Resume = append(c.Resume, r)
			}
			return nil
		},
		"expect": func(k, v *yaml.Node) error { return p.expect(v, &c.Expect) },
	}))
	if c.Name == "" && n.Kind == yaml.MappingNode {
		p.add(p.errf(n, "a case needs a name"))
	}
	if c.Cassette != "" && len(c.Stubs) > 0 {
		p.add(p.errf(n, "case %q has both a cassette and stubs: use one", c.Name))
	}
	return c
}

func (p *parser) expect(n *yaml.Node, e *Expect) error {
	return p.mapping(n, " in expect", map[string]func(k, v *yaml.Node) error{
		"exit": func(k, v *yaml.Node) error {
			var code int
			if err := v.Decode(&code); err != nil || (code != 0 && code != 1 && code != 3) {
				return p.errf(v, "exit must be 0 (completed), 1 (failed) or 3 (paused)")
			}
			e.Exit, e.ExitPos = &code, p.pos(v)
			return nil
		},
		"state": func(k, v *yaml.Node) error {
			if v.Kind != yaml.MappingNode {
				return p.errf(v, "state must map state keys to expected values")
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				key, val := v.Content[i], v.Content[i+1]
				se := &StateExpect{Key: key.Value, Pos: p.pos(key), Op: "equals", node: val}
				if val.Kind == yaml.MappingNode && len(val.Content) == 2 {
					switch op := val.Content[0].Value; op {
					case "len", "contains", "matches":
						w, err := p.value(val.Content[1])
						if err != nil {
							return err
						}
						se.Op, se.Want = op, w
						if op == "len" {
							if _, ok := w.(int); !ok {
								return p.errf(val.Content[1], "len must be an integer")
							}
						}
						if op == "matches" {
							if _, ok := w.(string); !ok {
								return p.errf(val.Content[1], "matches must be a regular expression")
							}
						}
						e.State = append(e.State, se)
						continue
					}
				}
				w, err := p.value(val)
				if err != nil {
					return err
				}
				se.Want = w
				e.State = append(e.State, se)
			}
			return nil
		},
		"path": func(k, v *yaml.Node) error {
			if err := v.Decode(&e.Path); err != nil {
				return p.errf(v, "path must be a list of node names")
			}
			e.PathPos = p.pos(v)
			return nil
		},
		"assert": func(k, v *yaml.Node) error {
			if v.Kind != yaml.SequenceNode {
				return p.errf(v, "assert must be a list of ${{ expressions }}")
			}
			for _, it := range v.Content {
				s, err := p.str(it, "an assertion")
				if err != nil {
					return err
				}
				inner, ok := strings.CutPrefix(strings.TrimSpace(s), "${{")
				inner, ok2 := strings.CutSuffix(inner, "}}")
				if !ok || !ok2 {
					return p.errf(it, "an assertion is one ${{ expression }}")
				}
				e.Assert = append(e.Assert, &Assertion{Expr: strings.TrimSpace(inner), Pos: p.pos(it)})
			}
			return nil
		},
		"max_in_flight": func(k, v *yaml.Node) error {
			if v.Kind != yaml.MappingNode {
				return p.errf(v, "max_in_flight must map node names to counts")
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				var n int
				if err := v.Content[i+1].Decode(&n); err != nil || n < 1 {
					return p.errf(v.Content[i+1], "max_in_flight.%s must be a positive integer", v.Content[i].Value)
				}
				e.MaxInFlight = append(e.MaxInFlight, &InFlightExpect{Node: v.Content[i].Value, Max: n, Pos: p.pos(v.Content[i])})
			}
			return nil
		},
	})
}

// inDir resolves name, written in a file of directory dir: relative to
// dir, or as written when absolute.
func inDir(dir, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}
