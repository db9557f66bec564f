package redact

import (
	"strings"
	"testing"
)

// benchText is 4 KiB of prose-like text with no secret in it.
var benchText = strings.Repeat("The quick brown fox jumps over the lazy dog; status=ok & id=42.\n", 64)

func BenchmarkNew(b *testing.B) {
	for b.Loop() {
		New("sk-proj-0123456789abcdefABCDEF", "p@ss&w/rd+1<x>")
	}
}

func BenchmarkString(b *testing.B) {
	rd := New("sk-proj-0123456789abcdefABCDEF", "p@ss&w/rd+1<x>")
	hit := benchText[:2048] + "sk-proj-0123456789abcdefABCDEF" + benchText[2048:]
	for _, bc := range []struct {
		name, text string
		rd         *Redactor
	}{{"none", benchText, nil}, {"miss", benchText, rd}, {"hit", hit, rd}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			for b.Loop() {
				bc.rd.String(bc.text)
			}
		})
	}
}

func BenchmarkStream(b *testing.B) {
	rd := New("sk-proj-0123456789abcdefABCDEF", "p@ss&w/rd+1<x>")
	var chunks []string
	for i := 0; i+4 <= len(benchText); i += 4 {
		chunks = append(chunks, benchText[i:i+4])
	}
	b.SetBytes(int64(len(benchText)))
	b.ReportAllocs()
	for b.Loop() {
		st := rd.NewStream()
		for _, c := range chunks {
			st.Write(c)
		}
		st.Flush()
	}
}
