package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/internal/redact"
	"github.com/lgx-run/lgx/internal/wftest"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// A Go runtime fatal error (out of memory, stack overflow, concurrent map
// writes) or a panic nobody recovers ends the process with exit code 2 and a
// goroutine dump on fd 2. Exit code 2 means "invalid workflow" (SPEC §7), so
// a crash must not end that way, and no code in the crashing process runs
// afterwards to fix it. lgx therefore runs the commands that execute
// workflows in a child process and watches it (supervise_linux.go): the
// child's fd 2 is a pipe to the parent, its own stderr is the original one
// passed as an extra file, and the parent turns a dump into one line and a
// crash file. This file holds the parts that do not depend on the OS.

const (
	// envSupervised marks the child (its value is the parent's pid); it is
	// removed as soon as the child starts, so that processes the run
	// starts never see it.
	envSupervised = "LGX_SUPERVISED"
	// envNoSupervisor=1 runs every command in one process, for debugging
	// (the runtime's dump then goes to the terminal, with exit code 2).
	envNoSupervisor = "LGX_NO_SUPERVISOR"
	// maxDump bounds what the parent keeps of a dump in memory; a dump of
	// many thousands of goroutines beyond it is cut.
	maxDump = 64 << 20
)

// testCrash is set only by a build with -tags lgxcrashtest
// (supervise_crashtest.go); the child calls it to crash on purpose.
var testCrash func()

// supervisedCommands are the commands that execute workflows: user input
// drives them, and they are where a runtime fatal error can happen.
var supervisedCommands = map[string]bool{"run": true, "resume": true, "test": true}

// wantsSupervisor reports whether the command line args (without the
// program name) runs a command that is supervised. The root command has no
// flags that take a value, so the first argument that is not a flag names
// the command.
func wantsSupervisor(args []string, getenv func(string) string) bool {
	if v := getenv(envNoSupervisor); v != "" && v != "0" && v != "false" {
		return false
	}
	for _, a := range args {
		if a == "--" {
			return false
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		return supervisedCommands[a]
	}
	return false
}

// dumpStart matches the first line of what the Go runtime writes when the
// process dies: a fatal error, a panic, a runtime message that precedes a
// fatal error, a goroutine header, or a signal report (SIGSEGV: …).
var dumpStart = regexp.MustCompile(`^(fatal error: |panic: |runtime: |fatal: |goroutine \d+ \[|SIG[A-Z]+: |unexpected (signal|fault address))`)

// crashReason picks the line that says why the process died: the first
// "fatal error:" line, else the first "panic:" line, else the dump's first
// line. It is cut to one short line.
func crashReason(dump []byte) string {
	var first, panicLine string
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if first == "" {
			first = line
		}
		if strings.HasPrefix(line, "fatal error: ") {
			return shorten(line)
		}
		if panicLine == "" && strings.HasPrefix(line, "panic: ") {
			panicLine = line
		}
	}
	if panicLine != "" {
		return shorten(panicLine)
	}
	if first == "" {
		return "the process crashed"
	}
	return shorten(first)
}

// shorten cuts s to at most 160 characters (at a rune boundary).
func shorten(s string) string {
	const max = 160
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// dumpSplitter copies the child's fd 2 to the parent's stderr line by line
// until a line starts a crash dump; from that line on it keeps everything
// (up to maxDump) instead. Lines the runtime prints without a crash
// (GODEBUG traces) therefore still reach the terminal as they come.
type dumpSplitter struct {
	out io.Writer

	// mu guards dump and cut: the parent may read them while the copy
	// still runs, when a process the child started holds the pipe open.
	mu   sync.Mutex
	dump bytes.Buffer
	cut  bool // more than maxDump arrived
}

// copyFrom reads r until EOF.
func (d *dumpSplitter) copyFrom(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	inDump, atStart := false, true
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if !inDump && atStart && dumpStart.Match(line) {
				inDump = true
			}
			// After ErrBufferFull the next slice continues this line.
			atStart = err != bufio.ErrBufferFull
			if inDump {
				d.mu.Lock()
				if d.dump.Len()+len(line) <= maxDump {
					d.dump.Write(line)
				} else {
					d.cut = true
				}
				d.mu.Unlock()
			} else {
				_, _ = d.out.Write(line)
			}
		}
		if err == bufio.ErrBufferFull {
			continue // a long line: its rest follows
		}
		if err != nil {
			return
		}
	}
}

// saved returns the dump as kept, with a note when it was cut.
func (d *dumpSplitter) saved() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := bytes.Clone(d.dump.Bytes())
	if d.cut {
		b = append(b, fmt.Sprintf("\n[lgx: dump cut at %d bytes]\n", maxDump)...)
	}
	return b
}

// reportCrash redacts the dump with the secrets the command line's
// workflow declares, saves it to a crash file (mode 0600: it may hold run
// data) and prints one line. It returns the line.
func reportCrash(w io.Writer, args []string, dump []byte, now time.Time, pid int) string {
	rd := redact.New(crashSecrets(args)...)
	text := rd.String(string(dump))
	// The reason may quote run data (a panic's value): a terminal must not
	// act on it.
	reason := printable(rd.String(crashReason([]byte(text))))
	path, err := writeCrashFile(text, now, pid)
	var line string
	if err != nil {
		line = fmt.Sprintf("lgx: internal error: %s (the details could not be saved: %v)", reason, err)
	} else {
		line = fmt.Sprintf("lgx: internal error: %s (details: %s)", reason, path)
	}
	fmt.Fprintln(w, line)
	return line
}

// crashDir is where crash files go: crash/ next to the default store
// ($LGX_HOME/crash, else $XDG_STATE_HOME/lgx/crash, else
// ~/.local/state/lgx/crash), or lgx-crash in the temporary directory when
// that cannot be created.
func crashDir() string {
	if db, err := store.DefaultPath(); err == nil {
		dir := filepath.Join(filepath.Dir(db), "crash")
		if os.MkdirAll(dir, 0o700) == nil {
			return dir
		}
	}
	dir := filepath.Join(os.TempDir(), "lgx-crash")
	_ = os.MkdirAll(dir, 0o700)
	return dir
}

// writeCrashFile writes a crash file named after the time and the child's
// pid, readable by the user only.
func writeCrashFile(text string, now time.Time, pid int) (string, error) {
	name := fmt.Sprintf("%s-%d.txt", now.UTC().Format("20060102T150405Z"), pid)
	path := filepath.Join(crashDir(), name)
	header := fmt.Sprintf("lgx %s crashed at %s (pid %d). This file may hold run data; declared secrets are redacted.\n\n",
		version, now.UTC().Format(time.RFC3339), pid)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.WriteString(f, header+text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return path, nil
}

// crashSecrets returns the secret values to redact from a crash dump: the
// provider keys, and the secrets declared by the workflows the command line
// names (run FILE; for test PATH…, each test file's workflow, with the
// values its cases set), or that the resumed run recorded (resume RUN). It
// runs only after a crash, in the parent, and never fails: what it cannot
// find it leaves out.
func crashSecrets(args []string) (secrets []string) {
	environ := os.Environ()
	secrets = cassette.Secrets(&spec.Workflow{}, environ)
	defer func() {
		if recover() != nil {
			secrets = cassette.Secrets(&spec.Workflow{}, environ)
		}
	}()
	a := &app{ios: &IOStreams{In: os.Stdin, Out: io.Discard, Err: io.Discard, Width: 80, Getenv: os.Getenv}}
	c, rest, err := a.rootCmd().Find(args)
	// Parse the flags here: lgx test parses its own (DisableFlagParsing).
	if err != nil || c.Flags().Parse(rest) != nil {
		return secrets
	}
	pos := c.Flags().Args()
	switch {
	case c.Name() == "run" && len(pos) > 0:
		if wf, _, err := spec.LoadFile(pos[0]); err == nil && wf != nil {
			secrets = append(secrets, cassette.Secrets(wf, environ)...)
		}
	case c.Name() == "resume" && len(pos) > 0:
		if wf := recordedWorkflow(c.Flags().Lookup("store").Value.String(), pos[0]); wf != nil {
			secrets = append(secrets, cassette.Secrets(wf, environ)...)
		}
	case c.Name() == "test":
		if len(pos) == 0 {
			pos = []string{"."}
		}
		paths, _ := wftest.Find(pos)
		for _, p := range paths {
			f, err := wftest.Parse(p)
			if err != nil {
				continue
			}
			wf, _, err := spec.LoadFile(f.Workflow)
			if err != nil || wf == nil {
				continue
			}
			secrets = append(secrets, cassette.Secrets(wf, environ)...)
			for _, tc := range f.Cases {
				env := append([]string(nil), environ...)
				for k, v := range tc.Env {
					env = append(env, k+"="+v) // later entries win
				}
				secrets = append(secrets, cassette.Secrets(wf, env)...)
			}
		}
	}
	return secrets
}

// recordedWorkflow loads the workflow a run recorded, or returns nil.
func recordedWorkflow(storeURL, runID string) *spec.Workflow {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if storeURL == "" {
		storeURL = os.Getenv("LGX_STORE")
	}
	s, err := store.Open(ctx, storeURL)
	if err != nil {
		return nil
	}
	defer s.Close()
	run, err := s.GetRun(ctx, runID)
	if err != nil {
		return nil
	}
	wf, _ := spec.Load(run.File, run.Source)
	return wf
}
