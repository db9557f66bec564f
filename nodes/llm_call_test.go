package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lgx-run/lgx/internal/llmtest"
	"go.uber.org/goleak"
)

const llmTestKey = "sk-llmcall-SECRET-42"

// llmTestHost is a Host with one provider and some tools; it records
// tokens.
type llmTestHost struct {
	provider Provider
	tools    map[string]ToolSpec
	hc       *http.Client

	mu     sync.Mutex
	tokens []string
}

func (h *llmTestHost) HTTPClient() *http.Client { return h.hc }
func (h *llmTestHost) IdempotencyKey() string   { return "run:node:0" }
func (h *llmTestHost) Token(s string) {
	h.mu.Lock()
	h.tokens = append(h.tokens, s)
	h.mu.Unlock()
}
func (h *llmTestHost) Provider(name string) (*Provider, error) {
	if name != h.provider.Name {
		return nil, Errorf(KindInput, "unknown provider %q", name)
	}
	p := h.provider
	return &p, nil
}
func (h *llmTestHost) List(names []string) ([]ToolSpec, error) {
	var out []ToolSpec
	for _, n := range names {
		s, ok := h.tools[n]
		if !ok {
			return nil, Errorf(KindInput, "unknown tool %q", n)
		}
		out = append(out, s)
	}
	return out, nil
}
func (h *llmTestHost) Call(context.Context, ToolCall) (any, error) {
	return nil, errors.New("not used")
}

var weatherTool = ToolSpec{
	Name: "weather", Description: "Weather in a city",
	Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []any{"city"}},
}

// newLLMEnv starts a fake provider of kind and a host pointing at it.
func newLLMEnv(t *testing.T, kind string, replies ...llmtest.Reply) (*llmtest.Server, *llmTestHost) {
	t.Helper()
	opts := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opts) })
	srv := llmtest.New(t, replies...)
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	base := srv.OpenAIURL()
	if kind == "anthropic" {
		base = srv.AnthropicURL()
	}
	return srv, &llmTestHost{
		provider: Provider{Name: "default", Kind: kind, Model: "test-model", BaseURL: base, APIKey: llmTestKey},
		tools:    map[string]ToolSpec{"weather": weatherTool},
		hc:       hc,
	}
}

// runLLM prepares (from the static fields, as the runner does) and runs one
// llm_call invocation.
func runLLM(t *testing.T, host Host, with map[string]any) (map[string]any, error) {
	t.Helper()
	typ, ok := Lookup("llm_call")
	if !ok {
		t.Fatal("llm_call is not registered")
	}
	static := map[string]any{}
	for _, f := range typ.Doc().With {
		if v, ok := with[f.Name]; ok && f.Static {
			static[f.Name] = v
		}
	}
	prep, err := typ.(Preparer).Prepare(static)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inv := &Invocation{Node: "ask", Index: -1, Attempt: 1, With: with, Prepared: prep, Host: host}
	if ts, ok := host.(ToolSource); ok {
		inv.Tools = ts
	}
	res, err := typ.Run(ctx, inv)
	if err != nil {
		return nil, err
	}
	assertJSONLike(t, res)
	m, ok := res.(map[string]any)
	if !ok {
		t.Fatalf("result is %T, want an object", res)
	}
	return m, nil
}

// assertJSONLike fails unless v is made of JSON-like Go values only.
func assertJSONLike(t *testing.T, v any) {
	t.Helper()
	switch x := v.(type) {
	case nil, bool, int, float64, string:
	case []any:
		for _, e := range x {
			assertJSONLike(t, e)
		}
	case map[string]any:
		for _, e := range x {
			assertJSONLike(t, e)
		}
	default:
		t.Fatalf("result holds a %T, not a JSON-like value", v)
	}
}

func TestLLMCallResult(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) {
			srv, host := newLLMEnv(t, kind, llmtest.Reply{
				Chunks: []string{"Par", "is ", "is sunny."},
				Usage:  &llmtest.Usage{InputTokens: 20, OutputTokens: 5},
			})
			res, err := runLLM(t, host, map[string]any{
				"system": "Answer briefly.", "prompt": "Weather in Paris?", "temperature": 0.2, "max_tokens": 50,
			})
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := res["message"].(map[string]any)
			if id, ok := msg["id"]; ok {
				t.Errorf("message id = %v, want none (the runner derives one from the path)", id)
			}
			finish := map[string]string{"openai": "stop", "anthropic": "end_turn"}[kind]
			want := map[string]any{
				"content":       "Paris is sunny.",
				"message":       map[string]any{"role": "assistant", "content": "Paris is sunny.", "tool_calls": []any{}},
				"tool_calls":    []any{},
				"json":          nil,
				"usage":         map[string]any{"input_tokens": 20, "output_tokens": 5},
				"finish_reason": finish,
				"model":         "test-model",
				"provider":      "default",
			}
			if !reflect.DeepEqual(res, want) {
				t.Errorf("result = %#v\nwant %#v", res, want)
			}
			if want := []string{"Par", "is ", "is sunny."}; !reflect.DeepEqual(host.tokens, want) {
				t.Errorf("tokens = %q, want %q", host.tokens, want)
			}
			body := srv.Requests()[0].Body
			raw, _ := json.Marshal(body)
			for _, s := range []string{"Answer briefly.", "Weather in Paris?", `"temperature":0.2`, `"test-model"`} {
				if !strings.Contains(string(raw), s) {
					t.Errorf("request lacks %s: %s", s, raw)
				}
			}
		})
	}
}

func TestLLMCallModelOverride(t *testing.T) {
	srv, host := newLLMEnv(t, "openai", llmtest.Reply{Text: "ok"})
	if _, err := runLLM(t, host, map[string]any{"model": "other", "prompt": "x"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Requests()[0].Body["model"]; got != "other" {
		t.Errorf("model sent = %v", got)
	}
}

func TestLLMCallToolCalls(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) {
			srv, host := newLLMEnv(t, kind, llmtest.Reply{ToolCalls: []llmtest.ToolCall{
				{ID: "call_1", Name: "weather", Arguments: `{"city":"Paris"}`},
				{ID: "call_2", Name: "weather", Arguments: `{"city":"Rome"}`},
			}})
			res, err := runLLM(t, host, map[string]any{"prompt": "Paris and Rome?", "tools": []any{"weather"}})
			if err != nil {
				t.Fatal(err)
			}
			want := []any{
				map[string]any{"id": "call_1", "name": "weather", "arguments": map[string]any{"city": "Paris"}},
				map[string]any{"id": "call_2", "name": "weather", "arguments": map[string]any{"city": "Rome"}},
			}
			if !reflect.DeepEqual(res["tool_calls"], want) {
				t.Errorf("tool_calls = %#v", res["tool_calls"])
			}
			if msg := res["message"].(map[string]any); !reflect.DeepEqual(msg["tool_calls"], want) {
				t.Errorf("message.tool_calls = %#v", msg["tool_calls"])
			}
			raw := string(srv.Requests()[0].Raw)
			if !strings.Contains(raw, `"name":"weather"`) || !strings.Contains(raw, `"description":"Weather in a city"`) {
				t.Errorf("tools not offered: %s", raw)
			}
		})
	}
}

// TestLLMCallInvalidToolArguments: arguments a model writes that are not
// a JSON object (a small model's truncated output) do not fail the call:
// the call is kept with its text, the tools node answers it with an
// error the model can act on (SPEC §5.5), and the text goes back to the
// provider as the model wrote it (Anthropic, whose input is an object,
// gets {}).
func TestLLMCallInvalidToolArguments(t *testing.T) {
	const bad = `{"city": "Par`
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) {
			srv, host := newLLMEnv(t, kind,
				llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_1", Name: "weather", Arguments: bad}}},
				llmtest.Reply{Text: "Sorry."})
			user := map[string]any{"role": "user", "content": "Paris?"}
			first, err := runLLM(t, host, map[string]any{"messages": []any{user}, "tools": []any{"weather"}})
			if err != nil {
				t.Fatalf("a tool call with unreadable arguments failed the call: %v", err)
			}
			want := []any{map[string]any{"id": "call_1", "name": "weather", "arguments": map[string]any{}, "invalid_arguments": bad}}
			if !reflect.DeepEqual(first["tool_calls"], want) {
				t.Fatalf("tool_calls = %#v", first["tool_calls"])
			}
			calls, err := toolsCalls(first["tool_calls"])
			if err != nil || len(calls) != 1 || calls[0].argErr == nil ||
				!strings.Contains(calls[0].argErr.Error(), "arguments are not a JSON object: "+bad) {
				t.Fatalf("the tools node reads the call as %+v, %v", calls, err)
			}
			toolMsg := map[string]any{"role": "tool", "tool_call_id": "call_1", "name": "weather", "content": "error: invalid arguments"}
			if _, err := runLLM(t, host, map[string]any{"messages": []any{user, first["message"], toolMsg}, "tools": []any{"weather"}}); err != nil {
				t.Fatal(err)
			}
			msgs := srv.Requests()[1].Messages()
			prev, _ := json.Marshal(msgs[len(msgs)-2])
			wantSent := map[string]string{"openai": `"arguments":"{\"city\": \"Par"`, "anthropic": `"input":{}`}[kind]
			if !strings.Contains(string(prev), wantSent) {
				t.Errorf("assistant message sent as %s, want it to hold %s", prev, wantSent)
			}
		})
	}
}

// TestLLMCallAgentLoop feeds the result's message and tool messages back
// as SPEC message objects and checks the provider sees a faithful history.
func TestLLMCallAgentLoop(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) {
			srv, host := newLLMEnv(t, kind)
			srv.SetResponder(llmtest.AgentResponder([]llmtest.ToolCall{{Name: "weather", Arguments: `{"city":"Oslo"}`}}, "Cold."))
			user := map[string]any{"role": "user", "content": "Oslo?"}
			first, err := runLLM(t, host, map[string]any{"messages": []any{user}, "tools": []any{"weather"}})
			if err != nil {
				t.Fatal(err)
			}
			call := first["tool_calls"].([]any)[0].(map[string]any)
			toolMsg := map[string]any{"role": "tool", "tool_call_id": call["id"], "name": "weather", "content": `{"temp":-3}`}
			second, err := runLLM(t, host, map[string]any{"messages": []any{user, first["message"], toolMsg}, "tools": []any{"weather"}})
			if err != nil {
				t.Fatal(err)
			}
			if second["content"] != "Cold." {
				t.Errorf("content = %v", second["content"])
			}
			msgs := srv.Requests()[1].Messages()
			last, _ := json.Marshal(msgs[len(msgs)-1])
			prev, _ := json.Marshal(msgs[len(msgs)-2])
			switch kind {
			case "openai":
				wantLast := `{"content":"{\"temp\":-3}","role":"tool","tool_call_id":"` + call["id"].(string) + `"}`
				if string(last) != wantLast {
					t.Errorf("tool message sent as %s, want %s", last, wantLast)
				}
				if !strings.Contains(string(prev), `"arguments":"{\"city\":\"Oslo\"}"`) {
					t.Errorf("assistant message sent as %s", prev)
				}
			case "anthropic":
				wantLast := `{"content":[{"content":[{"text":"{\"temp\":-3}","type":"text"}],"tool_use_id":"` + call["id"].(string) + `","type":"tool_result"}],"role":"user"}`
				if string(last) != wantLast {
					t.Errorf("tool message sent as %s, want %s", last, wantLast)
				}
				if !strings.Contains(string(prev), `"input":{"city":"Oslo"}`) {
					t.Errorf("assistant message sent as %s", prev)
				}
			}
		})
	}
}

func TestLLMCallStructuredOutput(t *testing.T) {
	schema := map[string]any{
		"type":       "object",
		"properties": map[string]any{"score": map[string]any{"type": "number", "minimum": 0, "maximum": 1}},
		"required":   []any{"score"},
	}
	tests := []struct {
		name, answer string
		wantJSON     any
		wantErr      string
	}{
		{"fits", `{"score": 0.9}`, map[string]any{"score": 0.9}, ""},
		{"fenced", "```json\n{\"score\": 0.5}\n```", map[string]any{"score": 0.5}, ""},
		{"out of range", `{"score": 3}`, nil, "does not match response_format.json_schema"},
		{"missing key", `{}`, nil, `missing properties: ["score"]`},
		{"not JSON", `Sure! The score is high.`, nil, "not JSON"},
	}
	for _, kind := range []string{"openai", "anthropic"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				_, host := newLLMEnv(t, kind, llmtest.Reply{Text: tt.answer})
				res, err := runLLM(t, host, map[string]any{"prompt": "score it", "response_format": map[string]any{"json_schema": schema}})
				if tt.wantErr != "" {
					var e *Error
					if !errors.As(err, &e) || e.Kind != KindSchema || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want a schema error containing %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(res["json"], tt.wantJSON) {
					t.Errorf("json = %#v, want %#v", res["json"], tt.wantJSON)
				}
			})
		}
	}
}

func TestLLMCallErrors(t *testing.T) {
	tests := []struct {
		name       string
		reply      llmtest.Reply
		kind       Kind
		status     int
		retryAfter time.Duration
		matches    []string
	}{
		{"429", llmtest.Reply{Status: 429, RetryAfter: "3"}, KindStatus, 429, 3 * time.Second, []string{"429", "4xx", "status"}},
		{"500", llmtest.Reply{Status: 500}, KindStatus, 500, 0, []string{"5xx"}},
		{"401", llmtest.Reply{Status: 401, ErrorMessage: "invalid x-api-key " + llmTestKey}, KindStatus, 401, 0, []string{"401"}},
		{"400", llmtest.Reply{Status: 400, ErrorMessage: "model not found"}, KindStatus, 400, 0, []string{"4xx"}},
		{"cut", llmtest.Reply{Text: "partial answer here", CutAfter: 4}, KindNetwork, 0, 0, []string{"network"}},
	}
	for _, kind := range []string{"openai", "anthropic"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				srv, host := newLLMEnv(t, kind, tt.reply)
				_, err := runLLM(t, host, map[string]any{"prompt": "x"})
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("err = %v (%T), want *nodes.Error", err, err)
				}
				if e.Kind != tt.kind || e.Status != tt.status || e.RetryAfter != tt.retryAfter {
					t.Errorf("kind=%s status=%d retry_after=%v, want %s %d %v", e.Kind, e.Status, e.RetryAfter, tt.kind, tt.status, tt.retryAfter)
				}
				for _, on := range tt.matches {
					if !Matches(err, on) {
						t.Errorf("retry.on %q does not match %v", on, err)
					}
				}
				if strings.Contains(err.Error(), llmTestKey) {
					t.Errorf("error leaks the API key: %v", err)
				}
				if n := len(srv.Requests()); n != 1 {
					t.Errorf("%d requests, want 1", n)
				}
			})
		}
	}
}

func TestLLMCallInputErrors(t *testing.T) {
	tests := []struct {
		name string
		with map[string]any
		want string
	}{
		{"no prompt", map[string]any{}, "prompt or with.messages is required"},
		{"both", map[string]any{"prompt": "a", "messages": []any{}}, "not both"},
		{"bad role", map[string]any{"messages": []any{map[string]any{"role": "robot", "content": "x"}}}, "role must be"},
		{"tool without id", map[string]any{"messages": []any{map[string]any{"role": "tool", "content": "x"}}}, "tool_call_id"},
		{"bad arguments", map[string]any{"messages": []any{map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{"id": "1", "name": "f", "arguments": "{oops"}}}}}, "not a JSON object"},
		{"bad temperature", map[string]any{"prompt": "x", "temperature": "hot"}, "temperature must be a number"},
		{"bad max_tokens", map[string]any{"prompt": "x", "max_tokens": 1.5}, "max_tokens must be a positive integer"},
		{"unknown provider", map[string]any{"provider": "nope", "prompt": "x"}, `unknown provider "nope"`},
		{"unknown tool", map[string]any{"prompt": "x", "tools": []any{"nope"}}, `unknown tool "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, host := newLLMEnv(t, "openai")
			_, err := runLLM(t, host, tt.with)
			if err == nil || !strings.Contains(err.Error(), tt.want) || KindOf(err) != KindInput {
				t.Fatalf("err = %v (kind %q), want an input error containing %q", err, KindOf(err), tt.want)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("%d requests sent for invalid input", n)
			}
		})
	}
	t.Run("no model", func(t *testing.T) {
		_, host := newLLMEnv(t, "openai")
		host.provider.Model = ""
		if _, err := runLLM(t, host, map[string]any{"prompt": "x"}); err == nil || !strings.Contains(err.Error(), "no model") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLLMCallPrepare(t *testing.T) {
	typ, _ := Lookup("llm_call")
	p := typ.(Preparer)
	tests := []struct {
		name   string
		static map[string]any
		want   string
	}{
		{"ok", map[string]any{"provider": "default", "tools": []any{"a"}, "response_format": map[string]any{"json_schema": map[string]any{"type": "object"}}}, ""},
		{"tools not a list", map[string]any{"tools": "a"}, "with.tools"},
		{"bad schema", map[string]any{"response_format": map[string]any{"json_schema": map[string]any{"type": 5}}}, "invalid schema"},
		{"unknown format field", map[string]any{"response_format": map[string]any{"schema": map[string]any{}}}, `unknown field "schema"`},
		{"provider not a name", map[string]any{"provider": 3}, "provider name"},
	}
	for _, tt := range tests {
		_, err := p.Prepare(tt.static)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}
