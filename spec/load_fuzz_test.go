package spec

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to Load and Validate: they must never
// panic, and must finish quickly whatever the input (alias bombs and deep
// nesting included).
func FuzzLoad(f *testing.F) {
	for _, g := range []string{"testdata/*.yaml", "testdata/validate/*.yaml", "testdata/valid/*.yaml", "../workflows/*.yaml"} {
		files, _ := filepath.Glob(g)
		for _, file := range files {
			if src, err := os.ReadFile(file); err == nil {
				f.Add(src)
			}
		}
	}
	f.Add([]byte(aliasBomb(9)))
	f.Add([]byte("lgx: 1\nname: n\nnodes: " + strings.Repeat("[", 200) + strings.Repeat("]", 200)))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("lgx: 1\nname: x\nnodes: {a: {type: test_echo, with: {msg: \"${{ state.\"}}}}\n"))
	f.Add([]byte("lgx: 1\nname: x\nstate: {m: any}\nnodes: {a: {type: set, output: {m: {a: 1, ~: 2, null: &n !!int x, [1]: *n, <<: 5}}}}\n"))
	f.Add([]byte("lgx: 1\nname: x\nstate: {k: {type: list, default: &d [*d]}}\n"))
	f.Add([]byte("<<: {lgx: 1}\nname: x\n"))
	f.Add([]byte("lgx: 1\nname: x\nnodes: {r: {type: interrupt, with: {answer: &a {x: *a, y: [string], z: bool}}}}\n"))
	f.Add([]byte("lgx: 1\nname: x\nstate: {n: any}\nnodes: {a: {type: set, output: {n: \"${{ int('abc') + [1, 2][5] + len(upper('x')) + float('1e') }}\"}}}\nedges: [{from: START, to: a}]\n"))
	f.Add([]byte("lgx: 1\n# caf\xc3\xa9 \xe9t\xe9\nname: t\n"))
	f.Add([]byte("lgx: 1\r\nname: \"\xe2\x82\""))
	f.Fuzz(func(t *testing.T, src []byte) {
		start := time.Now()
		done := make(chan bool)
		go func() {
			defer close(done)
			w, ds := Load("fuzz.yaml", src)
			if w == nil {
				panic("nil workflow")
			}
			// Invalid UTF-8 is the one diagnostic, at the bad byte itself.
			if off := invalidUTF8(src); off >= 0 && len(src) <= MaxFileSize {
				if len(ds) != 1 {
					t.Errorf("invalid UTF-8 at byte %d: %d diagnostics: %v", off, len(ds), ds)
				} else if got := byteOffset(src, lineStarts(src), ds[0].Pos); got != off {
					t.Errorf("invalid UTF-8 at byte %d reported at %d:%d (byte %d)", off, ds[0].Pos.Line, ds[0].Pos.Col, got)
				}
			}
			Validate(w)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("Load+Validate still running after 10s on %q\n%s", src, buf[:n])
		}
		if el := time.Since(start); el > 2*time.Second && len(src) < 1<<16 {
			t.Fatalf("Load+Validate took %v on %d bytes", el, len(src))
		}
	})
}

// aliasBomb is a "billion laughs" document with the given number of levels.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("lgx: 1\nname: bomb\nx0: &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		b.WriteString("x" + itoa(i) + ": &x" + itoa(i) + " [")
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*x" + itoa(i-1))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func itoa(i int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + string(rune('0'+i/10)) + string(rune('0'+i%10)))
}
