// Package mcp is lgx's client side of the Model Context Protocol: it starts
// or connects the MCP servers a workflow declares, lazily and once per run,
// lists and calls their tools, and stops them when the run ends. It knows
// nothing of runs, caps or records: the runner puts calls under those.
package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Server is one declared server, its strings already resolved.
type Server struct {
	Name string
	// stdio: Command with Args, started in Cwd with an environment holding
	// only the variables named in Env (plus BaseEnv).
	Command string
	Args    []string
	Env     []string
	Cwd     string
	// streamable HTTP: URL with Headers on every request.
	URL     string
	Headers map[string]string
	// Tools is an allowlist of tool names; nil means every tool.
	Tools []string
}

// BaseEnv lists the variables a stdio server always receives when the
// parent has them, besides its `env:` allowlist: without PATH a command
// like `npx` cannot find `node`, and npm needs HOME for its cache.
var BaseEnv = []string{"PATH", "HOME"}

// Options configure a Manager.
type Options struct {
	// Environ is the environment the allowlisted variables are taken from
	// (nil: none but what it holds, so pass os.Environ()).
	Environ []string
	// Stderr receives each line a stdio server writes to its stderr.
	Stderr func(server, line string)
	// HTTPClient carries streamable-HTTP requests (nil: a default client).
	HTTPClient *http.Client
	// Transport, when set, replaces the transport built from the
	// declaration (in-process servers in tests).
	Transport func(s *Server) (sdk.Transport, error)
}

// Tool is a tool as a server lists it.
type Tool struct {
	// JSON names as `lgx mcp list -o json` prints them: lower case like
	// every other JSON lgx prints.
	Name        string         `json:"name"`
	Description string         `json:"description"`
	InputSchema map[string]any `json:"input_schema"`
}

// Result is a tool call's outcome, mapped for lgx.
type Result struct {
	// Text joins the text of every content item (non-text items are shown
	// as JSON), one per line.
	Text string
	// Structured is the structured content; nil when the server sent none.
	Structured any
	// IsError is the server's isError: the tool ran and failed.
	IsError bool
}

// Content is the tool message content: the structured content when the
// server sent some, else the text.
func (r *Result) Content() any {
	if r.Structured != nil {
		return r.Structured
	}
	return r.Text
}

// ServerError reports a server that could not be reached or is gone: a
// transport failure (lgx kind `network`).
type ServerError struct {
	Server string
	Err    error
}

func (e *ServerError) Error() string { return fmt.Sprintf("mcp server %s: %v", e.Server, e.Err) }
func (e *ServerError) Unwrap() error { return e.Err }

// UnknownError reports an undeclared server or a tool the server does not
// offer (or the allowlist hides); Suggest is a near name, if any.
type UnknownError struct {
	Server, Tool string
	Suggest      string
}

func (e *UnknownError) Error() string {
	var s string
	if e.Tool == "" {
		s = fmt.Sprintf("unknown mcp server %q", e.Server)
	} else {
		s = fmt.Sprintf("mcp server %s has no tool %q", e.Server, e.Tool)
	}
	if e.Suggest != "" {
		s += fmt.Sprintf(" (did you mean %q?)", e.Suggest)
	}
	return s
}

// MaxRestarts is how often a stdio server that died is started again in one
// run; after that its calls fail.
const MaxRestarts = 1

// Manager owns the connections of one run. Its methods are safe for
// concurrent use.
type Manager struct {
	opts    Options
	servers map[string]*Server

	mu     sync.Mutex
	conns  map[string]*conn
	closed bool
}

// NewManager returns a manager of servers; nothing starts until used.
func NewManager(servers []Server, opts Options) *Manager {
	m := &Manager{opts: opts, servers: make(map[string]*Server, len(servers)), conns: map[string]*conn{}}
	for i := range servers {
		s := servers[i]
		m.servers[s.Name] = &s
	}
	return m
}

// Names returns the declared servers' names, sorted.
func (m *Manager) Names() []string {
	out := make([]string, 0, len(m.servers))
	for n := range m.servers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// conn is one server's connection slot: its live session, the tools it
// listed, and how often it was started.
type conn struct {
	srv *Server

	mu      sync.Mutex // held while connecting
	sess    *sdk.ClientSession
	stderr  *lineWriter
	done    chan struct{} // closed when sess ends
	starts  int
	tools   []Tool
	lastErr error
}

func (m *Manager) conn(name string) (*conn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, &ServerError{Server: name, Err: errors.New("the run has ended")}
	}
	s, ok := m.servers[name]
	if !ok {
		return nil, &UnknownError{Server: name, Suggest: suggest(name, m.Names())}
	}
	c := m.conns[name]
	if c == nil {
		c = &conn{srv: s}
		m.conns[name] = c
	}
	return c, nil
}

// session returns a live session, starting the server on first use and
// once more after it died (MaxRestarts).
func (m *Manager) session(ctx context.Context, name string) (*conn, *sdk.ClientSession, error) {
	c, err := m.conn(name)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != nil {
		select {
		case <-c.done:
			c.sess = nil
		default:
			return c, c.sess, nil
		}
	}
	if c.starts > MaxRestarts {
		return nil, nil, &ServerError{Server: name, Err: fmt.Errorf("exited and was restarted %d time(s); not starting it again in this run (last: %v)", MaxRestarts, c.lastErr)}
	}
	c.starts++
	sess, err := m.connect(ctx, c)
	if err != nil {
		c.lastErr = err
		return nil, nil, &ServerError{Server: name, Err: err}
	}
	c.sess = sess
	c.done = make(chan struct{})
	go func(done chan struct{}) {
		err := sess.Wait()
		c.mu.Lock()
		if c.lastErr == nil || err != nil {
			c.lastErr = exitReason(err)
		}
		c.mu.Unlock()
		close(done)
	}(c.done)
	if m.isClosed() {
		// Close ran while this server was starting.
		_ = sess.Close()
		return nil, nil, &ServerError{Server: name, Err: errors.New("the run has ended")}
	}
	return c, sess, nil
}

func exitReason(err error) error {
	if err == nil {
		return errors.New("the server closed the connection")
	}
	return err
}

func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// connect starts (stdio) or reaches (HTTP) a server and initializes the
// session; the SDK negotiates the protocol version.
func (m *Manager) connect(ctx context.Context, c *conn) (*sdk.ClientSession, error) {
	s := c.srv
	var t sdk.Transport
	switch {
	case m.opts.Transport != nil:
		var err error
		if t, err = m.opts.Transport(s); err != nil {
			return nil, err
		}
	case s.Command != "":
		cmd := exec.Command(s.Command, s.Args...)
		cmd.Dir = s.Cwd
		cmd.Env = FilterEnv(m.opts.Environ, s.Env)
		c.stderr = &lineWriter{emit: func(line string) {
			if m.opts.Stderr != nil {
				m.opts.Stderr(s.Name, line)
			}
		}}
		cmd.Stderr = c.stderr
		ownProcessGroup(cmd)
		t = &killGroup{CommandTransport: sdk.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}}
	case s.URL != "":
		hc := m.opts.HTTPClient
		if hc == nil {
			hc = http.DefaultClient
		}
		hc2 := *hc
		hc2.Transport = &headerTransport{base: hc.Transport, headers: s.Headers}
		t = &sdk.StreamableClientTransport{Endpoint: s.URL, HTTPClient: &hc2, DisableStandaloneSSE: true, MaxRetries: -1}
	default:
		return nil, errors.New("no command and no url")
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "lgx", Version: "1"}, nil)
	sess, err := client.Connect(ctx, t, nil)
	if err != nil {
		if c.stderr != nil {
			c.stderr.flush()
		}
		if s.Command != "" {
			if tail := c.stderr.tail(); tail != "" {
				return nil, fmt.Errorf("start %s: %w; its stderr ends: %s", s.Command, err, tail)
			}
			return nil, fmt.Errorf("start %s: %w", s.Command, err)
		}
		return nil, fmt.Errorf("connect %s: %w", s.URL, err)
	}
	return sess, nil
}

// FilterEnv returns the entries of environ named in allow or BaseEnv.
func FilterEnv(environ, allow []string) []string {
	out := []string{}
	for _, kv := range environ {
		k, _, ok := strings.Cut(kv, "=")
		if ok && (slices.Contains(allow, k) || slices.Contains(BaseEnv, k)) {
			out = append(out, kv)
		}
	}
	return out
}

// Tools lists a server's tools (the allowlist applied), starting it if
// needed; the list is read once per connection.
func (m *Manager) Tools(ctx context.Context, server string) ([]Tool, error) {
	c, sess, err := m.session(ctx, server)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	tools := c.tools
	c.mu.Unlock()
	if tools != nil {
		return tools, nil
	}
	tools = []Tool{}
	for t, err := range sess.Tools(ctx, nil) {
		if err != nil {
			return nil, &ServerError{Server: server, Err: fmt.Errorf("list tools: %w", err)}
		}
		if c.srv.Tools != nil && !slices.Contains(c.srv.Tools, t.Name) {
			continue
		}
		tools = append(tools, Tool{Name: t.Name, Description: t.Description, InputSchema: schemaMap(t.InputSchema)})
	}
	c.mu.Lock()
	c.tools = tools
	c.mu.Unlock()
	return tools, nil
}

// Tool returns one tool of a server, or an *UnknownError.
func (m *Manager) Tool(ctx context.Context, server, name string) (*Tool, error) {
	tools, err := m.Tools(ctx, server)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(tools))
	for i := range tools {
		if tools[i].Name == name {
			return &tools[i], nil
		}
		names[i] = tools[i].Name
	}
	return nil, &UnknownError{Server: server, Tool: name, Suggest: suggest(name, names)}
}

// Call calls a tool. A protocol or transport failure is an error (a
// *ServerError when the server is unreachable or gone); a tool that ran and
// failed is a Result with IsError.
func (m *Manager) Call(ctx context.Context, server, tool string, args map[string]any) (*Result, error) {
	if _, err := m.Tool(ctx, server, tool); err != nil {
		return nil, err
	}
	c, sess, err := m.session(ctx, server)
	if err != nil {
		return nil, err
	}
	if args == nil {
		args = map[string]any{}
	}
	res, err := sess.CallTool(ctx, &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("mcp %s.%s: %w", server, tool, context.Cause(ctx))
		}
		select {
		case <-c.done:
			c.mu.Lock()
			why := c.lastErr
			c.mu.Unlock()
			return nil, &ServerError{Server: server, Err: fmt.Errorf("exited during %s (%v)", tool, why)}
		case <-time.After(50 * time.Millisecond):
			// A live server answered with a protocol error.
		}
		var werr *jsonrpc.Error
		if errors.As(err, &werr) {
			return nil, fmt.Errorf("mcp %s.%s: %w", server, tool, err)
		}
		return nil, &ServerError{Server: server, Err: fmt.Errorf("call %s: %w", tool, err)}
	}
	return MapResult(res), nil
}

// Close stops every server started; calls after it fail.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	conns := make([]*conn, 0, len(m.conns))
	for _, c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()
	var errs []error
	for _, c := range conns {
		c.mu.Lock()
		sess := c.sess
		c.sess = nil
		c.mu.Unlock()
		if sess != nil {
			if err := sess.Close(); err != nil && !isExitError(err) {
				errs = append(errs, fmt.Errorf("mcp server %s: close: %w", c.srv.Name, err))
			}
		}
		if c.stderr != nil {
			c.stderr.flush()
		}
	}
	return errors.Join(errs...)
}

func isExitError(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee)
}

// headerTransport adds the declared headers to every request.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, v := range t.headers {
			r.Header.Set(k, v)
		}
	}
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}

// lineWriter turns a stderr stream into lines, keeping the last few for
// error messages.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	last []string
	emit func(string)
}

// tailLines is how many stderr lines a start failure quotes.
const tailLines = 3

func (w *lineWriter) line(s string) {
	w.emit(s)
	w.last = append(w.last, s)
	if len(w.last) > tailLines {
		w.last = w.last[1:]
	}
}

// tail returns the last lines written, joined by " | ".
func (w *lineWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, " | ")
}

// maxLine bounds a line held back waiting for its newline.
const maxLine = 64 << 10

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.line(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.line(string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}
