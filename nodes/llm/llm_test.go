package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/llmtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "sk-test-SECRET-0123456789"

var kinds = []string{KindOpenAI, KindAnthropic}

// client returns a Client of kind talking to srv over its own transport.
func client(t *testing.T, srv *llmtest.Server, kind string) Client {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	base := srv.OpenAIURL()
	if kind == KindAnthropic {
		base = srv.AnthropicURL()
	}
	c, err := New(Config{Kind: kind, BaseURL: base, APIKey: testKey, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStreamsTextInOrder(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{
				Chunks: []string{"Hel", "lo, ", "wor", "ld"},
				Usage:  &llmtest.Usage{InputTokens: 11, OutputTokens: 4},
				Model:  "served-model",
			})
			var got []string
			resp, err := client(t, srv, kind).Complete(ctx(t), Request{
				Model: "m1", Messages: []Message{{Role: RoleUser, Content: "hi"}},
			}, func(s string) { got = append(got, s) })
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"Hel", "lo, ", "wor", "ld"}; !reflect.DeepEqual(got, want) {
				t.Errorf("tokens = %q, want %q", got, want)
			}
			wantFinish := map[string]string{KindOpenAI: "stop", KindAnthropic: "end_turn"}[kind]
			if resp.Content != "Hello, world" || resp.Message.Content != "Hello, world" || resp.Message.Role != RoleAssistant {
				t.Errorf("content = %q, message = %+v", resp.Content, resp.Message)
			}
			if resp.FinishReason != wantFinish {
				t.Errorf("finish_reason = %q, want %q", resp.FinishReason, wantFinish)
			}
			if resp.Usage != (Usage{InputTokens: 11, OutputTokens: 4}) {
				t.Errorf("usage = %+v", resp.Usage)
			}
			if resp.Model != "served-model" {
				t.Errorf("model = %q", resp.Model)
			}
			// The provider's response id, for gen_ai.response.id.
			if wantID := map[string]string{KindOpenAI: "chatcmpl-llmtest1", KindAnthropic: "msg_llmtest1"}[kind]; resp.ID != wantID {
				t.Errorf("response id = %q, want %q", resp.ID, wantID)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || !reqs[0].Stream {
				t.Fatalf("requests = %d, stream = %v", len(reqs), len(reqs) == 1 && reqs[0].Stream)
			}
			r := reqs[0]
			if r.Body["model"] != "m1" {
				t.Errorf("model sent = %v", r.Body["model"])
			}
			switch kind {
			case KindOpenAI:
				if r.Header.Get("Authorization") != "Bearer "+testKey {
					t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
				}
				if so, _ := r.Body["stream_options"].(map[string]any); so["include_usage"] != true {
					t.Errorf("stream_options = %v", r.Body["stream_options"])
				}
			case KindAnthropic:
				if r.Header.Get("X-Api-Key") != testKey {
					t.Errorf("x-api-key = %q", r.Header.Get("X-Api-Key"))
				}
				if r.Body["max_tokens"] != float64(DefaultMaxTokens) {
					t.Errorf("max_tokens = %v", r.Body["max_tokens"])
				}
			}
		})
	}
}

func TestParallelToolCalls(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{
				Text: "Checking.",
				ToolCalls: []llmtest.ToolCall{
					{ID: "call_a", Name: "weather", Arguments: `{"city":"Paris","days":[1,2]}`},
					{ID: "call_b", Name: "time", Arguments: `{"zone":"Europe/Paris"}`},
					{ID: "call_c", Name: "noargs"},
				},
			})
			resp, err := client(t, srv, kind).Complete(ctx(t), Request{
				Model: "m", Messages: []Message{{Role: RoleUser, Content: "go"}},
				Tools: []Tool{{Name: "weather"}, {Name: "time"}, {Name: "noargs"}},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := []ToolCall{
				{ID: "call_a", Name: "weather", Arguments: map[string]any{"city": "Paris", "days": []any{1.0, 2.0}}},
				{ID: "call_b", Name: "time", Arguments: map[string]any{"zone": "Europe/Paris"}},
				{ID: "call_c", Name: "noargs", Arguments: map[string]any{}},
			}
			if !reflect.DeepEqual(resp.ToolCalls, want) || !reflect.DeepEqual(resp.Message.ToolCalls, want) {
				t.Errorf("tool calls = %#v", resp.ToolCalls)
			}
			if resp.Content != "Checking." {
				t.Errorf("content = %q", resp.Content)
			}
			wantFinish := map[string]string{KindOpenAI: "tool_calls", KindAnthropic: "tool_use"}[kind]
			if resp.FinishReason != wantFinish {
				t.Errorf("finish_reason = %q", resp.FinishReason)
			}
		})
	}
}

// conversation is an agent loop's history: a question, an assistant turn
// with two parallel calls, and both results.
var conversation = Request{
	Model:  "m",
	System: "Be brief.",
	Messages: []Message{
		{Role: RoleUser, Content: "Weather and time in Paris?"},
		{Role: RoleAssistant, ToolCalls: []ToolCall{
			{ID: "c1", Name: "weather", Arguments: map[string]any{"city": "Paris"}},
			{ID: "c2", Name: "time", Arguments: map[string]any{"zone": "CET"}},
		}},
		{Role: RoleTool, ToolCallID: "c1", Name: "weather", Content: "sunny"},
		{Role: RoleTool, ToolCallID: "c2", Name: "time", Content: "12:00"},
		{Role: RoleAssistant, Content: "Sunny, noon."},
		{Role: RoleUser, Content: "Thanks"},
	},
	Tools: []Tool{{
		Name: "weather", Description: "Weather of a city",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []any{"city"}},
	}},
	Temperature: ptr(0.5),
	MaxTokens:   100,
}

func ptr[T any](v T) *T { return &v }

func TestRequestShape(t *testing.T) {
	want := map[string]string{
		KindOpenAI: `{
			"messages": [
				{"role":"system","content":"Be brief."},
				{"role":"user","content":"Weather and time in Paris?"},
				{"role":"assistant","tool_calls":[
					{"id":"c1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"c2","type":"function","function":{"name":"time","arguments":"{\"zone\":\"CET\"}"}}]},
				{"role":"tool","content":"sunny","tool_call_id":"c1"},
				{"role":"tool","content":"12:00","tool_call_id":"c2"},
				{"role":"assistant","content":"Sunny, noon."},
				{"role":"user","content":"Thanks"}],
			"model":"m",
			"max_completion_tokens":100,
			"temperature":0.5,
			"stream":true,
			"stream_options":{"include_usage":true},
			"tools":[{"type":"function","function":{"name":"weather","description":"Weather of a city",
				"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]
		}`,
		KindAnthropic: `{
			"system":[{"type":"text","text":"Be brief."}],
			"messages": [
				{"role":"user","content":[{"type":"text","text":"Weather and time in Paris?"}]},
				{"role":"assistant","content":[
					{"type":"tool_use","id":"c1","name":"weather","input":{"city":"Paris"}},
					{"type":"tool_use","id":"c2","name":"time","input":{"zone":"CET"}}]},
				{"role":"user","content":[
					{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"sunny"}]},
					{"type":"tool_result","tool_use_id":"c2","content":[{"type":"text","text":"12:00"}]}]},
				{"role":"assistant","content":[{"type":"text","text":"Sunny, noon."}]},
				{"role":"user","content":[{"type":"text","text":"Thanks"}]}],
			"model":"m",
			"max_tokens":100,
			"temperature":0.5,
			"stream":true,
			"tools":[{"name":"weather","description":"Weather of a city",
				"input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]
		}`,
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{Text: "ok"})
			if _, err := client(t, srv, kind).Complete(ctx(t), conversation, nil); err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, srv.Requests()[0].Raw, want[kind])
		})
	}
}

func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v", err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.MarshalIndent(g, "", "  ")
		wb, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("body mismatch\n got: %s\nwant: %s", gb, wb)
	}
}

func TestStructuredOutputRequest(t *testing.T) {
	loose := map[string]any{"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}}
	strict := map[string]any{"title": "Answer", "type": "object", "additionalProperties": false,
		"properties": map[string]any{"n": map[string]any{"type": "integer"}}, "required": []any{"n"}}
	tests := []struct {
		kind, name string
		schema     map[string]any
		key        string
		want       string
	}{
		{KindOpenAI, "loose", loose, "response_format",
			`{"type":"json_schema","json_schema":{"name":"response","strict":false,"schema":{"type":"object","properties":{"n":{"type":"integer"}}}}}`},
		{KindOpenAI, "strict", strict, "response_format",
			`{"type":"json_schema","json_schema":{"name":"Answer","strict":true,"schema":{"title":"Answer","type":"object","additionalProperties":false,"properties":{"n":{"type":"integer"}},"required":["n"]}}}`},
		{KindAnthropic, "loose", loose, "output_config",
			`{"format":{"type":"json_schema","schema":{"type":"object","additionalProperties":false,"properties":{"n":{"type":"integer"}}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.name, func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{Text: `{"n":1}`})
			resp, err := client(t, srv, tt.kind).Complete(ctx(t), Request{
				Model: "m", Messages: []Message{{Role: RoleUser, Content: "n?"}}, JSONSchema: tt.schema,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Content != `{"n":1}` {
				t.Errorf("content = %q", resp.Content)
			}
			got, _ := json.Marshal(srv.Requests()[0].Body[tt.key])
			assertJSONEqual(t, got, tt.want)
		})
	}
	if _, ok := strict["additionalProperties"]; !ok || len(loose) != 2 {
		t.Error("the request mapping modified the caller's schema")
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		reply      llmtest.Reply
		status     int
		retryAfter time.Duration
	}{
		{llmtest.Reply{Status: 400, ErrorMessage: "bad model"}, 400, 0},
		{llmtest.Reply{Status: 401, ErrorMessage: "Incorrect API key provided: " + testKey}, 401, 0},
		{llmtest.Reply{Status: 500}, 500, 0},
		{llmtest.Reply{Status: 429, RetryAfter: "7"}, 429, 7 * time.Second},
		{llmtest.Reply{Status: 503, RetryAfter: "2"}, 503, 2 * time.Second},
	}
	for _, kind := range kinds {
		for _, tt := range tests {
			t.Run(kind+"/"+http.StatusText(tt.status), func(t *testing.T) {
				srv := llmtest.New(t, tt.reply, llmtest.Reply{Text: "a retry would get this"})
				_, err := client(t, srv, kind).Complete(ctx(t), Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: "x"}}}, nil)
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("err = %v (%T), want *Error", err, err)
				}
				if e.Kind != ErrStatus || e.Status != tt.status || e.RetryAfter != tt.retryAfter {
					t.Errorf("kind=%s status=%d retryAfter=%v, want status %d, %v", e.Kind, e.Status, e.RetryAfter, tt.status, tt.retryAfter)
				}
				if strings.Contains(err.Error(), testKey) {
					t.Errorf("error text leaks the API key: %s", err)
				}
				if tt.reply.ErrorMessage != "" && !strings.Contains(err.Error(), strings.ReplaceAll(tt.reply.ErrorMessage, testKey, "***")) {
					t.Errorf("error text %q lacks the provider's message", err)
				}
				if n := len(srv.Requests()); n != 1 {
					t.Errorf("server saw %d requests, want 1 (SDK retries must be off)", n)
				}
			})
		}
	}
}

func TestTransportErrors(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind+"/stream cut", func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{Text: "a long answer that never ends", CutAfter: 5})
			var tokens int
			_, err := client(t, srv, kind).Complete(ctx(t), Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: "x"}}},
				func(string) { tokens++ })
			var e *Error
			if !errors.As(err, &e) || e.Kind != ErrNetwork {
				t.Fatalf("err = %v, want a network *Error", err)
			}
			if tokens == 0 {
				t.Error("no token arrived before the cut")
			}
		})
		t.Run(kind+"/refused", func(t *testing.T) {
			srv := llmtest.New(t)
			c := client(t, srv, kind)
			srv.Close()
			_, err := c.Complete(ctx(t), Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: "x"}}}, nil)
			var e *Error
			if !errors.As(err, &e) || e.Kind != ErrNetwork {
				t.Fatalf("err = %v, want a network *Error", err)
			}
		})
		t.Run(kind+"/deadline", func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{Text: "slow", Delay: 5 * time.Second})
			c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := client(t, srv, kind).Complete(c, Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: "x"}}}, nil)
			var e *Error
			if !errors.As(err, &e) || e.Kind != ErrTimeout {
				t.Fatalf("err = %v, want a timeout *Error", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v to honour the deadline", d)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	if _, err := New(Config{Kind: "gemini"}); err == nil || !strings.Contains(err.Error(), "gemini") {
		t.Errorf("err = %v", err)
	}
}

func TestStrictCompatible(t *testing.T) {
	obj := func(extra map[string]any) map[string]any {
		m := map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "string"}}, "required": []any{"a"}, "additionalProperties": false}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		schema map[string]any
		want   bool
	}{
		{"closed object", obj(nil), true},
		{"open object", obj(map[string]any{"additionalProperties": true}), false},
		{"no additionalProperties", map[string]any{"type": "object", "properties": map[string]any{}}, false},
		{"optional property", obj(map[string]any{"required": []any{}}), false},
		{"nested open", obj(map[string]any{"properties": map[string]any{"a": map[string]any{"type": "object", "properties": map[string]any{}}}}), false},
		{"array of closed", map[string]any{"type": "array", "items": obj(nil)}, true},
		{"string", map[string]any{"type": "string"}, true},
	}
	for _, tt := range tests {
		if got := StrictCompatible(tt.schema); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {" 10 ", 10 * time.Second}, {"0", 0}, {"-5", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		// Huge values saturate instead of overflowing into a negative delay.
		{"10000000000", time.Duration(math.MaxInt64)},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestInStreamErrors(t *testing.T) {
	tests := []struct {
		kind, errType string
		wantKind      string
		wantStatus    int
	}{
		{KindAnthropic, "overloaded_error", ErrStatus, 529},
		{KindAnthropic, "invalid_request_error", ErrProvider, 0},
		{KindOpenAI, "server_error", ErrProvider, 0},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.errType, func(t *testing.T) {
			srv := llmtest.New(t, llmtest.Reply{Text: "partial", StreamError: tt.errType})
			var tokens []string
			_, err := client(t, srv, tt.kind).Complete(ctx(t), Request{Model: "m", Messages: []Message{{Role: RoleUser, Content: "x"}}},
				func(s string) { tokens = append(tokens, s) })
			var e *Error
			if !errors.As(err, &e) || e.Kind != tt.wantKind || e.Status != tt.wantStatus {
				t.Fatalf("err = %v (%+v), want kind %s status %d", err, e, tt.wantKind, tt.wantStatus)
			}
			if !strings.Contains(err.Error(), tt.errType) {
				t.Errorf("error text %q does not name %s", err, tt.errType)
			}
			if strings.Join(tokens, "") != "partial" {
				t.Errorf("tokens before the error = %q", tokens)
			}
		})
	}
}

// TestOpenAICompatibleToolCallsAtIndexZero covers servers that send each
// tool call whole, all at index 0 (seen in some OpenAI-compatible servers).
func TestOpenAICompatibleToolCallsAtIndexZero(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, d := range []string{
			`{"id":"x","object":"chat.completion.chunk","created":1,"model":"llama","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"n\":1}"}}]},"finish_reason":null}]}`,
			`{"id":"x","object":"chat.completion.chunk","created":1,"model":"llama","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"n\":2}"}}]},"finish_reason":null}]}`,
			`{"id":"x","object":"chat.completion.chunk","created":1,"model":"llama","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
			`[DONE]`,
		} {
			fmt.Fprintf(w, "data: %s\n\n", d)
		}
	}))
	defer hs.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c, _ := New(Config{Kind: KindOpenAI, BaseURL: hs.URL + "/v1", APIKey: "k", HTTPClient: hc})
	resp, err := c.Complete(ctx(t), Request{Model: "llama", Messages: []Message{{Role: RoleUser, Content: "x"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []ToolCall{{ID: "call_a", Name: "f", Arguments: map[string]any{"n": 1.0}}, {ID: "call_b", Name: "g", Arguments: map[string]any{"n": 2.0}}}
	if !reflect.DeepEqual(resp.ToolCalls, want) {
		t.Errorf("tool calls = %#v", resp.ToolCalls)
	}
}
