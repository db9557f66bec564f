package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// buildCrashLGX builds the real binary with the lgxcrashtest tag: on
// SIGUSR1 its child crashes the way LGX_TEST_CRASH says
// (supervise_crashtest.go).
var buildCrashLGX = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lgx-crashbin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lgx")
	out, err := exec.Command("go", "build", "-tags", "lgxcrashtest", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// holdWorkflow fetches a URL that answers only when released, with a
// declared secret in the query, so a run is under way for as long as a
// test needs.
const holdWorkflow = `lgx: 1
name: hold
secrets: [HOLD_TOKEN]
state:
  status: {type: any}
nodes:
  get:
    type: http_fetch
    with:
      url: "${{ env.HOLD_URL }}/hold?t=${{ secrets.HOLD_TOKEN }}"
    output: {status: "${{ result.status }}"}
edges:
  - {from: START, to: get}
  - {from: get, to: END}
output: [status]
`

const holdSecret = "hold-s3cr3t-7781"

// holdServer closes reached when the first request arrives and answers it
// when the client goes away or release is closed.
type holdServer struct {
	once    sync.Once
	reached chan struct{}
	release chan struct{}
	freed   sync.Once
}

// free lets the held request, and any later one, be answered.
func (h *holdServer) free() { h.freed.Do(func() { close(h.release) }) }

func (h *holdServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { close(h.reached) })
	select {
	case <-r.Context().Done():
	case <-h.release:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok": true}`)
	}
}

// heldRun is lgx running holdWorkflow, stopped at its request.
type heldRun struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	stdout *syncBuffer
	home   string
	srv    *holdServer
}

// startHeld starts bin run holdWorkflow with extra environment and waits
// until the request reaches the server. The process gets its own process
// group (unless attr says otherwise), so that signals to the group spare
// the test.
func startHeld(t *testing.T, bin string, attr *syscall.SysProcAttr, stdin *os.File, env ...string) *heldRun {
	t.Helper()
	srv := &holdServer{reached: make(chan struct{}), release: make(chan struct{})}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Cleanup(srv.free)
	dir := t.TempDir()
	wf := filepath.Join(dir, "hold.yaml")
	supWriteFile(t, wf, holdWorkflow)
	h := &heldRun{stderr: &syncBuffer{}, stdout: &syncBuffer{}, home: filepath.Join(dir, "home"), srv: srv}
	h.cmd = exec.Command(bin, "run", wf)
	h.cmd.Env = append(os.Environ(), "LGX_HOME="+h.home, "CI=true", "HOLD_URL="+ts.URL, "HOLD_TOKEN="+holdSecret)
	h.cmd.Env = append(h.cmd.Env, env...)
	h.cmd.Stdout, h.cmd.Stderr = h.stdout, h.stderr
	if stdin != nil {
		h.cmd.Stdin = stdin
	}
	if attr == nil {
		attr = &syscall.SysProcAttr{Setpgid: true}
	}
	h.cmd.SysProcAttr = attr
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
	})
	select {
	case <-srv.reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the run never sent its request; stderr:\n%s", h.stderr.String())
	}
	return h
}

// wait waits for lgx to end and returns its exit code (-1 when a signal
// ended it).
func (h *heldRun) wait(t *testing.T) int {
	t.Helper()
	done := make(chan struct{})
	go func() {
		_ = h.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("lgx did not end; stderr:\n%s", h.stderr.String())
	}
	return h.cmd.ProcessState.ExitCode()
}

// childOf returns the pid of the process whose parent is pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		stats, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, st := range stats {
			if ppid, _, ok := procStat(st); ok && ppid == pid {
				n, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has no child", pid)
	return 0
}

// procStat reads the parent pid and the state letter of /proc/PID/stat.
func procStat(path string) (ppid int, state string, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", false
	}
	// The command name, in parentheses, may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// TestSupervisedCrash crashes the child of a running lgx with real Go
// runtime crashes: lgx exits 1 (not 2, the invalid-workflow code) with one
// line naming the error and a crash file, which holds the dump with the
// declared secret redacted; the lines lgx printed before went to stderr
// unchanged.
func TestSupervisedCrash(t *testing.T) {
	bin, err := buildCrashLGX()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ kind, reason string }{
		{"oom", "fatal error: out of memory"},
		{"stack", "fatal error: stack overflow"},
		{"maps", "fatal error: concurrent map writes"},
		{"panic", "panic: test crash: ***"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			h := startHeld(t, bin, nil, nil, "LGX_TEST_CRASH="+tt.kind, "LGX_TEST_CRASH_VALUE="+holdSecret)
			child := childOf(t, h.cmd.Process.Pid)
			if err := syscall.Kill(child, syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			code := h.wait(t)
			stderr := h.stderr.String()
			if code != exitFailed {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			if !strings.HasPrefix(stderr, "run ") {
				t.Errorf("stderr does not start with the run id:\n%s", stderr)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, holdSecret) {
				t.Errorf("stderr has a dump or the secret:\n%s", stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			prefix := "lgx: internal error: " + tt.reason + " (details: "
			if !strings.HasPrefix(last, prefix) || !strings.HasSuffix(last, ")") {
				t.Fatalf("last line %q, want %s…)", last, prefix)
			}
			if n := strings.Count(stderr, "internal error"); n != 1 {
				t.Errorf("%d internal error lines", n)
			}
			path := strings.TrimSuffix(strings.TrimPrefix(last, prefix), ")")
			if dir := filepath.Join(h.home, "crash"); filepath.Dir(path) != dir {
				t.Errorf("crash file %s is not in %s", path, dir)
			}
			text, mode := supReadFileMode(t, path)
			if !strings.Contains(text, strings.Replace(tt.reason, "***", "", 1)) || !strings.Contains(text, "goroutine ") {
				t.Errorf("crash file has no dump:\n%s", text)
			}
			if strings.Contains(text, holdSecret) {
				t.Errorf("crash file holds the secret")
			}
			if mode != 0o600 {
				t.Errorf("crash file mode %o, want 600", mode)
			}
		})
	}
}

// TestSupervisedEscapes: what the supervisor prints of its child's fd 2
// carries no terminal control a run's data put there, through the real
// binary: the one-line crash report of a panic whose message holds them,
// and a line written straight to fd 2 (as GODEBUG traces are), passed
// through while the run goes on.
func TestSupervisedEscapes(t *testing.T) {
	bin, err := buildCrashLGX()
	if err != nil {
		t.Fatal(err)
	}
	const value = "bad \x1b]0;owned\a\x1b[2J value"
	const shown = `bad \x1b]0;owned\a\x1b[2J value`
	for _, kind := range []string{"panic", "stray"} {
		t.Run(kind, func(t *testing.T) {
			h := startHeld(t, bin, nil, nil, "LGX_TEST_CRASH="+kind, "LGX_TEST_CRASH_VALUE="+value)
			child := childOf(t, h.cmd.Process.Pid)
			if err := syscall.Kill(child, syscall.SIGUSR1); err != nil {
				t.Fatal(err)
			}
			want, code := "lgx: internal error: panic: test crash: "+shown+" (details: ", exitFailed
			if kind == "stray" {
				// The line reaches the terminal while the run is held.
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(h.stderr.String(), "stray: ") && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				h.srv.free()
				want, code = "stray: "+shown+"\n", exitOK
			}
			if got := h.wait(t); got != code {
				t.Errorf("exit code %d, want %d", got, code)
			}
			stderr := h.stderr.String()
			if strings.ContainsAny(stderr, "\x1b\a") {
				t.Errorf("stderr holds terminal controls: %q", stderr)
			}
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not hold %q:\n%s", want, stderr)
			}
		})
	}
}

// TestUnsupervisedCrash shows what the supervisor prevents, and that
// LGX_NO_SUPERVISOR turns it off: the same crash then exits 2 with the
// runtime's dump on stderr.
func TestUnsupervisedCrash(t *testing.T) {
	bin, err := buildCrashLGX()
	if err != nil {
		t.Fatal(err)
	}
	h := startHeld(t, bin, nil, nil, "LGX_TEST_CRASH=panic", envNoSupervisor+"=1")
	// No child: lgx itself runs the workflow and crashes.
	if err := h.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if code := h.wait(t); code != 2 {
		t.Errorf("exit code %d, want the runtime's 2", code)
	}
	if s := h.stderr.String(); !strings.Contains(s, "goroutine ") || strings.Contains(s, "internal error") {
		t.Errorf("stderr:\n%s", s)
	}
}

// TestSupervisedExitCodes checks that supervision leaves what a user sees
// of normal runs alone: a completed run's result on stdout and exit 0, and
// the exit code 2 of a workflow that does not load.
func TestSupervisedExitCodes(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	h := startHeld(t, bin, nil, nil)
	childOf(t, h.cmd.Process.Pid)
	h.srv.free()
	if code := h.wait(t); code != exitOK || h.stdout.String() != "200\n" {
		t.Errorf("exit code %d, stdout %q; want 0 and the status; stderr:\n%s", code, h.stdout.String(), h.stderr.String())
	}

	cmd := exec.Command(bin, "run", filepath.Join(t.TempDir(), "missing.yaml"))
	cmd.Env = append(os.Environ(), "LGX_HOME="+t.TempDir())
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitUsage || !strings.HasPrefix(string(out), "lgx: ") || strings.Count(string(out), "\n") != 1 {
		t.Errorf("missing workflow: exit code %d, output %q; want 2 and one line", code, out)
	}
}

// TestSupervisorKilled SIGKILLs lgx mid-run: its child, which holds the
// run's lease, dies with it within a second.
func TestSupervisorKilled(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	h := startHeld(t, bin, nil, nil)
	child := childOf(t, h.cmd.Process.Pid)
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait(t)
	deadline := time.Now().Add(time.Second)
	for {
		_, state, ok := procStat(fmt.Sprintf("/proc/%d/stat", child))
		if !ok || state == "Z" || state == "X" {
			return // gone, or dead and waiting to be reaped by init
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still alive (state %s) a second after lgx was killed", child, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSupervisorSignals cancels a supervised run with the signals users
// and CI runners send: each reaches the run once (a clean cancel that
// suggests resume, not the immediate quit of a second signal), and lgx
// exits 130.
func TestSupervisorSignals(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		send func(pid int) error
	}{
		{"SIGINT to the process group", func(pid int) error { return syscall.Kill(-pid, syscall.SIGINT) }},
		{"SIGINT to lgx", func(pid int) error { return syscall.Kill(pid, syscall.SIGINT) }},
		{"SIGTERM to lgx", func(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHeld(t, bin, nil, nil)
			childOf(t, h.cmd.Process.Pid)
			if err := tt.send(h.cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			code := h.wait(t)
			checkCleanCancel(t, code, h.stderr.String())
		})
	}
}

// checkCleanCancel checks exit code 130 after one signal: one
// "cancelling" line and the resume command.
func checkCleanCancel(t *testing.T, code int, stderr string) {
	t.Helper()
	if code != exitCancelled {
		t.Errorf("exit code %d, want 130", code)
	}
	if n := strings.Count(stderr, "lgx: cancelling"); n != 1 || !strings.Contains(stderr, "resume with: lgx resume ") {
		t.Errorf("want one cancelling line and the resume command; stderr:\n%s", stderr)
	}
}

// TestSupervisorCtrlC types Ctrl-C on a terminal (a pseudo-terminal that
// lgx has as its controlling terminal): the terminal sends SIGINT to lgx
// and its child; the child must get it once, not once more forwarded.
func TestSupervisorCtrlC(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	master, slave := openPTY(t)
	// lgx leads a new session whose controlling terminal is the pty
	// (its stdin).
	h := startHeld(t, bin, &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}, slave)
	child := childOf(t, h.cmd.Process.Pid)
	if pgid, _ := syscall.Getpgid(child); pgid != h.cmd.Process.Pid {
		t.Errorf("child in process group %d, want lgx's %d", pgid, h.cmd.Process.Pid)
	}
	if _, err := master.Write([]byte{3}); err != nil { // ^C
		t.Fatal(err)
	}
	go func() { _, _ = master.Read(make([]byte, 1024)) }() // the echoed ^C
	checkCleanCancel(t, h.wait(t), h.stderr.String())
}

// TestSupervisorKillINTInForeground sends `kill -INT PID` to an lgx in the
// foreground of its terminal: only lgx gets that signal (not its group),
// so the supervisor must pass it on; the run is cancelled cleanly, once.
func TestSupervisorKillINTInForeground(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	_, slave := openPTY(t)
	h := startHeld(t, bin, &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}, slave)
	childOf(t, h.cmd.Process.Pid)
	if err := syscall.Kill(h.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	checkCleanCancel(t, h.wait(t), h.stderr.String())
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	var n uint32
	if err := ioctl(m, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal(err)
	}
	var unlock int32
	if err := ioctl(m, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// TestSupervisorChildSignalled: when the child dies of a signal (the
// kernel's OOM killer, say), lgx dies of the same signal, as the shell
// would have seen without the supervisor; SIGQUIT, which asks the Go
// runtime for a goroutine dump, shows that dump and exits 131.
func TestSupervisorChildSignalled(t *testing.T) {
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("SIGKILL", func(t *testing.T) {
		h := startHeld(t, bin, nil, nil)
		child := childOf(t, h.cmd.Process.Pid)
		if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		h.wait(t)
		ws := h.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("lgx ended with %v, want killed by SIGKILL; stderr:\n%s", h.cmd.ProcessState, h.stderr.String())
		}
	})
	t.Run("SIGQUIT", func(t *testing.T) {
		h := startHeld(t, bin, nil, nil)
		childOf(t, h.cmd.Process.Pid)
		if err := h.cmd.Process.Signal(syscall.SIGQUIT); err != nil {
			t.Fatal(err)
		}
		code := h.wait(t)
		stderr := h.stderr.String()
		if code != 128+int(syscall.SIGQUIT) || !strings.Contains(stderr, "SIGQUIT: quit") || !strings.Contains(stderr, "goroutine ") {
			t.Errorf("exit code %d, want 131 and the dump; stderr:\n%s", code, stderr)
		}
		if strings.Contains(stderr, "internal error") {
			t.Errorf("a requested dump reported as a crash:\n%s", stderr)
		}
	})
}
