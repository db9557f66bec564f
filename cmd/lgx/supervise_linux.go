package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// supervise runs the command line in a supervised child when it executes
// workflows, and returns the exit code to end with and true; it returns
// false when this process should run the command itself: it is the child
// (whose stderr it then sets up), supervision is off, or the child could
// not be started.
func supervise(args []string) (int, bool) {
	if v, set := os.LookupEnv(envSupervised); set {
		// The marker holds the parent's pid: a stray LGX_SUPERVISED in a
		// user's environment must not make lgx take fd 3 for stderr.
		_ = os.Unsetenv(envSupervised)
		if v == strconv.Itoa(os.Getppid()) {
			adoptStderr()
		}
	} else if wantsSupervisor(args, os.Getenv) {
		if code, ok := superviseChild(args); ok {
			return code, true
		}
	}
	if testCrash != nil {
		testCrash()
	}
	return 0, false
}

// adoptStderr makes the original stderr (fd 3) this process's os.Stderr,
// so that everything lgx prints goes straight to the terminal, while fd 2,
// where the Go runtime writes a crash dump, stays the pipe to the parent.
func adoptStderr() {
	// fd 3 came without close-on-exec; processes the run starts must not
	// inherit it.
	syscall.CloseOnExec(3)
	os.Stderr = os.NewFile(3, "/dev/stderr")
	log.SetOutput(os.Stderr)
}

// superviseChild starts lgx again as its child with the same arguments,
// stdin and stdout, waits for it, and returns its exit code, after turning
// a crash dump into one line. It returns false when the child cannot be
// started (no /proc, say): the command then runs unsupervised.
func superviseChild(args []string) (int, bool) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, false
	}
	// PR_SET_PDEATHSIG fires when the thread that started the child ends,
	// not the process: keep this goroutine on its thread for good.
	runtime.LockOSThread()
	// Caught (not ignored) before the start, so the child starts with the
	// default dispositions and lgx's own handling. SIGPIPE is caught so
	// that a closed stderr (`lgx run … 2>&1 | head`) fails the copy's
	// writes instead of killing the supervisor, and with it the run.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE)

	cmd := &exec.Cmd{
		// /proc/self/exe still works when the binary was replaced or
		// removed since this process started.
		Path:       "/proc/self/exe",
		Args:       append([]string{os.Args[0]}, args...),
		Env:        append(os.Environ(), envSupervised+"="+strconv.Itoa(os.Getpid())),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     w,
		ExtraFiles: []*os.File{os.Stderr},
		// A SIGKILLed lgx must not leave a child that holds the run's
		// lease.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	// In the foreground of a terminal the child stays in lgx's process
	// group: it reads the terminal and gets Ctrl-C and Ctrl-Z from it
	// directly. Elsewhere it gets a group of its own, so that a signal
	// sent to lgx's whole group (a CI runner cancelling a job) reaches it
	// once, forwarded, rather than twice (the second would quit at once).
	sameGroup := inForegroundGroup()
	cmd.SysProcAttr.Setpgid = !sameGroup
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		r.Close()
		w.Close()
		runtime.UnlockOSThread()
		return 0, false
	}
	w.Close()

	// What passes through (GODEBUG traces, a stray write to fd 2) is shown
	// with terminal controls escaped, as every other line lgx prints.
	split := &dumpSplitter{out: printableWriter{w: os.Stderr}}
	copied := make(chan struct{})
	go func() {
		split.copyFrom(r)
		close(copied)
	}()

	quit := false
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr error
wait:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGQUIT {
				quit = true
			}
			if sig == syscall.SIGPIPE {
				continue // the supervisor's own write; the child sees its own
			}
			if forwardSignal(sig, sameGroup) {
				_ = cmd.Process.Signal(sig)
			}
		case waitErr = <-waited:
			break wait
		}
	}
	// The dump is in the pipe before the child exits. A process the child
	// started may still hold the pipe open, so do not wait for EOF forever.
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	signal.Stop(sigs)

	ps := cmd.ProcessState
	if ps == nil {
		fmt.Fprintf(os.Stderr, "lgx: internal error: waiting for the run: %v\n", waitErr)
		return exitFailed, true
	}
	ws, _ := ps.Sys().(syscall.WaitStatus)
	dump := split.saved()
	switch outcome(ws, len(dump) > 0, quit) {
	case crashed:
		reportCrash(os.Stderr, args, dump, time.Now(), cmd.Process.Pid)
		return exitFailed, true
	case quitDump:
		// Ctrl-\ asks for the goroutine dump: show it.
		_, _ = os.Stderr.Write(dump)
		return 128 + int(syscall.SIGQUIT), true
	}
	if len(dump) > 0 {
		// Runtime messages that did not end the process: pass them on.
		_, _ = os.Stderr.Write(dump)
	}
	if ws.Signaled() {
		return exitForSignal(ws.Signal()), true
	}
	return ws.ExitStatus(), true
}

type childOutcome int

const (
	exited   childOutcome = iota // its own exit code or signal stands
	crashed                      // a runtime crash: exit 1 with one line
	quitDump                     // the dump SIGQUIT asked for
)

// outcome classifies how the child ended: a dump followed by the runtime's
// exit code 2, or by death from a signal the runtime raises to crash
// (GOTRACEBACK=crash), is a crash, unless the user asked for it with
// SIGQUIT.
func outcome(ws syscall.WaitStatus, dumped, quit bool) childOutcome {
	if !dumped {
		return exited
	}
	crash := ws.Exited() && ws.ExitStatus() == 2
	if ws.Signaled() {
		switch ws.Signal() {
		case syscall.SIGABRT, syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGILL, syscall.SIGFPE, syscall.SIGTRAP:
			crash = true
		}
	}
	switch {
	case crash && quit:
		return quitDump
	case crash:
		return crashed
	}
	return exited
}

// forwardSignal reports whether the parent passes sig on to the child.
// SIGINT is always passed on: the parent cannot tell a Ctrl-C typed at the
// terminal (which reached the child too, when it shares lgx's foreground
// group) from `kill -INT PID` (which reached only lgx), and the child
// counts two SIGINTs that arrive together as one (see signalContext).
// SIGQUIT typed at a terminal reaches the whole foreground group, so it is
// passed on only when the child did not get it (its own group, no
// terminal, or lgx in the background). SIGTERM and SIGHUP always are.
func forwardSignal(sig os.Signal, sameGroup bool) bool {
	if sig != syscall.SIGQUIT {
		return true
	}
	return !sameGroup || !inForegroundGroup()
}

// inForegroundGroup reports whether this process's group is the
// foreground process group of its controlling terminal.
func inForegroundGroup() bool {
	tty, err := os.OpenFile("/dev/tty", os.O_RDONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		return false // no controlling terminal
	}
	defer tty.Close()
	var pgrp int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, tty.Fd(), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp))); errno != 0 {
		return false
	}
	return int(pgrp) == syscall.Getpgrp()
}

// exitForSignal ends this process the way the child ended: by the same
// signal for those that terminate without a dump (so a shell sees the
// same as without the supervisor), else with 128+n.
func exitForSignal(sig syscall.Signal) int {
	switch sig {
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL, syscall.SIGPIPE:
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		time.Sleep(100 * time.Millisecond) // the signal is on its way
	}
	return 128 + int(sig)
}
