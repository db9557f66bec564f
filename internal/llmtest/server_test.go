package llmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go/v3"
	ooption "github.com/openai/openai-go/v3/option"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func httpClient(t *testing.T) *http.Client {
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// post sends a raw JSON request and returns the response.
func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := httpClient(t).Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sse splits an event stream into (event, data) pairs.
func sse(t *testing.T, r io.Reader) (events []string, data []string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	ev := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			ev = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			events = append(events, ev)
			data = append(data, strings.TrimPrefix(line, "data: "))
			ev = ""
		case line == "":
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	return events, data
}

func TestOpenAIStreamWire(t *testing.T) {
	for _, includeUsage := range []bool{true, false} {
		srv := New(t, Reply{
			Chunks:    []string{"Hi", "!"},
			ToolCalls: []ToolCall{{ID: "call_x", Name: "f", Arguments: `{"a":"bcdefghij"}`}},
			Usage:     &Usage{InputTokens: 3, OutputTokens: 2},
		})
		body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]`
		if includeUsage {
			body += `,"stream_options":{"include_usage":true}`
		}
		resp := post(t, srv.OpenAIURL()+"/chat/completions", body+"}")
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("content type %q", ct)
		}
		events, data := sse(t, resp.Body)
		for _, e := range events {
			if e != "" {
				t.Errorf("OpenAI streams carry no event: lines, got %q", e)
			}
		}
		if data[len(data)-1] != "[DONE]" {
			t.Fatalf("last data = %q, want [DONE]", data[len(data)-1])
		}
		var chunks []map[string]any
		for _, d := range data[:len(data)-1] {
			var c map[string]any
			if err := json.Unmarshal([]byte(d), &c); err != nil {
				t.Fatalf("chunk %q: %v", d, err)
			}
			if c["object"] != "chat.completion.chunk" || c["model"] != "m" {
				t.Errorf("chunk header %v", c)
			}
			chunks = append(chunks, c)
		}
		delta := func(i int) map[string]any {
			return chunks[i]["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)
		}
		if d := delta(0); d["role"] != "assistant" {
			t.Errorf("first delta %v", d)
		}
		if d := delta(1); d["content"] != "Hi" {
			t.Errorf("text delta %v", d)
		}
		tc := delta(3)["tool_calls"].([]any)[0].(map[string]any)
		if tc["index"] != 0.0 || tc["id"] != "call_x" || tc["type"] != "function" || tc["function"].(map[string]any)["name"] != "f" {
			t.Errorf("tool call start %v", tc)
		}
		var args string
		i := 4
		for ; ; i++ {
			tcs, ok := delta(i)["tool_calls"].([]any)
			if !ok {
				break
			}
			frag := tcs[0].(map[string]any)
			if _, hasID := frag["id"]; hasID {
				t.Errorf("argument fragment repeats the id: %v", frag)
			}
			args += frag["function"].(map[string]any)["arguments"].(string)
		}
		if args != `{"a":"bcdefghij"}` || i < 6 {
			t.Errorf("arguments %q in %d fragments", args, i-4)
		}
		if fr := chunks[i]["choices"].([]any)[0].(map[string]any)["finish_reason"]; fr != "tool_calls" {
			t.Errorf("finish chunk %v", chunks[i])
		}
		if includeUsage {
			last := chunks[len(chunks)-1]
			if len(last["choices"].([]any)) != 0 || last["usage"].(map[string]any)["prompt_tokens"] != 3.0 {
				t.Errorf("usage chunk %v", last)
			}
			if i != len(chunks)-2 {
				t.Errorf("usage chunk is not right after the finish chunk")
			}
		} else if i != len(chunks)-1 {
			t.Errorf("a usage chunk was sent without stream_options.include_usage")
		}
	}
}

func TestAnthropicStreamWire(t *testing.T) {
	srv := New(t, Reply{
		Text:      "Hello",
		ToolCalls: []ToolCall{{Name: "a", Arguments: `{"x":1}`}, {Name: "b"}},
		Usage:     &Usage{InputTokens: 9, OutputTokens: 4},
	})
	resp := post(t, srv.AnthropicURL()+"/v1/messages", `{"model":"claude","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"x"}]}`)
	events, data := sse(t, resp.Body)
	want := []string{
		"message_start",
		"content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop",
		"content_block_start", "content_block_delta", "content_block_stop",
		"message_delta", "message_stop",
	}
	if !reflect.DeepEqual(events, want) {
		t.Fatalf("events = %v\nwant %v", events, want)
	}
	for i, d := range data {
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil || m["type"] != events[i] {
			t.Errorf("event %s data %s", events[i], d)
		}
	}
	if !strings.Contains(data[6], `"type":"tool_use"`) || !strings.Contains(data[6], `"input":{}`) || !strings.Contains(data[7], `"input_json_delta"`) {
		t.Errorf("tool_use block: %s %s", data[6], data[7])
	}
	if !strings.Contains(data[12], `"stop_reason":"tool_use"`) || !strings.Contains(data[12], `"output_tokens":4`) {
		t.Errorf("message_delta: %s", data[12])
	}
}

// TestNonStreamingWithSDKs checks the JSON bodies parse with the official
// SDKs' non-streaming calls.
func TestNonStreamingWithSDKs(t *testing.T) {
	reply := Reply{Text: "Answer", ToolCalls: []ToolCall{{ID: "t1", Name: "f", Arguments: `{"k":"v"}`}}, Usage: &Usage{InputTokens: 5, OutputTokens: 6}}
	srv := New(t, reply, reply)
	ctx := context.Background()

	oc := openai.NewClient(ooption.WithBaseURL(srv.OpenAIURL()), ooption.WithAPIKey("k"), ooption.WithHTTPClient(httpClient(t)), ooption.WithMaxRetries(0))
	oresp, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("q")}})
	if err != nil {
		t.Fatal(err)
	}
	ch := oresp.Choices[0]
	if ch.Message.Content != "Answer" || ch.FinishReason != "tool_calls" || ch.Message.ToolCalls[0].Function.Arguments != `{"k":"v"}` || oresp.Usage.PromptTokens != 5 {
		t.Errorf("openai response %+v", oresp)
	}

	ac := anthropic.NewClient(aoption.WithBaseURL(srv.AnthropicURL()), aoption.WithAPIKey("k"), aoption.WithHTTPClient(httpClient(t)), aoption.WithMaxRetries(0))
	aresp, err := ac.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude", MaxTokens: 10, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("q"))}})
	if err != nil {
		t.Fatal(err)
	}
	if len(aresp.Content) != 2 || aresp.Content[0].Text != "Answer" || aresp.Content[1].Name != "f" || string(aresp.StopReason) != "tool_use" || aresp.Usage.OutputTokens != 6 {
		t.Errorf("anthropic response %+v", aresp)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || reqs[0].API != "openai" || reqs[1].API != "anthropic" || reqs[0].Stream || reqs[1].Header.Get("X-Api-Key") != "k" {
		t.Errorf("requests recorded: %+v", reqs)
	}
}

func TestErrorReplies(t *testing.T) {
	tests := []struct {
		api, path string
		reply     Reply
		wantType  string
	}{
		{"openai", "/v1/chat/completions", Reply{Status: 429, RetryAfter: "4"}, "rate_limit_exceeded"},
		{"anthropic", "/v1/messages", Reply{Status: 429, RetryAfter: "4"}, "rate_limit_error"},
		{"anthropic", "/v1/messages", Reply{Status: 529}, "overloaded_error"},
		{"openai", "/v1/chat/completions", Reply{Status: 401, ErrorMessage: "bad key"}, "authentication_error"},
	}
	for _, tt := range tests {
		srv := New(t, tt.reply)
		resp := post(t, srv.URL()+tt.path, `{"model":"m","messages":[]}`)
		if resp.StatusCode != tt.reply.Status || resp.Header.Get("Retry-After") != tt.reply.RetryAfter {
			t.Errorf("%s: status %d retry-after %q", tt.api, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		var body struct {
			Type  string `json:"type"`
			Error struct {
				Type, Message string
			} `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if body.Error.Type != tt.wantType || body.Error.Message == "" || (tt.api == "anthropic") != (body.Type == "error") {
			t.Errorf("%s: body %+v", tt.api, body)
		}
	}
}

func TestQueueResponderAndDefault(t *testing.T) {
	srv := New(t, Reply{Text: "first"})
	srv.Enqueue(Reply{Text: "second"})
	texts := func() string {
		resp := post(t, srv.OpenAIURL()+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}]}`)
		var b struct {
			Choices []struct{ Message struct{ Content string } }
			Error   struct{ Message string }
		}
		_ = json.NewDecoder(resp.Body).Decode(&b)
		if len(b.Choices) == 0 {
			return "error: " + b.Error.Message
		}
		return b.Choices[0].Message.Content
	}
	got := []string{texts(), texts(), texts()}
	srv.SetResponder(func(r Request) Reply { return Reply{Text: "from " + r.API} })
	got = append(got, texts())
	want := []string{"first", "second", "error: llmtest: no reply scripted", "from openai"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if resp := post(t, srv.URL()+"/v1/embeddings", `{}`); resp.StatusCode != 404 {
		t.Errorf("unknown endpoint: %d", resp.StatusCode)
	}
}

func TestAgentResponder(t *testing.T) {
	f := AgentResponder([]ToolCall{{Name: "f"}}, "done")
	tests := []struct {
		body string
		tool bool
	}{
		{`{"messages":[{"role":"user","content":"q"}]}`, true},
		{`{"messages":[{"role":"tool","tool_call_id":"1","content":"r"}]}`, false},
		{`{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"1","content":"r"}]}]}`, false},
	}
	for _, tt := range tests {
		var r Request
		_ = json.Unmarshal([]byte(tt.body), &r.Body)
		if got := len(f(r).ToolCalls) > 0; got != tt.tool {
			t.Errorf("%s: asks for tools = %v", tt.body, got)
		}
	}
}

func TestMaxInFlight(t *testing.T) {
	srv := New(t)
	srv.SetResponder(func(Request) Reply { return Reply{Text: "ok", Delay: 100 * time.Millisecond} })
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			resp := post(t, srv.OpenAIURL()+"/chat/completions", `{"model":"m","stream":true,"messages":[]}`)
			_, _ = io.Copy(io.Discard, resp.Body)
		})
	}
	wg.Wait()
	if got := srv.MaxInFlight(); got != 3 {
		t.Errorf("MaxInFlight = %d, want 3", got)
	}
}

func TestStartOutsideTests(t *testing.T) {
	srv, err := Start(Script{Replies: []Reply{{Text: "hi"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "http://127.0.0.1:") || srv.OpenAIURL() != srv.URL()+"/v1" {
		t.Errorf("urls %q %q", srv.URL(), srv.OpenAIURL())
	}
	resp := post(t, srv.OpenAIURL()+"/chat/completions", `{"model":"m","messages":[]}`)
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestCutStreamAborts(t *testing.T) {
	srv := New(t, Reply{Text: "abcdefghijkl", CutAfter: 2})
	resp := post(t, srv.OpenAIURL()+"/chat/completions", `{"model":"m","stream":true,"messages":[]}`)
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("read the whole body without error: %q", b)
	}
	if n := strings.Count(string(b), "data: "); n != 2 {
		t.Errorf("%d events before the cut, want 2", n)
	}
}

func TestToolResults(t *testing.T) {
	tests := []struct {
		body string
		want []string
	}{
		{`{"messages":[{"role":"user","content":"q"},{"role":"tool","tool_call_id":"1","content":"a"},{"role":"tool","tool_call_id":"2","content":"b"}]}`, []string{"a", "b"}},
		{`{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"1","content":[{"type":"text","text":"a"}]},{"type":"tool_result","tool_use_id":"2","content":"b"}]}]}`, []string{"a", "b"}},
		{`{"messages":[{"role":"user","content":"q"}]}`, nil},
	}
	for _, tt := range tests {
		var r Request
		_ = json.Unmarshal([]byte(tt.body), &r.Body)
		if got := r.ToolResults(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.body, got, tt.want)
		}
	}
}
