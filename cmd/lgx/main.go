// Command lgx runs LangGraph-style workflows written in YAML: validate them,
// draw them, run them concurrently under caps, and resume them after a
// crash, Ctrl-C or an interrupt.
package main

import (
	"context"
	"fmt"
	"os"
)

// version is stamped by the release build (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	// run, resume and test execute in a supervised child, so that a Go
	// runtime crash exits 1 with one line (supervise.go).
	if code, ok := supervise(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(Main())
}

// Main runs lgx with the process's arguments and streams and returns the
// exit code. Tests run it in-process through testscript.
func Main() int {
	return execute(context.Background(), os.Args[1:], systemStreams())
}

// execute runs one lgx command line and maps its outcome to an exit code,
// printing the error (if not already reported) on stderr. A second Ctrl-C
// during a run ends the process at once with code 130: the one exit not
// returned through here, so it too is made in this file.
func execute(ctx context.Context, args []string, ios *IOStreams) int {
	a := &app{ios: ios, quit: os.Exit}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if !isReported(err) {
		fmt.Fprintf(ios.Err, "lgx: %s\n", a.redactor().String(err.Error()))
	}
	if !a.ran {
		// Errors cobra raises before any command runs (an unknown
		// command, a bad argument count) are usage errors.
		code = exitUsage
	}
	return code
}
