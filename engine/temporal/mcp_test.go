package temporal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/temporaltest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/store"
)

// mcpSteps calls the real server-everything in two steps: get-sum, then
// echo of its answer. %q is the server's command.
const mcpSteps = `
lgx: 1
name: mcp_steps
pools: {calls: {concurrency: 2}}
mcp:
  everything: {command: %q, env: [MCP_LOG], pool: calls, timeout: 30s}
state:
  sum: {type: string}
  said: {type: string}
nodes:
  add:
    type: mcp_call
    with: {server: everything, tool: get-sum, arguments: {a: 2, b: 40}}
    output: {sum: "${{ result.text }}"}
  say:
    type: mcp_call
    with: {server: everything, tool: echo, arguments: {message: "${{ state.sum }}"}}
    output: {said: "${{ result.text }}"}
edges:
  - {from: START, to: add}
  - {from: add, to: say}
  - {from: say, to: END}
`

// A worker starts a run's MCP server once and keeps it across the run's
// steps (each step's StepRuns are opened and closed again), and stops it
// when the run ends; the output is the local run's. The server is the
// real server-everything (LGX_TEST_MCP_EVERYTHING) behind a wrapper that
// logs the pid of each process started.
func TestTemporalMCPSessionAcrossSteps(t *testing.T) {
	exe := os.Getenv("LGX_TEST_MCP_EVERYTHING")
	if exe == "" {
		t.Skip("LGX_TEST_MCP_EVERYTHING is unset: install @modelcontextprotocol/server-everything with npm (as .ci/run does) and point it at node_modules/.bin/mcp-server-everything")
	}
	c := temporaltest.Dial(t)
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "everything.sh")
	script := "#!/bin/sh\necho \"$$ start\" >> \"$MCP_LOG\"\nexec '" + strings.ReplaceAll(exe, "'", `'\''`) + "' stdio\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	environ := func(log string) []string {
		return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "MCP_LOG=" + filepath.Join(dir, log)}
	}
	g := compile(t, "mcp_steps.yaml", fmt.Sprintf(mcpSteps, wrapper))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	want, err := runner.Run(ctx, g, runner.Options{Store: store.NewMemory(), Environ: environ("local.log")})
	if err != nil {
		t.Fatalf("local run: %v", err)
	}

	st, err := store.OpenSQLite(filepath.Join(dir, "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	queue := fmt.Sprintf("lgx-mcp-test-%d", time.Now().UnixNano())
	acts := &Activities{Store: st, Environ: environ("worker.log")}
	w, err := NewWorker(c, acts, WorkerOptions{TaskQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(acts.Close)
	t.Cleanup(w.Stop)

	runID := queue + "-run"
	if err := runner.SubmitRun(ctx, g, st, runID, nil, nil); err != nil {
		t.Fatalf("submit: %v", err)
	}
	wr, err := Start(ctx, c, queue, RunInput{RunID: runID})
	if err != nil {
		t.Fatal(err)
	}
	out, err := Await(ctx, wr)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != store.StatusCompleted {
		t.Fatalf("status %s (%s)", out.Status, out.Error)
	}
	got, err := runner.Outcome(ctx, st, runID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := jsonOf(t, got.Output), jsonOf(t, want.Output); g != w || !strings.Contains(g, "Echo: The sum of 2 and 40 is 42.") {
		t.Errorf("output:\n temporal %s\n local    %s", g, w)
	}

	pids := startedPids(t, filepath.Join(dir, "worker.log"))
	if len(pids) != 1 {
		t.Fatalf("the worker started the server %d times for a run of two steps, want once", len(pids))
	}
	// The run ended: the worker stopped its server (the worker runs on).
	if n := acts.MCP.Active(); n != 0 {
		t.Errorf("%d runs keep MCP sessions on the worker after the run ended", n)
	}
	for deadline := time.Now().Add(10 * time.Second); alive(pids[0]); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server process %d still runs 10 s after the run ended", pids[0])
		}
	}
}

// startedPids reads the pids a wrapper logged ("PID start" lines).
func startedPids(t *testing.T, log string) []int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || f[1] != "start" {
			t.Fatalf("%s: unexpected line %q", log, line)
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// alive reports whether process pid exists and has not exited (a zombie,
// exited but not yet reaped, has).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	s := string(stat) // pid (comm) STATE …: the state follows the last ")"
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
