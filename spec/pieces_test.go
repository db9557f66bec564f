package spec

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// sameTree returns where two yaml.v3 trees first differ, or "".
func sameTree(a, b *yaml.Node, path string) string {
	switch {
	case a == nil || b == nil:
		if a != b {
			return fmt.Sprintf("%s: %v vs %v", path, a, b)
		}
		return ""
	case a.Kind != b.Kind, a.Style != b.Style, a.Tag != b.Tag, a.Value != b.Value, a.Anchor != b.Anchor:
		return fmt.Sprintf("%s: kind %v/%v style %v/%v tag %q/%q value %q/%q anchor %q/%q", path,
			a.Kind, b.Kind, a.Style, b.Style, a.Tag, b.Tag, a.Value, b.Value, a.Anchor, b.Anchor)
	case a.Line != b.Line, a.Column != b.Column:
		return fmt.Sprintf("%s: at %d:%d vs %d:%d", path, a.Line, a.Column, b.Line, b.Column)
	case a.HeadComment != b.HeadComment, a.LineComment != b.LineComment, a.FootComment != b.FootComment:
		return fmt.Sprintf("%s: comments %q %q %q vs %q %q %q", path,
			a.HeadComment, a.LineComment, a.FootComment, b.HeadComment, b.LineComment, b.FootComment)
	case (a.Alias == nil) != (b.Alias == nil):
		return path + ": alias in one only"
	case a.Alias != nil && (a.Alias.Line != b.Alias.Line || a.Alias.Column != b.Alias.Column):
		return fmt.Sprintf("%s: alias of %d:%d vs %d:%d", path, a.Alias.Line, a.Alias.Column, b.Alias.Line, b.Alias.Column)
	case len(a.Content) != len(b.Content):
		return fmt.Sprintf("%s: %d vs %d children", path, len(a.Content), len(b.Content))
	}
	for i := range a.Content {
		if d := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// checkPieces parses src in pieces of about pieceBytes bytes and whole;
// when the pieces parse, the whole must too, to the same tree. It reports
// whether the pieces parsed.
func checkPieces(t *testing.T, src []byte, pieceBytes int) bool {
	t.Helper()
	got, ok, within := parsePieces(src, lineStarts(src), pieceBytes, 2)
	if !ok {
		return false
	}
	want, err := parseYAML(src)
	if err != nil {
		t.Fatalf("pieces of %d bytes parsed a file yaml.v3 rejects (%v):\n%s", pieceBytes, err, src)
	}
	if d := sameTree(got, want, ""); d != "" {
		t.Fatalf("pieces of %d bytes differ from the whole at %s:\n%s", pieceBytes, d, src)
	}
	// Within the limits only if checkLimits finds nothing.
	if n, msg := checkLimits(want); within && n != nil {
		t.Fatalf("pieces of %d bytes: within the limits, but checkLimits says %s:\n%s", pieceBytes, msg, src)
	}
	return true
}

// TestPiecesMatchWhole: a file parsed in pieces is the file parsed whole,
// positions and comments included; where a piece could differ, the whole
// is parsed instead.
func TestPiecesMatchWhole(t *testing.T) {
	var files [][]byte
	for _, g := range []string{"testdata/*.yaml", "testdata/validate/*.yaml", "testdata/valid/*.yaml", "../workflows/*.yaml"} {
		names, _ := filepath.Glob(g)
		for _, name := range names {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, src)
		}
	}
	if len(files) < 20 {
		t.Fatalf("only %d files to compare", len(files))
	}
	cut := 0
	for _, src := range files {
		for _, size := range []int{1, 40, 200} {
			if checkPieces(t, src, size) {
				cut++
			}
		}
	}
	// Most workflows have a comment or a flow mapping where a cut would
	// go, but enough have none for the comparison to mean something.
	if cut < 10 {
		t.Errorf("only %d of %d parses were cut", cut, 3*len(files))
	}

	const head = "lgx: 1\nname: n\nnodes:\n"
	cases := []struct {
		name string
		src  string
		cut  bool // whether the pieces must parse
	}{
		{"fan-out", string(fanOut(300)), true},
		{"two regions and keys between", head + "  a: {type: set}\n  b: {type: set}\n  c:\n    type: set\nstate:\n  x: {type: list}\nedges:\n  - {from: START, to: a}\n  - from: a\n    to: b\n  - {from: b, to: END}\nconfig: {}\n", true},
		{"crlf", strings.ReplaceAll(head+"  a: {type: set}\n  b: {type: set}\n  c: {type: set}\n", "\n", "\r\n"), true},
		{"block scalars", head + "  a:\n    prompt: |\n      line\n\n      b: not a key\n    x: 1\n  b:\n    p: >-\n      folded\n  c: 1\n", true},
		{"blank lines between", head + "  a: 1\n\n  b: 2\n\n\n  c: 3\n\nedges: []\n", true},
		{"sequence entries", "edges:\n  - a\n  -\n    b\n  - - c\n  - {d: 1}\n  -e\n", false},
		{"plain continued", head + "  a: one\n    two\n  b: 2\n  c: 3\n", true},
		{"sequence at the key's column", head + "  a:\n  - 1\n  - 2\n  b: 2\n  c: 3\n", true},
		{"quoted across a cut", head + "  a: \"x\n  b: y\"\n  c: 1\n  d: 2\n", false},
		{"single-quoted across a cut", head + "  a: 'x\n  b: y'\n  c: 1\n  d: 2\n", false},
		{"flow across a cut", head + "  a: {x: 1,\n  b: 2}\n  c: 1\n  d: 2\n", false},
		{"flow at the top across a region", "a: [1,\nnodes:\n  b: 1\n  c: 2\n  d: 3\n]\n", false},
		{"alias to another piece", head + "  a: &x {type: set}\n  b: *x\n  c: 1\n", false},
		{"anchor and alias in one piece", head + "  a: {k: &x 1, v: *x}\n  b: 1\n  c: 2\n", true},
		{"merge key", head + "  a: &x {type: set}\n  b: {<<: *x}\n  c: 1\n", false},
		{"comment before a cut", head + "  a: 1\n  # about b\n  b: 2\n  c: 3\n", false},
		{"comment after a blank line", head + "  a: 1\n  # end of a\n\n  b: 2\n  c: 3\n", false},
		{"comment before the region", "lgx: 1\n# the nodes\nnodes:\n  a: 1\n  b: 2\n  c: 3\n", true},
		{"comment ends the file", head + "  a: 1\n  b: 2\n  c: 3\n# the end\n", false},
		{"comment after the key", "lgx: 1\nnodes: # the nodes\n  a: 1\n  b: 2\n  c: 3\n", false},
		{"line comments", head + "  a: 1 # one\n  b: 2 # two\n  c: 3\n", true},
		{"document marker", "---\n" + head + "  a: 1\n  b: 2\n  c: 3\n", false},
		{"second document", head + "  a: 1\n  b: 2\n  c: 3\n---\nx: 1\n", false},
		{"directive", "%YAML 1.1\n---\n" + head + "  a: 1\n  b: 2\n", false},
		{"UTF-16", utf16LE(head + "  a: 1\n  b: 2\n  c: 3\n"), false},
		{"NEL", head + "  a: 1\n  b: x\u0085y\n  c: 3\n", false},
		{"lone CR", head + "  a: 1\r  b: 2\n  c: 3\n", false},
		{"tab", head + "  a: 1\n\tb: 2\n  c: 3\n", false},
		{"mis-indented entry", head + "  a: 1\n   b: 2\n  c: 3\n", false},
		{"less-indented entry", head + "    a: 1\n  b: 2\n  c: 3\n", false},
		{"explicit key first", head + "  ? a\n  : 1\n  b: 2\n  c: 3\n", false},
		{"explicit key later", head + "  b: 2\n  ? a\n  : 1\n  c: 3\n", true},
		{"region with no cut", head + "  a:\n    b: 1\n", false},
		{"top-level sequence", "- a\n- b\n", false},
		{"flow document", "{lgx: 1, nodes: {a: 1}}\n", false},
		{"tagged", head + "  a: !!str 1\n  b: !custom 2\n  c: 3\n", true},
		{"nested too deeply", head + "  a: 1\n  b: " + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "\n  c: 3\n", true},
		{"duplicate keys", head + "  a: 1\n  a: 2\n  a: 3\n", true},
		{"top-level key after a region is a list", head + "  a: 1\n  b: 2\n- x\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := []byte(c.src)
			ok := checkPieces(t, src, 1)
			for _, size := range []int{4, 16} {
				checkPieces(t, src, size)
			}
			if ok != c.cut {
				t.Errorf("cut in pieces: %v, want %v", ok, c.cut)
			}
		})
	}
}

// TestLoadInPieces: Load cuts a large file, and what it loads and reports
// is what the whole parse gives.
func TestLoadInPieces(t *testing.T) {
	src := fanOut(10_000)
	if len(src) < piecesMinSize {
		t.Fatalf("%d bytes: too small to be cut", len(src))
	}
	if _, ok, within := parsePieces(src, lineStarts(src), pieceSize, 2); !ok || !within {
		t.Fatalf("the 10,000-branch fan-out: cut %v, within the limits %v", ok, within)
	}
	checkPieces(t, src, pieceSize)
	// A broken entry far into the file: the same message and place as a
	// whole parse gives.
	bad := []byte(strings.Replace(string(src), "  b9000: {type: set,", "  b9000: {type: set,,", 1))
	_, ds := Load("fan.yaml", bad)
	if len(ds) != 1 || ds[0].Code != CodeYAML || ds[0].Pos.Line != 9007 {
		t.Fatalf("got %v, want one yaml error at line 9007", ds)
	}
}

// FuzzPieces: whenever a file parses in pieces, it parses whole to the
// same tree.
func FuzzPieces(f *testing.F) {
	for _, g := range []string{"testdata/*.yaml", "testdata/valid/*.yaml", "../workflows/*.yaml"} {
		names, _ := filepath.Glob(g)
		for _, name := range names {
			if src, err := os.ReadFile(name); err == nil {
				f.Add(src, uint8(8))
			}
		}
	}
	f.Add(fanOut(20), uint8(1))
	f.Add([]byte("nodes:\n  a: |\n    x\n  b: 'y\n    z'\n  c: [1,\n    2]\nedges:\n  - a\n  - b\n"), uint8(0))
	f.Add([]byte("nodes:\n  a: 1 # c\n  # d\n\n  b: &a 2\n  c: *a\n"), uint8(2))
	f.Fuzz(func(t *testing.T, src []byte, size uint8) {
		if len(src) > 1<<16 || invalidUTF8(src) >= 0 {
			return
		}
		checkPieces(t, src, int(size))
	})
}

// TestPiecesRandom assembles files from lines that start and end every
// construct a cut could fall into (block, quoted and plain scalars
// continued, flow collections, comments, anchors and aliases, blank lines)
// and compares the two parses of each.
func TestPiecesRandom(t *testing.T) {
	fragments := []string{
		"  a: 1", "  b: {type: set}", "  c:", "    type: set", "  d: |", "    text", "      more",
		"  e: >-", "  f: \"open", "  g: close\"", "  h: 'open", "  i: close'", "  j: [1,", "  2]",
		"  k: {x: 1,", "  y: 2}", "  # comment", "", "  l: &a 1", "  m: *a", "  n: x # note",
		"  - 1", "  - {a: 1}", "  -", "    o: 2", "  p: plain", "    continued", "  ? q", "  : 3",
		"  r:", "  - 1", "   s: 3", "    t: 4", "\t", "  u: !!str 5", "  v: <<", "  <<: *a",
		"w: 1", "nodes:", "edges:", "# top comment", "x:", "  y: |+", "", "  z: \"a\\", "  b\"",
	}
	// Mostly entries a cut can fall between, so that some files are cut.
	plain := []string{"  a: 1", "  b: {type: set, with: {x: \"${{ 1 }}\"}}", "  c:\n    type: set", "  n: x # note"}
	rng := rand.New(rand.NewPCG(1, 2))
	cut := 0
	const n = 5_000
	for range n {
		var b strings.Builder
		b.WriteString("lgx: 1\nnodes:\n")
		for range 3 + rng.IntN(25) {
			f := fragments[rng.IntN(len(fragments))]
			if rng.IntN(10) < 7 {
				f = plain[rng.IntN(len(plain))]
			}
			b.WriteString(f)
			b.WriteByte('\n')
		}
		src := []byte(b.String())
		if checkPieces(t, src, 1+rng.IntN(30)) {
			cut++
		}
	}
	if cut < n/50 {
		t.Errorf("only %d of %d files were cut", cut, n)
	}
	t.Logf("%d of %d files cut", cut, n)
}

// TestLoadOnCoresMatchesOne: a large workflow, with mistakes here and there,
// loads and validates to the same diagnostics and nodes on one core (parsed
// whole, nodes decoded in turn) as on two (parsed in pieces, nodes decoded
// at once).
func TestLoadOnCoresMatchesOne(t *testing.T) {
	var b strings.Builder
	b.WriteString("lgx: 1\nname: big\nstate:\n  total: {type: integer, reducer: sum, default: 0}\n  s: {type: string}\nnodes:\n")
	for i := range 4000 {
		switch i % 500 {
		case 7:
			fmt.Fprintf(&b, "  n%d: {type: set, output: {total: 1}, colour: red}\n", i) // unknown key
		case 101:
			fmt.Fprintf(&b, "  n%d: {output: {total: 1}}\n", i) // no type
		case 202:
			fmt.Fprintf(&b, "  n%d: {type: template, with: {template: \"x\"}, output: s}\n", i) // made-up value
		case 303:
			fmt.Fprintf(&b, "  n%d: {type: set, output: [total]}\n", i)
		case 404:
			fmt.Fprintf(&b, "  n%d: {type: set, output: {nokey: \"${{ state.nope }}\"}}\n", i)
		default:
			fmt.Fprintf(&b, "  n%d: {type: set, output: {total: \"${{ 1 }}\"}}\n", i)
		}
	}
	b.WriteString("edges:\n  - {from: START, to: n0}\n")
	for i := range 3999 {
		fmt.Fprintf(&b, "  - {from: n%d, to: n%d}\n", i, i+1)
	}
	b.WriteString("  - {from: n3999, to: END}\n")
	src := []byte(b.String())
	if len(src) < piecesMinSize {
		t.Fatalf("%d bytes: too small to be cut", len(src))
	}
	load := func(procs int) (string, []string) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		w, ds := Load("big.yaml", src)
		ds = append(ds, Validate(w)...)
		var nodes []string
		for i, n := range w.Nodes {
			if n.Index != i {
				t.Fatalf("%d procs: node %s has index %d, at %d", procs, n.Name, n.Index, i)
			}
			var out []string
			for _, o := range n.Output {
				out = append(out, fmt.Sprintf("%s=%s@%v made-up:%v", o.Key, o.Value.Value, o.Pos, w.synthetic[o.Value]))
			}
			nodes = append(nodes, fmt.Sprintf("%s %s %v %v", n.Name, n.Type, n.Pos, out))
		}
		return ds.String(), nodes
	}
	ds1, nodes1 := load(1)
	ds2, nodes2 := load(2)
	if ds1 != ds2 {
		t.Errorf("diagnostics differ:\none core:\n%s\ntwo:\n%s", ds1, ds2)
	}
	if strings.Count(ds1, "\n") < 40 {
		t.Errorf("expected the mistakes to be reported:\n%s", ds1)
	}
	if !slices.Equal(nodes1, nodes2) {
		t.Errorf("nodes differ")
	}
	if !strings.Contains(nodes2[202], "made-up:true") {
		t.Errorf("`output: s` is not known to be lgx's: %s", nodes2[202])
	}
}

// TestValidateOnCoresMatchesOne: a large agent workflow with every kind of
// node validates the same on one core (nodes, then graph) as on two (both
// at once); under -race it shows the two share nothing they write.
func TestValidateOnCoresMatchesOne(t *testing.T) {
	src, err := os.ReadFile("../workflows/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var extra strings.Builder
	extra.WriteString("nodes:\n")
	for i := range 2 * nodesPerCore {
		fmt.Fprintf(&extra, "  f%d: {type: set, output: {answer: \"${{ state.question + '%d' }}\"}}\n", i, i%7)
	}
	extra.WriteString(`  draft:
    type: template
    with: {template: "{{ .state.question }} {{ .nope }"}
    output: answer
  review:
    type: interrupt
    with: {message: "ok? ${{ state.answer }}"}
    output: {answer: "${{ result.comment }}"}
  child:
    type: subgraph
    with: {workflow: missing.yaml}
  f_bad: {type: set, output: {answer: "${{ state.nope + 1 }}"}}
`)
	src = []byte(strings.Replace(string(src), "nodes:\n", extra.String(), 1))
	validate := func(procs int) string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		w, ds := Load("agent.yaml", src)
		ds = append(ds, Validate(w)...)
		return ds.String()
	}
	one, two := validate(1), validate(2)
	if one != two {
		t.Errorf("diagnostics differ:\none core:\n%s\ntwo:\n%s", one, two)
	}
	for _, want := range []string{"unreachable", "missing.yaml", "nope"} {
		if !strings.Contains(one, want) {
			t.Errorf("no diagnostic mentions %q:\n%.2000s", want, one)
		}
	}
}

// utf16LE is s in UTF-16, little-endian, with a byte order mark.
func utf16LE(s string) string {
	b := []byte{0xFF, 0xFE}
	for _, r := range s {
		b = append(b, byte(r), byte(r>>8))
	}
	return string(b)
}
