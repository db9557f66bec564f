package llmtest

import (
	"encoding/json"
	"fmt"
)

// Anthropic Messages wire format.

func (e *emitter) anthropicToolID(seq, i int) string {
	if id := e.reply.ToolCalls[i].ID; id != "" {
		return id
	}
	return fmt.Sprintf("toolu_llmtest%d_%d", seq, i)
}

func (e *emitter) anthropicStop() string {
	switch {
	case e.reply.FinishReason != "":
		return e.reply.FinishReason
	case len(e.reply.ToolCalls) > 0:
		return "tool_use"
	default:
		return "end_turn"
	}
}

func (e *emitter) anthropicUsage() (in, out int) {
	if u := e.reply.Usage; u != nil {
		return u.InputTokens, u.OutputTokens
	}
	return 0, 0
}

func (e *emitter) anthropicJSON(seq int, model string) {
	content := []any{}
	if t := e.text(); t != "" {
		content = append(content, map[string]any{"type": "text", "text": t})
	}
	for i, tc := range e.reply.ToolCalls {
		var input any = map[string]any{}
		if tc.Arguments != "" {
			_ = json.Unmarshal([]byte(tc.Arguments), &input)
		}
		content = append(content, map[string]any{
			"type": "tool_use", "id": e.anthropicToolID(seq, i), "name": tc.Name, "input": input,
		})
	}
	in, out := e.anthropicUsage()
	e.writeJSON(map[string]any{
		"id": fmt.Sprintf("msg_llmtest%d", seq), "type": "message", "role": "assistant",
		"model": model, "content": content,
		"stop_reason": e.anthropicStop(), "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": in, "output_tokens": out},
	})
}

func (e *emitter) anthropicStream(seq int, model string) {
	in, out := e.anthropicUsage()
	e.startSSE()
	ok := e.send("message_start", map[string]any{
		"type": "message_start",
		"message": map[string]any{
			"id": fmt.Sprintf("msg_llmtest%d", seq), "type": "message", "role": "assistant",
			"content": []any{}, "model": model, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": in, "output_tokens": 1},
		},
	})
	if !ok {
		return
	}
	index := 0
	if chunks := e.chunks(); len(chunks) > 0 {
		if !e.send("content_block_start", map[string]any{
			"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "text", "text": ""},
		}) {
			return
		}
		if !e.send("ping", map[string]any{"type": "ping"}) {
			return
		}
		for i, piece := range chunks {
			if !e.sendText(i, "content_block_delta", map[string]any{
				"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "text_delta", "text": piece},
			}) {
				return
			}
		}
		if !e.send("content_block_stop", map[string]any{"type": "content_block_stop", "index": index}) {
			return
		}
		index++
	}
	if e.reply.StreamError != "" {
		e.send("error", map[string]any{"type": "error", "error": map[string]any{
			"type": e.reply.StreamError, "message": "llmtest: " + e.reply.StreamError,
		}})
		return
	}
	for i, tc := range e.reply.ToolCalls {
		if !e.send("content_block_start", map[string]any{
			"type": "content_block_start", "index": index,
			"content_block": map[string]any{
				"type": "tool_use", "id": e.anthropicToolID(seq, i), "name": tc.Name, "input": map[string]any{},
			},
		}) {
			return
		}
		for _, frag := range splitArgs(tc.Arguments) {
			if !e.send("content_block_delta", map[string]any{
				"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": frag},
			}) {
				return
			}
		}
		if !e.send("content_block_stop", map[string]any{"type": "content_block_stop", "index": index}) {
			return
		}
		index++
	}
	if !e.send("message_delta", map[string]any{
		"type":  "message_delta",
		"delta": map[string]any{"stop_reason": e.anthropicStop(), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": out},
	}) {
		return
	}
	e.send("message_stop", map[string]any{"type": "message_stop"})
}
