package redact

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestJSONFragments: a secret a stream holds in pieces, one per chunk, is
// removed from every piece, whatever the provider's event shape, in any
// form String replaces; text without a secret is returned as it came.
func TestJSONFragments(t *testing.T) {
	const secret = "sk-SECRET-abc123XYZ"
	rd := New(secret)
	chunks := func(format string, parts ...string) string {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(strings.ReplaceAll(format, "PART", p))
		}
		return b.String()
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(secret))
	tests := []struct {
		name, in string
		want     string // a substring of the result
	}{
		{"openai", chunks(`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"PART"}}]}`+"\n\n",
			"token ", "sk", "-SEC", "RET-", "abc1", "23XY", "Z done"), `"content":"***"`},
		{"anthropic", chunks(`event: content_block_delta`+"\n"+`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"PART"}}`+"\n\n",
			"key sk-S", "ECRET-abc", "123XYZ."), `"text":"key ***"`},
		{"tool arguments", chunks(`data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"PART"}}]}}]}`+"\n\n",
			`{\"key\": \"sk-`, "SECRET", "-abc123XYZ", `\"}`), `"arguments":"{\"key\": \"***"`},
		{"base64", chunks(`data: {"delta":{"text":"PART"}}`+"\n\n", b64[:5], b64[5:11], b64[11:]), `"text":"***"`},
		{"escaped quotes around", chunks(`data: {"delta":{"text":"PART"}}`+"\n\n", `say \"sk-SECRET`, `-abc123XYZ\" ok`), `"text":"say \"***"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rd.JSONFragments(rd.String(tt.in))
			if !strings.Contains(got, tt.want) {
				t.Errorf("lacks %q:\n%s", tt.want, got)
			}
			// Joined, the values hold no piece of the secret longer than
			// a few bytes that was part of it.
			var joined strings.Builder
			for _, f := range jsonStrings(got) {
				joined.WriteString(f.text)
			}
			for _, piece := range []string{"SECRET", "abc123", "23XYZ", b64[:10], b64[8:]} {
				if strings.Contains(joined.String(), piece) {
					t.Errorf("the joined values still hold %q:\n%s", piece, joined.String())
				}
			}
		})
	}

	// Nothing to find: the text comes back as it was, byte for byte.
	plain := chunks(`data: {"choices":[{"delta":{"content":"PART"}}]}`+"\n\n", "a <b> & \\u00e9", "no secret", "here")
	if got := rd.JSONFragments(plain); got != plain {
		t.Errorf("changed text without a secret:\n%s", got)
	}
	// Pieces under different keys are not joined.
	apart := `{"a":"sk-SECRET","b":"-abc123XYZ"}`
	if got := rd.JSONFragments(apart); got != apart {
		t.Errorf("joined values of different keys: %s", got)
	}
	var none *Redactor
	if got := none.JSONFragments(plain); got != plain {
		t.Error("a nil Redactor changed the text")
	}
}

// FuzzJSONFragments: any text comes back without panicking; unchanged
// when no form of the secret is spread through it in order; and with no
// key's values, joined, holding a form of the secret.
func FuzzJSONFragments(f *testing.F) {
	f.Add(`data: {"content":"sk-SE"}` + "\n\n" + `data: {"content":"CRET"}`)
	f.Add(`{"a":"\u00e9\"","b":[1,"x"]} "unterminated`)
	f.Add(`"\`)
	f.Add(`"sk-S""ECRET"`)
	rd := New("sk-SECRET")
	f.Fuzz(func(t *testing.T, s string) {
		out := rd.JSONFragments(s)
		spread := false
		for _, form := range rd.forms {
			spread = spread || subsequence(form, s)
		}
		if !spread && out != s {
			t.Fatalf("changed %q to %q", s, out)
		}
		joined := map[string]string{}
		for _, fr := range jsonStrings(out) {
			joined[fr.key] += fr.text
		}
		for k, text := range joined {
			for _, form := range rd.forms {
				if strings.Contains(text, form) {
					t.Fatalf("values of key %q still hold %q: %q", k, form, out)
				}
			}
		}
	})
}

// subsequence reports whether the bytes of sub appear in s in order.
func subsequence(sub, s string) bool {
	for i := 0; i < len(s) && sub != ""; i++ {
		if s[i] == sub[0] {
			sub = sub[1:]
		}
	}
	return sub == ""
}
