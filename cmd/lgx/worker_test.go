package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lgx-run/lgx/internal/temporaltest"
)

// What --engine temporal refuses is refused before anything is recorded
// or any server is contacted: these need no Temporal server.
func TestTemporalRefusals(t *testing.T) {
	wf := func(name string) string { return filepath.Join("..", "..", "workflows", name) }
	hello := wf("hello.yaml")
	text := outputFlags{output: "text"}
	dir := t.TempDir()
	parentWF := filepath.Join(dir, "parent.yaml")
	for name, src := range map[string]string{
		"parent.yaml":    "lgx: 1\nname: parent\npools: {p: {concurrency: 4}}\nstate: {x: {type: integer}}\nnodes:\n  child: {type: subgraph, with: {workflow: child.yaml}}\nedges: [{from: START, to: child}]\n",
		"child.yaml":     "lgx: 1\nname: child\nstate: {x: {type: integer}}\nnodes:\n  deeper: {type: subgraph, with: {workflow: leaf.yaml}}\nedges: [{from: START, to: deeper}]\n",
		"leaf.yaml":      toolsTool("leaf"),
		"toolstool.yaml": toolsTool("r"),
		"mcpchild.yaml":  "lgx: 1\nname: mcpchild\nmcp:\n  remote: {url: \"http://127.0.0.1:1/mcp\"}\nstate: {x: {type: integer}}\nnodes:\n  n: {type: set, output: {x: 1}}\nedges: [{from: START, to: n}]\n",
		"mcpparent.yaml": "lgx: 1\nname: mcpparent\nstate: {x: {type: integer}}\nnodes:\n  child: {type: subgraph, with: {workflow: mcpchild.yaml}}\nedges: [{from: START, to: child}]\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		opts   runOptions
		worker *workerOptions
		stderr string
	}{
		{name: "unknown engine", opts: runOptions{file: hello, engine: "cloud", out: text},
			stderr: `--engine must be local or temporal, not "cloud"`},
		{name: "detach without temporal", opts: runOptions{file: hello, engine: "local", detach: true, out: text},
			stderr: "--detach needs --engine temporal"},
		// --replay and --record run on Temporal (testdata/temporal/
		// cassette_replay.txtar, cassette_record.txtar); the client writes
		// the recording, so it must wait for the run, and the file is
		// checked writable before the run is submitted, as locally.
		{name: "record detached", opts: runOptions{file: hello, engine: "temporal", detach: true, out: text, cassette: cassetteFlags{record: "x.yaml"}},
			stderr: "--record cannot be used with --detach: this process writes the cassette when the run ends"},
		{name: "record unwritable", opts: runOptions{file: hello, engine: "temporal", out: text, cassette: cassetteFlags{record: filepath.Join(hello, "x.yaml")}},
			stderr: "cassette " + filepath.Join(hello, "x.yaml") + ": mkdir"},
		// A subgraph's MCP server over HTTP is reached through the
		// worker's sessions: its requests could not be recorded.
		{name: "record with an MCP server over HTTP", opts: runOptions{file: filepath.Join(dir, "mcpparent.yaml"), engine: "temporal", out: text, cassette: cassetteFlags{record: filepath.Join(dir, "r.yaml")}},
			stderr: "--record is not supported with --engine temporal for workflow mcpchild: the requests to MCP server remote (over HTTP) go through the workers' sessions"},
		{name: "memory store", opts: runOptions{file: hello, engine: "temporal", out: text, store: storeFlag{kind: "memory"}},
			stderr: "--store memory: with --engine temporal the workers must read the run from the store"},
		// Subgraphs nest (the child calls leaf.yaml): what a child uses
		// is refused whatever its depth. (A key on a pool an ancestor
		// declares too runs: testdata/temporal/keyed_pool_shared.txtar.)
		{name: "tool calls in a grandchild", opts: runOptions{file: parentWF, engine: "temporal", out: text},
			stderr: "workflow parent cannot run on Temporal yet; it uses:\n  subgraph " + filepath.Join(dir, "leaf.yaml") + ": tool inner: type tools (tool calls)"},
		// A tool whose node is a subgraph runs (subgraph_tools.txtar);
		// one whose node makes tool calls of its own does not.
		{name: "tool that makes tool calls", opts: runOptions{file: filepath.Join(dir, "toolstool.yaml"), engine: "temporal", out: text},
			stderr: "workflow r cannot run on Temporal yet; it uses:\n  tool inner: type tools (tool calls)"},
		{name: "worker: memory store", worker: &workerOptions{store: storeFlag{kind: "memory"}},
			stderr: "--store memory: a worker needs the store its clients use"},
		{name: "worker: negative max", worker: &workerOptions{maxActivities: -1},
			stderr: "--max-activities must be positive"},
	}
	t.Setenv("LGX_HOME", t.TempDir())
	t.Setenv("OPENAI_API_KEY", "sk-test")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			a := &app{ios: &IOStreams{Out: &out, Err: &errb, Width: 80}}
			var err error
			if tt.worker != nil {
				err = a.runWorker(context.Background(), *tt.worker)
			} else {
				err = a.runRun(context.Background(), tt.opts)
			}
			if got := exitCode(err); got != exitUsage {
				t.Fatalf("exit %d (%v), want %d", got, err, exitUsage)
			}
			if err == nil || !strings.Contains(err.Error(), tt.stderr) {
				t.Errorf("error %v, want it to say %q", err, tt.stderr)
			}
			if entries, _ := os.ReadDir(os.Getenv("LGX_HOME")); len(entries) > 0 {
				t.Errorf("something was recorded: %v", entries)
			}
		})
	}
}

// toolsTool is workflow name, with a tool whose node makes tool calls of
// its own (refused on Temporal).
func toolsTool(name string) string {
	return "lgx: 1\nname: " + name + "\nstate: {calls: {type: list, default: []}, messages: {type: list, default: []}}\n" +
		"tools:\n  inner: {description: d, parameters: {type: object}, node: {type: tools, with: {calls: \"${{ args.calls }}\"}}}\n" +
		"nodes:\n  act: {type: tools, with: {calls: \"${{ state.calls }}\"}, output: {messages: \"${{ result.messages }}\"}}\nedges: [{from: START, to: act}]\n"
}

// TestTemporalScripts runs testdata/temporal/*.txtar against the Temporal
// dev server LGX_TEST_TEMPORAL names (tools/devtemporal/start.sh): each
// script gets a task queue of its own, $QUEUE, so scripts and test runs
// never serve one another's runs. The worker and the clients share a
// SQLite file, and, when LGX_TEST_POSTGRES names a server
// (tools/pgtest/start.sh), the scripts run again on an empty PostgreSQL
// schema of their own.
func TestTemporalScripts(t *testing.T) {
	addr := temporaltest.Address(t)
	stores := map[string]func(env *testscript.Env) (string, error){
		"sqlite": func(env *testscript.Env) (string, error) {
			return "sqlite:" + filepath.Join(env.WorkDir, "runs.db"), nil
		},
	}
	if base := os.Getenv("LGX_TEST_POSTGRES"); base != "" {
		stores["postgres"] = func(env *testscript.Env) (string, error) { return pgSchema(env, base) }
	}
	for name, storeURL := range stores {
		t.Run(name, func(t *testing.T) {
			testscript.Run(t, testscript.Params{
				Dir:                 "testdata/temporal",
				UpdateScripts:       *update,
				RequireExplicitExec: true,
				Setup: func(env *testscript.Env) error {
					if err := scriptEnv(env); err != nil {
						return err
					}
					b := make([]byte, 6)
					_, _ = rand.Read(b)
					env.Setenv("QUEUE", "lgx-script-"+hex.EncodeToString(b))
					env.Setenv("LGX_TEMPORAL_ADDRESS", addr)
					u, err := storeURL(env)
					if err != nil {
						return err
					}
					env.Setenv("LGX_STORE", u)
					return nil
				},
				Cmds: temporalCmds(),
			})
		})
	}
}

// temporalCmds are scriptCmds plus waitrequests and the key server's
// commands (temporal_kill_test.go).
func temporalCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	cmds := scriptCmds()
	cmds["waitrequests"] = cmdWaitRequests
	cmds["llmecho"] = cmdLLMEcho
	cmds["eventshape"] = cmdEventShape
	cmds["flakyreset"] = cmdFlakyReset
	for name, c := range keyServerCmds() {
		cmds[name] = c
	}
	return cmds
}

// cmdWaitRequests: waitrequests VAR N. Waits (up to 20 s) until docserver
// VAR has received N requests: a script acts while a run is mid-step.
func cmdWaitRequests(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitrequests VAR N")
	}
	d := docServers(ts)[args[0]]
	if d == nil {
		ts.Fatalf("waitrequests: no server %s", args[0])
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("waitrequests: bad count %q", args[1])
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		d.mu.Lock()
		got := d.requests
		d.mu.Unlock()
		if got >= n {
			return
		}
	}
	ts.Fatalf("waitrequests: %s received fewer than %d requests in 20 s", args[0], n)
}
