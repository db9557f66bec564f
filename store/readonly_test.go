package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// readOnlyChildEnv makes the test binary run readOnlyProblems on the store
// it names (as an unprivileged user, see TestSQLiteUnwritableIsReadable).
const readOnlyChildEnv = "LGX_STORE_READONLY_CHILD"

func readOnlyChild(path string) int {
	problems := readOnlyProblems(path, store.OpenSQLite)
	for _, p := range problems {
		fmt.Println(p)
	}
	return 0
}

// fillStore writes a finished run "r1" with an invocation and a
// checkpoint, then closes the store.
func fillStore(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		s.CreateRun(ctx, &store.Run{ID: "r1", Workflow: "wf", Status: store.StatusRunning, StartedAt: time.Now(),
			Subgraphs: map[string][]byte{"/w/child.yaml": []byte("name: child\n")}}),
		s.RecordInvocation(ctx, &store.Invocation{RunID: "r1", Step: 1, Node: "n", Index: -1, Status: store.InvocationOK,
			Writes: json.RawMessage(`{"k":1}`)}),
		s.WriteCheckpoint(ctx, &store.Checkpoint{RunID: "r1", Step: 1, Changed: map[string]json.RawMessage{"k": json.RawMessage(`1`)}}),
		s.FinishRun(ctx, "r1", store.StatusCompleted, "", time.Now()),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// readOnlyProblems opens the store filled by fillStore with open and
// returns what is wrong with it as a read-only store: every read must
// work, every write must fail with ErrReadOnly saying "read-only".
func readOnlyProblems(path string, open func(string) (*store.SQLite, error)) []string {
	ctx := context.Background()
	s, err := open(path)
	if err != nil {
		return []string{fmt.Sprintf("open: %v", err)}
	}
	defer s.Close()
	var problems []string
	if s.ReadOnly() == nil {
		problems = append(problems, "ReadOnly() = nil, want the reason")
	}
	if r, err := s.GetRun(ctx, "r1"); err != nil || r.Status != store.StatusCompleted || string(r.Subgraphs["/w/child.yaml"]) != "name: child\n" {
		problems = append(problems, fmt.Sprintf("GetRun: %+v, %v", r, err))
	}
	if runs, err := s.ListRuns(ctx, 0); err != nil || len(runs) != 1 {
		problems = append(problems, fmt.Sprintf("ListRuns: %d runs, %v", len(runs), err))
	}
	if invs, err := s.Invocations(ctx, "r1"); err != nil || len(invs) != 1 || invs[0].Path != "1/n" {
		problems = append(problems, fmt.Sprintf("Invocations: %v, %v", invs, err))
	}
	if cps, err := s.Checkpoints(ctx, "r1"); err != nil || len(cps) != 1 {
		problems = append(problems, fmt.Sprintf("Checkpoints: %v, %v", cps, err))
	}
	inv := &store.Invocation{RunID: "r1", Step: 2, Node: "n", Index: -1, Status: store.InvocationOK}
	cp := &store.Checkpoint{RunID: "r1", Step: 2}
	lease := store.Lease{Owner: "me", PID: os.Getpid(), Host: store.Hostname(), Expires: time.Now().Add(time.Minute)}
	for name, err := range map[string]error{
		"CreateRun":         s.CreateRun(ctx, &store.Run{ID: "r2", Status: store.StatusRunning}),
		"FinishRun":         s.FinishRun(ctx, "r1", store.StatusFailed, "x", time.Now()),
		"SetStatus":         s.SetStatus(ctx, "r1", store.StatusRunning),
		"RecordInvocation":  s.RecordInvocation(ctx, inv),
		"RecordInvocations": s.RecordInvocations(ctx, []*store.Invocation{inv, inv}),
		"WriteCheckpoint":   s.WriteCheckpoint(ctx, cp),
		"CommitSteps":       s.CommitSteps(ctx, []store.StepRecord{{Invocations: []*store.Invocation{inv}, Checkpoint: cp}}),
		"AcquireLease":      s.AcquireLease(ctx, "r1", lease),
		"RenewLease":        s.RenewLease(ctx, "r1", "me", time.Now()),
		"ReleaseLease":      s.ReleaseLease(ctx, "r1", "me"),
	} {
		if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "read-only") {
			problems = append(problems, fmt.Sprintf("%s = %v, want an ErrReadOnly saying read-only", name, err))
		}
	}
	return problems
}

// TestSQLiteOpenReadOnly: a store opened with OpenSQLiteReadOnly reads
// everything and writes nothing, even where the file is writable.
func TestSQLiteOpenReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	fillStore(t, path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range readOnlyProblems(path, store.OpenSQLiteReadOnly) {
		t.Error(p)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the store file changed while open read-only")
	}
}

// TestSQLiteUnwritableIsReadable: a store whose file and directory this
// process may not write opens read-only by itself (`lgx runs list` works)
// and its writes say "read-only". Root may write a 0444 file, so as root
// the check runs in a child process as the unprivileged user nobody.
func TestSQLiteUnwritableIsReadable(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "store")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "lgx.db")
	fillStore(t, path)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) }) // so TempDir can remove it

	var problems []string
	if os.Geteuid() != 0 {
		problems = readOnlyProblems(path, store.OpenSQLite)
	} else {
		problems = readOnlyAsNobody(t, tmp, path)
	}
	for _, p := range problems {
		t.Error(p)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the store file changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the store directory holds %d entries, want only the store", len(ents))
	}
}

// readOnlyAsNobody runs readOnlyProblems on path in a copy of the test
// binary started as uid/gid 65534, and returns the problems it printed.
func readOnlyAsNobody(t *testing.T, tmp, path string) []string {
	t.Helper()
	// The test binary and the store must be reachable by nobody: TempDir
	// directories are 0700.
	for d := tmp; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(tmp, "store.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Dir = tmp
	cmd.Env = []string{readOnlyChildEnv + "=" + path, "HOME=" + tmp, "TMPDIR=" + tmp}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			problems = append(problems, "as nobody: "+l)
		}
	}
	return problems
}
