package spec

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"go.yaml.in/yaml/v3"
)

// A large workflow file is parsed in pieces, on every core.
//
// yaml.v3 parses about 5 MB/s, so a generated workflow of 10,000 nodes
// (600 KB) spends most of `lgx validate`'s time in the parser, on one core.
// Most of such a file is the body of a top-level block collection
// (`nodes:`, `edges:`) whose entries start on lines indented alike; each run
// of entries parses alone as a document of its own, and the node trees are
// joined into the tree the whole file parses to, with every position the
// same (pieces start at line starts, so only lines move).
//
// A cut is made only where the parser's state is known: outside any flow
// collection, quoted or block scalar. Block scalars and plain scalars end at
// a line indented as the entries that hold them (YAML's indentation rule,
// which yaml.v3 follows); a cut inside a multi-line flow collection or
// quoted scalar leaves the piece before it unterminated, which is a parse
// error. Anything a piece cannot show alone (an alias to an anchor in
// another piece, a document marker, a comment whose owner could change) and
// every parse error fall back to parsing the whole file, so what a user sees
// of a bad file never depends on the cuts. TestPiecesMatchWhole and
// FuzzPieces compare the two parses.

const (
	// piecesMinSize is the smallest file worth cutting: below it, starting
	// the goroutines costs about what they save.
	piecesMinSize = 128 << 10
	// pieceSize is the size a run of entries is cut at: several per core,
	// so that the cores finish together.
	pieceSize = 48 << 10
)

// piece is a part of src that parses alone.
type piece struct {
	start, end int // byte offsets in src
	line       int // 1-based line of start
	// region is the index of the top-level collection whose entries the
	// piece holds, or -1 for a piece of top-level keys.
	region int
	root   *yaml.Node // the parsed document's content
	err    error
	// extent is the size and height of the piece's tree; aliased, whether
	// it holds an anchor or alias (which checkLimits must expand).
	extent  extent
	aliased bool
}

// region is a top-level key written alone on its line (`nodes:`) whose
// value, a block collection indented by indent columns, was cut into
// pieces of its entries.
type region struct {
	keyLine int
	indent  int
	kind    yaml.Kind
}

// parseYAMLPieces parses src in pieces on every core. ok is false when src
// cannot be cut (too small, one core, no cut point) or when a piece did not
// parse or does not fit the whole: the caller then parses src whole.
// withinLimits reports that the tree has no alias and is within MaxNodes and
// MaxDepth, measured as the pieces were parsed: checkLimits need not walk it
// again.
func parseYAMLPieces(src []byte, starts []int) (root *yaml.Node, ok, withinLimits bool) {
	procs := runtime.GOMAXPROCS(0)
	if procs < 2 || len(src) < piecesMinSize {
		return nil, false, false
	}
	return parsePieces(src, starts, pieceSize, procs)
}

// parsePieces is parseYAMLPieces with the piece size and the number of
// goroutines given (tests cut small files finely).
func parsePieces(src []byte, starts []int, pieceBytes, procs int) (*yaml.Node, bool, bool) {
	pieces, regions := cutPieces(src, starts, pieceBytes)
	if pieces == nil {
		return nil, false, false
	}
	// Largest first, each core taking the next: the last piece to start is
	// a small one.
	order := make([]int, len(pieces))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return (pieces[b].end - pieces[b].start) - (pieces[a].end - pieces[a].start)
	})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
	)
	for range min(procs, len(pieces)) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(order) {
					return
				}
				parsePiece(src, &pieces[order[i]])
			}
		})
	}
	wg.Wait()
	root, ok := joinPieces(pieces, regions)
	if !ok {
		return nil, false, false
	}
	// The whole tree's height is at most the first piece's (the document
	// and the top-level keys before the first cut) or two more than any
	// other piece's (under the document and a top-level mapping).
	size, height, aliased := 0, 0, false
	for i, p := range pieces {
		size += p.extent.size
		aliased = aliased || p.aliased
		if i == 0 {
			height = max(height, p.extent.height)
		} else {
			height = max(height, p.extent.height+2)
		}
	}
	return root, true, !aliased && size <= MaxNodes && height <= MaxDepth
}

// parsePiece parses one piece and moves its nodes' lines to the file's.
func parsePiece(src []byte, p *piece) {
	defer func() {
		// A bug here would end the process from this goroutine; parsed
		// whole, the file reaches Load's recover instead.
		if r := recover(); r != nil {
			p.err = fmt.Errorf("%v", r)
		}
	}()
	var doc yaml.Node
	if p.err = yaml.Unmarshal(src[p.start:p.end], &doc); p.err != nil {
		return
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return
	}
	if p.region < 0 && p.line == 1 {
		p.extent, p.aliased = measure(&doc, 0)
		p.root = &doc // the first piece's document is the whole file's
		return
	}
	p.extent, p.aliased = measure(doc.Content[0], p.line-1)
	if doc.HeadComment != "" || doc.LineComment != "" || doc.FootComment != "" {
		return // a comment the whole file's document would hold
	}
	p.root = doc.Content[0]
}

// measure adds d to the line of n and of every node under it, and returns
// the tree's size and height and whether it holds an anchor or an alias
// (whose target is in the tree already, and is not visited twice).
func measure(n *yaml.Node, d int) (e extent, aliased bool) {
	n.Line += d
	e = extent{size: 1, height: 1}
	aliased = n.Anchor != "" || n.Kind == yaml.AliasNode
	for _, c := range n.Content {
		ce, ca := measure(c, d)
		e.size += ce.size
		e.height = max(e.height, ce.height+1)
		aliased = aliased || ca
	}
	return e, aliased
}

// joinPieces builds the whole file's tree from its parsed pieces, or
// reports that they do not fit together.
func joinPieces(pieces []piece, regions []region) (*yaml.Node, bool) {
	if pieces[0].region >= 0 || pieces[0].line != 1 {
		return nil, false
	}
	var doc, top *yaml.Node
	var body *yaml.Node // the collection being joined, nil between regions
	for i := range pieces {
		p := &pieces[i]
		if p.err != nil || p.root == nil {
			return nil, false
		}
		if i+1 < len(pieces) && (p.region >= 0 || pieces[i+1].region < 0) && endsEmpty(p.root) {
			// A missing value (`key:`, `? key`, `-`) is placed where the
			// next token starts, which is in the next piece.
			return nil, false
		}
		if p.region < 0 {
			m := p.root
			if i == 0 {
				doc = p.root
				m = doc.Content[0]
				top = m
			} else {
				// A later run of top-level keys continues the first's
				// mapping, which must have ended with a region's key.
				if body == nil {
					return nil, false
				}
			}
			if m.Kind != yaml.MappingNode || m.Style != 0 || m.Column != 1 || len(m.Content) == 0 {
				return nil, false
			}
			if i > 0 {
				top.Content = append(top.Content, m.Content...)
			}
			body = nil
			continue
		}
		r := regions[p.region]
		c := p.root
		if c.Kind != r.kind || c.Style != 0 || c.Column != r.indent+1 || c.Line != p.line {
			return nil, false
		}
		if body != nil {
			body.Content = append(body.Content, c.Content...)
			continue
		}
		// The region's first piece: its collection is the value of the
		// top-level key on the line before, which parsed as an empty
		// value.
		n := len(top.Content)
		if n < 2 {
			return nil, false
		}
		key, val := top.Content[n-2], top.Content[n-1]
		if key.Line != r.keyLine || key.Column != 1 || val.Kind != yaml.ScalarNode || val.Tag != "!!null" || val.Value != "" {
			return nil, false
		}
		top.Content[n-1] = c
		body = c
	}
	return doc, true
}

// endsEmpty reports whether the last node under n is a missing value.
func endsEmpty(n *yaml.Node) bool {
	for len(n.Content) > 0 {
		n = n.Content[len(n.Content)-1]
	}
	return n.Kind == yaml.ScalarNode && n.Style == 0 && n.Value == ""
}

// lineInfo is what cutPieces needs to know of one line.
type lineInfo struct {
	indent  int  // leading spaces
	first   byte // the first byte after them; 0 on a blank line
	comment bool // the line holds only a comment
}

func (l lineInfo) content() bool { return l.first != 0 && !l.comment }

// keyStart reports whether c can start a plain or quoted mapping key. The
// others (`- ? : [ { & * ! | > % @ #`) start constructs a cut must not
// separate from what follows.
func keyStart(c byte) bool {
	return c == '_' || c == '"' || c == '\'' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// cutPieces finds where src can be cut: nil when nowhere, or when src holds
// something a piece could show differently (document markers, directives,
// line breaks other than "\n" and "\r\n", UTF-16, whose every ASCII
// character has a zero byte, and which yaml.v3 recognises by the first
// piece's byte order mark only).
func cutPieces(src []byte, starts []int, pieceBytes int) ([]piece, []region) {
	if bytes.IndexByte(src, 0) >= 0 || bytes.Contains(src, []byte("\u0085")) || bytes.Contains(src, []byte("\u2028")) || bytes.Contains(src, []byte("\u2029")) {
		return nil, nil
	}
	lines := make([]lineInfo, len(starts))
	for i, s := range starts {
		e := len(src)
		if i+1 < len(starts) {
			e = starts[i+1] - 1
		}
		l := src[s:e]
		if len(l) > 0 && l[len(l)-1] == '\r' {
			l = l[:len(l)-1]
		}
		if bytes.IndexByte(l, '\r') >= 0 {
			return nil, nil // a lone CR breaks a line for yaml.v3, not here
		}
		if bytes.HasPrefix(l, []byte("---")) || bytes.HasPrefix(l, []byte("...")) || bytes.HasPrefix(l, []byte("%")) {
			return nil, nil
		}
		n := 0
		for n < len(l) && l[n] == ' ' {
			n++
		}
		info := lineInfo{indent: n}
		if n < len(l) {
			info.first = l[n]
			info.comment = l[n] == '#'
		}
		lines[i] = info
	}
	// The file must be a block mapping at column 1.
	first := slices.IndexFunc(lines, lineInfo.content)
	if first < 0 || lines[first].indent != 0 || !keyStart(lines[first].first) {
		return nil, nil
	}
	var (
		pieces  []piece
		regions []region
		top     = 0 // the line the current run of top-level keys starts at
	)
	emit := func(from, to, reg int) { // lines [from, to)
		end := len(src)
		if to < len(starts) {
			end = starts[to]
		}
		pieces = append(pieces, piece{start: starts[from], end: end, line: from + 1, region: reg})
	}
	for i := first; i < len(lines); {
		// i is a top-level key's line; find the next one.
		next := i + 1
		for next < len(lines) && (!lines[next].content() || lines[next].indent > 0) {
			next++
		}
		// The collection can be cut from what follows it only at a plain
		// key's line, and from the end of the file only if no comment
		// ends it (yaml.v3 gives such a comment to the document).
		var ends bool
		if next < len(lines) {
			ends = keyStart(lines[next].first)
		} else {
			last := len(lines) - 1
			for last > i && lines[last].first == 0 {
				last--
			}
			ends = lines[last].content()
		}
		if !ends {
			i = next
			continue
		}
		if cuts := entryCuts(src, starts, lines, i, next, pieceBytes); cuts != nil {
			emit(top, i+1, -1)
			r := region{keyLine: i + 1, indent: lines[i+1].indent, kind: yaml.MappingNode}
			if lines[i+1].first == '-' {
				r.kind = yaml.SequenceNode
			}
			regions = append(regions, r)
			for k, c := range cuts {
				to := next
				if k+1 < len(cuts) {
					to = cuts[k+1]
				}
				emit(c, to, len(regions)-1)
			}
			top = next
		}
		i = next
	}
	if len(regions) == 0 {
		return nil, nil
	}
	if slices.ContainsFunc(lines[top:], lineInfo.content) {
		emit(top, len(lines), -1)
	}
	// yaml.v3 gives a comment on a line of its own to the node before or
	// after it by rules that look at the start of the document: in any
	// piece but the first, it could go elsewhere.
	for _, p := range pieces[1:] {
		for l := p.line - 1; l < len(lines) && starts[l] < p.end; l++ {
			if lines[l].comment {
				return nil, nil
			}
		}
	}
	return pieces, regions
}

// entryCuts returns the lines a top-level key's block collection, on lines
// (key, next), is cut at into runs of about pieceBytes bytes, the first
// being key+1; nil if it is not worth cutting or cannot be cut.
func entryCuts(src []byte, starts []int, lines []lineInfo, key, next, pieceBytes int) []int {
	if next-key < 3 || size(starts, len(src), key, next) < 2*pieceBytes {
		return nil
	}
	// Only a key written alone: `nodes:` (trailing spaces allowed).
	if l := bytes.TrimRight(src[starts[key]:starts[key+1]], " \r\n"); len(l) == 0 || l[len(l)-1] != ':' || bytes.ContainsAny(l, "#\"'{[&*!|>") {
		return nil
	}
	body := lines[key+1]
	if !body.content() || body.indent == 0 {
		return nil
	}
	// An entry of a sequence starts with "- " or a "-" alone; of a
	// mapping, with a key.
	seq := body.first == '-'
	entry := func(j int) bool {
		if !seq {
			return keyStart(lines[j].first)
		}
		if lines[j].first != '-' {
			return false
		}
		after := starts[j] + lines[j].indent + 1
		return after >= len(src) || src[after] == ' ' || src[after] == '\n' || src[after] == '\r'
	}
	if !entry(key + 1) {
		return nil
	}
	cuts := []int{key + 1}
	for j := key + 2; j < next; j++ {
		if lines[j].content() && lines[j].indent < body.indent {
			// Outside the collection's indentation (a continued quoted
			// scalar, or an error): a piece would be read in another
			// context than the whole's.
			return nil
		}
		if lines[j].indent != body.indent || !entry(j) {
			continue
		}
		if size(starts, len(src), cuts[len(cuts)-1], j) >= pieceBytes {
			cuts = append(cuts, j)
		}
	}
	if len(cuts) < 2 {
		return nil
	}
	return cuts
}

// size is the byte length of lines [from, to).
func size(starts []int, n, from, to int) int {
	end := n
	if to < len(starts) {
		end = starts[to]
	}
	return end - starts[from]
}
