package runner

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/nodes/mcp"
	"github.com/lgx-run/lgx/store"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// mcpTestServer is an in-process Go SDK server: echo (text required),
// fail (isError), slow (counts calls in flight) and their call counts.
type mcpTestServer struct {
	srv               *sdk.Server
	inFlight, maxSeen atomic.Int32
	calls             atomic.Int32
	conns             atomic.Int32
}

func newMCPTestServer() *mcpTestServer {
	ts := &mcpTestServer{srv: sdk.NewServer(&sdk.Implementation{Name: "t", Version: "1"}, nil)}
	obj := map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}, "required": []any{"text"}}
	text := func(r *sdk.CallToolRequest) string {
		var a struct{ Text string }
		_ = json.Unmarshal(r.Params.Arguments, &a)
		return a.Text
	}
	ts.srv.AddTool(&sdk.Tool{Name: "echo", InputSchema: obj}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ts.calls.Add(1)
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "echo: " + text(r)}}}, nil
	})
	ts.srv.AddTool(&sdk.Tool{Name: "fail", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ts.calls.Add(1)
		return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "no such city"}}}, nil
	})
	ts.srv.AddTool(&sdk.Tool{Name: "slow", InputSchema: obj}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ts.calls.Add(1)
		n := ts.inFlight.Add(1)
		for {
			m := ts.maxSeen.Load()
			if n <= m || ts.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		ts.inFlight.Add(-1)
		return &sdk.CallToolResult{StructuredContent: map[string]any{"word": text(r)}, Content: []sdk.Content{&sdk.TextContent{Text: text(r)}}}, nil
	})
	return ts
}

func (ts *mcpTestServer) transport(*mcp.Server) (sdk.Transport, error) {
	ts.conns.Add(1)
	ct, st := sdk.NewInMemoryTransports()
	if _, err := ts.srv.Connect(context.Background(), st, nil); err != nil {
		return nil, err
	}
	return ct, nil
}

const mcpWorkflow = `
lgx: 1
name: mcp-test
pools:
	mcp: {concurrency: 2}
mcp:
	t: {command: not-started-in-tests, pool: mcp, timeout: 5s}
state:
	words: {type: list, default: [a, b, c, d, e]}
	got: {type: list, reducer: append}
	msgs: any
nodes:
	each:
		type: mcp_call
		for_each: ${{ state.words }}
		with: {server: t, tool: slow, arguments: {text: "${{ item }}"}}
		output: {got: "${{ [result.content.word] }}"}
	run_tools:
		type: tools
		with:
			calls:
				- {id: c1, name: t.echo, arguments: {text: hi}}
				- {id: c2, name: t__fail, arguments: {}}
				- {id: c3, name: t.echo, arguments: {}}
				- {id: c4, name: t.slw, arguments: {}}
				- {id: c5, name: t__ecko, arguments: {text: x}}
		output: {msgs: "${{ result.messages }}"}
edges:
	- {from: START, to: [each, run_tools]}
	- {from: [each, run_tools], to: END}
`

func TestMCPInProcess(t *testing.T) {
	ts := newMCPTestServer()
	g := compileYAML(t, mcpWorkflow)
	ev := &eventLog{}
	res, err := Run(context.Background(), g, Options{MCPTransport: ts.transport, Sink: ev})
	if err != nil {
		t.Fatal(err)
	}
	if got := ts.maxSeen.Load(); got != 2 {
		t.Errorf("at most %d slow calls were in flight, want 2 (the pool's cap, reached)", got)
	}
	if got, _ := json.Marshal(res.State["got"]); string(got) != `["a","b","c","d","e"]` {
		t.Errorf("got = %s", got)
	}
	msgs, _ := res.State["msgs"].([]any)
	want := []string{"echo: hi", "error: no such city", "error: invalid arguments for t.echo", `error: unknown tool "t.slw" (did you mean "t.slow"?)`, `error: unknown tool "t__ecko" (did you mean "t__echo"?)`}
	if len(msgs) != len(want) {
		t.Fatalf("messages = %v", msgs)
	}
	for i, w := range want {
		m := msgs[i].(map[string]any)
		if c, _ := m["content"].(string); !strings.HasPrefix(c, w) {
			t.Errorf("message %d content = %q, want prefix %q", i, c, w)
		}
	}
	if n := ts.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 for the run", n)
	}
}

func TestMCPCallFailures(t *testing.T) {
	tests := []struct {
		name, with string
		kind       nodes.Kind
		msg        string
	}{
		{"is_error", `{server: t, tool: fail}`, nodes.KindStatus, "the tool answered with an error: no such city"},
		{"schema", `{server: t, tool: echo, arguments: {text: 3}}`, nodes.KindSchema, "invalid arguments"},
		{"unknown tool", `{server: t, tool: ecko}`, nodes.KindInput, `did you mean "echo"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newMCPTestServer()
			g := compileYAML(t, `
lgx: 1
name: mcp-fail
mcp:
	t: {command: x}
state:
	out: any
nodes:
	call:
		type: mcp_call
		with: `+tc.with+`
		retry: {attempts: 1}
		output: {out: "${{ result.content }}"}
edges:
	- {from: START, to: call}
	- {from: call, to: END}
`)
			_, err := Run(context.Background(), g, Options{MCPTransport: ts.transport})
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Kind != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want kind %s containing %q", err, tc.kind, tc.msg)
			}
		})
	}
}

// TestMCPToolCallsNotRepeatedOnResume cancels a run while one MCP call of
// a tools node has finished and another hangs: the finished call is
// recorded under its path, and the resume sends only the other. The
// in-memory transports let it run on the fake clock of a synctest bubble:
// the cancellation comes exactly 30ms after mark answered, when its answer
// is recorded and hold (100ms) is not done, however loaded the machine.
func TestMCPToolCallsNotRepeatedOnResume(t *testing.T) {
	synctest.Test(t, testMCPToolCallsNotRepeatedOnResume)
}

func testMCPToolCallsNotRepeatedOnResume(t *testing.T) {
	ts := newMCPTestServer()
	echoed := make(chan struct{}, 4)
	ts.srv.AddTool(&sdk.Tool{Name: "hold", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ts.calls.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "held"}}}, nil
	})
	ts.srv.AddTool(&sdk.Tool{Name: "mark", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		ts.calls.Add(1)
		echoed <- struct{}{}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "marked"}}}, nil
	})
	g := compileYAML(t, `
lgx: 1
name: mcp-resume
mcp:
	t: {command: x}
state:
	msgs: any
nodes:
	run_tools:
		type: tools
		with:
			calls:
				- {id: c1, name: t.mark, arguments: {}}
				- {id: c2, name: t.hold, arguments: {}}
		output: {msgs: "${{ result.messages }}"}
edges:
	- {from: START, to: run_tools}
	- {from: run_tools, to: END}
`)
	st := store.NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-echoed
		time.Sleep(30 * time.Millisecond) // let the call record its answer
		cancel()
	}()
	_, err := Run(ctx, g, Options{MCPTransport: ts.transport, Store: st, RunID: "M1", Environ: []string{}})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("run: %v", err)
	}
	if got := recordedPaths(t, st, "M1"); !slices.Equal(got, []string{"1/run_tools/tool:c1"}) {
		t.Fatalf("recorded before resume: %q", got)
	}
	before := ts.calls.Load()
	res, err := Resume(context.Background(), st, "M1", Options{MCPTransport: ts.transport, Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if sent := ts.calls.Load() - before; sent != 1 {
		t.Errorf("the resume sent %d calls, want 1 (hold; mark was recorded)", sent)
	}
	msgs, _ := res.State["msgs"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["content"] != "marked" || msgs[1].(map[string]any)["content"] != "held" {
		t.Errorf("messages %v", msgs)
	}
}

const mcpParentWorkflow = `
lgx: 1
name: mcp-parent
pools:
	mcp: {concurrency: 1}
mcp:
	t: {command: srv, args: [a], pool: mcp}
state:
	words: {type: list, default: [x, y, z]}
	got: {type: list, reducer: append}
nodes:
	first:
		type: mcp_call
		with: {server: t, tool: echo, arguments: {text: parent}}
		output: {got: "${{ [result.text] }}"}
	each:
		type: subgraph
		for_each: ${{ state.words }}
		as: word
		with: {workflow: ./child.yaml, input: {word: "${{ word }}"}}
		output: {got: "${{ result.got }}"}
edges:
	- {from: START, to: first}
	- {from: first, to: each}
	- {from: each, to: END}
`

// The child declares t as its parent does (shared), and u, a server of
// its own.
const mcpChildWorkflow = `
lgx: 1
name: mcp-child
pools:
	mcp: {concurrency: 5}
mcp:
	t: {command: srv, args: [a], pool: mcp}
	u: {command: srv, args: [b]}
state:
	word: string
	got: {type: list, reducer: append}
nodes:
	call:
		type: mcp_call
		with: {server: t, tool: slow, arguments: {text: "${{ state.word }}"}}
		output: {got: "${{ [result.content.word] }}"}
	ask:
		type: tools
		with: {calls: [{id: c1, name: u.echo, arguments: {text: "${{ state.word }}"}}]}
		output: {got: "${{ [result.messages[0].content] }}"}
edges:
	- {from: START, to: [call, ask]}
`

// TestMCPSubgraphSharesSessions: a subgraph whose server is declared as
// its parent's uses the parent's session (one connection for the run
// tree, not one per child), under the parent's pool; a server only the
// child declares gets one session for every child; the children's calls
// are recorded under their paths; the top-level run stops every session.
func TestMCPSubgraphSharesSessions(t *testing.T) {
	ts := newMCPTestServer()
	var mu sync.Mutex
	conns := map[string]int{}
	transport := func(s *mcp.Server) (sdk.Transport, error) {
		mu.Lock()
		conns[s.Name+" "+strings.Join(s.Args, " ")]++
		mu.Unlock()
		return ts.transport(s)
	}
	dir := t.TempDir()
	writeWorkflows(t, dir, "", map[string]string{"parent.yaml": mcpParentWorkflow, "child.yaml": mcpChildWorkflow})
	g, err := LoadGraph(filepath.Join(dir, "parent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	res, err := Run(context.Background(), g, Options{MCPTransport: transport, Store: st, RunID: "S1", Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(res.State["got"].([]any))
	slices.SortFunc(got, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	if want := []any{"echo: parent", "echo: x", "echo: y", "echo: z", "x", "y", "z"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got = %v, want %v", got, want)
	}
	if want := map[string]int{"t a": 1, "u b": 1}; !maps.Equal(conns, want) {
		t.Errorf("connections %v, want %v (one per declaration for the whole run tree)", conns, want)
	}
	if n := ts.maxSeen.Load(); n != 1 {
		t.Errorf("%d slow calls in flight, want 1: the children's calls take the parent's pool mcp (concurrency 1)", n)
	}
	paths := recordedPaths(t, st, "S1")
	for _, w := range []string{"1/first", "2/each[0]/1/call", "2/each[2]/1/call", "2/each[1]/1/ask/tool:c1"} {
		if !slices.Contains(paths, w) {
			t.Errorf("no record of %s in %q", w, paths)
		}
	}
	// Every session ended with the run (the client closed them all).
	deadline := time.Now().Add(5 * time.Second)
	for open := 1; open > 0; {
		open = 0
		for range ts.srv.Sessions() {
			open++
		}
		if open > 0 && time.Now().After(deadline) {
			t.Fatalf("%d server sessions still open after the run", open)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
