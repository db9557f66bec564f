package redact

import (
	"encoding/base64"
	"net/url"
	"strings"
	"unicode/utf8"
)

// minShiftedBase64 is the shortest base64 fragment redacted for a secret
// embedded at an offset of 1 or 2 bytes inside a larger base64 value (an
// `Authorization: Basic` header echoed by a server): shorter fragments
// would match unrelated base64 data too often.
const minShiftedBase64 = 8

// Forms returns every form of secret that a Redactor replaces: the raw
// value; its base64 encodings (standard and URL alphabets, padded and
// unpadded, and the part of it that is the same wherever it sits inside a
// larger base64 value); each of those URL-escaped (query, path segment,
// path, upper- and lower-case %XX); and each of those JSON-escaped as
// encoding/json writes it (with and without HTML escaping) and as other
// encoders do (`\/`, ASCII-only `\uXXXX`, upper-case hex); and, for those
// the escaping changed, escaped twice (JSON inside JSON). The result has
// no duplicates and no empty string; it is nil for an empty secret.
func Forms(secret string) []string {
	if secret == "" {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	add(secret)
	for _, f := range base64Forms(secret) {
		add(f)
	}
	for _, f := range out[:len(out):len(out)] {
		for _, u := range urlForms(f) {
			add(u)
		}
	}
	for _, f := range out[:len(out):len(out)] {
		for _, j := range jsonForms(f) {
			add(j)
		}
		// JSON inside JSON (a server's error body quoting a JSON request):
		// each form that escaping changed, escaped again in its own style
		// or as encoding/json writes it (with and without HTML escaping).
		if len(jsonForms(f)) == 1 {
			continue // escaping leaves f as is, so twice too
		}
		for i := range 16 {
			st := jsonStyleOf(i)
			once := jsonEscape(f, st)
			if once == f {
				continue
			}
			add(jsonEscape(once, st))
			add(jsonEscape(once, jsonStyle{html: true}))
			add(jsonEscape(once, jsonStyle{}))
		}
	}
	return out
}

// jsonStyleOf returns the i-th of the 16 jsonStyles.
func jsonStyleOf(i int) jsonStyle {
	return jsonStyle{html: i&1 != 0, ascii: i&2 != 0, slash: i&4 != 0, upper: i&8 != 0}
}

// base64Forms returns s encoded in both alphabets, padded and not, plus,
// for s at each offset (mod 3) inside a larger value, the characters of the
// encoding that depend on s alone.
func base64Forms(s string) []string {
	b := []byte(s)
	out := []string{
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
	}
	for shift := 0; shift <= 2; shift++ {
		buf := make([]byte, shift+len(b))
		copy(buf[shift:], b)
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			e := enc.EncodeToString(buf)
			// Character j carries bits [6j, 6j+6) of the input; keep those
			// that lie wholly within s's bits [8·shift, 8·(shift+len)).
			from := (8*shift + 5) / 6
			to := 8 * (shift + len(b)) / 6
			if to-from >= minShiftedBase64 {
				out = append(out, e[from:to])
			}
		}
	}
	return out
}

// urlForms returns s as url.QueryEscape, url.PathEscape and URL.EscapedPath
// write it, and the same with lower-case percent escapes.
func urlForms(s string) []string {
	out := []string{url.QueryEscape(s), url.PathEscape(s), (&url.URL{Path: s}).EscapedPath()}
	for _, f := range out[:3] {
		if l := lowerPercent(f); l != f {
			out = append(out, l)
		}
	}
	return out
}

// lowerPercent turns the hex digits of %XX escapes to lower case.
func lowerPercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLowerHex(b[i+1]), toLowerHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func toLowerHex(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// jsonStyle is one way a JSON encoder escapes a string.
type jsonStyle struct {
	html  bool // <, > and & as \u003c… (encoding/json's default)
	ascii bool // every non-ASCII rune as \uXXXX (Python's ensure_ascii)
	slash bool // / as \/ (PHP)
	upper bool // upper-case hex digits in \uXXXX
}

// jsonForms returns s escaped as the inside of a JSON string in every
// jsonStyle.
func jsonForms(s string) []string {
	if !strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || r >= utf8.RuneSelf || strings.ContainsRune(`"\<>&/`, r)
	}) {
		return []string{s} // the same in every style (most forms: base64, %XX)
	}
	out := make([]string, 0, 16)
	for i := range 16 {
		out = append(out, jsonEscape(s, jsonStyleOf(i)))
	}
	return out
}

// jsonEscape writes s as encoding/json does (without the quotes), then
// applies st's variations. Invalid UTF-8 becomes \ufffd, as in
// encoding/json.
func jsonEscape(s string, st jsonStyle) string {
	hex := "0123456789abcdef"
	if st.upper {
		hex = "0123456789ABCDEF"
	}
	var b strings.Builder
	u4 := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hex[r>>12&0xF])
		b.WriteByte(hex[r>>8&0xF])
		b.WriteByte(hex[r>>4&0xF])
		b.WriteByte(hex[r&0xF])
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c == '\b':
				b.WriteString(`\b`)
			case c == '\f':
				b.WriteString(`\f`)
			case c == '\n':
				b.WriteString(`\n`)
			case c == '\r':
				b.WriteString(`\r`)
			case c == '\t':
				b.WriteString(`\t`)
			case c < 0x20, st.html && (c == '<' || c == '>' || c == '&'):
				u4(rune(c))
			case st.slash && c == '/':
				b.WriteString(`\/`)
			default:
				b.WriteByte(c)
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			u4(0xFFFD)
		case r == '\u2028' || r == '\u2029':
			u4(r)
		case st.ascii && r > 0xFFFF:
			r -= 0x10000
			u4(0xD800 + r>>10)
			u4(0xDC00 + r&0x3FF)
		case st.ascii:
			u4(r)
		default:
			b.WriteString(s[i-size : i])
		}
	}
	return b.String()
}
