package wftest

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
)

func writeFile(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not a mapping", "- a\n", ":1:1: a test file is a mapping"},
		{"no workflow", "cases: [{name: a}]\n", ":1:1: missing workflow:"},
		{"no cases", "workflow: w.yaml\n", ":1:1: no cases"},
		{"unknown top key", "workflow: w.yaml\ncase: []\n", `:2:1: unknown key "case" (allowed: cases, workflow)`},
		{"unnamed case", "workflow: w.yaml\ncases:\n  - inputs: {}\n", ":3:5: a case needs a name"},
		{"duplicate case", "workflow: w.yaml\ncases: [{name: a}, {name: a}]\n", `:2:20: two cases are named "a"`},
		{"cassette and stubs", "workflow: w.yaml\ncases:\n  - {name: a, cassette: c.yaml, stubs: {n: 1}}\n", "has both a cassette and stubs"},
		{"bad exit", "workflow: w.yaml\ncases:\n  - name: a\n    expect: {exit: 2}\n", ":4:20: exit must be 0 (completed), 1 (failed) or 3 (paused)"},
		{"bad len", "workflow: w.yaml\ncases:\n  - name: a\n    expect: {state: {k: {len: x}}}\n", ":4:31: len must be an integer"},
		{"bad assert", "workflow: w.yaml\ncases:\n  - name: a\n    expect: {assert: [state.x]}\n", ":4:23: an assertion is one ${{ expression }}"},
		{"bad max_in_flight", "workflow: w.yaml\ncases:\n  - name: a\n    expect: {max_in_flight: {n: 0}}\n", "max_in_flight.n must be a positive integer"},
		{"unknown expect key", "workflow: w.yaml\ncases:\n  - name: a\n    expect: {status: 0}\n", `unknown key "status" in expect`},
		{"env not strings", "workflow: w.yaml\ncases:\n  - name: a\n    env: {A: [1]}\n", "env.A must be a string"},
		{"invalid yaml", "workflow: [\n", "not valid YAML"},
		// At the line yaml.v3 names, not 1:1, and without its own prefix.
		{"invalid yaml line", "workflow: w.yaml\ncases: [\n", "x.test.yaml:2:1: not valid YAML: did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "x.test.yaml", tt.src)
			_, err := Parse(p)
			var fes Errors
			if !errors.As(err, &fes) || len(fes) == 0 {
				t.Fatalf("err = %v, want Errors", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValueEnd(t *testing.T) {
	tests := []struct{ rest, want string }{
		{`"Pages: 3"   # comment`, `"Pages: 3"`},
		{`plain value`, `plain value`},
		{`[a, b], other: 1}`, `[a, b]`},
		{`"a, b}" }`, `"a, b}"`},
		{`x#not-a-comment`, `x#not-a-comment`},
		{`{a: 1, b: [2, 3]}  `, `{a: 1, b: [2, 3]}`},
	}
	for _, tt := range tests {
		if got := tt.rest[:valueEnd(tt.rest)]; got != tt.want {
			t.Errorf("valueEnd(%q) keeps %q, want %q", tt.rest, got, tt.want)
		}
	}
}

func TestStateChecks(t *testing.T) {
	tests := []struct {
		op        string
		want, got any
		msg       string
	}{
		{"equals", map[string]any{"a": 1}, map[string]any{"a": 1.0}, ""},
		{"equals", map[string]any{"a": []any{1, 2}}, map[string]any{"a": []any{1.0, 3.0}}, "a[1]: expected 2, got 3"},
		{"equals", map[string]any{"a": 1}, map[string]any{"b": 1.0}, ".a: expected 1, missing"},
		{"len", 2, "héllo", "len: expected 2, got 5"},
		{"len", 2, []any{1.0, 2.0}, ""},
		{"len", 1, 3.0, "len: 3 has no length"},
		{"contains", "ell", "hello", ""},
		{"contains", "x", []any{"x"}, ""},
		{"contains", "k", map[string]any{"k": 1.0}, ""},
		{"contains", "z", []any{"x"}, `contains: expected "z" in ["x"]`},
		{"matches", `^h\w+o$`, "hello", ""},
		{"matches", `^x`, "hello", `matches: "hello" does not match ^x`},
	}
	for _, tt := range tests {
		se := &StateExpect{Key: "k", Op: tt.op, Want: tt.want}
		if got := se.check(tt.got, true); got != tt.msg {
			t.Errorf("%s %v vs %v: %q, want %q", tt.op, tt.want, tt.got, got, tt.msg)
		}
	}
	if got := (&StateExpect{Op: "equals", Want: 1}).check(nil, false); !strings.Contains(got, "not set") {
		t.Errorf("absent key: %q", got)
	}
}

// TestJUnitShape checks the report against what the JUnit XML schema CI
// systems read (Ant/Surefire, as Jenkins, GitLab and GitHub reporters use)
// requires: testsuites > testsuite (name, tests, failures, errors,
// skipped, time) > testcase (name, classname, time) > failure (message,
// type, text).
func TestJUnitShape(t *testing.T) {
	f := &File{Path: "a.test.yaml"}
	results := []*Result{
		{File: f, Case: &Case{Name: "ok <1>"}, Duration: 1500 * time.Millisecond},
		{File: f, Case: &Case{Name: "bad"}, Failures: []Failure{{Pos: Pos{"a.test.yaml", 3, 5}, Msg: `exit: expected 0, got 1 ("x" & y)`}}},
	}
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, results); err != nil {
		t.Fatal(err)
	}
	type failure struct {
		Message *string `xml:"message,attr"`
		Type    *string `xml:"type,attr"`
		Text    string  `xml:",chardata"`
	}
	type testcase struct {
		Name      *string   `xml:"name,attr"`
		Classname *string   `xml:"classname,attr"`
		Time      *string   `xml:"time,attr"`
		Failure   []failure `xml:"failure"`
	}
	var doc struct {
		XMLName xml.Name `xml:"testsuites"`
		Suites  []struct {
			Name     *string    `xml:"name,attr"`
			Tests    *int       `xml:"tests,attr"`
			Failures *int       `xml:"failures,attr"`
			Errors   *int       `xml:"errors,attr"`
			Skipped  *int       `xml:"skipped,attr"`
			Time     *float64   `xml:"time,attr"`
			Cases    []testcase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.Strict = true
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not well-formed: %v\n%s", err, buf.String())
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("suites = %d", len(doc.Suites))
	}
	s := doc.Suites[0]
	if s.Name == nil || s.Tests == nil || *s.Tests != 2 || s.Failures == nil || *s.Failures != 1 || s.Errors == nil || s.Skipped == nil || s.Time == nil || *s.Time != 1.5 {
		t.Fatalf("testsuite attributes: %s", buf.String())
	}
	for _, c := range s.Cases {
		if c.Name == nil || c.Classname == nil || c.Time == nil {
			t.Fatalf("testcase attributes: %s", buf.String())
		}
	}
	if *s.Cases[0].Name != "ok <1>" || len(s.Cases[0].Failure) != 0 {
		t.Errorf("passing case: %+v", s.Cases[0])
	}
	fl := s.Cases[1].Failure
	if len(fl) != 1 || fl[0].Message == nil || *fl[0].Message != `exit: expected 0, got 1 ("x" & y)` || fl[0].Type == nil ||
		fl[0].Text != `a.test.yaml:3:5: exit: expected 0, got 1 ("x" & y)` {
		t.Errorf("failure: %+v", fl)
	}
}

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"workflow: w.yaml\ncases: [{name: a, stubs: {n: [1, {a: b}]}, expect: {state: {k: {len: 1}}, assert: ['${{ true }}']}}]\n",
		"workflow: w.yaml\ncases:\n  - name: a\n    resume: [{node: r, values: {a: 1}}]\n    expect: {exit: 3, path: [a], max_in_flight: {a: 2}}\n",
		"[", "workflow: {a: b}\n", "cases: !!binary x\n",
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		p := filepath.Join(dir, "f.test.yaml")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Parse(p)
		if err == nil && (file.Workflow == "" || len(file.Cases) == 0) {
			t.Fatalf("accepted a file without workflow or cases: %q", src)
		}
		var fes Errors
		if err != nil && (!errors.As(err, &fes) || len(fes) == 0) {
			t.Fatalf("error without a position: %v", err)
		}
		for _, fe := range fes {
			if fe.Pos.File != p || fe.Pos.Line < 1 || fe.Pos.Col < 1 {
				t.Fatalf("error without a position: %v", fe)
			}
		}
	})
}

func TestStubsFor(t *testing.T) {
	c := &Case{Stubs: []*Stub{
		{Node: "each", List: true, Results: []any{"a", "b"}},
		{Node: "loop", List: true, Results: []any{1, 2}},
		{Node: "one", Results: []any{"x"}},
	}}
	stub := stubsFor(c)
	type call struct {
		node  string
		index int
		want  any
		ok    bool
	}
	for i, tt := range []call{
		{"each", 1, "b", true}, {"each", 0, "a", true}, {"each", 2, nil, false}, // by item index
		{"loop", -1, 1, true}, {"loop", -1, 2, true}, {"loop", -1, nil, false}, // by visit
		{"one", -1, "x", true}, {"one", 5, "x", true},
		{"other", -1, nil, false},
	} {
		got, ok := stub("p", tt.node, tt.index)
		if got != tt.want || ok != tt.ok {
			t.Errorf("call %d %s[%d] = %v, %v; want %v, %v", i, tt.node, tt.index, got, ok, tt.want, tt.ok)
		}
	}
	if stubsFor(&Case{}) != nil {
		t.Errorf("a case without stubs must leave Options.Stubs nil")
	}
}

func TestShort(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{"a <b> & c", `"a <b> & c"`},
		{[]any{1, "x"}, `[1,"x"]`},
		{strings.Repeat("é", 150), `"` + strings.Repeat("é", 98) + "..."}, // 197 bytes end inside an é
	}
	for _, tt := range tests {
		got := short(tt.v)
		if got != tt.want {
			t.Errorf("short(%.20v) = %q, want %q", tt.v, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("short(%.20v) is not valid UTF-8", tt.v)
		}
	}
}

// TestMaxInFlight feeds the observer event sequences: an invocation
// counts from acquired (waiting for a slot does not), or from node_start
// for a type that holds no slot, unless a stub answered it.
func TestMaxInFlight(t *testing.T) {
	type ev struct{ event, path string }
	start := func(p string) ev { return ev{runner.EventNodeStart, p} }
	acq := func(p string) ev { return ev{runner.EventAcquired, p} }
	end := func(p string) ev { return ev{runner.EventNodeEnd, p} }
	tests := []struct {
		name     string
		slotless bool
		stubbed  []string
		events   []ev
		want     int
	}{
		{"three start, two hold slots, the third waits", false, nil, []ev{
			start("a"), start("b"), start("c"), acq("a"), acq("b"), end("a"), acq("c"), end("b"), end("c"),
		}, 2},
		{"one at a time though all started at once", false, nil, []ev{
			start("a"), start("b"), start("c"), acq("a"), end("a"), acq("b"), end("b"), acq("c"), end("c"),
		}, 1},
		{"an invocation that never acquired (stub, resume) is not counted", false, []string{"b"}, []ev{
			start("a"), start("b"), acq("a"), end("b"), end("a"),
		}, 1},
		{"a slotless node counts from node_start", true, nil, []ev{
			start("a"), start("b"), start("c"), end("a"), end("b"), end("c"),
		}, 3},
		{"a stubbed slotless invocation is not counted", true, []string{"b", "c"}, []ev{
			start("a"), start("b"), start("c"), end("b"), end("c"), end("a"),
		}, 1},
		{"still running at the end counts", false, nil, []ev{
			start("a"), acq("a"), start("b"), acq("b"),
		}, 2},
		{"errors and interrupts end an invocation", false, nil, []ev{
			start("a"), acq("a"), ev{runner.EventNodeError, "a"}, start("b"), acq("b"), ev{runner.EventInterrupt, "b"}, start("c"), acq("c"),
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o *observer
			if tt.slotless {
				o = observing("n")
			} else {
				o = observing()
			}
			for _, p := range tt.stubbed {
				o.stub(p)
			}
			for _, e := range tt.events {
				o.Emit(runner.Event{Event: e.event, Node: "n", Path: e.path})
				o.Emit(runner.Event{Event: runner.EventWait, Node: "n", Path: e.path}) // ignored
			}
			if got := o.maxInFlight("n"); got != tt.want {
				t.Errorf("maxInFlight = %d, want %d", got, tt.want)
			}
			if got := o.maxInFlight("other"); got != 0 {
				t.Errorf("another node: %d", got)
			}
		})
	}
}

func TestFits(t *testing.T) {
	fetch := []nodes.Field{{Name: "status", Type: "integer"}, {Name: "body", Type: "string"}}
	state := []nodes.Field{{Name: "(state)", Type: "object"}}
	value := []nodes.Field{{Name: "(value)", Type: "any"}}
	tests := []struct {
		result any
		fields []nodes.Field
		want   string
	}{
		{map[string]any{"status": 200, "body": "x"}, fetch, ""},
		{map[string]any{"stauts": 200}, fetch, `unknown result field "stauts" (fields: status, body)`},
		{map[string]any{"status": "200"}, fetch, "result field status must be of type integer, got string"},
		{"text", fetch, "a result is a mapping of status, body"},
		{map[string]any{"pages": []any{"a"}}, state, ""}, // a subgraph's result is its state, any keys
		{[]any{"a"}, state, "the result (state) must be of type object, got list"},
		{"text", value, ""},
		{[]any{1}, nil, ""},
	}
	for _, tt := range tests {
		if got := fits(tt.result, tt.fields); got != tt.want {
			t.Errorf("fits(%v, %v) = %q, want %q", tt.result, tt.fields, got, tt.want)
		}
	}
}
