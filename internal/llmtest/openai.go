package llmtest

import (
	"fmt"
	"time"
)

// OpenAI Chat Completions wire format.

func (e *emitter) openAIToolCallID(seq, i int) string {
	if id := e.reply.ToolCalls[i].ID; id != "" {
		return id
	}
	return fmt.Sprintf("call_%d_%d", seq, i)
}

func (e *emitter) openAIFinish() string {
	switch {
	case e.reply.FinishReason != "":
		return e.reply.FinishReason
	case len(e.reply.ToolCalls) > 0:
		return "tool_calls"
	default:
		return "stop"
	}
}

func (e *emitter) openAIUsage() map[string]any {
	u := e.reply.Usage
	if u == nil {
		return nil
	}
	return map[string]any{
		"prompt_tokens":     u.InputTokens,
		"completion_tokens": u.OutputTokens,
		"total_tokens":      u.InputTokens + u.OutputTokens,
	}
}

func (e *emitter) openAIJSON(seq int, model string) {
	msg := map[string]any{"role": "assistant", "content": e.text(), "refusal": nil}
	if len(e.reply.ToolCalls) > 0 {
		if e.text() == "" {
			msg["content"] = nil
		}
		calls := make([]any, len(e.reply.ToolCalls))
		for i, tc := range e.reply.ToolCalls {
			args := tc.Arguments
			if args == "" {
				args = "{}"
			}
			calls[i] = map[string]any{
				"id":       e.openAIToolCallID(seq, i),
				"type":     "function",
				"function": map[string]any{"name": tc.Name, "arguments": args},
			}
		}
		msg["tool_calls"] = calls
	}
	body := map[string]any{
		"id":      fmt.Sprintf("chatcmpl-llmtest%d", seq),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   model,
		"choices": []any{map[string]any{
			"index": 0, "message": msg, "logprobs": nil, "finish_reason": e.openAIFinish(),
		}},
		"system_fingerprint": "fp_llmtest",
	}
	if u := e.openAIUsage(); u != nil {
		body["usage"] = u
	}
	e.writeJSON(body)
}

func (e *emitter) openAIStream(seq int, model string, includeUsage bool) {
	id := fmt.Sprintf("chatcmpl-llmtest%d", seq)
	created := time.Now().Unix()
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_llmtest",
			"choices": []any{map[string]any{
				"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish,
			}},
		}
		if includeUsage {
			c["usage"] = nil
		}
		return c
	}
	e.startSSE()
	if !e.send("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil)) {
		return
	}
	for i, piece := range e.chunks() {
		if !e.sendText(i, "", chunk(map[string]any{"content": piece}, nil)) {
			return
		}
	}
	if e.reply.StreamError != "" {
		e.send("", map[string]any{"error": map[string]any{
			"message": "llmtest: " + e.reply.StreamError, "type": e.reply.StreamError, "param": nil, "code": nil,
		}})
		return
	}
	for i, tc := range e.reply.ToolCalls {
		first := map[string]any{"tool_calls": []any{map[string]any{
			"index": i, "id": e.openAIToolCallID(seq, i), "type": "function",
			"function": map[string]any{"name": tc.Name, "arguments": ""},
		}}}
		if !e.send("", chunk(first, nil)) {
			return
		}
		for _, frag := range splitArgs(tc.Arguments) {
			d := map[string]any{"tool_calls": []any{map[string]any{
				"index": i, "function": map[string]any{"arguments": frag},
			}}}
			if !e.send("", chunk(d, nil)) {
				return
			}
		}
	}
	if !e.send("", chunk(map[string]any{}, e.openAIFinish())) {
		return
	}
	if includeUsage {
		u := e.openAIUsage()
		if u == nil {
			u = map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
		}
		if !e.send("", map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_llmtest", "choices": []any{}, "usage": u,
		}) {
			return
		}
	}
	e.send("", "[DONE]")
}
