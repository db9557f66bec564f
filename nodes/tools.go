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
	args     map[string]any
	argErr   error // the arguments could not be read
}

// Run runs the calls.
func (toolsType) Run(ctx context.Context, inv *Invocation) (any, error) {
	if inv.Tools == nil {
		return nil, Errorf(KindInput, "tools: the run has no tools")
	}
	calls, limit, err := PlanToolCalls(inv.With, inv.Tools)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(calls))
	paused := make([]error, len(calls)) // a call whose child paused
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i, c := range calls {
		if !c.Run {
			out[i] = toolMessage(c.ModelID, c.Call.Name, c.Content)
			continue
		}
		g.Go(func() error {
			content, pause := callTool(ctx, inv.Tools, c.Call)
			out[i], paused[i] = toolMessage(c.ModelID, c.Call.Name, content), pause
			return nil
		})
	}
	_ = g.Wait()
	// Calls that paused (an interrupt tool, or a subgraph tool whose child
	// waits) pause the run once the others ended (and were recorded): a
	// resume calls each again, and it goes on from the answer it got.
	// Every such call waits, listed in call order (SPEC §9.4).
	var pauses ChildPauses
	for _, p := range paused {
		if p != nil {
			pauses = append(pauses, p)
		}
	}
	switch len(pauses) {
	case 0:
	case 1:
		return nil, pauses[0]
	default:
		return nil, pauses
	}
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

// PlannedToolCall is one call of a tools invocation, checked against its
// tool's declaration. A call that Run reaches its tool (ToolSource.Call);
// any other is answered without one, Content being its message's content
// (unknown tool, unreadable or invalid arguments).
type PlannedToolCall struct {
	// Call is what the tool is called with. Its ID is the model's id
	// only when no earlier call of the list has it (else ""; Position
	// names the call then).
	Call ToolCall
	// ModelID is the id the model gave, which the tool message answers.
	ModelID string
	Run     bool
	Content string
}

// PlanToolCalls reads a tools invocation's with (calls, concurrency) and
// checks each call against its tool's declaration from tools, as Run
// does before calling: an engine that schedules the calls itself (each
// under its tool's caps) plans with it, then gives the invocation their
// results through its ToolSource. limit is with.concurrency (the number
// of calls when unset).
func PlanToolCalls(with map[string]any, tools ToolSource) (calls []PlannedToolCall, limit int, err error) {
	list, err := toolsCalls(with["calls"])
	if err != nil {
		return nil, 0, &Error{Kind: KindInput, Err: fmt.Errorf("tools: with.calls: %w", err)}
	}
	limit = len(list)
	if v, ok := with["concurrency"]; ok && v != nil {
		f, ok := llmNumber(v)
		if !ok || f != float64(int(f)) || f < 1 {
			return nil, 0, Errorf(KindInput, "tools: with.concurrency must be a positive integer, got %v", v)
		}
		limit = min(limit, int(f))
	}
	var specs toolSpecCache
	seen := make(map[string]bool, len(list))
	calls = make([]PlannedToolCall, len(list))
	for i, c := range list {
		call := ToolCall{Position: i, Name: c.name, Args: c.args}
		if c.id != "" && !seen[c.id] {
			call.ID = c.id
		}
		seen[c.id] = true
		calls[i] = PlannedToolCall{Call: call, ModelID: c.id}
		calls[i].Content, calls[i].Run = checkToolCall(tools, &specs, c)
	}
	return calls, limit, nil
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

// checkToolCall checks one call against its tool's declaration: ok, or
// the message content that answers it instead (its tool is unknown, its
// arguments unreadable or invalid).
func checkToolCall(tools ToolSource, specs *toolSpecCache, c toolCall) (content string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			content, ok = fmt.Sprintf("error: tool %s panicked: %v", c.name, r), false
		}
	}()
	if c.name == "" {
		return "error: the tool call has no name", false
	}
	spec, err := specs.get(tools, c.name)
	if spec == nil {
		return unknownTool(c.name, err), false
	}
	if c.argErr != nil {
		return fmt.Sprintf("error: invalid arguments for %s: %v", c.name, c.argErr), false
	}
	if spec.Parameters != nil {
		sch, err := compileJSONSchema(spec.Parameters)
		if err != nil {
			return fmt.Sprintf("error: tool %s has an unusable parameters schema: %v", c.name, err), false
		}
		if err := validateJSONSchema(sch, c.args); err != nil {
			return fmt.Sprintf("error: invalid arguments for %s: %v", c.name, err), false
		}
	}
	return "", true
}

// callTool runs one checked call and returns its message content, or the
// pause of its child workflow (ChildPause), which pauses the run.
func callTool(ctx context.Context, tools ToolSource, call ToolCall) (content string, pause error) {
	defer func() {
		if r := recover(); r != nil {
			content = fmt.Sprintf("error: tool %s panicked: %v", call.Name, r)
		}
	}()
	res, err := tools.Call(ctx, call)
	if err != nil {
		var cp ChildPause
		if errors.As(err, &cp) && ctx.Err() == nil {
			return "", err
		}
		return fmt.Sprintf("error: %v", err), nil
	}
	if s, ok := res.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Sprintf("error: tool %s returned a value that is not JSON: %v", call.Name, err), nil
	}
	return string(b), nil
}

func toolMessage(id, name, content string) map[string]any {
	return map[string]any{"role": "tool", "tool_call_id": id, "name": name, "content": content}
}

// invalidArgsExcerpt bounds how much of a model's unreadable arguments
// an error tool message quotes back to it.
const invalidArgsExcerpt = 200

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
		if raw, ok := m["invalid_arguments"].(string); ok && raw != "" {
			// The model's arguments were not a JSON object (llm_call kept
			// its text): the call is answered with an error it can fix.
			c.argErr = fmt.Errorf("arguments are not a JSON object: %s", bodyExcerpt([]byte(raw), invalidArgsExcerpt))
		}
		out[i] = c
	}
	return out, nil
}
