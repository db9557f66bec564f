package redact

import "strings"

// Stream redacts text that arrives in chunks (a model's streamed tokens),
// where a secret may be split across chunks. Write returns what can be
// emitted now; the rest, which could be the start of a secret's form, is
// held back until a later chunk decides it or Flush ends the stream. What
// it holds is always shorter than the longest form, and the emitted pieces
// joined equal Redactor.String of the chunks joined.
//
// A Stream is not safe for concurrent use. The zero Stream of a nil
// Redactor passes chunks through.
type Stream struct {
	rd   *Redactor
	held string
}

// NewStream returns a Stream redacting with rd (nil: no secrets).
func (rd *Redactor) NewStream() *Stream { return &Stream{rd: rd} }

// Write adds a chunk and returns the redacted text that no later chunk can
// change (possibly "").
func (st *Stream) Write(chunk string) string {
	if st.rd == nil {
		return chunk
	}
	buf := chunk
	if st.held != "" {
		buf = st.held + chunk
	}
	emit, held := st.rd.scan(buf, false)
	st.held = held
	return emit
}

// Flush ends the stream and returns the redacted text still held back.
func (st *Stream) Flush() string {
	if st.held == "" {
		return ""
	}
	out := st.rd.String(st.held)
	st.held = ""
	return out
}

// Held reports how many bytes the stream holds back.
func (st *Stream) Held() int { return len(st.held) }

// scan redacts buf left to right, replacing at each position the longest
// form that matches there and going on after it (as strings.Replacer
// would), and stops at the first position where the choice depends on text
// after buf: some form is longer than what remains and starts with it. It
// returns the redacted text before that position and buf from it on. With
// final set it never stops. Text without a secret is returned as is,
// without allocating.
func (rd *Redactor) scan(buf string, final bool) (emit, rest string) {
	var b strings.Builder
	last := 0 // buf[last:p] is plain text not yet written
	p := 0
scan:
	for p < len(buf) {
		if p+1 < len(buf) && !rd.single[buf[p]] {
			// The common case: no form starts with these two bytes.
			if k := uint16(buf[p])<<8 | uint16(buf[p+1]); rd.pairs[k>>6]&(1<<(k&63)) == 0 {
				p++
				continue
			}
		}
		remain := buf[p:]
		for _, f := range rd.byFirst[buf[p]] { // longest first
			if len(f) > len(remain) {
				if !final && strings.HasPrefix(f, remain) {
					break scan // a longer form may still match here
				}
				continue
			}
			if strings.HasPrefix(remain, f) {
				b.WriteString(buf[last:p])
				b.WriteString(Mask)
				p += len(f)
				last = p
				continue scan
			}
		}
		p++
	}
	if last == 0 && b.Len() == 0 {
		return buf[:p], buf[p:]
	}
	b.WriteString(buf[last:p])
	return b.String(), buf[p:]
}
