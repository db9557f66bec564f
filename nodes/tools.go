package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
)

func init() { Register(toolsType{}) }

// toolsType is the `tools` type (SPEC §5.5), LangGraph's ToolNode: it runs
// a model's tool calls in parallel and answers each with a tool message.
// Bad arguments, unknown tools and failing tools become error messages the
// model can read; only cancellation fails the node.
type toolsType struct{}

func (toolsType) Name() string { return "tools" }

// Capabilities: each tool call holds its tool node's slots.
func (toolsType) Capabilities() Capabilities {
	return Capabilities{HoldsNoSlot: true, CallsField: "calls"}
}

func (toolsType) Doc() Doc {
	return Doc{
		Summary: "Runs tool calls in parallel (LangGraph's ToolNode) and returns one tool message per call, in call order. Arguments are checked against each tool's `parameters` schema; bad arguments, unknown tools and failing tools become tool messages starting with `error: `, never a failed node.",
		With: []Field{
			{Name: "calls", Type: "list", Required: true, Doc: "Tool calls [{id, name, arguments}], usually ${{ last(state.messages).tool_calls }}."},
			{Name: "concurrency", Type: "integer", Positive: true, Doc: "Cap on calls in flight (default: all at once, under the node's caps)."},
		},
		Result: []Field{
			{Name: "messages", Type: "messages", Doc: "Tool messages {role: tool, tool_call_id, name, content}, in call order; content that is not a string is JSON-encoded."},
		},
	}
}

// toolCall is one call to run.
type toolCall struct {
	id, name string
	position int
	uniqueID bool // no earlier call of the list has this id
	args     map[string]any
	argErr   error // the arguments could not be read
}

// Run runs the calls.
func (toolsType) Run(ctx context.Context, inv *Invocation) (any, error) {
	if inv.Tools == nil {
		return nil, Errorf(KindInput, "tools: the run has no tools")
	}
	calls, err := toolsCalls(inv.With["calls"])
	if err != nil {
		return nil, &Error{Kind: KindInput, Err: fmt.Errorf("tools: with.calls: %w", err)}
	}
	limit := len(calls)
	if v, ok := inv.With["concurrency"]; ok && v != nil {
		f, ok := llmNumber(v)
		if !ok || f != float64(int(f)) || f < 1 {
			return nil, Errorf(KindInput, "tools: with.concurrency must be a positive integer, got %v", v)
		}
		limit = min(limit, int(f))
	}

	out := make([]any, len(calls))
	var specs toolSpecCache
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	seen := make(map[string]bool, len(calls))
	for i, c := range calls {
		c.position = i
		c.uniqueID = c.id != "" && !seen[c.id]
		seen[c.id] = true
		g.Go(func() error {
			out[i] = toolMessage(c, runToolCall(ctx, inv.Tools, &specs, c))
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		// The cause tells a timeout (a deadline, or the runner's attempt
		// timer) from a cancellation.
		cause := context.Cause(ctx)
		kind := KindCancelled
		if errors.Is(cause, context.DeadlineExceeded) {
			kind = KindTimeout
		}
		return nil, &Error{Kind: kind, Err: fmt.Errorf("tools: %w", cause)}
	}
	return map[string]any{"messages": out}, nil
}

// UnknownToolError is a host's answer for a tool it does not have: Tool
// is the unknown name, or its last part (the tool of `server.tool`), and
// Suggest a near name in the same place, if any, so that the message a
// model reads can say "did you mean" in the form it called.
type UnknownToolError struct {
	Tool, Suggest string
	Err           error
}

func (e *UnknownToolError) Error() string { return e.Err.Error() }
func (e *UnknownToolError) Unwrap() error { return e.Err }

// toolSpecCache looks each tool up once per invocation.
type toolSpecCache struct {
	mu    sync.Mutex
	specs map[string]*ToolSpec // nil entry: unknown
	errs  map[string]error     // why an unknown tool is unknown
}

func (c *toolSpecCache) get(tools ToolSource, name string) (*ToolSpec, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.specs[name]; ok {
		return s, c.errs[name]
	}
	if c.specs == nil {
		c.specs, c.errs = map[string]*ToolSpec{}, map[string]error{}
	}
	var spec *ToolSpec
	list, err := tools.List([]string{name})
	if err == nil && len(list) == 1 {
		spec = &list[0]
	}
	c.specs[name], c.errs[name] = spec, err
	return spec, err
}

// unknownTool is the message for a call of a tool the host does not have,
// with the near name an *UnknownToolError suggests, written as the call
// wrote its name (`t.nope` → `t.echo`, `t__nope` → `t__echo`).
func unknownTool(name string, err error) string {
	msg := fmt.Sprintf("error: unknown tool %q", name)
	var ue *UnknownToolError
	if errors.As(err, &ue) && ue.Suggest != "" && strings.HasSuffix(name, ue.Tool) {
		msg += fmt.Sprintf(" (did you mean %q?)", name[:len(name)-len(ue.Tool)]+ue.Suggest)
	}
	return msg
}

// runToolCall runs one call and returns its message content.
func runToolCall(ctx context.Context, tools ToolSource, specs *toolSpecCache, c toolCall) (content string) {
	defer func() {
		if r := recover(); r != nil {
			content = fmt.Sprintf("error: tool %s panicked: %v", c.name, r)
		}
	}()
	if c.name == "" {
		return "error: the tool call has no name"
	}
	spec, err := specs.get(tools, c.name)
	if spec == nil {
		return unknownTool(c.name, err)
	}
	if c.argErr != nil {
		return fmt.Sprintf("error: invalid arguments for %s: %v", c.name, c.argErr)
	}
	if spec.Parameters != nil {
		sch, err := compileJSONSchema(spec.Parameters)
		if err != nil {
			return fmt.Sprintf("error: tool %s has an unusable parameters schema: %v", c.name, err)
		}
		if err := validateJSONSchema(sch, c.args); err != nil {
			return fmt.Sprintf("error: invalid arguments for %s: %v", c.name, err)
		}
	}
	call := ToolCall{Position: c.position, Name: c.name, Args: c.args}
	if c.uniqueID {
		call.ID = c.id
	}
	res, err := tools.Call(ctx, call)
	if err != nil {
		return fmt.Sprintf("error: %v", err)
	}
	if s, ok := res.(string); ok {
		return s
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Sprintf("error: tool %s returned a value that is not JSON: %v", c.name, err)
	}
	return string(b)
}

func toolMessage(c toolCall, content string) map[string]any {
	return map[string]any{"role": "tool", "tool_call_id": c.id, "name": c.name, "content": content}
}

// toolsCalls reads with.calls: null or a list of {id, name, arguments}
// (arguments an object or its JSON text; the OpenAI shape with
// `function` is accepted). A call whose arguments cannot be read still
// gets a message.
func toolsCalls(v any) ([]toolCall, error) {
	var list []any
	switch l := v.(type) {
	case nil:
		return nil, nil
	case []any:
		list = l
	case []map[string]any:
		for _, m := range l {
			list = append(list, m)
		}
	default:
		return nil, fmt.Errorf("must be a list of tool calls, got %s", llmTypeName(v))
	}
	out := make([]toolCall, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("call %d must be an object {id, name, arguments}, got %s", i, llmTypeName(item))
		}
		c := toolCall{}
		c.id, _ = m["id"].(string)
		c.name, _ = m["name"].(string)
		args := m["arguments"]
		if fn, ok := m["function"].(map[string]any); ok && c.name == "" {
			c.name, _ = fn["name"].(string)
			args = fn["arguments"]
		}
		c.args, c.argErr = toolArguments(args)
		out[i] = c
	}
	return out, nil
}
