package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IOStreams is decided once per process: where output goes, whether stderr
// is a terminal that gets live progress and colour, and how wide it is.
// Commands and views ask it instead of looking at the terminal themselves,
// which is what makes both the terminal and the plain modes testable.
type IOStreams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer

	// ErrTTY is true when stderr is an interactive terminal that may get a
	// live progress view (not CI, not TERM=dumb).
	ErrTTY bool
	// Color is true when styling escape codes may be written to stderr.
	Color bool
	// Width of the terminal in columns (80 when unknown).
	Width int
	// Getenv reads the process environment (replaceable in tests).
	Getenv func(string) string
}

// systemStreams builds the IOStreams of this process.
func systemStreams() *IOStreams {
	s := &IOStreams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Width: 80, Getenv: os.Getenv}
	fd := int(os.Stderr.Fd())
	isTerm := term.IsTerminal(fd)
	plain := os.Getenv("CI") != "" || os.Getenv("TERM") == "dumb" || os.Getenv("NO_COLOR") != ""
	s.ErrTTY = isTerm && !plain
	s.Color = s.ErrTTY
	if isTerm {
		if w, _, err := term.GetSize(fd); err == nil && w > 0 {
			s.Width = w
		}
	}
	return s
}
