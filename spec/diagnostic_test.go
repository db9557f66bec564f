package spec

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriteTextExcerpt(t *testing.T) {
	long := strings.Repeat("a", 500) + "X" + strings.Repeat("b", 500)
	ds := Diagnostics{{File: "f.yaml", Pos: Pos{Line: 2, Col: 501}, Severity: SeverityError, Code: "c", Message: "m"}}
	var buf bytes.Buffer
	if err := ds.WriteText(&buf, map[string][]byte{"f.yaml": []byte("x: 1\n" + long + "\n")}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	src, caret := []rune(lines[1]), []rune(lines[2])
	if len(src) > excerptWidth+4+2 {
		t.Errorf("excerpt too long: %d runes", len(src))
	}
	if col := len(caret) - 1; src[col] != 'X' {
		t.Errorf("caret at %d points at %q, want X:\n%s", col, src[col], buf.String())
	}
}

func TestWriteTextShort(t *testing.T) {
	ds := Diagnostics{{File: "f.yaml", Pos: Pos{Line: 1, Col: 4}, Severity: SeverityWarning, Code: "c", Message: "m", Hint: "h"}}
	var buf bytes.Buffer
	ds.WriteText(&buf, map[string][]byte{"f.yaml": []byte("a:\tb\n")})
	want := "f.yaml:1:4: warning: m [c]\n  a: b\n     ^\n  hint: h\n"
	if buf.String() != want {
		t.Errorf("got\n%q\nwant\n%q", buf.String(), want)
	}
}
