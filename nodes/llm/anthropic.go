package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// DefaultMaxTokens is sent to Anthropic, which requires max_tokens, when
// the request sets none.
const DefaultMaxTokens = 4096

// anthropicClient speaks the Messages API through the official SDK.
type anthropicClient struct {
	client anthropic.Client
	apiKey string
}

func newAnthropic(cfg Config) *anthropicClient {
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
	return &anthropicClient{client: anthropic.NewClient(opts...), apiKey: cfg.APIKey}
}

// Complete implements Client.
func (c *anthropicClient) Complete(ctx context.Context, req Request, onToken func(string)) (*Response, error) {
	params, err := anthropicParams(req)
	if err != nil {
		return nil, err
	}
	stream := c.client.Messages.NewStreaming(ctx, params)
	defer stream.Close()

	type block struct {
		typ, id, name string
		text          strings.Builder
		input         []byte
	}
	var blocks []*block
	resp := &Response{Model: req.Model}
	stopped := false
	for stream.Next() {
		ev := stream.Current()
		switch ev.Type {
		case "message_start":
			if ev.Message.Model != "" {
				resp.Model = string(ev.Message.Model)
			}
			resp.ID = ev.Message.ID
			resp.Usage.InputTokens = int(ev.Message.Usage.InputTokens)
			resp.Usage.OutputTokens = int(ev.Message.Usage.OutputTokens)
		case "content_block_start":
			if ev.Index != int64(len(blocks)) {
				return nil, mapError(KindAnthropic, c.apiKey, fmt.Errorf("content block %d started out of order", ev.Index))
			}
			b := &block{typ: ev.ContentBlock.Type, id: ev.ContentBlock.ID, name: ev.ContentBlock.Name}
			if b.typ == "text" && ev.ContentBlock.Text != "" {
				b.text.WriteString(ev.ContentBlock.Text)
				if onToken != nil {
					onToken(ev.ContentBlock.Text)
				}
			}
			blocks = append(blocks, b)
		case "content_block_delta":
			if ev.Index < 0 || ev.Index >= int64(len(blocks)) {
				return nil, mapError(KindAnthropic, c.apiKey, fmt.Errorf("delta for unknown content block %d", ev.Index))
			}
			b := blocks[ev.Index]
			switch ev.Delta.Type {
			case "text_delta":
				b.text.WriteString(ev.Delta.Text)
				if onToken != nil && ev.Delta.Text != "" {
					onToken(ev.Delta.Text)
				}
			case "input_json_delta":
				b.input = append(b.input, ev.Delta.PartialJSON...)
			}
		case "message_delta":
			resp.FinishReason = string(ev.Delta.StopReason)
			resp.Usage.OutputTokens = int(ev.Usage.OutputTokens)
			if ev.Usage.JSON.InputTokens.Valid() && ev.Usage.InputTokens > 0 {
				resp.Usage.InputTokens = int(ev.Usage.InputTokens)
			}
		case "message_stop":
			stopped = true
		}
	}
	if err := stream.Err(); err != nil {
		return nil, mapError(KindAnthropic, c.apiKey, err)
	}
	if !stopped {
		return nil, mapError(KindAnthropic, c.apiKey, errTruncated)
	}
	var text strings.Builder
	for _, b := range blocks {
		switch b.typ {
		case "text":
			text.WriteString(b.text.String())
		case "tool_use":
			resp.ToolCalls = append(resp.ToolCalls, toolCall(b.id, b.name, b.input))
		}
	}
	resp.Content = text.String()
	resp.Message = Message{Role: RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls}
	return resp, nil
}

// anthropicParams maps a Request to Messages parameters. System messages
// become system blocks; tool messages become tool_result blocks of a user
// message, consecutive ones merged into one message.
func anthropicParams(req Request) (anthropic.MessageNewParams, error) {
	p := anthropic.MessageNewParams{Model: anthropic.Model(req.Model), MaxTokens: DefaultMaxTokens}
	if req.MaxTokens > 0 {
		p.MaxTokens = int64(req.MaxTokens)
	}
	if req.System != "" {
		p.System = append(p.System, anthropic.TextBlockParam{Text: req.System})
	}
	for i, m := range req.Messages {
		switch m.Role {
		case RoleSystem:
			p.System = append(p.System, anthropic.TextBlockParam{Text: m.Content})
		case RoleUser:
			p.Messages = append(p.Messages, anthropic.NewUserMessage(anthropic.NewTextBlock(m.Content)))
		case RoleAssistant:
			var blocks []anthropic.ContentBlockParamUnion
			if m.Content != "" || len(m.ToolCalls) == 0 {
				blocks = append(blocks, anthropic.NewTextBlock(m.Content))
			}
			for _, tc := range m.ToolCalls {
				args := tc.Arguments
				if args == nil {
					args = map[string]any{}
				}
				blocks = append(blocks, anthropic.NewToolUseBlock(tc.ID, args, tc.Name))
			}
			p.Messages = append(p.Messages, anthropic.NewAssistantMessage(blocks...))
		case RoleTool:
			res := anthropic.ToolResultBlockParam{ToolUseID: m.ToolCallID}
			if m.Content != "" {
				res.Content = []anthropic.ToolResultBlockParamContentUnion{{OfText: &anthropic.TextBlockParam{Text: m.Content}}}
			}
			block := anthropic.ContentBlockParamUnion{OfToolResult: &res}
			if n := len(p.Messages); n > 0 && isToolResultMessage(p.Messages[n-1]) {
				p.Messages[n-1].Content = append(p.Messages[n-1].Content, block)
			} else {
				p.Messages = append(p.Messages, anthropic.NewUserMessage(block))
			}
		default:
			return p, fmt.Errorf("message %d: unknown role %q", i, m.Role)
		}
	}
	for _, t := range req.Tools {
		tp := anthropic.ToolParam{Name: t.Name, InputSchema: inputSchema(toolParameters(t.Parameters))}
		if t.Description != "" {
			tp.Description = anthropic.String(t.Description)
		}
		p.Tools = append(p.Tools, anthropic.ToolUnionParam{OfTool: &tp})
	}
	if req.Temperature != nil {
		p.Temperature = anthropic.Float(*req.Temperature)
	}
	if req.JSONSchema != nil {
		// Structured outputs (output_config.format), with the schema
		// adjusted by the SDK's own transform (additionalProperties: false
		// on objects, unsupported keywords moved into descriptions).
		schema, ok := anthropic.BetaJSONSchemaOutputFormat(cloneJSON(req.JSONSchema)).Schema.(map[string]any)
		if !ok {
			schema = req.JSONSchema
		}
		p.OutputConfig.Format = anthropic.JSONOutputFormatParam{Schema: schema}
	}
	return p, nil
}

// isToolResultMessage reports whether m is a user message made of
// tool_result blocks only.
func isToolResultMessage(m anthropic.MessageParam) bool {
	if m.Role != anthropic.MessageParamRoleUser || len(m.Content) == 0 {
		return false
	}
	for _, b := range m.Content {
		if b.OfToolResult == nil {
			return false
		}
	}
	return true
}

// inputSchema maps a JSON Schema object to the SDK's input_schema param,
// keeping every keyword.
func inputSchema(s map[string]any) anthropic.ToolInputSchemaParam {
	in := anthropic.ToolInputSchemaParam{ExtraFields: map[string]any{}}
	for k, v := range s {
		switch k {
		case "type":
		case "properties":
			in.Properties = v
		case "required":
			switch r := v.(type) {
			case []string:
				in.Required = r
			case []any:
				for _, x := range r {
					if n, ok := x.(string); ok {
						in.Required = append(in.Required, n)
					}
				}
			}
		default:
			in.ExtraFields[k] = v
		}
	}
	return in
}

// cloneJSON deep-copies a JSON-like map (the SDK's transform edits in place).
func cloneJSON(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}

func jsonUnmarshalString(s string, v any) error { return json.Unmarshal([]byte(s), v) }
