package spec

import (
	"strings"
	"testing"
)

// A file that is not valid UTF-8 is reported at its first bad byte: the
// line, and the column in characters like every other diagnostic (yaml.v3
// says line 1 column 1 wherever the byte is).
func TestLoadInvalidUTF8Position(t *testing.T) {
	const head = "lgx: 1\nname: t\n"
	tests := []struct {
		name      string
		src       string
		line, col int
		byteHex   string
	}{
		{"in a quoted value", head + "state:\n  x: {type: string, default: \"ab\xffc\"}\n", 4, 33, "0xFF"},
		{"after multi-byte characters", "lgx: 1\n# café \xe9t\xe9\nname: t\n", 2, 8, "0xE9"},
		{"first byte of the file", "\x80lgx: 1\n", 1, 1, "0x80"},
		{"a sequence cut short at the end", head + "# €\n# \xe2\x82", 4, 3, "0xE2"},
		{"CRLF lines", "lgx: 1\r\nname: t\r\n# ok\r\n  é\xc3(\r\n", 4, 4, "0xC3"},
		{"a UTF-16 surrogate encoded in UTF-8", head + "# \xed\xa0\x80\n", 3, 3, "0xED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ds := Load("w.yaml", []byte(tt.src))
			if len(ds) != 1 {
				t.Fatalf("want one diagnostic, got %v", ds)
			}
			d := ds[0]
			if d.Pos.Line != tt.line || d.Pos.Col != tt.col {
				t.Errorf("at %d:%d, want %d:%d (%s)", d.Pos.Line, d.Pos.Col, tt.line, tt.col, d.Message)
			}
			if d.Code != CodeYAML || !strings.Contains(d.Message, "invalid UTF-8: byte "+tt.byteHex) {
				t.Errorf("diagnostic %s: %q, want invalid UTF-8 naming byte %s", d.Code, d.Message, tt.byteHex)
			}
		})
	}
}

// Valid UTF-8, with or without a byte order mark, is not reported.
func TestLoadValidUTF8NotReported(t *testing.T) {
	for _, src := range []string{
		"lgx: 1\nname: café\nnodes:\n  a: {type: set}\nedges:\n  - {from: START, to: a}\n",
		"\xef\xbb\xbflgx: 1\nname: t\nnodes:\n  a: {type: set}\nedges:\n  - {from: START, to: a}\n",
	} {
		_, ds := Load("w.yaml", []byte(src))
		for _, d := range ds {
			if strings.Contains(d.Message, "UTF-8") {
				t.Errorf("%q: %s", src, d.Message)
			}
		}
	}
}

// A control character YAML does not allow is reported where it is, not at
// 1:1 where yaml.v3 puts it.
func TestLoadControlCharacterPosition(t *testing.T) {
	const head = "lgx: 1\nname: t\n"
	tests := []struct {
		name      string
		src       string
		line, col int
	}{
		{"a NUL in a quoted value", head + "state:\n  x: {type: string, default: \"Wo\x00rld\"}\n", 4, 33},
		{"a DEL after multi-byte characters", head + "# café \x7f\n", 3, 8},
		{"a C1 control", head + "description: \"a\u0090b\"\n", 3, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ds := Load("w.yaml", []byte(tt.src))
			if len(ds) == 0 {
				t.Fatal("no diagnostic")
			}
			d := ds[0]
			if d.Code != CodeYAML || !strings.Contains(d.Message, "control characters") {
				t.Fatalf("diagnostic %s: %q", d.Code, d.Message)
			}
			if d.Pos.Line != tt.line || d.Pos.Col != tt.col {
				t.Errorf("at %d:%d, want %d:%d", d.Pos.Line, d.Pos.Col, tt.line, tt.col)
			}
		})
	}
}
