package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/lgx-run/lgx/runner"
)

func TestPrintable(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain text, é 中 ✓ �", "plain text, é 中 ✓ �"},
		{"two\nlines\tand a tab", "two\nlines\tand a tab"},
		{"x\x1b]0;pwned\a\x1b[2J", `x\x1b]0;pwned\a\x1b[2J`},
		{"over\rwrite\b\x00\x7f", `over\rwrite\b\x00\x7f`},
		{"c1 \u009b31m and \u0085", `c1 \u009b31m and \u0085`},
		{"not utf-8 \x9b\xff", `not utf-8 \x9b\xff`},
	} {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPrintableWriter: what goes through the writer (stderr for people)
// arrives escaped, and the writer reports the bytes it was given.
func TestPrintableWriter(t *testing.T) {
	var buf bytes.Buffer
	w := printableWriter{w: &buf}
	in := "paused at 1/ask: \x1b]0;pwned\a\n"
	n, err := fmt.Fprint(w, in)
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(in))
	}
	if got, want := buf.String(), "paused at 1/ask: \\x1b]0;pwned\\a\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

// TestLiveViewEscapesValues: the live view writes to the terminal itself,
// so every value it shows (a message, an error, streamed tokens, a tool's
// name, a pool key it waits for) comes out escaped; the only escape codes
// are its own.
func TestLiveViewEscapesValues(t *testing.T) {
	const evil = "\x1b]0;pwned\a\x1b[2J"
	var buf bytes.Buffer
	v := newLiveView(&buf, 200, false, fixedClock(at(50)), 0)
	feed(v, []runner.Event{
		{Event: runner.EventRunStart, TS: at(0), Workflow: "w"},
		{Event: runner.EventStepStart, TS: at(1), Step: 1, Nodes: []string{"llm", "get", "ask", "fan"}},
		{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "llm"},
		{Event: runner.EventToken, TS: at(2), Step: 1, Node: "llm", Token: "tok" + evil},
		{Event: runner.EventToolStart, TS: at(2), Step: 1, Node: "llm", Tool: "tool" + evil, ToolCallID: "c1"},
		{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "fan", Index: idx(0)},
		{Event: runner.EventWait, TS: at(1), Step: 1, Node: "fan", Index: idx(0), Waiting: "pool web key " + evil},
		{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "get"},
		{Event: runner.EventNodeError, TS: at(3), Step: 1, Node: "get", Kind: "status", Error: "404: body" + evil},
		{Event: runner.EventNodeStart, TS: at(1), Step: 1, Node: "ask"},
		{Event: runner.EventInterrupt, TS: at(4), Step: 1, Node: "ask", Message: "say" + evil},
	})
	v.mu.Lock()
	v.draw()
	v.mu.Unlock()
	out := buf.String()
	for _, w := range []string{`tok\x1b]0;pwned\a\x1b[2J`, `body\x1b]0;pwned\a\x1b[2J`, `say\x1b]0;pwned\a\x1b[2J`,
		`tool\x1b]0;pwned\a\x1b[2J`, `key \x1b]0;pwned\a\x1b[2J`} {
		if !strings.Contains(out, w) {
			t.Errorf("the view lacks %q:\n%s", w, out)
		}
	}
	if strings.ContainsAny(ansi.Strip(out), "\x1b\a") || strings.Contains(out, "\x1b]") || strings.Contains(out, "\x1b[2J") {
		t.Errorf("a value's control characters reached the terminal raw:\n%q", out)
	}
}
