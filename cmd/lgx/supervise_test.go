package main

import (
	"bytes"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWantsSupervisor(t *testing.T) {
	none := func(string) string { return "" }
	off := func(k string) string {
		if k == envNoSupervisor {
			return "1"
		}
		return ""
	}
	tests := []struct {
		args   []string
		getenv func(string) string
		want   bool
	}{
		{[]string{"run", "wf.yaml"}, none, true},
		{[]string{"resume", "01ABC"}, none, true},
		{[]string{"test"}, none, true},
		{[]string{"--help", "run", "wf.yaml"}, none, true},
		{[]string{"validate", "run"}, none, false},
		{[]string{"runs", "list"}, none, false},
		{[]string{"graph", "wf.yaml"}, none, false},
		{[]string{"--version"}, none, false},
		{nil, none, false},
		{[]string{"--", "run"}, none, false},
		{[]string{"run", "wf.yaml"}, off, false},
	}
	for _, tt := range tests {
		if got := wantsSupervisor(tt.args, tt.getenv); got != tt.want {
			t.Errorf("wantsSupervisor(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestCrashReason(t *testing.T) {
	tests := []struct {
		name, dump, want string
	}{
		{"out of memory", "runtime: out of memory: cannot allocate 1073741824-byte block (3791650816 in use)\nfatal error: out of memory\n\ngoroutine 1 [running]:\n", "fatal error: out of memory"},
		{"stack overflow", "runtime: goroutine stack exceeds 1000000000-byte limit\nruntime: sp=0xc020160398 stack=[0xc020160000, 0xc040160000]\nfatal error: stack overflow\n", "fatal error: stack overflow"},
		{"panic", "panic: boom\n\ngoroutine 7 [running]:\nmain.f()\n", "panic: boom"},
		{"recovered and repanicked", "panic: a [recovered]\n\tpanic: b\n\ngoroutine 1 [running]:\n", "panic: a [recovered]"},
		{"signal", "SIGSEGV: segmentation violation\nPC=0x0 m=0 sigcode=1\n", "SIGSEGV: segmentation violation"},
		{"empty", "", "the process crashed"},
		{"long", "panic: " + strings.Repeat("é", 200) + "\n", "panic: " + strings.Repeat("é", 76) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := crashReason([]byte(tt.dump)); got != tt.want {
				t.Errorf("crashReason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDumpSplitter checks that what the child writes on fd 2 before a dump
// is passed through as it comes and that the dump, from its first line on,
// is kept instead.
func TestDumpSplitter(t *testing.T) {
	tests := []struct {
		name, in, out, dump string
	}{
		{"no dump", "gc 1 @0.001s 2%: trace\nlast line without newline", "gc 1 @0.001s 2%: trace\nlast line without newline", ""},
		{"fatal error", "a warning\nfatal error: concurrent map writes\n\ngoroutine 5 [running]:\n", "a warning\n", "fatal error: concurrent map writes\n\ngoroutine 5 [running]:\n"},
		{"runtime line first", "runtime: out of memory: cannot allocate\nfatal error: out of memory\n", "", "runtime: out of memory: cannot allocate\nfatal error: out of memory\n"},
		{"goroutine header", "goroutine 12 [chan receive]:\nmain.f()\n", "", "goroutine 12 [chan receive]:\nmain.f()\n"},
		{"not at line start", "this panic: is prose\n", "this panic: is prose\n", ""},
		{"long line", strings.Repeat("x", 200<<10) + "\npanic: late\n", strings.Repeat("x", 200<<10) + "\n", "panic: late\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			d := &dumpSplitter{out: &out}
			d.copyFrom(strings.NewReader(tt.in))
			if out.String() != tt.out {
				t.Errorf("passed through %q, want %q", out.String(), tt.out)
			}
			if got := string(d.saved()); got != tt.dump {
				t.Errorf("kept %q, want %q", got, tt.dump)
			}
		})
	}
}

// TestReportCrashRedacts checks the crash file and the line: the secrets
// that the workflow named on the command line declares are redacted in
// both, and the file is the user's alone.
func TestReportCrashRedacts(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LGX_HOME", dir)
	t.Setenv("CRASH_TOKEN", "s3cr3t-value-42")
	wf := dir + "/wf.yaml"
	supWriteFile(t, wf, crashSecretWorkflow)
	dump := "panic: bad value s3cr3t-value-42\n\ngoroutine 9 [running]:\nmain.f({0x1, \"s3cr3t-value-42\"})\n"
	var errOut bytes.Buffer
	line := reportCrash(&errOut, []string{"run", "-i", "x=1", wf}, []byte(dump), supNow, 4242)
	if strings.Contains(errOut.String(), "s3cr3t") || strings.Count(errOut.String(), "\n") != 1 {
		t.Fatalf("stderr %q: want one redacted line", errOut.String())
	}
	const prefix = "lgx: internal error: panic: bad value *** (details: "
	if !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, ")") {
		t.Fatalf("line %q", line)
	}
	path := strings.TrimSuffix(strings.TrimPrefix(line, prefix), ")")
	if want := dir + "/crash/20260102T030405Z-4242.txt"; path != want {
		t.Errorf("crash file %s, want %s", path, want)
	}
	text, mode := supReadFileMode(t, path)
	if strings.Contains(text, "s3cr3t") || !strings.Contains(text, "goroutine 9 [running]") {
		t.Errorf("crash file:\n%s", text)
	}
	if mode != 0o600 {
		t.Errorf("crash file mode %o, want 600", mode)
	}
}

// TestDumpSplitterEscapes: lines passed through on the way to the
// terminal have their controls escaped; the dump is kept as it came.
func TestDumpSplitterEscapes(t *testing.T) {
	var out bytes.Buffer
	d := &dumpSplitter{out: printableWriter{w: &out}}
	d.copyFrom(strings.NewReader("gc 1 \x1b]0;owned\a\npanic: \x1b[2J\n"))
	if got, want := out.String(), `gc 1 \x1b]0;owned\a`+"\n"; got != want {
		t.Errorf("passed through %q, want %q", got, want)
	}
	if got := string(d.saved()); got != "panic: \x1b[2J\n" {
		t.Errorf("kept %q", got)
	}
}

// TestReportCrashEscapes: a panic whose value holds terminal controls (run
// data: a response body, a model's tokens) is printed escaped.
func TestReportCrashEscapes(t *testing.T) {
	t.Setenv("LGX_HOME", t.TempDir())
	dump := "panic: bad \x1b]0;owned\a\x1b[2J value\r\n\ngoroutine 9 [running]:\n"
	var errOut bytes.Buffer
	line := reportCrash(&errOut, []string{"run"}, []byte(dump), supNow, 4242)
	if strings.ContainsAny(errOut.String(), "\x1b\a\r") {
		t.Fatalf("stderr %q holds terminal controls", errOut.String())
	}
	if !strings.HasPrefix(line, `lgx: internal error: panic: bad \x1b]0;owned\a\x1b[2J value (details: `) {
		t.Errorf("line %q", line)
	}
}

const crashSecretWorkflow = `lgx: 1
name: w
secrets: [CRASH_TOKEN]
state:
  x: {type: string, default: ""}
nodes:
  a:
    type: set
    output: {x: done}
edges:
  - {from: START, to: a}
  - {from: a, to: END}
`

// TestCrashSecrets checks which secrets the parent finds after a crash,
// for each command it supervises: those the workflow declares (for
// resume, the recorded one; for test, also the values a case sets) and
// the provider keys.
func TestCrashSecrets(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LGX_HOME", dir)
	t.Setenv("CRASH_TOKEN", "token-from-env")
	t.Setenv("OPENAI_API_KEY", "sk-provider")
	wf := dir + "/wf.yaml"
	supWriteFile(t, wf, crashSecretWorkflow)
	supWriteFile(t, dir+"/wf.test.yaml", "workflow: wf.yaml\ncases:\n  - name: c\n    env: {CRASH_TOKEN: token-from-case}\n    expect: {exit: 0}\n")

	// A recorded run to resume, of a file that changes afterwards.
	rec := dir + "/rec.yaml"
	supWriteFile(t, rec, crashSecretWorkflow)
	var out, errOut bytes.Buffer
	ios := &IOStreams{In: strings.NewReader(""), Out: &out, Err: &errOut, Width: 80, Getenv: os.Getenv}
	if code := execute(t.Context(), []string{"run", rec}, ios); code != exitOK {
		t.Fatalf("run: exit %d\n%s", code, errOut.String())
	}
	m := runIDLine.FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("no run id in %q", errOut.String())
	}
	supWriteFile(t, rec, "lgx: 1\nname: changed\n") // resume reads the recorded workflow

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"run", []string{"run", "--progress", "plain", wf}, []string{"token-from-env", "sk-provider"}},
		{"test", []string{"test", dir}, []string{"token-from-env", "token-from-case", "sk-provider"}},
		{"resume", []string{"resume", m[1]}, []string{"token-from-env", "sk-provider"}},
		{"unreadable", []string{"run", dir + "/missing.yaml"}, []string{"sk-provider"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := crashSecrets(tt.args)
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("secrets %q lack %q", got, w)
				}
			}
			if tt.name == "unreadable" && slices.Contains(got, "token-from-env") {
				t.Errorf("secrets %q: no workflow declares CRASH_TOKEN here", got)
			}
		})
	}
}

var supNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func supWriteFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// supReadFileMode returns a file's text and permission bits.
func supReadFileMode(t *testing.T, path string) (string, fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi.Mode().Perm()
}
