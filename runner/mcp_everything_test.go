package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lgx-run/lgx/nodes/mcp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// everything returns the path of @modelcontextprotocol/server-everything's
// executable (.ci/run installs it and sets LGX_TEST_MCP_EVERYTHING).
func everything(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LGX_TEST_MCP_EVERYTHING")
	if p == "" {
		t.Skip("LGX_TEST_MCP_EVERYTHING is unset: install @modelcontextprotocol/server-everything with npm (as .ci/run does) and point it at node_modules/.bin/mcp-server-everything")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("LGX_TEST_MCP_EVERYTHING: %v", err)
	}
	return p
}

// wireCounter counts tools/call requests in flight on a connection, as
// the client sees them on the wire: sent and not yet answered.
type wireCounter struct {
	mu       sync.Mutex
	pending  map[jsonrpc.ID]bool
	max      int
	sent     int
	finished int
}

type countingConn struct {
	sdk.Connection
	c *wireCounter
}

func (cc *countingConn) Write(ctx context.Context, m jsonrpc.Message) error {
	if r, ok := m.(*jsonrpc.Request); ok && r.Method == "tools/call" {
		cc.c.mu.Lock()
		cc.c.pending[r.ID] = true
		cc.c.sent++
		cc.c.max = max(cc.c.max, len(cc.c.pending))
		cc.c.mu.Unlock()
	}
	return cc.Connection.Write(ctx, m)
}

func (cc *countingConn) Read(ctx context.Context) (jsonrpc.Message, error) {
	m, err := cc.Connection.Read(ctx)
	if r, ok := m.(*jsonrpc.Response); ok {
		cc.c.mu.Lock()
		if cc.c.pending[r.ID] {
			delete(cc.c.pending, r.ID)
			cc.c.finished++
		}
		cc.c.mu.Unlock()
	}
	return m, err
}

type countingTransport struct {
	sdk.Transport
	c *wireCounter
}

func (t countingTransport) Connect(ctx context.Context) (sdk.Connection, error) {
	c, err := t.Transport.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{Connection: c, c: t.c}, nil
}

// TestEverythingConcurrencyCap runs mcp_call in a for_each under
// concurrency: 2 against the real server: at most 2 calls are in flight
// on the wire, and 2 are (the cap is reached, not just respected).
func TestEverythingConcurrencyCap(t *testing.T) {
	exe := everything(t)
	wc := &wireCounter{pending: map[jsonrpc.ID]bool{}}
	g := compileYAML(t, `
lgx: 1
name: everything-cap
mcp:
	everything: {command: `+exe+`, args: [stdio], timeout: 20s}
state:
	items: {type: list, default: [1, 2, 3, 4, 5, 6]}
	done: {type: list, reducer: append}
nodes:
	op:
		type: mcp_call
		for_each: ${{ state.items }}
		concurrency: 2
		with: {server: everything, tool: trigger-long-running-operation, arguments: {duration: 0.3, steps: 1}}
		output: {done: "${{ [result.text] }}"}
edges:
	- {from: START, to: op}
	- {from: op, to: END}
`)
	res, err := Run(context.Background(), g, Options{MCPTransport: func(s *mcp.Server) (sdk.Transport, error) {
		cmd := exec.Command(s.Command, s.Args...)
		cmd.Env = mcp.FilterEnv(os.Environ(), nil)
		return countingTransport{Transport: &sdk.CommandTransport{Command: cmd}, c: wc}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	done, _ := res.State["done"].([]any)
	if len(done) != 6 || !strings.Contains(done[0].(string), "Long running operation completed") {
		t.Errorf("done = %v", done)
	}
	if wc.max != 2 || wc.sent != 6 || wc.finished != 6 {
		t.Errorf("max in flight %d, sent %d, answered %d; want 2, 6, 6", wc.max, wc.sent, wc.finished)
	}
}

// TestEverythingStdio runs the real server as declared (stdio, env
// allowlist): its environment holds only the allowlist and PATH, HOME; a
// tool that throws becomes an "error: …" tool message; a structured
// result is JSON; its stderr lines are events, not terminal output.
func TestEverythingStdio(t *testing.T) {
	exe := everything(t)
	g := compileYAML(t, `
lgx: 1
name: everything-stdio
mcp:
	everything: {command: `+exe+`, args: [stdio], env: [LGX_TEST_ALLOWED]}
state:
	env: any
	msgs: any
nodes:
	env:
		type: mcp_call
		with: {server: everything, tool: get-env}
		output: {env: "${{ result.text }}"}
	agent_tools:
		type: tools
		with:
			calls:
				- {id: c1, name: everything.get-sum, arguments: {a: 2, b: 3}}
				- {id: c2, name: everything__gzip-file-as-resource, arguments: {name: x.gz, data: "ftp://127.0.0.1/x"}}
				- {id: c3, name: everything.get-structured-content, arguments: {location: New York}}
		output: {msgs: "${{ result.messages }}"}
edges:
	- {from: START, to: [env, agent_tools]}
	- {from: [env, agent_tools], to: END}
`)
	environ := append(os.Environ(), "LGX_TEST_ALLOWED=yes", "LGX_TEST_SECRET=hidden")
	ev := &eventLog{}
	res, err := Run(context.Background(), g, Options{Environ: environ, Sink: ev})
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(res.State["env"].(string)), &env); err != nil {
		t.Fatalf("get-env: %v", err)
	}
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	allowed := map[string]bool{"LGX_TEST_ALLOWED": true, "PATH": true, "HOME": true}
	for _, n := range names {
		if !allowed[n] {
			t.Errorf("the server's environment has %s (all: %v); want only LGX_TEST_ALLOWED, PATH, HOME", n, names)
		}
	}
	if env["LGX_TEST_ALLOWED"] != "yes" {
		t.Errorf("the allowlisted variable did not reach the server: %v", names)
	}
	msgs := res.State["msgs"].([]any)
	content := func(i int) string { return msgs[i].(map[string]any)["content"].(string) }
	if !strings.Contains(content(0), "5") {
		t.Errorf("get-sum: %q", content(0))
	}
	if c := content(1); !strings.HasPrefix(c, "error: ") || !strings.Contains(c, "Unsupported URL protocol") {
		t.Errorf("a throwing tool: %q, want an error message the model can read", c)
	}
	if c := content(2); !strings.HasPrefix(c, "{") {
		t.Errorf("structured content: %q, want JSON", c)
	}
}

// TestEverythingExits declares a server that exits at once: the node
// fails with kind network, naming the server and what it wrote.
func TestEverythingExits(t *testing.T) {
	exe := everything(t)
	g := compileYAML(t, `
lgx: 1
name: everything-exits
mcp:
	broken: {command: `+exe+`, args: [no-such-transport]}
state:
	out: any
nodes:
	call:
		type: mcp_call
		with: {server: broken, tool: echo, arguments: {message: hi}}
		retry: {attempts: 2, backoff: 10ms}
		output: {out: "${{ result.text }}"}
edges:
	- {from: START, to: call}
	- {from: call, to: END}
`)
	_, err := Run(context.Background(), g, Options{})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Kind != "network" || !strings.Contains(err.Error(), "mcp server broken") {
		t.Fatalf("err = %v, want kind network naming the server", err)
	}
	t.Logf("reported: %v", err)
}

// TestEverythingHTTP runs the real server over streamable HTTP on
// loopback: an mcp_call and a model's tool call through a tools node.
func TestEverythingHTTP(t *testing.T) {
	exe := everything(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(exe, "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatalf("server-everything did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	g := compileYAML(t, `
lgx: 1
name: everything-http
secrets: [LGX_TEST_TOKEN]
mcp:
	remote: {url: "http://`+addr+`/mcp", headers: {Authorization: "Bearer ${{ secrets.LGX_TEST_TOKEN }}"}}
state:
	sum: any
	msgs: any
nodes:
	add:
		type: mcp_call
		with: {server: remote, tool: get-sum, arguments: {a: 20, b: 22}}
		output: {sum: "${{ result.text }}"}
	act:
		type: tools
		with:
			calls: [{id: c1, name: remote__echo, arguments: {message: over http}}]
		output: {msgs: "${{ result.messages }}"}
edges:
	- {from: START, to: [add, act]}
	- {from: [add, act], to: END}
`)
	res, err := Run(context.Background(), g, Options{Environ: append(os.Environ(), "LGX_TEST_TOKEN=tok")})
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := res.State["sum"].(string); !strings.Contains(s, "42") {
		t.Errorf("sum = %q", s)
	}
	msgs := res.State["msgs"].([]any)
	if c := msgs[0].(map[string]any)["content"]; c != "Echo: over http" {
		t.Errorf("echo = %v", c)
	}
}

// TestEverythingSubgraph: a parent and its for_each subgraph declare the
// real server alike; the whole run tree starts one server process, and
// the children's calls reach it.
func TestEverythingSubgraph(t *testing.T) {
	exe := everything(t)
	decl := `mcp:
	everything: {command: ` + exe + `, args: [stdio], timeout: 20s}
`
	dir := t.TempDir()
	writeWorkflows(t, dir, "", map[string]string{
		"parent.yaml": `
lgx: 1
name: everything-parent
` + decl + `state:
	words: {type: list, default: [one, two, three]}
	got: {type: list, reducer: append}
nodes:
	sum:
		type: mcp_call
		with: {server: everything, tool: get-sum, arguments: {a: 1, b: 2}}
		output: {got: "${{ [result.text] }}"}
	each:
		type: subgraph
		for_each: ${{ state.words }}
		as: word
		with: {workflow: ./child.yaml, input: {word: "${{ word }}"}}
		output: {got: "${{ result.got }}"}
edges:
	- {from: START, to: [sum, each]}
	- {from: [sum, each], to: END}
`,
		"child.yaml": `
lgx: 1
name: everything-child
` + decl + `state:
	word: string
	got: {type: list, reducer: append}
nodes:
	echo:
		type: mcp_call
		with: {server: everything, tool: echo, arguments: {message: "${{ state.word }}"}}
		output: {got: "${{ [result.text] }}"}
edges:
	- {from: START, to: echo}
`})
	g, err := LoadGraph(filepath.Join(dir, "parent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var started atomic.Int32
	res, err := Run(context.Background(), g, Options{MCPTransport: func(s *mcp.Server) (sdk.Transport, error) {
		started.Add(1)
		cmd := exec.Command(s.Command, s.Args...)
		cmd.Env = mcp.FilterEnv(os.Environ(), nil)
		return &sdk.CommandTransport{Command: cmd}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(res.State["got"])
	for _, w := range []string{"Echo: one", "Echo: two", "Echo: three", "3"} {
		if !strings.Contains(got, w) {
			t.Errorf("got %s, want %q in it", got, w)
		}
	}
	if n := started.Load(); n != 1 {
		t.Errorf("%d server processes started, want 1 for the run tree", n)
	}
}
