package nodes

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// errFetchJSON reports a body that is not one JSON document.
var errFetchJSON = errors.New("not a single JSON value")

// parseFetchJSON parses one JSON document (surrounding whitespace allowed)
// straight from the body buffer, with the result decodeFetchJSON always
// had: objects, lists, strings, booleans, null, and numbers as int when
// integral and in int64 range (as written: 1.0 and 1e3 stay float64),
// else float64.
//
// json.Decoder, which UseNumber needs, first copies the whole document
// into a buffer of its own that grows by doubling: two to three times the
// body, on top of the body, for a response of max_bytes. This reads the
// buffer in place; json.Valid first (it allocates nothing) lets the parser
// assume well-formed input, and strings with escapes or invalid UTF-8 go
// through json.Unmarshal for exactly encoding/json's decoding.
func parseFetchJSON(data []byte) (any, error) {
	if !json.Valid(data) {
		return nil, errFetchJSON
	}
	p := fetchJSONParser{data: data}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	return v, nil
}

type fetchJSONParser struct {
	data []byte
	i    int
}

func (p *fetchJSONParser) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value parses the value at p.i; the input is valid JSON.
func (p *fetchJSONParser) value() (any, error) {
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
		return fetchNumbers(json.Number(p.data[start:p.i])), nil
	}
}

// str parses the string at p.i.
func (p *fetchJSONParser) str() (string, error) {
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
