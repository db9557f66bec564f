package main

import (
	"os"
	"testing"

	"github.com/creack/pty"
)

// TestStreamsOnPseudoTerminal decides the streams for a real terminal
// under each colour and layout variable: NO_COLOR means plain lines
// without colour (SPEC §7); FORCE_COLOR and CLICOLOR_FORCE bring colour
// back, not the live view.
func TestStreamsOnPseudoTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()

	tests := []struct {
		name      string
		stderr    *os.File
		env       map[string]string
		live, col bool
	}{
		{"terminal", tty, nil, true, true},
		{"NO_COLOR is plain lines", tty, map[string]string{"NO_COLOR": "1"}, false, false},
		{"an empty NO_COLOR is not set", tty, map[string]string{"NO_COLOR": ""}, true, true},
		{"FORCE_COLOR wins over NO_COLOR's colour", tty, map[string]string{"NO_COLOR": "1", "FORCE_COLOR": "1"}, false, true},
		{"CLICOLOR_FORCE", tty, map[string]string{"NO_COLOR": "1", "CLICOLOR_FORCE": "1"}, false, true},
		{"FORCE_COLOR=0 forces nothing", tty, map[string]string{"NO_COLOR": "1", "FORCE_COLOR": "0"}, false, false},
		{"CI is plain", tty, map[string]string{"CI": "true"}, false, false},
		{"TERM=dumb is plain", tty, map[string]string{"TERM": "dumb"}, false, false},
		{"pipe", pipeW, nil, false, false},
		{"pipe with FORCE_COLOR", pipeW, map[string]string{"FORCE_COLOR": "true"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStreams(nil, nil, tt.stderr, func(k string) string { return tt.env[k] })
			if s.ErrTTY != tt.live || s.Color != tt.col {
				t.Errorf("ErrTTY=%v Color=%v, want %v %v", s.ErrTTY, s.Color, tt.live, tt.col)
			}
			if tt.stderr == tty && s.Width != 100 {
				t.Errorf("width %d, want 100", s.Width)
			}
		})
	}
}

// TestProgressFlagChoice: --progress overrides the terminal's choice.
func TestProgressFlagChoice(t *testing.T) {
	tests := []struct {
		tty      bool
		progress string
		live     bool
	}{
		{false, "auto", false}, {true, "auto", true},
		{false, "live", true}, {true, "plain", false},
	}
	for _, tt := range tests {
		a := &app{ios: &IOStreams{Err: &discard{}, ErrTTY: tt.tty, Width: 80}, progress: tt.progress}
		v := a.progressView()
		_, live := v.(*liveView)
		v.Close()
		if live != tt.live {
			t.Errorf("tty=%v --progress %s: live=%v, want %v", tt.tty, tt.progress, live, tt.live)
		}
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }
