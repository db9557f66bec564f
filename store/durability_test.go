package store_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lgx-run/lgx/store"
)

// crashChildEnv makes the test binary act as the child of
// TestSQLiteSurvivesSIGKILL: it records into the store named by the
// variable until it is killed.
const crashChildEnv = "LGX_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	if path := os.Getenv(leaseChildEnv); path != "" {
		os.Exit(leaseChild(path))
	}
	if path := os.Getenv(readOnlyChildEnv); path != "" {
		os.Exit(readOnlyChild(path))
	}
	goleak.VerifyTestMain(m)
}

// crashChild records invocations (and a checkpoint every tenth) as fast as
// it can, printing "inv I" or "cp S" on stdout after each call returns.
func crashChild(path string) int {
	s, err := store.OpenSQLite(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	out := os.Stdout // unbuffered: a line is printed only after its call returned
	for i := 0; i < 1_000_000; i++ {
		inv := &store.Invocation{RunID: "crash", Step: i / 10, Node: "n", Index: i % 10,
			Status: store.InvocationOK, Writes: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Attempts: 1}
		if err := s.RecordInvocation(ctx, inv); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(out, "inv %d\n", i)
		if i%10 == 9 {
			cp := &store.Checkpoint{RunID: "crash", Step: i / 10,
				Changed: map[string]json.RawMessage{"i": json.RawMessage(strconv.Itoa(i))}}
			if err := s.WriteCheckpoint(ctx, cp); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Fprintf(out, "cp %d\n", i/10)
		}
	}
	return 0
}

// TestSQLiteSurvivesSIGKILL kills a recording process mid-way and checks
// that everything it was told was recorded is there after reopening.
func TestSQLiteSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRun(context.Background(), &store.Run{ID: "crash", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300 // invocations reported before SIGKILL
	invs, cps := map[int]bool{}, map[int]bool{}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		var kind string
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &kind, &n); err != nil {
			t.Fatalf("child printed %q: %v", sc.Text(), err)
		}
		if kind == "inv" {
			invs[n] = true
		} else {
			cps[n] = true
		}
		if !killed && len(invs) == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true // keep reading what it printed before dying
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before being killed: %v; stderr: %s", err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; stderr: %s", err, stderr.String())
	}

	s, err = store.OpenSQLite(path)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	got, err := s.Invocations(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int]bool{}
	for _, inv := range got {
		var w struct{ I int }
		if err := json.Unmarshal(inv.Writes, &w); err != nil {
			t.Fatalf("stored writes %q: %v", inv.Writes, err)
		}
		if inv.Step*10+inv.Index != w.I {
			t.Errorf("invocation %d/%d holds writes of %d", inv.Step, inv.Index, w.I)
		}
		stored[w.I] = true
	}
	for i := range invs {
		if !stored[i] {
			t.Errorf("invocation %d was reported recorded but is missing after SIGKILL", i)
		}
	}
	gotCPs, err := s.Checkpoints(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	storedCP := map[int]bool{}
	for _, cp := range gotCPs {
		storedCP[cp.Step] = true
	}
	for step := range cps {
		if !storedCP[step] {
			t.Errorf("checkpoint %d was reported written but is missing after SIGKILL", step)
		}
	}
	t.Logf("child reported %d invocations and %d checkpoints before dying; store holds %d and %d",
		len(invs), len(cps), len(stored), len(storedCP))
}

// TestSQLiteReopen checks every kind of record survives Close and a new
// OpenSQLite, byte for byte.
func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lgx.db")
	start := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	run := &store.Run{ID: "01J", Workflow: "wf", File: "wf.yaml", Source: []byte("name: wf\n"),
		Inputs: json.RawMessage(`{"a": 1}`), Status: store.StatusRunning, StartedAt: start}
	inv := &store.Invocation{RunID: "01J", Step: 1, Node: "n", Index: -1, Status: store.InvocationOK,
		Writes: json.RawMessage(`{"x": [1, 2]}`), Attempts: 2, StartedAt: start, EndedAt: start.Add(time.Second)}
	cp := &store.Checkpoint{RunID: "01J", Step: 1, Changed: map[string]json.RawMessage{"x": json.RawMessage(`[1, 2]`)},
		Next: []string{"m"}, Joins: json.RawMessage(`{}`), At: start.Add(2 * time.Second)}

	s, err := store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		s.CreateRun(ctx, run), s.RecordInvocation(ctx, inv), s.WriteCheckpoint(ctx, cp),
		s.FinishRun(ctx, "01J", store.StatusFailed, "boom", start.Add(3*time.Second)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("WAL file left after Close (stat: %v): the last close should fold it into the database", err)
	}

	s, err = store.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, err := s.GetRun(ctx, "01J")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Source) != "name: wf\n" || string(r.Inputs) != `{"a": 1}` || r.Status != store.StatusFailed ||
		r.Error != "boom" || !r.StartedAt.Equal(start) || !r.EndedAt.Equal(start.Add(3*time.Second)) {
		t.Errorf("run after reopen = %+v", r)
	}
	invs, err := s.Invocations(ctx, "01J")
	if err != nil || len(invs) != 1 || string(invs[0].Writes) != `{"x": [1, 2]}` || invs[0].Attempts != 2 ||
		!invs[0].EndedAt.Equal(start.Add(time.Second)) {
		t.Errorf("invocations after reopen = %v, %v", invs, err)
	}
	cps, err := s.Checkpoints(ctx, "01J")
	if err != nil || len(cps) != 1 || string(cps[0].Changed["x"]) != `[1, 2]` || len(cps[0].Next) != 1 ||
		string(cps[0].Joins) != `{}` || !cps[0].At.Equal(start.Add(2*time.Second)) {
		t.Errorf("checkpoints after reopen = %v, %v", cps, err)
	}
}
