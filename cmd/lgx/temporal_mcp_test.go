package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/temporaltest"
)

// TestTemporalMCPScripts runs testdata/temporal_mcp/*.txtar: workflows
// with MCP servers run locally and on the Temporal dev server
// LGX_TEST_TEMPORAL names, their servers the real server-everything
// (LGX_TEST_MCP_EVERYTHING; its directory is put on PATH). Each script
// gets a task queue of its own ($QUEUE) and a SQLite store its workers and
// clients share.
func TestTemporalMCPScripts(t *testing.T) {
	exe := os.Getenv("LGX_TEST_MCP_EVERYTHING")
	if exe == "" {
		t.Skip("LGX_TEST_MCP_EVERYTHING is unset: install @modelcontextprotocol/server-everything with npm (as .ci/run does) and point it at node_modules/.bin/mcp-server-everything")
	}
	addr := temporaltest.Address(t) // skips, saying how to start one
	cmds := temporalCmds()
	cmds["mcplog"] = cmdMCPLog
	cmds["mcpllm"] = cmdMCPLLM
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/temporal_mcp",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			if err := scriptEnv(env); err != nil {
				return err
			}
			env.Setenv("PATH", filepath.Dir(exe)+string(os.PathListSeparator)+os.Getenv("PATH"))
			b := make([]byte, 6)
			_, _ = rand.Read(b)
			env.Setenv("QUEUE", "lgx-mcp-script-"+hex.EncodeToString(b))
			env.Setenv("LGX_TEMPORAL_ADDRESS", addr)
			env.Setenv("LGX_STORE", "sqlite:"+filepath.Join(env.WorkDir, "runs.db"))
			return nil
		},
		Cmds: cmds,
	})
}

// cmdMCPLog: mcplog FILE starts N | least-starts N | most-starts N |
// calls N | inflight N | gone. Reads the log a logging wrapper of an MCP
// server writes (lines "PID start", "PID > ID" for each tools/call sent
// to it, "PID < ID" for each answer, each written before the message is
// passed on): how many server processes started (exactly, at least or at
// most N), how many tool calls they got, the most calls in flight at once
// across all of them (exactly N: the pool filled, never more), or, for
// gone, that every process that started has exited (waiting up to 10 s).
func cmdMCPLog(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || args[1] != "gone" && len(args) != 3 {
		ts.Fatalf("usage: mcplog FILE starts|least-starts|most-starts|calls|inflight N, or mcplog FILE gone")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	var pids []int
	calls, inFlight, most := 0, map[string]bool{}, 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[1] == "start":
			pid, err := strconv.Atoi(f[0])
			ts.Check(err)
			pids = append(pids, pid)
		case len(f) == 3 && f[1] == ">":
			calls++
			inFlight[f[0]+" "+f[2]] = true
			most = max(most, len(inFlight))
		case len(f) == 3 && f[1] == "<":
			delete(inFlight, f[0]+" "+f[2]) // an answer to another request: not a call
		default:
			ts.Fatalf("mcplog: %s: unexpected line %q", args[0], line)
		}
	}
	if args[1] == "gone" {
		for _, pid := range pids {
			for deadline := time.Now().Add(10 * time.Second); processRuns(pid); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					ts.Fatalf("mcplog: server process %d still runs after 10 s", pid)
				}
			}
		}
		return
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	got := map[string]int{"starts": len(pids), "least-starts": len(pids), "most-starts": len(pids), "calls": calls, "inflight": most}
	v, ok := got[args[1]]
	switch {
	case !ok:
		ts.Fatalf("mcplog: unknown check %q", args[1])
	case args[1] == "least-starts":
		if v < n {
			ts.Fatalf("mcplog: %d server processes started, want at least %d", v, n)
		}
	case args[1] == "most-starts":
		if v > n {
			ts.Fatalf("mcplog: %d server processes started, want at most %d", v, n)
		}
	case v != n:
		ts.Fatalf("mcplog: %s = %d, want %d", args[1], v, n)
	}
	ts.Logf("mcplog: %s = %d", args[1], v)
}

// processRuns reports whether process pid exists and is not a zombie (one
// that exited, not yet reaped).
func processRuns(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// pid (comm) STATE …: comm may hold spaces, so the state follows the last ")".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
