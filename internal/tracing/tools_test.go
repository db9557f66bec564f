package tracing

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// An agent whose model asks for three tools at once: one answers (sent
// the secret in a header, it echoes it back), one fails with the secret
// in its error body, and one is itself an llm_call.
const agentSrc = `
lgx: 1
name: agent
secrets: [LGX_TEST_TOKEN]
providers:
  default: {kind: KIND, model: model-test, base_url: "BASE", api_key: test-key}
state:
  messages: {type: messages, default: []}
  answer: {type: string}
tools:
  lookup:
    description: Look a service up
    parameters: {type: object, properties: {service: {type: string}}, required: [service]}
    node:
      type: http_fetch
      with:
        url: "TOOLS/status/${{ args.service }}"
        headers: {Authorization: "Bearer ${{ secrets.LGX_TEST_TOKEN }}"}
    output: ${{ result.body }}
  broken:
    description: Always fails
    parameters: {type: object}
    node: {type: http_fetch, retry: {attempts: 2, backoff: 1ms, max_backoff: 2ms}, with: {url: "TOOLS/fail"}}
  summarise:
    description: Summarise a text
    parameters: {type: object, properties: {text: {type: string}}, required: [text]}
    node: {type: llm_call, with: {prompt: "${{ args.text }}"}}
    output: ${{ result.content }}
nodes:
  ask:
    type: set
    output: {messages: {role: user, content: "is db up?"}}
  model:
    type: llm_call
    with:
      messages: ${{ state.messages }}
      tools: [lookup, broken, summarise]
    output: {messages: "${{ result.message }}", answer: "${{ result.content }}"}
  act:
    type: tools
    with: {calls: "${{ last(state.messages).tool_calls }}"}
    output: {messages: "${{ result.messages }}"}
edges:
  - {from: START, to: ask}
  - {from: ask, to: model}
  - from: model
    when: [{if: "len(last(state.messages).tool_calls ?? []) > 0", to: act}]
    else: END
  - {from: act, to: model}
`

// The tools node's calls are `execute_tool {name}` spans under the tools
// invocation, under the run: tool name, call id, an error status for the
// failing one, the llm_call tool's chat span beneath its own, HTTP
// client spans beneath theirs; model calls carry gen_ai.response.id; no
// span carries the secret. Both providers' wire formats are used.
func TestToolSpans(t *testing.T) {
	for _, kind := range []string{"openai", "anthropic"} {
		t.Run(kind, func(t *testing.T) { testToolSpans(t, kind) })
	}
}

func testToolSpans(t *testing.T, kind string) {
	rc := &receiver{}
	collector := httptest.NewServer(rc)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("LGX_TRACE_CONTENT", "1")

	tools := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "denied for "+secret, http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "up (you sent %s)", r.Header.Get("Authorization"))
	}))
	defer tools.Close()

	llm := llmtest.New(t,
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{
			{ID: "call_lookup", Name: "lookup", Arguments: `{"service": "db"}`},
			{ID: "call_broken", Name: "broken", Arguments: `{}`},
			{ID: "call_sum", Name: "summarise", Arguments: `{"text": "a long text"}`},
		}},
		llmtest.Reply{Text: "short", Model: "tool-model"},
		llmtest.Reply{Text: "db is up"})
	base := map[string]string{"openai": llm.OpenAIURL(), "anthropic": llm.AnthropicURL()}[kind]
	src := strings.NewReplacer("KIND", kind, "BASE", base, "TOOLS", tools.URL).Replace(agentSrc)

	ctx := context.Background()
	p, err := FromEnv(ctx, os.Getenv)
	if err != nil || p == nil {
		t.Fatalf("FromEnv: %v, %v", p, err)
	}
	w, ds := spec.Load("agent.yaml", []byte(src))
	if ds.HasErrors() {
		t.Fatal(ds.Errors())
	}
	g, err := runner.Compile(w)
	if err != nil {
		t.Fatal(err)
	}
	opts := runner.Options{Store: store.NewMemory(), Sink: p.Sink(), HTTPClient: &http.Client{Transport: p.Transport(nil)},
		Environ: []string{"LGX_TEST_TOKEN=" + secret}, InvocationContext: p.Sink().InvocationContext}
	res, err := runner.Run(ctx, g, opts)
	if err != nil || res.Status != store.StatusCompleted || res.State["answer"] != "db is up" {
		t.Fatalf("run: %v %v %v", res.Status, res.State, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bodies {
		if strings.Contains(string(b), secret) {
			t.Errorf("a span carries the secret")
		}
	}
	byID := map[string]*tracepb.Span{}
	for _, s := range rc.spans {
		byID[hex.EncodeToString(s.SpanId)] = s
	}
	parentOf := func(s *tracepb.Span) *tracepb.Span { return byID[hex.EncodeToString(s.ParentSpanId)] }
	tool := map[string]*tracepb.Span{}
	var acts, chats []*tracepb.Span
	for _, s := range rc.spans {
		switch {
		case strings.HasPrefix(s.Name, "execute_tool "):
			tool[s.Name] = s
		case s.Name == "act":
			acts = append(acts, s)
		case strings.HasPrefix(s.Name, "chat "):
			chats = append(chats, s)
		}
	}
	if len(acts) != 1 || len(tool) != 3 {
		t.Fatalf("tools invocations %d, execute_tool spans %v; want 1 and 3: %v", len(acts), tool, names(rc.spans))
	}
	if run := parentOf(acts[0]); run == nil || run.Name != "invoke_workflow agent" {
		t.Errorf("tools invocation's parent %v, want the run", run)
	}
	for name, id := range map[string]string{"lookup": "call_lookup", "broken": "call_broken", "summarise": "call_sum"} {
		s := tool["execute_tool "+name]
		if s == nil {
			t.Errorf("no execute_tool %s span: %v", name, names(rc.spans))
			continue
		}
		a := attrs(s)
		if parentOf(s) != acts[0] {
			t.Errorf("execute_tool %s's parent %v, want the tools invocation", name, parentOf(s))
		}
		want := map[string]any{keyOperationName: "execute_tool", keyToolName: name, keyToolCallID: id,
			keyNode: "act", keyPath: "3/act/tool:" + id}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("execute_tool %s: %s = %v, want %v", name, k, a[k], v)
			}
		}
		failed := s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR
		if failed != (name == "broken") {
			t.Errorf("execute_tool %s status %v", name, s.Status)
		}
		if name == "broken" && (a[keyErrorType] != "status" || !strings.Contains(s.Status.GetMessage(), "***")) {
			t.Errorf("broken tool: error.type %v, status %q; want kind status and the secret redacted", a[keyErrorType], s.Status.GetMessage())
		}
		// The failing call's retry is an event of its span.
		retries := 0
		for _, ev := range s.Events {
			if ev.Name == "retry" {
				retries++
			}
		}
		if want := map[bool]int{true: 1}[name == "broken"]; retries != want {
			t.Errorf("execute_tool %s: %d retry events, want %d", name, retries, want)
		}
	}
	// HTTP requests of the fetching tools are children of their calls.
	toolHTTP := map[string]int{}
	for _, s := range rc.spans {
		if _, ok := attrs(s)["http.request.method"]; !ok {
			continue
		}
		if u, _ := attrs(s)["url.full"].(string); strings.HasPrefix(u, tools.URL) {
			toolHTTP[strings.TrimPrefix(u, tools.URL)]++
			if p := parentOf(s); p == nil || !strings.HasPrefix(p.Name, "execute_tool ") {
				t.Errorf("tool HTTP span %s's parent %v, want its execute_tool span", u, p)
			}
		}
	}
	if toolHTTP["/status/db"] != 1 || toolHTTP["/fail"] != 2 {
		t.Errorf("HTTP spans of tool requests %v, want lookup's one and broken's two attempts", toolHTTP)
	}
	// Three model calls: two by the model node, one by the summarise tool,
	// under its execute_tool span; each has the provider's response id.
	if len(chats) != 3 {
		t.Fatalf("chat spans %d, want 3: %v", len(chats), names(rc.spans))
	}
	ids := map[string]bool{}
	underTool := 0
	for _, c := range chats {
		a := attrs(c)
		id, _ := a[keyResponseID].(string)
		prefix := map[string]string{"openai": "chatcmpl-", "anthropic": "msg_"}[kind]
		if !strings.HasPrefix(id, prefix) || ids[id] {
			t.Errorf("chat gen_ai.response.id %q: want a distinct %s… id", id, prefix)
		}
		ids[id] = true
		if parentOf(c) == tool["execute_tool summarise"] {
			underTool++
			if a[keyResponseModel] != "tool-model" {
				t.Errorf("the tool's chat: response model %v", a[keyResponseModel])
			}
		}
	}
	if underTool != 1 {
		t.Errorf("chat spans under execute_tool summarise: %d, want 1", underTool)
	}
}
