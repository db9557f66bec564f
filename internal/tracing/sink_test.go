package tracing

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/lgx-run/lgx/internal/llmtest"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// receiver is an in-process OTLP/HTTP trace endpoint keeping every span
// and the raw bodies it was sent.
type receiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	bodies   [][]byte
	services map[string]bool // resource service.name values seen
}

// add keeps the spans of one export request.
func (rc *receiver) add(req *coltrace.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.services == nil {
		rc.services = map[string]bool{}
	}
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				rc.services[kv.Value.GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			rc.spans = append(rc.spans, ss.Spans...)
		}
	}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.bodies = append(rc.bodies, body)
	rc.mu.Unlock()
	rc.add(&req)
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}

func attrs(s *tracepb.Span) map[string]any {
	m := map[string]any{}
	for _, kv := range s.Attributes {
		m[kv.Key] = value(kv.Value)
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.Values {
			out = append(out, value(e))
		}
		return out
	}
	return nil
}

const secret = "s3cr3t-TOKEN-9f8e7d"

// The workflow fans out over two documents with an llm_call that retries
// once and is sent a secret, then waits at an interrupt; the run is
// resumed to completion.
const workflowSrc = `
lgx: 1
name: traced
secrets: [LGX_TEST_TOKEN]
providers:
  default: {kind: openai, model: gpt-test, base_url: "BASE", api_key: test-key}
state:
  docs: {type: list}
  sums: {type: list, reducer: append, default: []}
  ok: {type: any}
nodes:
  summarise:
    type: llm_call
    for_each: ${{ state.docs }}
    as: doc
    retry: {attempts: 2, backoff: 1ms, max_backoff: 2ms}
    with:
      prompt: "key ${{ secrets.LGX_TEST_TOKEN }}: ${{ doc }}"
      max_tokens: 50
    output: {sums: "${{ result.content }}"}
  approve:
    type: interrupt
    with: {message: "approve?"}
    output: {ok: "${{ result }}"}
edges:
  - {from: START, to: summarise}
  - {from: summarise, to: approve}
`

// runTraced runs the workflow to its interrupt and resumes it, with
// tracing configured by the environment set by the caller, and returns
// the run id once the spans are flushed.
func runTraced(t *testing.T) string {
	t.Helper()
	llm := llmtest.New(t)
	llm.Enqueue(llmtest.Reply{Status: 503, ErrorMessage: "overloaded"})
	llm.SetResponder(func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "summary mentioning " + secret, Usage: &llmtest.Usage{InputTokens: 7, OutputTokens: 3}, Model: "gpt-test-2026"}
	})
	ctx := context.Background()
	p, err := FromEnv(ctx, os.Getenv)
	if err != nil || p == nil {
		t.Fatalf("FromEnv: %v, %v", p, err)
	}
	w, ds := spec.Load("traced.yaml", []byte(strings.ReplaceAll(workflowSrc, "BASE", llm.OpenAIURL())))
	if ds.HasErrors() {
		t.Fatal(ds.Errors())
	}
	g, err := runner.Compile(w)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	client := &http.Client{Transport: p.Transport(nil)}
	opts := runner.Options{Store: st, Sink: p.Sink(), HTTPClient: client, Environ: []string{"LGX_TEST_TOKEN=" + secret},
		Inputs: map[string]any{"docs": []any{"first", "second"}}, InvocationContext: p.Sink().InvocationContext}
	res, err := runner.Run(ctx, g, opts)
	if err != nil || res.Status != store.StatusInterrupted {
		t.Fatalf("run: %v %v", res, err)
	}
	opts.Inputs = nil
	opts.Answer = runner.Answer{Values: map[string]any{"yes": true}}
	if res2, err := runner.Resume(ctx, st, res.RunID, opts); err != nil || res2.Status != store.StatusCompleted {
		t.Fatalf("resume: %v %v", res2, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	return res.RunID
}

func TestSpansOverOTLP(t *testing.T) {
	rc := &receiver{}
	collector := httptest.NewServer(rc)
	defer collector.Close()
	// The exporter reads the process environment itself.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "lgx-test")
	t.Setenv("LGX_TRACE_CONTENT", "1")
	runID := runTraced(t)

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bodies {
		if strings.Contains(string(b), secret) {
			t.Errorf("a span carries the secret")
		}
	}
	if !rc.services["lgx-test"] || len(rc.services) != 1 {
		t.Errorf("service names %v, want OTEL_SERVICE_NAME's lgx-test", rc.services)
	}
	wantTrace := TraceID(runID)
	byID := map[string]*tracepb.Span{}
	var runs, chats, items, https []*tracepb.Span
	for _, s := range rc.spans {
		byID[hex.EncodeToString(s.SpanId)] = s
	}
	for _, s := range rc.spans {
		a := attrs(s)
		switch {
		case strings.HasPrefix(s.Name, "invoke_workflow "):
			runs = append(runs, s)
		case strings.HasPrefix(s.Name, "chat "):
			chats = append(chats, s)
		case s.Name == "summarise":
			items = append(items, s)
		}
		if string(s.TraceId) != string(wantTrace[:]) {
			t.Errorf("span %q in trace %x, want %x (derived from the run id)", s.Name, s.TraceId, wantTrace)
		}
		if _, ok := a["http.request.method"]; ok {
			https = append(https, s)
		}
	}
	// Three model requests (one failed and retried), each an HTTP client
	// span under its invocation.
	if len(https) != 3 {
		t.Errorf("HTTP client spans %d, want 3: %v", len(https), names(rc.spans))
	}
	for _, h := range https {
		if parent := byID[hex.EncodeToString(h.ParentSpanId)]; parent == nil || parent.Name != "summarise" {
			t.Errorf("HTTP span %q's parent %v, want its invocation", h.Name, parent)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("run spans %d, want 2 (the run and its resume): %v", len(runs), names(rc.spans))
	}
	for _, r := range runs {
		a := attrs(r)
		if r.Name != "invoke_workflow traced" || a[keyOperationName] != "invoke_workflow" || a[keyRunID] != runID || len(r.ParentSpanId) != 0 {
			t.Errorf("run span %q %v parent %x", r.Name, a, r.ParentSpanId)
		}
	}
	if len(items) != 2 {
		t.Fatalf("summarise spans %d, want 2 (fan-out): %v", len(items), names(rc.spans))
	}
	retried := 0
	for _, s := range items {
		a := attrs(s)
		parent := byID[hex.EncodeToString(s.ParentSpanId)]
		if parent == nil || !strings.HasPrefix(parent.Name, "invoke_workflow") {
			t.Errorf("item span's parent is %v, want the run", parent)
		}
		if a[keyNode] != "summarise" || a[keyOutcome] != "ok" || a[keyStep] != int64(1) || !strings.Contains(a[keyPath].(string), "summarise[") {
			t.Errorf("item attributes %v", a)
		}
		if _, ok := a[keyIndex]; !ok {
			t.Errorf("item attributes lack %s: %v", keyIndex, a)
		}
		for _, ev := range s.Events {
			if ev.Name == "retry" {
				retried++
				ea := map[string]any{}
				for _, kv := range ev.Attributes {
					ea[kv.Key] = value(kv.Value)
				}
				if _, ok := ea[keyDelayMS]; !ok || ea[keyErrorType] == "" || !strings.Contains(ea[keyReason].(string), "overloaded") {
					t.Errorf("retry event attributes %v", ea)
				}
				if a[keyAttempts] != int64(2) {
					t.Errorf("retried item attempts %v, want 2", a[keyAttempts])
				}
			}
		}
	}
	if retried != 1 {
		t.Errorf("retry events %d, want 1", retried)
	}
	// Three model calls: two answered, and the one the retry followed,
	// which failed (a span per call, so a trace shows the failure too).
	if len(chats) != 3 {
		t.Fatalf("chat spans %d, want 3: %v", len(chats), names(rc.spans))
	}
	failed := 0
	for _, c := range chats {
		if c.Status != nil && c.Status.Code == tracepb.Status_STATUS_CODE_ERROR {
			failed++
			if a := attrs(c); a[keyErrorType] != "provider" {
				t.Errorf("failed chat span's error.type %v", a[keyErrorType])
			}
			continue
		}
		a := attrs(c)
		parent := byID[hex.EncodeToString(c.ParentSpanId)]
		if parent == nil || parent.Name != "summarise" {
			t.Errorf("chat span's parent %v, want an invocation", parent)
		}
		want := map[string]any{keyOperationName: "chat", keyProviderName: "openai", keyRequestModel: "gpt-test",
			keyResponseModel: "gpt-test-2026", keyUsageInputTokens: int64(7), keyUsageOutputTokens: int64(3), keyRequestMaxTokens: int64(50)}
		for k, v := range want {
			if a[k] != v {
				t.Errorf("chat %s = %v, want %v", k, a[k], v)
			}
		}
		if c.Name != "chat gpt-test" || c.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("chat span %q kind %v", c.Name, c.Kind)
		}
		fr, _ := a[keyResponseFinish].([]any)
		if len(fr) != 1 || fr[0] != "stop" {
			t.Errorf("finish reasons %v", a[keyResponseFinish])
		}
		// Content is opted in here; the secret in it is redacted.
		if in, _ := a[keyInputMessages].(string); !strings.Contains(in, "***") {
			t.Errorf("input messages %q: want the secret redacted", in)
		}
		if out, _ := a[keyOutputMessages].(string); out != "summary mentioning ***" {
			t.Errorf("output messages %q", out)
		}
	}
	if failed != 1 {
		t.Errorf("failed chat spans %d, want 1", failed)
	}
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func TestFromEnvOff(t *testing.T) {
	p, err := FromEnv(context.Background(), func(string) string { return "" })
	if p != nil || err != nil {
		t.Fatalf("no endpoint: got %v, %v; want tracing off", p, err)
	}
	env := map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
	if _, err := FromEnv(context.Background(), func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "http/json") {
		t.Fatalf("unsupported protocol: %v", err)
	}
}

func TestTraceIDIsStable(t *testing.T) {
	a, b := TraceID("01J0RUN"), TraceID("01J0RUN")
	if a != b || !a.IsValid() || a == TraceID("01J0OTHER") {
		t.Fatalf("TraceID not a stable function of the run id: %v %v", a, b)
	}
}

// grpcReceiver is the receiver as an OTLP/gRPC trace service.
type grpcReceiver struct {
	coltrace.UnimplementedTraceServiceServer
	rc *receiver
}

func (g grpcReceiver) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	g.rc.add(req)
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// Without LGX_TRACE_CONTENT no prompt or completion is exported; the
// service name defaults to lgx; OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports
// over gRPC; OTEL_TRACES_SAMPLER=always_off exports nothing.
func TestExportOptions(t *testing.T) {
	t.Run("grpc, no content, default service", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		rc := &receiver{}
		srv := grpc.NewServer()
		coltrace.RegisterTraceServiceServer(srv, grpcReceiver{rc: rc})
		go func() { _ = srv.Serve(ln) }()
		defer srv.Stop()
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
		runTraced(t)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if !rc.services["lgx"] {
			t.Errorf("service names %v, want the default lgx", rc.services)
		}
		chats := 0
		for _, s := range rc.spans {
			a := attrs(s)
			if strings.HasPrefix(s.Name, "chat ") {
				chats++
			}
			if _, ok := a[keyInputMessages]; ok {
				t.Errorf("span %q has content without LGX_TRACE_CONTENT: %v", s.Name, a)
			}
			if _, ok := a[keyOutputMessages]; ok {
				t.Errorf("span %q has content without LGX_TRACE_CONTENT: %v", s.Name, a)
			}
		}
		if chats != 3 {
			t.Errorf("chat spans over gRPC: %d, want 3 (one failed): %v", chats, names(rc.spans))
		}
	})
	t.Run("sampler off", func(t *testing.T) {
		rc := &receiver{}
		collector := httptest.NewServer(rc)
		defer collector.Close()
		t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.URL+"/v1/traces")
		t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
		runTraced(t)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.spans) != 0 {
			t.Errorf("always_off exported %v", names(rc.spans))
		}
	})
}
