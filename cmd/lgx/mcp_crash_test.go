package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
)

// mcpCrashWorkflow calls the real server-everything's slow tool
// (trigger-long-running-operation, 1 s a call) six times from an mcp_call
// in a for_each, then four times from a tools node, two at a time. Each
// call's `steps` argument names it: 1–6 for the items, 11–14 for the
// tool calls; the server's answer repeats it ("Steps: N.").
const mcpCrashWorkflow = `lgx: 1
name: mcp-crash
mcp:
  everything: {command: ./everything.sh, env: [MCP_LOG], timeout: 30s}
state:
  items: {type: list, default: [1, 2, 3, 4, 5, 6]}
  done:  {type: list, reducer: append, default: []}
  msgs:  any
nodes:
  op:
    type: mcp_call
    for_each: ${{ state.items }}
    concurrency: 2
    with: {server: everything, tool: trigger-long-running-operation, arguments: {duration: 1, steps: "${{ item }}"}}
    output: {done: "${{ [result.text] }}"}
  act:
    type: tools
    with:
      concurrency: 2
      calls:
        - {id: c1, name: everything.trigger-long-running-operation, arguments: {duration: 1, steps: 11}}
        - {id: c2, name: everything__trigger-long-running-operation, arguments: {duration: 1, steps: 12}}
        - {id: c3, name: everything.trigger-long-running-operation, arguments: {duration: 1, steps: 13}}
        - {id: c4, name: everything.trigger-long-running-operation, arguments: {duration: 1, steps: 14}}
    output: {msgs: "${{ result.messages }}"}
edges:
  - {from: START, to: op}
  - {from: op, to: act}
  - {from: act, to: END}
output: [done, msgs]
`

// TestMCPKillAndResume SIGKILLs the real lgx binary while MCP calls to the
// real server-everything are in flight, after some have finished, and
// resumes: every call recorded before the kill is never sent again, the
// resume sends each unrecorded call exactly once, and the final state is
// complete. The server runs behind `tee`, which logs every message lgx
// sends it, one log per lgx process.
func TestMCPKillAndResume(t *testing.T) {
	exe := os.Getenv("LGX_TEST_MCP_EVERYTHING")
	if exe == "" {
		t.Skip("LGX_TEST_MCP_EVERYTHING is unset: install @modelcontextprotocol/server-everything with npm (as .ci/run does) and point it at node_modules/.bin/mcp-server-everything")
	}
	bin, err := buildLGX()
	if err != nil {
		t.Fatal(err)
	}
	all := []int{1, 2, 3, 4, 5, 6, 11, 12, 13, 14}
	tests := []struct {
		name string
		// The kill comes once `after` events of kind `event` for node
		// `node` were seen (plus a moment for their records to commit).
		event, node string
		after       int
	}{
		{"mcp_call items", "node_end", "op", 2},
		{"tools node calls", "tool_end", "act", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			wrapper := "#!/bin/sh\n# Log what lgx sends, then hand it to the real server.\ntee -a \"$MCP_LOG\" | " + shellQuote(exe) + " stdio\n"
			for name, text := range map[string]string{"mcp_crash.yaml": mcpCrashWorkflow, "everything.sh": wrapper} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			home := filepath.Join(dir, "home")
			env := append(os.Environ(), "LGX_HOME="+home, "CI=true")
			runLog, resumeLog := filepath.Join(dir, "run.log"), filepath.Join(dir, "resume.log")

			cmd := exec.Command(bin, "run", "mcp_crash.yaml", "--stream", "events")
			cmd.Dir, cmd.Env = dir, append(env, "MCP_LOG="+runLog)
			stderr := &syncBuffer{}
			cmd.Stderr = stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			reached := make(chan struct{})
			go func() {
				seen := 0
				sc := bufio.NewScanner(stdout)
				sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
				for sc.Scan() {
					var ev struct{ Event, Node string }
					if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == tt.event && ev.Node == tt.node {
						if seen++; seen == tt.after {
							close(reached)
						}
					}
				}
			}()
			runID := waitForRunID(t, stderr)
			select {
			case <-reached:
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("no %d %s events of %s within 60 s; stderr:\n%s", tt.after, tt.event, tt.node, stderr.String())
			}
			first := 1
			if tt.node == "act" {
				first = 11
			}
			// The kill lands once the event's call is recorded: the
			// record commits within a millisecond on an idle machine,
			// but a loaded one may take longer. The calls take a second
			// each, so the next one is still running.
			db := filepath.Join(home, "lgx.db")
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				_, invs := loadRecords(t, db, runID)
				if slices.ContainsFunc(slices.Collect(maps.Keys(recordedCalls(invs))), func(n int) bool { return n >= first }) {
					break
				}
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()

			// What was recorded before the kill, by the call's `steps`.
			run, invs := loadRecords(t, db, runID)
			if run.Status == store.StatusCompleted {
				t.Fatalf("the run completed before the kill; the calls are too fast for this test")
			}
			recorded := recordedCalls(invs)
			var done []int
			for _, n := range all {
				if recorded[n] {
					done = append(done, n)
				}
			}
			t.Logf("killed with calls %v recorded", done)
			if !slices.ContainsFunc(done, func(n int) bool { return n >= first }) || len(done) == len(all) {
				t.Fatalf("the kill did not land mid-%s: recorded %v", tt.node, done)
			}

			res := exec.Command(bin, "resume", runID, "-o", "json")
			res.Dir, res.Env = dir, append(env, "MCP_LOG="+resumeLog)
			var out, errOut bytes.Buffer
			res.Stdout, res.Stderr = &out, &errOut
			if err := res.Run(); err != nil {
				t.Fatalf("resume: %v\n%s", err, errOut.String())
			}

			// The server saw each recorded call once (before the kill),
			// and the resume sent each unrecorded call exactly once.
			before, after := mcpToolCalls(t, runLog), mcpToolCalls(t, resumeLog)
			for _, n := range all {
				switch {
				case recorded[n] && (before[n] != 1 || after[n] != 0):
					t.Errorf("call %d was recorded before the kill, yet the server got it %d time(s) before and %d time(s) after", n, before[n], after[n])
				case !recorded[n] && after[n] != 1:
					t.Errorf("call %d was not recorded before the kill; the resume sent it %d time(s), want 1", n, after[n])
				}
			}

			// The final state is complete: every answer, in order.
			var got struct {
				Done []string
				Msgs []struct {
					Content    string
					ToolCallID string `json:"tool_call_id"`
				}
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("resume output: %v\n%s", err, out.String())
			}
			answer := func(n int) string {
				return fmt.Sprintf("Long running operation completed. Duration: 1 seconds, Steps: %d.", n)
			}
			if len(got.Done) != 6 || len(got.Msgs) != 4 {
				t.Fatalf("resume output: %s", out.String())
			}
			for i, d := range got.Done {
				if d != answer(i+1) {
					t.Errorf("done[%d] = %q, want %q", i, d, answer(i+1))
				}
			}
			for i, m := range got.Msgs {
				if m.Content != answer(11+i) || m.ToolCallID != fmt.Sprintf("c%d", i+1) {
					t.Errorf("msgs[%d] = %+v, want %q from c%d", i, m, answer(11+i), i+1)
				}
			}
		})
	}
}

// mcpToolCalls counts the tools/call requests in a log of what lgx sent a
// server (JSON-RPC, one message a line), by their `steps` argument. A
// missing log means nothing was sent.
func mcpToolCalls(t *testing.T, log string) map[int]int {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return map[int]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for line := range strings.Lines(string(b)) {
		var m struct {
			Method string
			Params struct {
				Arguments struct{ Steps int }
			}
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Method == "tools/call" {
			out[m.Params.Arguments.Steps]++
		}
	}
	return out
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// recordedCalls are the MCP calls of mcpCrashWorkflow recorded as done,
// by their `steps` argument: op's items 1–6, act's tool calls 11–14.
func recordedCalls(invs []*store.Invocation) map[int]bool {
	recorded := map[int]bool{}
	for _, inv := range invs {
		if inv.Status != store.InvocationOK {
			continue
		}
		switch {
		case inv.Node == "op":
			recorded[inv.Index+1] = true
		case strings.HasPrefix(inv.Path, "2/act/tool:c"):
			var n int
			if _, err := fmt.Sscanf(strings.TrimPrefix(inv.Path, "2/act/tool:c"), "%d", &n); err == nil {
				recorded[10+n] = true
			}
		}
	}
	return recorded
}
