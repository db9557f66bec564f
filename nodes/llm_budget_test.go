package nodes

import (
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes/llm"
)

// llmReserve: with.reserve wins (counted as output); else max_tokens
// (default 4096) as output plus one input token per 4 bytes of system,
// messages and tools.
func TestLLMReserve(t *testing.T) {
	prompt := strings.Repeat("x", 400)
	tests := []struct {
		name    string
		with    map[string]any
		req     llm.Request
		want    TokenUsage
		wantErr bool
	}{
		{"declared", map[string]any{"reserve": 123}, llm.Request{MaxTokens: 500}, TokenUsage{Output: 123}, false},
		{"max_tokens plus prompt", nil, llm.Request{MaxTokens: 200, Messages: []llm.Message{{Content: prompt}}}, TokenUsage{Input: 100, Output: 200}, false},
		{"default max_tokens", nil, llm.Request{System: "abcd", Messages: []llm.Message{{Content: "abcd"}}}, TokenUsage{Input: 2, Output: llm.DefaultMaxTokens}, false},
		{"bad reserve", map[string]any{"reserve": 0}, llm.Request{}, TokenUsage{}, true},
		{"fractional reserve", map[string]any{"reserve": 1.5}, llm.Request{}, TokenUsage{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := llmReserve(tt.with, tt.req)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("llmReserve = %+v, %v; want %+v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
