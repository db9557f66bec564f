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
	// Err is stderr for human-readable text: errors, "paused at" lines,
	// plain progress, warnings. In a process it escapes the control
	// characters of what is written (printable), so that no value
	// reaches the terminal as a command.
	Err io.Writer
	// Term is stderr itself, for the live view alone: it draws with
	// escape codes of its own and escapes the values it shows. nil: Err.
	Term io.Writer

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

// env reads an environment variable ("" when Getenv is not set).
func (s *IOStreams) env(key string) string {
	if s.Getenv == nil {
		return ""
	}
	return s.Getenv(key)
}

// term is the stream the live view draws on: Term, else Err.
func (s *IOStreams) term() io.Writer {
	if s.Term != nil {
		return s.Term
	}
	return s.Err
}

// systemStreams builds the IOStreams of this process.
func systemStreams() *IOStreams {
	return newStreams(os.Stdin, os.Stdout, os.Stderr, os.Getenv)
}

// newStreams decides the streams for the given files and environment.
//
// The live view needs a terminal nobody marked as plain: CI and TERM=dumb
// mean nobody watches a redrawing screen, and NO_COLOR (set and not empty,
// as no-color.org reads it) asks for plain lines too (SPEC §7: elsewhere
// — CI, pipes, NO_COLOR — progress is plain lines), without colour.
// FORCE_COLOR or CLICOLOR_FORCE (set, and not "0" or "false") turn colour
// on even where it would be off, and win over NO_COLOR's colour because
// they are the more specific request; the layout stays plain.
func newStreams(in io.Reader, out io.Writer, errF *os.File, getenv func(string) string) *IOStreams {
	s := &IOStreams{In: in, Out: out, Err: printableWriter{w: errF}, Term: errF, Width: 80, Getenv: getenv}
	fd := int(errF.Fd())
	isTerm := term.IsTerminal(fd)
	s.ErrTTY = isTerm && getenv("CI") == "" && getenv("TERM") != "dumb" && getenv("NO_COLOR") == ""
	s.Color = s.ErrTTY
	if forced(getenv("FORCE_COLOR")) || forced(getenv("CLICOLOR_FORCE")) {
		s.Color = true
	}
	if isTerm {
		if w, _, err := term.GetSize(fd); err == nil && w > 0 {
			s.Width = w
		}
	}
	return s
}

// forced reports whether a FORCE_COLOR-style variable asks for colour.
func forced(v string) bool {
	return v != "" && v != "0" && v != "false"
}
