//go:build unix

package main

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first Ctrl-C cancels the run; a second, later one quits at once with
// 130 through app.quit (main.go's os.Exit); one arriving within samePress
// of the first is the same press, passed on by the supervisor.
func TestSignalContextSecondSignalQuits(t *testing.T) {
	var errb bytes.Buffer
	quit := make(chan int, 1)
	a := &app{ios: &IOStreams{Err: &errb}, quit: func(code int) { quit <- code }}
	ctx, stop := a.signalContext(t.Context())
	defer stop()
	sent := time.Now()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first SIGINT did not cancel the context")
	}
	// The same press, as a supervised lgx receives it twice.
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// On a machine so loaded that the repeat came late, it may rightly
	// count as a second press: only a prompt repeat is checked.
	prompt := time.Since(sent) < samePress/2
	time.Sleep(samePress + 50*time.Millisecond)
	select {
	case code := <-quit:
		if prompt {
			t.Fatalf("one press quit with %d", code)
		}
	default:
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-quit:
		if code != exitCancelled {
			t.Errorf("quit with %d, want %d", code, exitCancelled)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second press did not quit")
	}
	if !strings.Contains(errb.String(), "press Ctrl-C again to quit at once") {
		t.Errorf("stderr: %q", errb.String())
	}
}
