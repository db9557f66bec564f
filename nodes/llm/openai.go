package llm

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// openAIClient speaks Chat Completions through the official SDK; it works
// with any OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp) via BaseURL.
type openAIClient struct {
	client openai.Client
	apiKey string
}

func newOpenAI(cfg Config) *openAIClient {
	opts := []option.RequestOption{
		option.WithMaxRetries(0),
		option.WithHTTPClient(cfg.HTTPClient),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	return &openAIClient{client: openai.NewClient(opts...), apiKey: cfg.APIKey}
}

// Complete implements Client.
func (c *openAIClient) Complete(ctx context.Context, req Request, onToken func(string)) (*Response, error) {
	params, err := openAIParams(req)
	if err != nil {
		return nil, err
	}
	stream := c.client.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()

	resp := &Response{Model: req.Model}
	var text []byte
	type partial struct {
		id, name string
		args     []byte
	}
	var calls []*partial            // in arrival order
	current := map[int64]*partial{} // stream index -> call being filled
	finished := false
	for stream.Next() {
		chunk := stream.Current()
		if chunk.Model != "" {
			resp.Model = chunk.Model
		}
		if chunk.ID != "" {
			resp.ID = chunk.ID
		}
		if chunk.JSON.Usage.Valid() {
			resp.Usage = Usage{InputTokens: int(chunk.Usage.PromptTokens), OutputTokens: int(chunk.Usage.CompletionTokens)}
		}
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				continue
			}
			if d := ch.Delta.Content; d != "" {
				text = append(text, d...)
				if onToken != nil {
					onToken(d)
				}
			}
			for _, tc := range ch.Delta.ToolCalls {
				// A fragment continues the call open at its index, unless
				// it brings a new id: some OpenAI-compatible servers send
				// every call whole at index 0.
				p := current[tc.Index]
				if p == nil || tc.ID != "" && p.id != "" && tc.ID != p.id {
					p = &partial{}
					calls = append(calls, p)
					current[tc.Index] = p
				}
				if tc.ID != "" {
					p.id = tc.ID
				}
				if tc.Function.Name != "" {
					p.name += tc.Function.Name
				}
				p.args = append(p.args, tc.Function.Arguments...)
			}
			if ch.FinishReason != "" {
				resp.FinishReason = ch.FinishReason
				finished = true
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, mapError(KindOpenAI, c.apiKey, err)
	}
	if !finished {
		return nil, mapError(KindOpenAI, c.apiKey, errTruncated)
	}
	resp.Content = string(text)
	for i, p := range calls {
		id := p.id
		if id == "" {
			id = fmt.Sprintf("call_%d", i)
		}
		resp.ToolCalls = append(resp.ToolCalls, toolCall(id, p.name, p.args))
	}
	resp.Message = Message{Role: RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls}
	return resp, nil
}

// toolCall is a call the model made: its arguments decoded, or kept as
// text when they are not a JSON object.
func toolCall(id, name string, raw []byte) ToolCall {
	args, err := parseArguments(raw)
	if err != nil {
		return ToolCall{ID: id, Name: name, Arguments: map[string]any{}, InvalidArguments: string(raw)}
	}
	return ToolCall{ID: id, Name: name, Arguments: args}
}

// parseArguments decodes a tool call's argument JSON ("" is {}).
func parseArguments(raw []byte) (map[string]any, error) {
	args := map[string]any{}
	if len(raw) == 0 {
		return args, nil
	}
	if err := json.Unmarshal(raw, &args); err != nil {
		return nil, fmt.Errorf("arguments are not a JSON object: %w", err)
	}
	if args == nil { // "null"
		args = map[string]any{}
	}
	return args, nil
}

// openAIParams maps a Request to Chat Completions parameters.
func openAIParams(req Request) (openai.ChatCompletionNewParams, error) {
	p := openai.ChatCompletionNewParams{
		Model:         shared.ChatModel(req.Model),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	if req.System != "" {
		p.Messages = append(p.Messages, openai.SystemMessage(req.System))
	}
	for i, m := range req.Messages {
		switch m.Role {
		case RoleSystem:
			p.Messages = append(p.Messages, openai.SystemMessage(m.Content))
		case RoleUser:
			u := openai.UserMessage(m.Content)
			if m.Name != "" {
				u.OfUser.Name = openai.String(m.Name)
			}
			p.Messages = append(p.Messages, u)
		case RoleAssistant:
			a := openai.ChatCompletionAssistantMessageParam{}
			if m.Content != "" || len(m.ToolCalls) == 0 {
				a.Content.OfString = openai.String(m.Content)
			}
			if m.Name != "" {
				a.Name = openai.String(m.Name)
			}
			for _, tc := range m.ToolCalls {
				args, err := marshalArguments(tc.Arguments)
				if err != nil {
					return p, fmt.Errorf("message %d: tool call %q: %w", i, tc.Name, err)
				}
				if tc.InvalidArguments != "" {
					args = tc.InvalidArguments // what the model wrote, which the error answering it names
				}
				a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
						ID:       tc.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Name, Arguments: args},
					},
				})
			}
			p.Messages = append(p.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: &a})
		case RoleTool:
			p.Messages = append(p.Messages, openai.ToolMessage(m.Content, m.ToolCallID))
		default:
			return p, fmt.Errorf("message %d: unknown role %q", i, m.Role)
		}
	}
	for _, t := range req.Tools {
		def := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(toolParameters(t.Parameters))}
		if t.Description != "" {
			def.Description = openai.String(t.Description)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(def))
	}
	if req.Temperature != nil {
		p.Temperature = openai.Float(*req.Temperature)
	}
	if req.MaxTokens > 0 {
		p.MaxCompletionTokens = openai.Int(int64(req.MaxTokens))
	}
	if req.JSONSchema != nil {
		p.ResponseFormat.OfJSONSchema = &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
				Name:   schemaName(req.JSONSchema),
				Schema: req.JSONSchema,
				Strict: openai.Bool(StrictCompatible(req.JSONSchema)),
			},
		}
	}
	return p, nil
}

// marshalArguments encodes tool call arguments as the JSON text OpenAI
// expects.
func marshalArguments(args map[string]any) (string, error) {
	if args == nil {
		return "{}", nil
	}
	b, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("arguments: %w", err)
	}
	return string(b), nil
}

// toolParameters returns a tool's schema, defaulting to an empty object
// schema (both APIs require one).
func toolParameters(s map[string]any) map[string]any {
	if s == nil {
		return map[string]any{"type": "object", "properties": map[string]any{}}
	}
	return s
}

// schemaName is the response_format name: the schema's title when it is a
// valid name, else "response".
func schemaName(s map[string]any) string {
	if t, ok := s["title"].(string); ok && validName(t) {
		return t
	}
	return "response"
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// StrictCompatible reports whether schema already meets OpenAI's strict
// structured-output subset: every object lists all its properties as
// required and sets additionalProperties: false. lgx sends strict: true
// only then, so a looser schema is still accepted (and lgx validates the
// answer itself either way).
func StrictCompatible(schema map[string]any) bool {
	return strictOK(schema, 0)
}

func strictOK(v any, depth int) bool {
	if depth > 64 {
		return false
	}
	switch s := v.(type) {
	case map[string]any:
		if isObjectSchema(s) {
			if ap, ok := s["additionalProperties"].(bool); !ok || ap {
				return false
			}
			props, _ := s["properties"].(map[string]any)
			req := map[string]bool{}
			switch r := s["required"].(type) {
			case []any:
				for _, x := range r {
					if n, ok := x.(string); ok {
						req[n] = true
					}
				}
			case []string:
				for _, n := range r {
					req[n] = true
				}
			}
			for name := range props {
				if !req[name] {
					return false
				}
			}
		}
		for k, sub := range s {
			switch k {
			case "properties", "$defs", "definitions":
				m, _ := sub.(map[string]any)
				for _, x := range m {
					if !strictOK(x, depth+1) {
						return false
					}
				}
			case "items", "not", "additionalProperties":
				if !strictOK(sub, depth+1) {
					return false
				}
			case "anyOf", "allOf", "oneOf", "prefixItems":
				l, _ := sub.([]any)
				for _, x := range l {
					if !strictOK(x, depth+1) {
						return false
					}
				}
			}
		}
		return true
	case bool:
		return true
	default:
		return true
	}
}

func isObjectSchema(s map[string]any) bool {
	switch t := s["type"].(type) {
	case string:
		return t == "object"
	case []any:
		for _, x := range t {
			if x == "object" {
				return true
			}
		}
	}
	_, hasProps := s["properties"]
	return hasProps
}
