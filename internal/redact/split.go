package redact

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// JSONFragments returns s, a JSON document or a stream of them (a
// server-sent event stream, JSON lines), with every secret replaced that
// its string values hold split across values of one key: a streamed
// model answer arrives as many small chunks ({"content": "toke"},
// {"content": "n sk"}, {"content": "-SEC"}, ...), and a secret the model
// repeats is whole only once the chunks of each key are joined. String
// replaces the secrets each value holds whole; this finds the rest. A
// value is grouped with the others of the key that names it (the string
// before its colon; an array's strings go with the array's key), in the
// order they come. The part of a secret each value held is removed, and
// the value where the secret began gets Mask.
func (rd *Redactor) JSONFragments(s string) string {
	if rd == nil || !strings.Contains(s, `"`) {
		return s
	}
	frags := jsonStrings(s)
	if len(frags) == 0 {
		return s
	}
	groups := map[string][]int{} // key -> indexes into frags, in order
	var keys []string
	for i, f := range frags {
		if _, ok := groups[f.key]; !ok {
			keys = append(keys, f.key)
		}
		groups[f.key] = append(groups[f.key], i)
	}
	changed := false
	for _, k := range keys {
		if rd.redactJoined(frags, groups[k]) {
			changed = true
		}
	}
	if !changed {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	at := 0
	for _, f := range frags {
		if !f.changed {
			continue
		}
		b.WriteString(s[at:f.start])
		b.Write(quoteJSON(f.text))
		at = f.end
	}
	b.WriteString(s[at:])
	return b.String()
}

// fragment is one JSON string value of a text: where its literal is
// (s[start:end], quotes included), its decoded text, and the key it is
// the value of.
type fragment struct {
	start, end int
	key, text  string
	changed    bool
}

// redactJoined finds the secrets in the joined texts of frags[idx] and
// removes each from the fragments it spans, leaving Mask where it began.
// It reports whether anything changed.
func (rd *Redactor) redactJoined(frags []fragment, idx []int) bool {
	var joined strings.Builder
	starts := make([]int, len(idx)) // offset of each fragment in joined
	for n, i := range idx {
		starts[n] = joined.Len()
		joined.WriteString(frags[i].text)
	}
	text := joined.String()
	// Ranges of text that are a secret's form, longest forms first so
	// that a form inside a longer one does not cut it short.
	type span struct{ a, b int }
	var spans []span
	for _, f := range rd.forms {
		for from := 0; ; {
			j := strings.Index(text[from:], f)
			if j < 0 {
				break
			}
			a := from + j
			spans = append(spans, span{a, a + len(f)})
			from = a + len(f)
		}
	}
	if len(spans) == 0 {
		return false
	}
	slices.SortFunc(spans, func(x, y span) int { return x.a - y.a })
	merged := spans[:1]
	for _, sp := range spans[1:] {
		if last := &merged[len(merged)-1]; sp.a <= last.b {
			last.b = max(last.b, sp.b)
		} else {
			merged = append(merged, sp)
		}
	}
	// Rebuild each fragment's text without the spans' bytes; the fragment
	// where a span starts gets Mask in its place.
	for n, i := range idx {
		lo, hi := starts[n], starts[n]+len(frags[i].text)
		var out strings.Builder
		pos := lo
		touched := false
		for _, sp := range merged {
			if sp.b <= lo || sp.a >= hi {
				continue
			}
			touched = true
			a, b := max(sp.a, lo), min(sp.b, hi)
			out.WriteString(text[pos:a])
			if sp.a >= lo {
				out.WriteString(Mask)
			}
			pos = b
		}
		if touched {
			out.WriteString(text[pos:hi])
			frags[i].text, frags[i].changed = out.String(), true
		}
	}
	return true
}

// jsonStrings returns the string values of s that are JSON string
// literals followed by no colon (keys are not values), each with the key
// it belongs to. Text outside literals (SSE framing, numbers) is skipped;
// a literal that does not decode is left out.
func jsonStrings(s string) []fragment {
	var out []fragment
	key := ""
	for i := 0; i < len(s); i++ {
		if s[i] != '"' {
			continue
		}
		end := literalEnd(s, i)
		if end < 0 {
			break
		}
		var text string
		if err := json.Unmarshal([]byte(s[i:end]), &text); err != nil {
			i = end - 1
			continue
		}
		j := end
		for j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r' || s[j] == '\n') {
			j++
		}
		if j < len(s) && s[j] == ':' {
			key = text
		} else {
			out = append(out, fragment{start: i, end: end, key: key, text: text})
		}
		i = end - 1
	}
	return out
}

// literalEnd returns the index just past the closing quote of the JSON
// string literal starting at s[start] (a quote), or -1 when it does not
// close.
func literalEnd(s string, start int) int {
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		case '\n':
			return -1 // JSON strings hold no raw line break
		}
	}
	return -1
}

// quoteJSON encodes text as a JSON string literal, without the HTML
// escaping encoding/json adds by default (the literal it replaces was
// written by a server, not by encoding/json).
func quoteJSON(text string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(text) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
