package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/lgx-run/lgx/nodes/llm"
)

func init() { Register(llmCall{}) }

// llmCall is the `llm_call` type (SPEC §5.2): one streamed completion from
// an OpenAI-compatible or Anthropic provider, with tools and structured
// output.
type llmCall struct{}

func (llmCall) Name() string { return "llm_call" }

// Capabilities: a call takes its provider's pool; its tools and
// response_format need the provider to support them.
func (llmCall) Capabilities() Capabilities {
	return Capabilities{ProviderField: "provider", ToolsField: "tools", ProviderNeeds: []ProviderNeed{
		{Field: "tools", Capability: ProviderCapTools},
		{Field: "response_format", Capability: ProviderCapStructuredOutput},
	}}
}

func (llmCall) Doc() Doc {
	return Doc{
		Summary: "Calls an LLM provider (OpenAI-compatible or Anthropic) once, streaming tokens to the event stream. With `tools` the model may ask for tool calls (run them with a `tools` node); with `response_format.json_schema` the answer is parsed and validated as JSON.",
		With: []Field{
			{Name: "provider", Type: "string", Default: "default", Static: true, Doc: "Name of a provider under `providers:`."},
			{Name: "model", Type: "string", Doc: "Model name; default: the provider's `model`."},
			{Name: "system", Type: "string", Doc: "System prompt."},
			{Name: "prompt", Type: "string", Doc: "A single user message."},
			{Name: "messages", Type: "messages", Doc: "The conversation: message objects {id?, role, content, tool_calls?, tool_call_id?, name?}."},
			{Name: "tools", Type: "list", Static: true, Doc: "Tools the model may call: names of top-level `tools:`, `server.tool` for a tool of an MCP server under `mcp:`, or `server.*` for every tool its allowlist keeps."},
			{Name: "temperature", Type: "number", Doc: "Sampling temperature."},
			{Name: "max_tokens", Type: "integer", Positive: true, Doc: "Maximum output tokens (sent to OpenAI as max_completion_tokens; Anthropic default: 4096)."},
			{Name: "reserve", Type: "integer", Positive: true, Doc: "Tokens reserved from the budgets before the call (default: max_tokens, or 4096, plus the prompt's bytes / 4; a money budget prices a declared reserve at the output price); settled with the reported usage after it."},
			{Name: "response_format", Type: "object", Static: true, Doc: "{json_schema: SCHEMA}: a bare JSON Schema the answer must fit. lgx wraps it as the provider requires (OpenAI: response_format json_schema, strict when the schema already meets the strict subset; Anthropic: output_config.format) and validates the parsed answer itself; a mismatch fails the node with kind schema."},
		},
		Result: []Field{
			{Name: "content", Type: "string", Doc: "The assistant's text."},
			{Name: "message", Type: "object", Doc: "The assistant message {id, role, content, tool_calls}, ready to append to a `messages` key."},
			{Name: "tool_calls", Type: "list", Doc: "Requested tool calls [{id, name, arguments}] (empty when none). A call whose arguments the model wrote as something other than a JSON object has arguments {} and invalid_arguments, the text it wrote: the tools node answers it with an error message, and the text goes back to the provider as written."},
			{Name: "json", Type: "any", Doc: "The parsed answer when `response_format` is set; else null."},
			{Name: "usage", Type: "object", Doc: "{input_tokens, output_tokens}."},
			{Name: "finish_reason", Type: "string", Doc: "The provider's own stop value (stop, tool_calls, length, end_turn, tool_use, max_tokens…)."},
			{Name: "model", Type: "string", Doc: "The model that answered."},
			{Name: "provider", Type: "string", Doc: "The provider that answered (a fallback's name when the call fell back)."},
		},
		OneOf: []OneOf{{Fields: []string{"prompt", "messages"}, Required: true}},
	}
}

// llmPrepared is what Prepare derives from the static fields.
type llmPrepared struct {
	tools      []string
	jsonSchema map[string]any
	schema     *jsonschema.Resolved
}

// Prepare checks the static fields and compiles the response schema.
func (llmCall) Prepare(static map[string]any) (any, error) {
	return prepareLLMCall(static)
}

func prepareLLMCall(with map[string]any) (*llmPrepared, error) {
	p := &llmPrepared{}
	if v, ok := with["provider"]; ok && v != nil {
		if _, ok := v.(string); !ok {
			return nil, fmt.Errorf("llm_call: with.provider must be a provider name, got %s", llmTypeName(v))
		}
	}
	if v := with["tools"]; v != nil {
		names, err := llmStringList(v)
		if err != nil {
			return nil, fmt.Errorf("llm_call: with.tools: %w", err)
		}
		p.tools = names
	}
	if v := with["response_format"]; v != nil {
		rf, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("llm_call: with.response_format must be {json_schema: SCHEMA}, got %s", llmTypeName(v))
		}
		for k := range rf {
			if k != "json_schema" {
				return nil, fmt.Errorf("llm_call: with.response_format: unknown field %q (want json_schema)", k)
			}
		}
		s, ok := rf["json_schema"].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("llm_call: with.response_format.json_schema must be a JSON Schema object")
		}
		sch, err := compileJSONSchema(s)
		if err != nil {
			return nil, fmt.Errorf("llm_call: with.response_format.json_schema: %w", err)
		}
		p.jsonSchema, p.schema = s, sch
	}
	return p, nil
}

// Run performs one completion.
func (llmCall) Run(ctx context.Context, inv *Invocation) (any, error) {
	if inv.Host == nil {
		return nil, Errorf(KindInput, "llm_call: no host")
	}
	prep, _ := inv.Prepared.(*llmPrepared)
	if prep == nil {
		var err error
		if prep, err = prepareLLMCall(inv.With); err != nil {
			return nil, &Error{Kind: KindInput, Err: err}
		}
	}
	name := "default"
	if v, ok := inv.With["provider"].(string); ok && v != "" {
		name = v
	}
	prov, err := inv.Host.Provider(name)
	if err != nil {
		return nil, err
	}
	req, err := llmRequest(inv.With, prov)
	if err != nil {
		return nil, &Error{Kind: KindInput, Err: fmt.Errorf("llm_call: %w", err)}
	}
	if len(prep.tools) > 0 {
		if inv.Tools == nil {
			return nil, Errorf(KindInput, "llm_call: the run has no tools")
		}
		specs, err := inv.Tools.List(prep.tools)
		if err != nil {
			return nil, err
		}
		for _, s := range specs {
			req.Tools = append(req.Tools, llm.Tool{Name: s.Name, Description: s.Description, Parameters: s.Parameters})
		}
	}
	req.JSONSchema = prep.jsonSchema

	client, err := llmClient(prov, inv.Host.HTTPClient())
	if err != nil {
		return nil, &Error{Kind: KindInput, Err: fmt.Errorf("llm_call: provider %s: %w", prov.Name, err)}
	}
	settle := func(TokenUsage) {}
	if tb, ok := inv.Host.(TokenBudgets); ok {
		n, err := llmReserve(inv.With, req)
		if err != nil {
			return nil, &Error{Kind: KindInput, Err: fmt.Errorf("llm_call: %w", err)}
		}
		if settle, err = tb.ReserveTokens(ctx, prov.Name, n); err != nil {
			return nil, err
		}
	}
	rep, _ := inv.Host.(GenAIReporter)
	var started time.Time
	if rep != nil {
		started = time.Now()
	}
	resp, err := client.Complete(ctx, req, inv.Host.Token)
	if rep != nil {
		rep.ReportGenAI(llmGenAI(prov, req, resp, err, started))
	}
	if err != nil {
		// A failed call reports no usage; its reservation is given back.
		settle(TokenUsage{})
		return nil, llmError(prov, err)
	}
	settle(TokenUsage{Input: resp.Usage.InputTokens, Output: resp.Usage.OutputTokens})
	res, err := llmResult(resp, prep)
	if m, ok := res.(map[string]any); ok {
		m["provider"] = prov.Name
	}
	return res, err
}

// llmGenAI describes a finished call for a GenAIReporter.
func llmGenAI(prov *Provider, req llm.Request, resp *llm.Response, err error, started time.Time) GenAIInfo {
	g := GenAIInfo{Provider: prov.Kind, RequestModel: req.Model, MaxTokens: req.MaxTokens,
		Temperature: req.Temperature, Started: started, Ended: time.Now()}
	if b, merr := json.Marshal(map[string]any{"system": req.System, "messages": req.Messages}); merr == nil {
		g.Prompt = string(b)
	}
	if err != nil {
		g.Error = err.Error()
		return g
	}
	g.ResponseModel, g.ResponseID, g.FinishReason, g.Completion = resp.Model, resp.ID, resp.FinishReason, resp.Content
	g.InputTokens, g.OutputTokens = resp.Usage.InputTokens, resp.Usage.OutputTokens
	return g
}

// TokenBudgets is implemented by a Host that enforces token and money
// budgets (SPEC §9.9). ReserveTokens takes a reservation from every
// budget the call to provider falls under, waiting, failing (kind budget)
// or pausing the run (an error wrapping *Interrupt) as each budget's
// on_exhausted says; settle gives back the reservation and charges the
// tokens the call used. settle must be called exactly once.
type TokenBudgets interface {
	ReserveTokens(ctx context.Context, provider string, r TokenUsage) (settle func(used TokenUsage), err error)
}

// TokenUsage counts a call's tokens: input (prompt) and output. As a
// reservation, Input is the prompt estimate and Output the most the model
// may write.
type TokenUsage struct {
	Input, Output int
}

// Total is input plus output tokens.
func (u TokenUsage) Total() int { return u.Input + u.Output }

// llmReserve is what a call reserves: with.reserve (all counted as output,
// the dearer kind when priced), else its max_tokens (llm.DefaultMaxTokens
// when unset) plus an estimate of the prompt of one token per 4 bytes,
// the usual ratio for English text.
func llmReserve(with map[string]any, req llm.Request) (TokenUsage, error) {
	if v, ok := with["reserve"]; ok && v != nil {
		f, ok := llmNumber(v)
		if !ok || f != float64(int(f)) || f < 1 {
			return TokenUsage{}, fmt.Errorf("with.reserve must be a positive integer, got %v", v)
		}
		return TokenUsage{Output: int(f)}, nil
	}
	n := req.MaxTokens
	if n <= 0 {
		n = llm.DefaultMaxTokens
	}
	bytes := len(req.System)
	for _, m := range req.Messages {
		bytes += len(m.Content)
		for _, tc := range m.ToolCalls {
			b, _ := json.Marshal(tc.Arguments)
			bytes += len(tc.Name) + len(b)
		}
	}
	for _, t := range req.Tools {
		b, _ := json.Marshal(t.Parameters)
		bytes += len(t.Name) + len(t.Description) + len(b)
	}
	return TokenUsage{Input: (bytes + 3) / 4, Output: n}, nil
}

// llmError maps an adapter error to a node error the retry policy reads.
func llmError(prov *Provider, err error) error {
	var le *llm.Error
	if errors.As(err, &le) {
		return &Error{Kind: Kind(le.Kind), Status: le.Status, RetryAfter: le.RetryAfter,
			Err: fmt.Errorf("llm_call: provider %s: %w", prov.Name, le)}
	}
	msg := err.Error()
	if prov.APIKey != "" {
		msg = strings.ReplaceAll(msg, prov.APIKey, "***")
	}
	// A request lgx could not map (e.g. an unknown message role).
	return &Error{Kind: KindInput, Err: fmt.Errorf("llm_call: provider %s: %s", prov.Name, msg)}
}

// llmClients caches SDK clients: building one per invocation would cost
// more than the call's own overhead.
var llmClients sync.Map // llmClientKey -> llm.Client

type llmClientKey struct {
	kind, baseURL, apiKey string
	hc                    *http.Client
}

func llmClient(p *Provider, hc *http.Client) (llm.Client, error) {
	key := llmClientKey{p.Kind, p.BaseURL, p.APIKey, hc}
	if c, ok := llmClients.Load(key); ok {
		return c.(llm.Client), nil
	}
	c, err := llm.New(llm.Config{Kind: p.Kind, BaseURL: p.BaseURL, APIKey: p.APIKey, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	actual, _ := llmClients.LoadOrStore(key, c)
	return actual.(llm.Client), nil
}

// llmRequest builds the provider-neutral request from the resolved inputs.
func llmRequest(with map[string]any, prov *Provider) (llm.Request, error) {
	req := llm.Request{Model: prov.Model}
	if v, ok := with["model"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return req, fmt.Errorf("with.model must be a string, got %s", llmTypeName(v))
		}
		if s != "" {
			req.Model = s
		}
	}
	if req.Model == "" {
		return req, fmt.Errorf("no model: set with.model or the provider's model")
	}
	if v, ok := with["system"]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return req, fmt.Errorf("with.system must be a string, got %s", llmTypeName(v))
		}
		req.System = s
	}
	prompt, hasPrompt := with["prompt"]
	msgs, hasMsgs := with["messages"]
	switch {
	case hasPrompt && hasMsgs && prompt != nil && msgs != nil:
		return req, fmt.Errorf("give with.prompt or with.messages, not both")
	case hasPrompt && prompt != nil:
		s, ok := prompt.(string)
		if !ok {
			return req, fmt.Errorf("with.prompt must be a string, got %s", llmTypeName(prompt))
		}
		req.Messages = []llm.Message{{Role: llm.RoleUser, Content: s}}
	case hasMsgs && msgs != nil:
		m, err := llmMessages(msgs)
		if err != nil {
			return req, fmt.Errorf("with.messages: %w", err)
		}
		req.Messages = m
	default:
		return req, fmt.Errorf("with.prompt or with.messages is required")
	}
	if len(req.Messages) == 0 {
		return req, fmt.Errorf("with.messages is empty")
	}
	if v, ok := with["temperature"]; ok && v != nil {
		f, ok := llmNumber(v)
		if !ok {
			return req, fmt.Errorf("with.temperature must be a number, got %s", llmTypeName(v))
		}
		req.Temperature = &f
	}
	if v, ok := with["max_tokens"]; ok && v != nil {
		f, ok := llmNumber(v)
		if !ok || f != float64(int(f)) || f < 1 {
			return req, fmt.Errorf("with.max_tokens must be a positive integer, got %v", v)
		}
		req.MaxTokens = int(f)
	}
	return req, nil
}

// llmMessages converts SPEC message objects into llm messages.
func llmMessages(v any) ([]llm.Message, error) {
	list, ok := v.([]any)
	if !ok {
		if ms, ok2 := v.([]map[string]any); ok2 {
			for _, m := range ms {
				list = append(list, m)
			}
		} else {
			return nil, fmt.Errorf("must be a list of messages, got %s", llmTypeName(v))
		}
	}
	out := make([]llm.Message, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("message %d must be an object, got %s", i, llmTypeName(item))
		}
		msg := llm.Message{}
		msg.ID, _ = m["id"].(string)
		msg.Role, _ = m["role"].(string)
		switch msg.Role {
		case llm.RoleSystem, llm.RoleUser, llm.RoleAssistant, llm.RoleTool:
		default:
			return nil, fmt.Errorf("message %d: role must be system, user, assistant or tool, got %v", i, m["role"])
		}
		msg.Content = llmContent(m["content"])
		msg.ToolCallID, _ = m["tool_call_id"].(string)
		msg.Name, _ = m["name"].(string)
		if msg.Role == llm.RoleTool && msg.ToolCallID == "" {
			return nil, fmt.Errorf("message %d: a tool message needs tool_call_id", i)
		}
		if tc := m["tool_calls"]; tc != nil {
			calls, err := parseToolCalls(tc)
			if err != nil {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
			msg.ToolCalls = calls
		}
		out = append(out, msg)
	}
	return out, nil
}

// llmContent renders message content as text: strings as they are, null
// as "", anything else as JSON.
func llmContent(v any) string {
	switch c := v.(type) {
	case nil:
		return ""
	case string:
		return c
	default:
		b, err := json.Marshal(c)
		if err != nil {
			return fmt.Sprint(c)
		}
		return string(b)
	}
}

// parseToolCalls reads [{id, name, arguments}] (arguments an object or
// its JSON text); the OpenAI shape {id, function: {name, arguments}} is
// accepted too.
func parseToolCalls(v any) ([]llm.ToolCall, error) {
	var list []any
	switch l := v.(type) {
	case []any:
		list = l
	case []map[string]any:
		for _, m := range l {
			list = append(list, m)
		}
	default:
		return nil, fmt.Errorf("tool_calls must be a list, got %s", llmTypeName(v))
	}
	out := make([]llm.ToolCall, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("tool call %d must be an object, got %s", i, llmTypeName(item))
		}
		tc := llm.ToolCall{}
		tc.ID, _ = m["id"].(string)
		tc.Name, _ = m["name"].(string)
		args := m["arguments"]
		if fn, ok := m["function"].(map[string]any); ok && tc.Name == "" {
			tc.Name, _ = fn["name"].(string)
			args = fn["arguments"]
		}
		if tc.Name == "" {
			return nil, fmt.Errorf("tool call %d has no name", i)
		}
		if raw, ok := m["invalid_arguments"].(string); ok && raw != "" {
			// Sent back as the model wrote it; the tools node answered it
			// with an error.
			tc.Arguments, tc.InvalidArguments = map[string]any{}, raw
			out = append(out, tc)
			continue
		}
		a, err := toolArguments(args)
		if err != nil {
			return nil, fmt.Errorf("tool call %d (%s): %w", i, tc.Name, err)
		}
		tc.Arguments = a
		out = append(out, tc)
	}
	return out, nil
}

// toolArguments reads arguments given as an object or as its JSON text.
func toolArguments(v any) (map[string]any, error) {
	switch a := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return a, nil
	case string:
		if strings.TrimSpace(a) == "" {
			return map[string]any{}, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(a), &m); err != nil {
			return nil, fmt.Errorf("arguments are not a JSON object: %w", err)
		}
		if m == nil {
			m = map[string]any{}
		}
		return m, nil
	default:
		return nil, fmt.Errorf("arguments must be an object, got %s", llmTypeName(v))
	}
}

// llmResult turns a response into the node's JSON-like result.
func llmResult(resp *llm.Response, prep *llmPrepared) (any, error) {
	calls := make([]any, len(resp.ToolCalls))
	for i, tc := range resp.ToolCalls {
		args := tc.Arguments
		if args == nil {
			args = map[string]any{}
		}
		call := map[string]any{"id": tc.ID, "name": tc.Name, "arguments": args}
		if tc.InvalidArguments != "" {
			call["invalid_arguments"] = tc.InvalidArguments
		}
		calls[i] = call
	}
	// No id: the runner gives a message written to state without one an
	// id derived from the invocation's path (SPEC §9.6), so a replay or a
	// resume produces the same state; a random id here would not.
	message := map[string]any{
		"role":       llm.RoleAssistant,
		"content":    resp.Content,
		"tool_calls": calls,
	}
	result := map[string]any{
		"content":       resp.Content,
		"message":       message,
		"tool_calls":    calls,
		"json":          nil,
		"usage":         map[string]any{"input_tokens": resp.Usage.InputTokens, "output_tokens": resp.Usage.OutputTokens},
		"finish_reason": resp.FinishReason,
		"model":         resp.Model,
	}
	if prep.schema != nil && len(resp.ToolCalls) == 0 {
		v, err := decodeLLMJSON(resp.Content)
		if err != nil {
			return nil, &Error{Kind: KindSchema, Err: fmt.Errorf("llm_call: the answer is not JSON (response_format.json_schema): %w; answer: %s", err, llmExcerpt(resp.Content))}
		}
		if err := validateJSONSchema(prep.schema, v); err != nil {
			return nil, &Error{Kind: KindSchema, Err: fmt.Errorf("llm_call: the answer does not match response_format.json_schema: %w; answer: %s", err, llmExcerpt(resp.Content))}
		}
		result["json"] = v
	}
	return result, nil
}

// decodeLLMJSON parses a structured answer, tolerating surrounding space
// and a Markdown code fence (some OpenAI-compatible servers add one).
func decodeLLMJSON(s string) (any, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") {
		s = strings.TrimPrefix(s, "```json")
		s = strings.TrimPrefix(s, "```")
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	return v, nil
}

func llmExcerpt(s string) string {
	const n = 200
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", s[:n])
}

func llmNumber(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func llmStringList(v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, len(l))
		for i, x := range l {
			s, ok := x.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("item %d must be a tool name, got %s", i, llmTypeName(x))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("must be a list of tool names, got %s", llmTypeName(v))
}

func llmTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, int32, uint64, float64, float32, json.Number:
		return "a number"
	case []any, []string, []map[string]any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
