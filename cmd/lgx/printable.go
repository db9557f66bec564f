package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// printable returns s with every character a terminal would act on shown
// escaped as Go quotes it (\x1b, \a, \r, \u009b, \x7f), so that a value
// printed on stderr (an interrupt's message, an error quoting a response
// body, a model's tokens) cannot retitle the terminal, clear it or move
// its cursor: the C0 controls but newline and tab, DEL, the C1 controls,
// and bytes that are not UTF-8. Text without them is returned as it is.
func printable(s string) string {
	i := firstUnprintable(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for s = s[i:]; s != ""; {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unprintable(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// firstUnprintable is the index of the first byte of s that printable
// escapes, -1 when there is none.
func firstUnprintable(s string) int {
	for i, r := range s {
		if unprintable(r) {
			return i
		}
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return -1
}

// unprintable reports whether printable escapes the character r: a C0
// control but newline and tab, DEL, or a C1 control.
func unprintable(r rune) bool {
	if r == '\n' || r == '\t' {
		return false
	}
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f)
}

// printableWriter writes what it is given through printable: the stderr
// that every human-readable line goes to (errors, "paused at" lines, the
// plain progress view, warnings). Each Write is escaped on its own; lgx
// writes whole lines.
type printableWriter struct{ w io.Writer }

func (p printableWriter) Write(b []byte) (int, error) {
	s := string(b)
	if t := printable(s); t != s {
		if _, err := io.WriteString(p.w, t); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return p.w.Write(b)
}
