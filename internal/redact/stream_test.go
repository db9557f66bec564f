package redact

import (
	"strings"
	"testing"
)

// feed writes chunks to a new stream and returns the pieces emitted,
// Flush's included.
func feed(rd *Redactor, chunks []string) []string {
	st := rd.NewStream()
	var out []string
	for _, c := range chunks {
		out = append(out, st.Write(c))
	}
	return append(out, st.Flush())
}

func TestStream(t *testing.T) {
	rd := New("sk-SECRET", "sk-SECRET-LONGER")
	tests := []struct {
		name   string
		chunks []string
		want   []string // pieces emitted by each Write, then Flush
	}{
		{"no secret", []string{"hello ", "world"}, []string{"hello ", "world", ""}},
		{"split secret", []string{"key: sk-SE", "CRET done"}, []string{"key: ", "*** done", ""}},
		{"one byte at a time", strings.Split("a sk-SECRET", ""),
			// complete at the last write, but sk-SECRET-LONGER could follow
			[]string{"a", " ", "", "", "", "", "", "", "", "", "", "***"}},
		// sk-SECRET is complete, but sk-SECRET-LONGER may still follow.
		{"longer secret pending", []string{"sk-SECRET", "-LONG", "ER!"}, []string{"", "", "***!", ""}},
		{"longer secret diverges", []string{"sk-SECRET", "-LONG", "IS"}, []string{"", "", "***-LONGIS", ""}},
		{"held until flush", []string{"x sk-SEC"}, []string{"x ", "sk-SEC"}},
		{"complete at flush", []string{"sk-SECRET"}, []string{"", "***"}},
		{"prefix letters pass", []string{"s", "ky"}, []string{"", "sky", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := feed(rd, tt.chunks)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("emitted %q, want %q", got, tt.want)
			}
		})
	}
}

// TestStreamHoldsLessThanLongestForm: the stream never holds more than
// could still become a secret.
func TestStreamHoldsLessThanLongestForm(t *testing.T) {
	rd := New("abcabd")
	st := rd.NewStream()
	longest := len(rd.forms[0])
	for i := range 1000 {
		st.Write("abcab"[i%5 : i%5+1])
		if st.Held() >= longest {
			t.Fatalf("holds %d bytes, longest form is %d", st.Held(), longest)
		}
	}
}

// FuzzStream: a secret hidden in text cut into random chunks. The pieces
// emitted never contain a form of the secret, each piece is final (no
// later piece completes a secret begun in it), and the pieces joined are
// exactly the redaction of the whole text.
func FuzzStream(f *testing.F) {
	f.Add("sk-SECRET", "a sk-SECRET b", []byte{3, 1, 4, 1, 5}, uint8(0))
	f.Add("aa", "aaaaa", []byte{1, 1, 1, 1}, uint8(0))
	f.Add("x&y", "q=x%26y&r=eCZ5", []byte{2, 2, 2}, uint8(1))
	f.Fuzz(func(t *testing.T, secret, text string, cuts []byte, which uint8) {
		if secret == "" || strings.Contains(secret, "*") {
			t.Skip()
		}
		rd := New(secret)
		forms := Forms(secret)
		// Hide one encoded form of the secret in the middle of the text.
		mid := len(text) / 2
		text = text[:mid] + forms[int(which)%len(forms)] + text[mid:]
		var chunks []string
		rest := text
		for _, c := range cuts {
			if rest == "" {
				break
			}
			n := min(int(c)%8+1, len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		chunks = append(chunks, rest)
		pieces := feed(rd, chunks)
		joined := strings.Join(pieces, "")
		if want := rd.String(text); joined != want {
			t.Fatalf("stream gave %q, String gives %q (chunks %q)", joined, want, chunks)
		}
		for _, p := range pieces {
			for _, f := range forms {
				if strings.Contains(p, f) {
					t.Fatalf("piece %q contains form %q", p, f)
				}
			}
		}
	})
}
