package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/nodes/mcp"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// EventMCPStderr carries one line a stdio MCP server wrote to its stderr
// (Node names the server, Message holds the line, secrets redacted): the
// terminal stays the run's.
const EventMCPStderr = "mcp_stderr"

// mcpRun is a run's MCP side: its servers' declarations (by name; each
// call uses the run tree's session for its declaration, made on first
// use) and one compiled node per server tool called as a model's tool,
// carrying the server's pool and timeout.
type mcpRun struct {
	once    sync.Once
	servers map[string]mcpDecl
	err     error

	treeOnce sync.Once
	tree     *mcpTree
	own      bool // a top-level run: it stops the tree's servers when it ends
	// sessions, when set, keeps the run's sessions across the steps a
	// worker executes (useMCPSessions): the run neither makes nor stops
	// them.
	sessions *MCPSessions

	mu    sync.Mutex
	nodes map[string]*node
	caps  map[string]*caps
}

// mcpTree holds the MCP sessions of a run tree: the top-level run and
// every subgraph it runs, at any depth. A server is started once per
// distinct declaration (its name and everything that starts or reaches
// it: command, args, env, cwd, url, headers, tools), so a child that
// declares a server as its parent does uses the parent's session; a child
// whose declaration differs gets its own. The top-level run stops them
// all when it ends (docs/decisions.md, "MCP servers and subgraphs").
//
// A run executed step by step on a worker (StepOptions.MCP) has a tree
// whose sessions are the worker's (sessions, for run): they outlive each
// step's run value, so a server is not started again at every step.
type mcpTree struct {
	opts mcp.Options // the top-level run's: environment, transport, stderr events

	// sessions, when set, holds the tree's sessions for run, across
	// steps; byDecl and closed are then unused.
	sessions *MCPSessions
	run      string

	mu     sync.Mutex
	byDecl map[string]*mcp.Manager
	closed bool
}

// mcpDecl is one resolved server declaration and its key in a tree.
type mcpDecl struct {
	srv mcp.Server
	key string
}

// declKey is what tells a declaration from another in a tree:
// everything that starts or reaches its server.
func declKey(s mcp.Server) (string, error) {
	key, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("mcp server %s: %w", s.Name, err)
	}
	return string(key), nil
}

// use returns the session manager of a declaration, made on first use,
// and done, to call once the caller no longer uses it (a worker's idle
// sessions are stopped, never one in use).
func (t *mcpTree) use(d mcpDecl) (m *mcp.Manager, done func()) {
	if t.sessions != nil {
		return t.sessions.use(t.run, d, t.opts)
	}
	return t.manager(d), func() {}
}

// manager returns the session manager of a declaration, made on first use.
func (t *mcpTree) manager(d mcpDecl) *mcp.Manager {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.byDecl[d.key]; m != nil {
		return m
	}
	m := mcp.NewManager([]mcp.Server{d.srv}, t.opts)
	if t.closed {
		// The run has ended: the manager refuses every call.
		_ = m.Close()
	}
	t.byDecl[d.key] = m
	return m
}

// close stops every server of the tree; later calls fail.
func (t *mcpTree) close() error {
	t.mu.Lock()
	t.closed = true
	ms := make([]*mcp.Manager, 0, len(t.byDecl))
	for _, m := range t.byDecl {
		ms = append(ms, m)
	}
	t.mu.Unlock()
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// mcpServer returns the declaration of a server, or nil.
func (g *Graph) mcpServer(name string) *spec.MCPServer {
	for _, s := range g.wf.MCP {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// mcpServerCaps returns the pools an mcp_call node takes beyond its own:
// its server's. It also gives the node its server's timeout when the node
// sets none (both are read once, at compile time).
func (g *Graph) mcpServerCaps(n *node, field string) []string {
	lit, ok := n.withLiteral(field)
	if !ok {
		return nil
	}
	name, _ := lit.(string)
	s := g.mcpServer(name)
	if s == nil {
		return nil
	}
	if n.spec.Timeout <= 0 && s.Timeout > 0 {
		n.timeout = s.Timeout
	}
	if s.Pool.Value != "" {
		return []string{s.Pool.Value}
	}
	return nil
}

// mcpRef splits a tool name that names an MCP tool: `server.tool`,
// `server.*`, or the model-facing `server__tool` (nodes.MCPToolName). A
// declared tool of that name wins.
func (g *Graph) mcpRef(name string) (server, tool string, ok bool) {
	if _, declared := g.tools[name]; declared {
		return "", "", false
	}
	for _, sep := range []string{".", "__"} {
		if s, t, found := strings.Cut(name, sep); found && t != "" && g.mcpServer(s) != nil {
			return s, t, true
		}
	}
	return "", "", false
}

// mcpTreeOf returns the run tree's MCP sessions: a subgraph's run uses
// its parent's; a top-level run makes them (nothing starts until used).
func (r *run) mcpTreeOf() *mcpTree {
	st := r.mcpState()
	st.treeOnce.Do(func() {
		if p := r.opts.parent; p != nil && p.mcp != nil {
			st.tree = p.mcp
			return
		}
		environ := r.opts.Environ
		if environ == nil {
			environ = os.Environ()
		}
		opts := mcp.Options{Environ: environ, HTTPClient: r.opts.HTTPClient, Transport: r.opts.MCPTransport}
		if ss := st.sessions; ss != nil {
			// The worker's sessions: they outlive this step's run, so
			// their stderr goes to the worker (redacted), not to r.
			id, red := r.id, r.red
			opts.Stderr = func(server, line string) { ss.stderr(id, server, red.str(line)) }
			st.tree = &mcpTree{sessions: ss, run: r.id, opts: opts}
			return
		}
		st.own = true
		opts.Stderr = func(server, line string) {
			r.emit(Event{Event: EventMCPStderr, Node: server, Message: line})
		}
		st.tree = &mcpTree{byDecl: map[string]*mcp.Manager{}, opts: opts}
	})
	return st.tree
}

// mcpManager returns the manager of one of the run's declared servers,
// the declarations resolved on first use, and done, to call when the
// caller no longer uses it.
func (r *run) mcpManager(server string) (m *mcp.Manager, done func(), err error) {
	st := r.mcpState()
	st.once.Do(func() {
		var servers []mcp.Server
		servers, st.err = mcpServers(r.g.wf, &exprEnv{Env: r.env, Secrets: r.secrets})
		if st.err != nil {
			return
		}
		st.servers = make(map[string]mcpDecl, len(servers))
		for _, s := range servers {
			key, err := declKey(s)
			if err != nil {
				st.err = &nodes.Error{Kind: nodes.KindInput, Err: err}
				return
			}
			st.servers[s.Name] = mcpDecl{srv: s, key: key}
		}
	})
	if st.err != nil {
		return nil, nil, st.err
	}
	d, ok := st.servers[server]
	if !ok {
		names := make([]string, 0, len(st.servers))
		for n := range st.servers {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, nil, &nodes.Error{Kind: nodes.KindInput, Err: &mcp.UnknownError{Server: server, Suggest: spec.Suggest(server, names)}}
	}
	m, done = r.mcpTreeOf().use(d)
	return m, done, nil
}

// NewMCPManager returns a manager of a workflow's MCP servers outside a
// run (`lgx mcp list`, `lgx validate --online`): header expressions are
// evaluated against environ, with the workflow's secrets taken from it.
func NewMCPManager(g *Graph, environ []string, stderr func(server, line string)) (*mcp.Manager, error) {
	env := map[string]any{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	secrets := map[string]any{}
	for _, s := range g.wf.Secrets {
		v, _ := env[s.Value].(string)
		secrets[s.Value] = v
	}
	servers, err := mcpServers(g.wf, &exprEnv{Env: env, Secrets: secrets})
	if err != nil {
		return nil, err
	}
	return mcp.NewManager(servers, mcp.Options{Environ: environ, Stderr: stderr}), nil
}

// mcpServers resolves the `mcp:` declarations: header expressions
// evaluated, cwd made relative to the workflow file.
func mcpServers(w *spec.Workflow, env *exprEnv) ([]mcp.Server, error) {
	servers := make([]mcp.Server, 0, len(w.MCP))
	for _, s := range w.MCP {
		ms := mcp.Server{Name: s.Name, Command: s.Command, Args: s.Args, URL: s.URL}
		for _, e := range s.Env {
			ms.Env = append(ms.Env, e.Value)
		}
		if s.Tools != nil {
			ms.Tools = []string{}
			for _, t := range s.Tools {
				ms.Tools = append(ms.Tools, t.Value)
			}
		}
		if s.Cwd != "" {
			ms.Cwd = s.Cwd
			if !filepath.IsAbs(ms.Cwd) && w.File != "" {
				ms.Cwd = filepath.Join(filepath.Dir(w.File), ms.Cwd)
			}
		}
		for k, v := range s.Headers {
			c := &compiler{file: w.File, limit: w.Config.MaxValueBytes}
			cv, err := c.str(v, s.HeaderPos[k])
			if err == nil {
				v, err = evalString(cv, env)
			}
			if err != nil {
				return nil, &nodes.Error{Kind: nodes.KindInput, Err: fmt.Errorf("mcp server %s: headers.%s: %w", s.Name, k, err)}
			}
			if ms.Headers == nil {
				ms.Headers = map[string]string{}
			}
			ms.Headers[k] = v
		}
		servers = append(servers, ms)
	}
	return servers, nil
}

// useMCPSessions makes the run use the sessions s keeps for it (a run
// executed step by step: OpenStep with StepOptions.MCP); nil leaves the
// run its own.
func (r *run) useMCPSessions(s *MCPSessions) {
	r.mcpState().sessions = s
}

// mcpState returns the run's MCP state (made at most once per run).
func (r *run) mcpState() *mcpRun {
	r.mcpOnce.Do(func() { r.mcp = &mcpRun{nodes: map[string]*node{}, caps: map[string]*caps{}} })
	return r.mcp
}

// closeMCP stops every server the run tree started; it runs whatever way
// the run ends (completed, failed, cancelled, interrupted).
//
// A subgraph's run leaves its servers running: they belong to the run
// tree, and the top-level run stops them.
func (r *run) closeMCP() {
	if r.mcp == nil || !r.mcp.own {
		return
	}
	if err := r.mcp.tree.close(); err != nil {
		r.emit(Event{Event: EventMCPStderr, Message: err.Error()})
	}
}

// mcpError gives a manager error its lgx kind.
func mcpError(ctx context.Context, err error) error {
	var ue *mcp.UnknownError
	var se *mcp.ServerError
	switch {
	case errors.As(err, &ue):
		return &nodes.Error{Kind: nodes.KindInput, Err: err}
	case ctx.Err() != nil:
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Name the timeout (the attempt's, or the bound on listing
			// tools): "context deadline exceeded" alone says neither which
			// limit nor how long.
			var tc *nodes.TimeoutCause
			if d := nodes.TimedOutAfter(ctx); d > 0 && !errors.As(err, &tc) {
				err = fmt.Errorf("timed out after %s: %w", d, err)
			}
			return &nodes.Error{Kind: nodes.KindTimeout, Err: err}
		}
		return &nodes.Error{Kind: nodes.KindCancelled, Err: err}
	case errors.As(err, &se):
		return &nodes.Error{Kind: nodes.KindNetwork, Err: err}
	}
	return &nodes.Error{Kind: nodes.KindProvider, Err: err}
}

var _ nodes.MCPHost = (*call)(nil)

// MCPTool implements nodes.MCPHost.
func (c *call) MCPTool(ctx context.Context, server, tool string) (*nodes.ToolSpec, error) {
	m, done, err := c.r.mcpManager(server)
	if err != nil {
		return nil, err
	}
	defer done()
	t, err := m.Tool(ctx, server, tool)
	if err != nil {
		return nil, mcpError(ctx, err)
	}
	return &nodes.ToolSpec{Name: nodes.MCPToolName(server, t.Name), Description: t.Description, Parameters: t.InputSchema}, nil
}

// CallMCP implements nodes.MCPHost.
func (c *call) CallMCP(ctx context.Context, server, tool string, args map[string]any) (*nodes.MCPResult, error) {
	m, done, err := c.r.mcpManager(server)
	if err != nil {
		return nil, err
	}
	defer done()
	res, err := m.Call(ctx, server, tool, args)
	if err != nil {
		return nil, mcpError(ctx, err)
	}
	return &nodes.MCPResult{Text: res.Text, Structured: res.Structured, IsError: res.IsError}, nil
}

// mcpToolSpecs returns the tools a `server.tool` or `server.*` name offers
// a model.
func (c *call) mcpToolSpecs(ctx context.Context, server, tool string) ([]nodes.ToolSpec, error) {
	// Host.Tools has no context of its own: bound starting the server and
	// listing its tools by the server's timeout (else the node timeout).
	limit := c.r.g.wf.Config.NodeTimeout
	if s := c.r.g.mcpServer(server); s != nil && s.Timeout > 0 {
		limit = s.Timeout
	}
	if limit <= 0 {
		limit = spec.DefaultNodeTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, limit, &nodes.TimeoutCause{After: limit})
	defer cancel()
	if tool != "*" {
		s, err := c.MCPTool(ctx, server, tool)
		var ue *mcp.UnknownError
		if errors.As(err, &ue) && ue.Tool != "" {
			// The tools node tells the model the near name.
			return nil, &nodes.UnknownToolError{Tool: ue.Tool, Suggest: ue.Suggest, Err: err}
		}
		if nodes.KindOf(err) == nodes.KindNetwork {
			// The server is unreachable now: offer the tool without a
			// schema, so that calling it reports (after retries) why the
			// server is gone, not "unknown tool".
			return []nodes.ToolSpec{{Name: nodes.MCPToolName(server, tool)}}, nil
		}
		if err != nil {
			return nil, err
		}
		return []nodes.ToolSpec{*s}, nil
	}
	m, done, err := c.r.mcpManager(server)
	if err != nil {
		return nil, err
	}
	defer done()
	list, err := m.Tools(ctx, server)
	if err != nil {
		return nil, mcpError(ctx, err)
	}
	out := make([]nodes.ToolSpec, len(list))
	for i, t := range list {
		out[i] = nodes.ToolSpec{Name: nodes.MCPToolName(server, t.Name), Description: t.Description, Parameters: t.InputSchema}
	}
	return out, nil
}

// mcpNode returns the compiled node a model's call of server.tool runs
// as: an mcp_call under the server's pool, timeout and the run's default
// retry policy (network failures are retried; a dead stdio server is
// restarted once).
func (r *run) mcpNode(server, tool string) (*node, *caps, error) {
	st := r.mcpState()
	key := server + "\x00" + tool
	st.mu.Lock()
	defer st.mu.Unlock()
	if n, ok := st.nodes[key]; ok {
		return n, st.caps[key], nil
	}
	s := r.g.mcpServer(server)
	if s == nil {
		return nil, nil, nodes.Errorf(nodes.KindInput, "unknown mcp server %q", server)
	}
	sn := &spec.Node{Name: server + "." + tool, Pos: s.Pos, Index: -1, Type: nodes.MCPCallType, Timeout: s.Timeout,
		WithTree: spec.MapValue([]string{"server", "tool"}, []*spec.Value{spec.LiteralValue(server), spec.LiteralValue(tool)})}
	if s.Pool.Value != "" {
		sn.Pools = []spec.Name{s.Pool}
	}
	n, err := r.g.compileNode(sn, -1)
	if err != nil {
		return nil, nil, err
	}
	n.poolNames = nil
	if s.Pool.Value != "" {
		n.poolNames = []string{s.Pool.Value}
	}
	cp := r.nodeCaps(n)
	st.nodes[key], st.caps[key] = n, &cp
	return n, &cp, nil
}

// runMCPTool runs a model's call of an MCP tool as RunTool runs a declared
// one: an invocation with the path PARENT/tool:ID, under the server's caps
// and timeout, recorded when it finishes so that a resume reuses it. An
// isError answer is recorded too, as the "error: …" message the model
// reads.
func (c *call) runMCPTool(ctx context.Context, tcall nodes.ToolCall, server, tool string) (any, error) {
	r := c.r
	// RunTool has looked the record up: this call is not in it.
	path := toolCallPath(c.pathOf(), tcall.ID, tcall.Position)
	n, cp, err := r.mcpNode(server, tool)
	if err != nil {
		return nil, err
	}
	started := time.Now()
	tc := &call{r: r, n: n, caps: cp, step: c.step, index: c.index, path: path}
	tc.env = exprEnv{State: c.env.State, Args: tcall.Args, Env: r.env, Secrets: r.secrets, Run: c.env.Run, ctx: ctx, timeout: n.timeout}
	tc.inv = nodes.Invocation{RunID: r.id, Workflow: r.g.wf.Name, Node: c.n.name + "." + server + "." + tool, Step: c.step,
		Index: c.index, Prepared: n.prep, MaxValueBytes: r.g.wf.Config.MaxValueBytes, Host: tc,
		With: map[string]any{"server": server, "tool": tool, "arguments": tcall.Args, "allow_error": true}}
	res, attempts, err := r.attempts(ctx, nil, n, tc.caps, &tc.inv, tc.onWait)
	if err != nil {
		return nil, err
	}
	m, _ := res.(map[string]any)
	out := m["content"]
	if isErr, _ := m["is_error"].(bool); isErr {
		text, _ := m["text"].(string)
		out = "error: " + text
	}
	if r.rec != nil {
		b, err := json.Marshal(r.red.value(out))
		if err != nil {
			return nil, &nodes.Error{Kind: nodes.KindType, Err: fmt.Errorf("mcp tool %s.%s: result is not JSON: %w", server, tool, err)}
		}
		r.finished(&store.Invocation{RunID: r.id, Path: path, Step: r.recordStep(), Node: server + "." + tool, Index: -1,
			Status: store.InvocationOK, Writes: b, Attempts: attempts, StartedAt: started, EndedAt: time.Now()}, false)
	}
	return out, nil
}

// MCPTransportFunc connects one declared MCP server (Options.MCPTransport).
type MCPTransportFunc = func(s *mcp.Server) (sdk.Transport, error)
