package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// encodings are the ways a secret leaves the process, computed with the
// standard library (not with Forms), so that the tests check Forms
// against what the encoders really write.
var encodings = []struct {
	name string
	enc  func(string) string
}{
	{"raw", func(s string) string { return s }},
	{"query", url.QueryEscape},
	{"path segment", url.PathEscape},
	{"path", func(s string) string { return (&url.URL{Path: s}).EscapedPath() }},
	{"url query value", func(s string) string { return url.Values{"k": {s}}.Encode()[2:] }},
	{"json", func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }},
	{"json no html", func(s string) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		b := bytes.TrimSpace(buf.Bytes())
		return string(b[1 : len(b)-1])
	}},
	{"json of query", func(s string) string { b, _ := json.Marshal(url.QueryEscape(s)); return string(b[1 : len(b)-1]) }},
	{"json twice", func(s string) string { return jsonInner(jsonInner(s, true), true) }},
	{"json twice no html", func(s string) string { return jsonInner(jsonInner(s, false), false) }},
	{"json no html, then json", func(s string) string { return jsonInner(jsonInner(s, false), true) }},
	{"json of base64, twice", func(s string) string {
		return jsonInner(jsonInner(base64.StdEncoding.EncodeToString([]byte(s)), true), true)
	}},
	{"base64 std", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
	{"base64 std raw", func(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
	{"base64 url", func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
	{"base64 url raw", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"query of base64", func(s string) string { return url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(s))) }},
}

// jsonInner returns s as the inside of a JSON string, as encoding/json
// writes it (with or without HTML escaping).
func jsonInner(s string, html bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(html)
	_ = enc.Encode(s)
	b := bytes.TrimSpace(buf.Bytes())
	return string(b[1 : len(b)-1])
}

func TestFormsCoverEncodings(t *testing.T) {
	secrets := []string{"sk-abc123", "p@ss word&<x>/y?z=1+2", "é—ü\u2028\U0001F600", "a\"b\\c\n\td", "\xff\xfebad"}
	for _, s := range secrets {
		forms := map[string]bool{}
		for _, f := range Forms(s) {
			forms[f] = true
		}
		for _, e := range encodings {
			if f := e.enc(s); !forms[f] {
				t.Errorf("secret %q: %s form %q missing from Forms", s, e.name, f)
			}
		}
	}
}

func TestFormsExtraJSONStyles(t *testing.T) {
	s := "a&b/é"
	forms := strings.Join(Forms(s), "\n")
	for _, want := range []string{
		`a\u0026b/é`,       // encoding/json
		`a\u0026b\/\u00e9`, // HTML + PHP slash + ASCII only
		`a&b/\u00E9`,       // upper-case hex
		`a%26b%2F%C3%A9`,   // query
		`a%26b%2f%c3%a9`,   // lower-case percent escapes
	} {
		if !strings.Contains("\n"+forms+"\n", "\n"+want+"\n") {
			t.Errorf("Forms(%q) lacks %q", s, want)
		}
	}
	if Forms("") != nil {
		t.Error("Forms(\"\") should be nil")
	}
}

// TestJSONEscapeMatchesEncodingJSON pins jsonEscape's default styles to
// encoding/json's output for awkward strings.
func TestJSONEscapeMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"plain", "<&>", "\x00\x01\x1f\x7f", "\b\f\n\r\t\"\\", "\u2028\u2029", "\xff", "é😀", "a/b"} {
		b, _ := json.Marshal(s)
		if got, want := jsonEscape(s, jsonStyle{html: true}), string(b[1:len(b)-1]); got != want {
			t.Errorf("jsonEscape(%q, html) = %q, encoding/json %q", s, got, want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		nb := bytes.TrimSpace(buf.Bytes())
		if got, want := jsonEscape(s, jsonStyle{}), string(nb[1:len(nb)-1]); got != want {
			t.Errorf("jsonEscape(%q) = %q, encoding/json %q", s, got, want)
		}
	}
	// ASCII-only, as Python's json.dumps writes it.
	if got, want := jsonEscape("é😀", jsonStyle{ascii: true}), `\u00e9\ud83d\ude00`; got != want {
		t.Errorf("ascii style: %q, want %q", got, want)
	}
}

func TestString(t *testing.T) {
	rd := New("tok&en", "", "tok")
	tests := []struct{ in, want string }{
		{"", ""},
		{"nothing here", "nothing here"},
		{"a tok&en b", "a *** b"},       // the longer secret whole, not "***&en"
		{"a tok b", "a *** b"},          // the shorter one too
		{"q=tok%26en&x=1", "q=***&x=1"}, // query escaped
		{`{"k":"tok\u0026en"}`, `{"k":"***"}`},
		{`{"k":"tok\u0026En"}`, `{"k":"***\u0026En"}`}, // not a form: only "tok" goes
		{"Basic " + base64.StdEncoding.EncodeToString([]byte("tok&en")), "Basic ***"},
		{"tok&entok&en", "******"},
	}
	for _, tt := range tests {
		if got := rd.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestJSONInsideJSON: a server's error body quoting, as a JSON string, the
// JSON request that held the secret escapes the secret twice; only secrets
// that JSON escaping changes get the extra forms.
func TestJSONInsideJSON(t *testing.T) {
	secret := `p&ss"w\rd<1>`
	rd := New(secret)
	inner, _ := json.Marshal(map[string]string{"api_key": secret})
	body, _ := json.Marshal(map[string]string{"error": "bad request", "request": string(inner)})
	var noHTML bytes.Buffer
	enc := json.NewEncoder(&noHTML)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]string{"request": jsonInner(secret, false)})
	tests := []struct{ name, in, want string }{
		{"encoding/json, twice", string(body), `{"error":"bad request","request":"{\"api_key\":\"***\"}"}`},
		{"without HTML escaping, twice", strings.TrimSpace(noHTML.String()), `{"request":"***"}`},
		{"Python style twice", `"` + jsonEscape(jsonEscape(secret, jsonStyle{ascii: true, slash: true}), jsonStyle{ascii: true, slash: true}) + `"`, `"***"`},
	}
	for _, tt := range tests {
		if got := rd.String(tt.in); got != tt.want {
			t.Errorf("%s: String(%s) = %s, want %s", tt.name, tt.in, got, tt.want)
		}
	}
	// Nothing to escape: no extra forms.
	if n, m := len(Forms("plain-token-123")), len(Forms(secret)); n >= m || n > 40 {
		t.Errorf("Forms of a plain secret: %d (of one needing escapes: %d)", n, m)
	}
}

// TestBasicAuthEcho: a server echoing `Authorization: Basic base64(user:secret)`
// must not reveal the secret, wherever it sits in the encoded pair.
func TestBasicAuthEcho(t *testing.T) {
	secret := "s3cr3t-value-42"
	rd := New(secret)
	for _, user := range []string{"", "u", "us", "use", "user", "admin:"} {
		enc := base64.StdEncoding.EncodeToString([]byte(user + ":" + secret))
		out := rd.String(`{"headers":{"Authorization":"Basic ` + enc + `"}}`)
		if strings.Contains(out, enc) || !strings.Contains(out, Mask) {
			t.Errorf("user %q: %s not redacted: %s", user, enc, out)
		}
		dec := decodeLongestBase64(t, out)
		if strings.Contains(dec, secret[1:len(secret)-1]) {
			t.Errorf("user %q: redacted text still decodes to the secret: %q", user, dec)
		}
	}
}

// decodeLongestBase64 decodes the longest base64 run in s, with padding
// repaired, the way an attacker would try.
func decodeLongestBase64(t *testing.T, s string) string {
	t.Helper()
	var best string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/')
	}) {
		if len(f) > len(best) {
			best = f
		}
	}
	var out []byte
	for off := range 4 {
		if off > len(best) {
			break
		}
		b, _ := base64.RawStdEncoding.DecodeString(best[off : off+(len(best)-off)/4*4])
		out = append(out, b...)
		out = append(out, '|')
	}
	return string(out)
}

func TestNilRedactor(t *testing.T) {
	var rd *Redactor
	if New() != nil || New("", "") != nil {
		t.Fatal("New without secrets should be nil")
	}
	v := map[string]any{"a": []any{"x", 1}}
	allocs := testing.AllocsPerRun(100, func() {
		_ = rd.String("text")
		_ = rd.Value(v)
		_ = rd.Error(fs.ErrNotExist)
	})
	if allocs != 0 {
		t.Errorf("nil Redactor allocates %v times", allocs)
	}
	if rd.Active() {
		t.Error("nil Redactor is active")
	}
	if st := rd.NewStream(); st.Write("ab") != "ab" || st.Flush() != "" {
		t.Error("nil Redactor stream should pass chunks through")
	}
}

func TestValue(t *testing.T) {
	rd := New("S3CRET")
	b64 := base64.StdEncoding.EncodeToString([]byte("S3CRET"))
	shared := []any{1, "plain"}
	in := map[string]any{
		"S3CRET":       1,      // a key
		"plain":        shared, // unchanged: shared, not copied
		"nested":       map[string]any{"x": []any{"a S3CRET b", b64}},
		"strs":         []string{"S3CRET"},
		"sm":           map[string]string{"k": "S3CRET"},
		"***":          2, // collides with the redacted key
		"S3CRET/other": true,
	}
	before := fmt.Sprint(in)
	got := rd.Value(in).(map[string]any)
	if fmt.Sprint(in) != before {
		t.Fatal("Value modified its input")
	}
	want := map[string]any{
		"***":       2,
		"***#2":     1,
		"plain":     shared,
		"nested":    map[string]any{"x": []any{"a *** b", "***"}},
		"strs":      []string{"***"},
		"sm":        map[string]any{"k": "***"},
		"***/other": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Value =\n%v\nwant\n%v", got, want)
	}
	if reflect.ValueOf(got["plain"]).Pointer() != reflect.ValueOf(shared).Pointer() {
		t.Error("unchanged slice was copied")
	}
	type odd struct{ Token string }
	if got := rd.Value(odd{"x S3CRET"}); !reflect.DeepEqual(got, map[string]any{"Token": "x ***"}) {
		t.Errorf("struct value: %#v", got)
	}
	if got := rd.Value(odd{"fine"}); got != (odd{"fine"}) {
		t.Errorf("unchanged struct: %#v", got)
	}
}

func TestKeyCollisionsAreDeterministic(t *testing.T) {
	rd := New("AAAA", "BBBB")
	for range 20 {
		got := rd.Value(map[string]any{"AAAA": 1, "BBBB": 2, "x": 3}).(map[string]any)
		if !reflect.DeepEqual(got, map[string]any{"***": 1, "***#2": 2, "x": 3}) {
			t.Fatalf("got %v", got)
		}
	}
}

func TestError(t *testing.T) {
	rd := New("hunter2")
	base := fmt.Errorf("login with hunter2: %w", fs.ErrPermission)
	err := rd.Error(base)
	if err.Error() != "login with ***: permission denied" {
		t.Errorf("Error() = %q", err.Error())
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Error("redacted error lost its chain")
	}
	clean := errors.New("nothing")
	if rd.Error(clean) != clean || rd.Error(nil) != nil {
		t.Error("an error without secrets should be returned as is")
	}
}

// FuzzRedact: a random secret, encoded in a random way, inside random
// text: the redacted text contains none of the secret's encodings.
func FuzzRedact(f *testing.F) {
	f.Add("tok&en", "before ", " after", uint8(0))
	f.Add("p@ss/w rd", "url?q=", "&x", uint8(1))
	f.Add("é<ü>", `{"e":"`, `"}`, uint8(5))
	f.Add("abc", "ab", "bc", uint8(8))
	f.Add("aa", "a", "a", uint8(3))
	f.Fuzz(func(t *testing.T, secret, prefix, suffix string, which uint8) {
		if secret == "" || strings.Contains(secret, "*") {
			t.Skip() // a secret made of the mask's characters is its own mask
		}
		rd := New(secret)
		enc := encodings[int(which)%len(encodings)]
		text := prefix + enc.enc(secret) + suffix
		out := rd.String(text)
		// The scan replaces as strings.Replacer does with the forms
		// longest first: leftmost match, the longest at its position.
		var pairs []string
		for _, f := range rd.forms {
			pairs = append(pairs, f, Mask)
		}
		if want := strings.NewReplacer(pairs...).Replace(text); out != want {
			t.Fatalf("String(%q) = %q, strings.Replacer gives %q", text, out, want)
		}
		for _, e := range encodings {
			if f := e.enc(secret); strings.Contains(out, f) {
				t.Fatalf("%s form %q of secret %q survives in %q (text %q, %s)", e.name, f, secret, out, text, enc.name)
			}
		}
		for _, f := range Forms(secret) {
			if strings.Contains(out, f) {
				t.Fatalf("form %q of secret %q survives in %q", f, secret, out)
			}
		}
		// The same text as an object key and as a value.
		v := rd.Value(map[string]any{text: []any{text}}).(map[string]any)
		if len(v) != 1 {
			t.Fatalf("Value lost a key: %v", v)
		}
		for k, e := range v {
			if k != out || e.([]any)[0] != out {
				t.Fatalf("Value = %q: %q, want %q", k, e, out)
			}
		}
	})
}
