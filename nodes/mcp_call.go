package nodes

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

func init() { Register(mcpCall{}) }

// MCPHost is implemented by hosts that offer the workflow's MCP servers
// (SPEC §9.9). The runner's host does; a host without servers need not.
type MCPHost interface {
	// MCPTool returns one tool of a server as offered to a model (its
	// input schema as Parameters), starting the server on first use.
	MCPTool(ctx context.Context, server, tool string) (*ToolSpec, error)
	// CallMCP calls a tool. Transport failures are *Error of kind network
	// (or timeout, cancelled); a tool that ran and failed is a result with
	// IsError.
	CallMCP(ctx context.Context, server, tool string, args map[string]any) (*MCPResult, error)
}

// MCPResult is a tool call's outcome: text content joined by newlines, the
// structured content (nil when none), and the server's isError.
type MCPResult struct {
	Text       string
	Structured any
	IsError    bool
}

// Content is what a tool message carries: the structured content when
// there is some, else the text.
func (r *MCPResult) Content() any {
	if r.Structured != nil {
		return r.Structured
	}
	return r.Text
}

// MCPToolName is the name a model sees for an MCP tool: server and tool
// joined by "__", because model APIs accept only [A-Za-z0-9_-] in tool
// names, not the "." of `server.tool`.
func MCPToolName(server, tool string) string { return server + "__" + tool }

// mcpCall is the `mcp_call` type: one call of one MCP tool, when the
// workflow rather than a model decides.
type mcpCall struct{}

// MCPCallType is the `mcp_call` type's name. The runner runs a model's
// call of an MCP tool as an invocation of this type, so it needs the name;
// nothing else outside this package should.
const MCPCallType = "mcp_call"

func (mcpCall) Name() string { return MCPCallType }

// Capabilities: the server and tool are references that validate checks;
// an invocation takes the server's pool and timeout.
func (mcpCall) Capabilities() Capabilities {
	return Capabilities{ServerField: "server", ServerToolField: "tool", ServerArgsField: "arguments"}
}

func (mcpCall) Doc() Doc {
	return Doc{
		Summary: "Calls one tool of an MCP server declared under `mcp:`, under the server's pool and timeout. Arguments are checked against the tool's input schema first (kind schema). A tool that answers with isError fails the node with kind status, unless allow_error is true. A server that cannot be started or reached, or exits, fails with kind network (retried by default; a stdio server is restarted once per run).",
		With: []Field{
			{Name: "server", Type: "string", Required: true, Static: true, Doc: "Name of a server under `mcp:`."},
			{Name: "tool", Type: "string", Required: true, Static: true, Doc: "Tool name as the server lists it (see `lgx mcp list FILE`)."},
			{Name: "arguments", Type: "object", Default: "{}", Doc: "Tool arguments; must fit the tool's input schema."},
			{Name: "allow_error", Type: "boolean", Default: "false", Doc: "Return an isError answer as a result (is_error: true) instead of failing."},
		},
		Result: []Field{
			{Name: "content", Type: "any", Doc: "The structured content when the tool sent some, else the text."},
			{Name: "text", Type: "string", Doc: "Text content items joined by newlines (media items as [image TYPE, N bytes])."},
			{Name: "structured", Type: "any", Doc: "Structured content; null when none."},
			{Name: "is_error", Type: "boolean", Doc: "The tool answered with isError (only with allow_error)."},
		},
	}
}

// mcpPrepared holds the static server and tool names.
type mcpPrepared struct{ server, tool string }

// Prepare checks the static names.
func (mcpCall) Prepare(static map[string]any) (any, error) {
	p := &mcpPrepared{}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"server", &p.server}, {"tool", &p.tool}} {
		s, ok := static[f.name].(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("mcp_call: with.%s must be a non-empty string", f.name)
		}
		*f.dst = s
	}
	return p, nil
}

// Run checks the arguments against the tool's schema and calls it.
func (mcpCall) Run(ctx context.Context, inv *Invocation) (any, error) {
	p, _ := inv.Prepared.(*mcpPrepared)
	if p == nil {
		var err error
		if p, err = mcpNames(inv.With); err != nil {
			return nil, &Error{Kind: KindInput, Err: err}
		}
	}
	h, ok := inv.Host.(MCPHost)
	if !ok {
		return nil, Errorf(KindInput, "mcp_call: this run has no MCP servers")
	}
	args := map[string]any{}
	switch a := inv.With["arguments"].(type) {
	case nil:
	case map[string]any:
		args = a
	default:
		return nil, Errorf(KindInput, "mcp_call: with.arguments must be an object, got %s", llmTypeName(a))
	}
	allowErr := false
	if v, ok := inv.With["allow_error"]; ok && v != nil {
		b, ok := v.(bool)
		if !ok {
			return nil, Errorf(KindInput, "mcp_call: with.allow_error must be a boolean, got %s", llmTypeName(v))
		}
		allowErr = b
	}
	spec, err := h.MCPTool(ctx, p.server, p.tool)
	if err != nil {
		return nil, err
	}
	if err := CheckToolArgs(spec, args); err != nil {
		return nil, &Error{Kind: KindSchema, Err: fmt.Errorf("mcp_call %s.%s: %w", p.server, p.tool, err)}
	}
	res, err := h.CallMCP(ctx, p.server, p.tool, args)
	if err != nil {
		return nil, err
	}
	if res.IsError && !allowErr {
		return nil, &Error{Kind: KindStatus, Err: fmt.Errorf("mcp_call %s.%s: the tool answered with an error: %s", p.server, p.tool, oneLine(res.Text))}
	}
	return map[string]any{"content": res.Content(), "text": res.Text, "structured": res.Structured, "is_error": res.IsError}, nil
}

// mcpNames reads server and tool from resolved `with` values (a host that
// runs mcp_call without Prepare: the runner's MCP tool calls).
func mcpNames(with map[string]any) (*mcpPrepared, error) {
	s, _ := with["server"].(string)
	t, _ := with["tool"].(string)
	if s == "" || t == "" {
		return nil, errors.New("mcp_call: with.server and with.tool must be non-empty strings")
	}
	return &mcpPrepared{server: s, tool: t}, nil
}

// CheckToolArgs validates arguments against a tool's parameters schema
// (none: anything goes).
func CheckToolArgs(spec *ToolSpec, args map[string]any) error {
	if spec == nil || spec.Parameters == nil {
		return nil
	}
	sch, err := compileJSONSchema(spec.Parameters)
	if err != nil {
		return fmt.Errorf("the tool's input schema is unusable: %w", err)
	}
	if err := validateJSONSchema(sch, args); err != nil {
		return fmt.Errorf("invalid arguments: %w", err)
	}
	return nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	return s
}
