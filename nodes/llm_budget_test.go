package nodes

import (
	"strings"
	"testing"

	"github.com/lgx-run/lgx/nodes/llm"
)

// llmReserve: with.reserve wins; else max_tokens (default 4096) plus one
// token per 4 bytes of system, messages and tools.
func TestLLMReserve(t *testing.T) {
	prompt := strings.Repeat("x", 400)
	tests := []struct {
		name    string
		with    map[string]any
		req     llm.Request
		want    int
		wantErr bool
	}{
		{"declared", map[string]any{"reserve": 123}, llm.Request{MaxTokens: 500}, 123, false},
		{"max_tokens plus prompt", nil, llm.Request{MaxTokens: 200, Messages: []llm.Message{{Content: prompt}}}, 300, false},
		{"default max_tokens", nil, llm.Request{System: "abcd", Messages: []llm.Message{{Content: "abcd"}}}, llm.DefaultMaxTokens + 2, false},
		{"bad reserve", map[string]any{"reserve": 0}, llm.Request{}, 0, true},
		{"fractional reserve", map[string]any{"reserve": 1.5}, llm.Request{}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := llmReserve(tt.with, tt.req)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("llmReserve = %d, %v; want %d (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
