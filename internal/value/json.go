package value

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// DecodeJSON decodes one JSON document (surrounding whitespace allowed,
// nothing else after it) into the model: objects, lists, strings, booleans,
// null, and numbers by Number (1 is int; 1.0, 1e3 and integers beyond int
// range are float64). A number beyond float64 range is an error wrapping
// ErrRange; invalid JSON an error wrapping *json.SyntaxError.
//
// It reads data in place rather than through json.Decoder, which UseNumber
// needs but which first copies the whole document into a buffer of its own
// that grows by doubling (two to three times the document, on top of it:
// http_fetch decodes bodies of up to max_bytes). json.Valid first (it
// allocates nothing) lets the parser assume well-formed input; strings with
// escapes or invalid UTF-8 go through json.Unmarshal for exactly
// encoding/json's decoding. Strings are copied, so data may be reused.
func DecodeJSON(data []byte) (any, error) {
	if !json.Valid(data) {
		var raw json.RawMessage // scans only, for the error's detail
		err := json.Unmarshal(data, &raw)
		if err == nil { // not reached: Valid and Unmarshal agree
			err = errors.New("not a single JSON value")
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Where, as an editor counts: a document of many lines is
			// unreadable by byte offset.
			at := se.Offset - 1 // Offset counts the bytes read, the bad one included
			if se.Error() == "unexpected end of JSON input" {
				at = int64(len(data)) // the input ended early: point past its end
			}
			line, col := lineCol(data, at)
			return nil, fmt.Errorf("invalid JSON at line %d, column %d: %w", line, col, err)
		}
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	p := jsonParser{data: data}
	return p.value()
}

// lineCol is the 1-based line and column (in characters) of the byte at
// offset in data; an offset past the end is the end.
func lineCol(data []byte, offset int64) (line, col int) {
	end := int(min(max(offset, 0), int64(len(data))))
	line, col = 1, 1
	for _, r := range string(data[:end]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

type jsonParser struct {
	data []byte
	i    int
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses the value at p.i; the input is valid JSON, and json.Valid
// bounds its nesting (to 10,000), so the recursion is bounded too.
func (p *jsonParser) value() (any, error) {
	p.skipSpace()
	switch c := p.data[p.i]; c {
	case '{':
		p.i++
		m := make(map[string]any)
		for {
			p.skipSpace()
			if p.data[p.i] == '}' {
				p.i++
				return m, nil
			}
			if p.data[p.i] == ',' {
				p.i++
				p.skipSpace()
			}
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			p.i++ // ':'
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
	case '[':
		p.i++
		l := make([]any, 0)
		for {
			p.skipSpace()
			if p.data[p.i] == ']' {
				p.i++
				return l, nil
			}
			if p.data[p.i] == ',' {
				p.i++
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
	case '"':
		return p.str()
	case 't':
		p.i += 4
		return true, nil
	case 'f':
		p.i += 5
		return false, nil
	case 'n':
		p.i += 4
		return nil, nil
	default:
		start := p.i
		for p.i < len(p.data) {
			switch p.data[p.i] {
			case '-', '+', '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
				p.i++
				continue
			}
			break
		}
		n, err := Number(json.Number(p.data[start:p.i]))
		if err != nil {
			return nil, err
		}
		return n, nil
	}
}

// str parses the string at p.i.
func (p *jsonParser) str() (string, error) {
	start := p.i
	plain := true // no escapes, valid UTF-8: the bytes are the string
	ascii := true
	j := start + 1
	for ; p.data[j] != '"'; j++ {
		switch c := p.data[j]; {
		case c == '\\':
			plain = false
			j++ // the escaped byte (a quote, for one) is not the end
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	p.i = j + 1
	seg := p.data[start+1 : j]
	if plain && (ascii || utf8.Valid(seg)) {
		return string(seg), nil
	}
	var s string
	if err := json.Unmarshal(p.data[start:p.i], &s); err != nil {
		return "", err
	}
	return s, nil
}
