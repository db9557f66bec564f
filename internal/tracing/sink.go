package tracing

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/runner"
)

// TraceID is the trace a run's spans belong to: the first 16 bytes of
// sha256(run id). Deriving it from the id keeps a resumed run in the trace
// of its first attempt without recording anything more in the store.
func TraceID(runID string) trace.TraceID {
	sum := sha256.Sum256([]byte(runID))
	var id trace.TraceID
	copy(id[:], sum[:16])
	return id
}

// Sink turns a run's events into spans: one for the run, one per
// invocation (a child of the nearest enclosing invocation, else of the
// run), and one per model call (a child of its invocation). Retries and
// cap waits become span events.
type Sink struct {
	tracer  trace.Tracer
	content bool // LGX_TRACE_CONTENT=1: prompts and completions as attributes

	mu    sync.Mutex
	runs  map[string]trace.Span            // run id -> run span
	spans map[string]map[string]trace.Span // run id -> path -> open invocation span
}

// NewSink returns a Sink creating spans with tp. The tracer provider must
// use IDGenerator for the run's trace id to be TraceID(run).
func NewSink(tp trace.TracerProvider, content bool) *Sink {
	return &Sink{
		tracer:  tp.Tracer("github.com/lgx-run/lgx", trace.WithSchemaURL("https://opentelemetry.io/schemas/"+semconvVersion)),
		content: content,
		runs:    map[string]trace.Span{},
		spans:   map[string]map[string]trace.Span{},
	}
}

var _ runner.Sink = (*Sink)(nil)

// Emit implements runner.Sink.
func (s *Sink) Emit(e runner.Event) {
	switch e.Event {
	case runner.EventRunStart:
		s.runStart(e)
	case runner.EventNodeStart:
		s.nodeStart(e)
	case runner.EventNodeEnd, runner.EventNodeError:
		s.nodeEnd(e)
	case runner.EventToolStart:
		s.toolStart(e)
	case runner.EventToolEnd:
		s.toolEnd(e)
	case runner.EventRetry:
		s.addEvent(e, "retry", attribute.Int(keyAttempt, e.Attempt), attribute.Int64(keyDelayMS, e.DelayMS),
			attribute.String(keyErrorType, e.Kind), attribute.String(keyReason, e.Error))
	case runner.EventWait:
		s.addEvent(e, "wait", attribute.String(keyReason, e.Waiting))
	case runner.EventFallback:
		s.addEvent(e, "fallback", attribute.String(keyReason, e.Message), attribute.String(keyErrorType, e.Kind))
	case runner.EventInterrupt:
		s.addEvent(e, "interrupt", attribute.String(keyReason, e.Message))
	case runner.EventRunEnd:
		s.runEnd(e)
	}
}

func (s *Sink) runStart(e runner.Event) {
	ctx := withRunTrace(context.Background(), TraceID(e.Run))
	_, span := s.tracer.Start(ctx, opInvokeWorkflow+" "+e.Workflow,
		trace.WithNewRoot(), trace.WithTimestamp(e.TS), trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String(keyOperationName, opInvokeWorkflow),
			attribute.String(keyWorkflow, e.Workflow),
			attribute.String(keyRunID, e.Run)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.runs[e.Run]; old != nil {
		old.End(trace.WithTimestamp(e.TS))
	}
	s.runs[e.Run] = span
	s.spans[e.Run] = map[string]trace.Span{}
}

// parent returns the span an event at path belongs under: the open
// invocation whose path is the longest prefix of it, else the run.
// s.mu must be held.
func (s *Sink) parent(run, path string) trace.Span {
	open := s.spans[run]
	for p := path; p != ""; {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
		if sp := open[p]; sp != nil {
			return sp
		}
	}
	return s.runs[run]
}

func (s *Sink) nodeStart(e runner.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := s.parent(e.Run, e.Path)
	if parent == nil {
		return // a run this sink did not see start
	}
	attrs := []attribute.KeyValue{
		attribute.String(keyNode, e.Node), attribute.String(keyPath, e.Path), attribute.Int(keyStep, e.Step),
	}
	if e.Index != nil {
		attrs = append(attrs, attribute.Int(keyIndex, *e.Index))
	}
	ctx := trace.ContextWithSpan(context.Background(), parent)
	_, span := s.tracer.Start(ctx, e.Node, trace.WithTimestamp(e.TS), trace.WithAttributes(attrs...))
	s.spans[e.Run][e.Path] = span
}

// toolStart opens an `execute_tool {name}` span for a tool call, a child
// of the tools invocation running it. Its cap waits and retries (events
// at the call's path) land on it.
func (s *Sink) toolStart(e runner.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	parent := s.parent(e.Run, e.Path)
	if parent == nil {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.String(keyOperationName, opExecuteTool), attribute.String(keyToolName, e.Tool),
		attribute.String(keyNode, e.Node), attribute.String(keyPath, e.Path), attribute.Int(keyStep, e.Step),
	}
	if e.ToolCallID != "" {
		attrs = append(attrs, attribute.String(keyToolCallID, e.ToolCallID))
	}
	if e.Index != nil {
		attrs = append(attrs, attribute.Int(keyIndex, *e.Index))
	}
	ctx := trace.ContextWithSpan(context.Background(), parent)
	_, span := s.tracer.Start(ctx, opExecuteTool+" "+e.Tool, trace.WithTimestamp(e.TS), trace.WithAttributes(attrs...))
	s.spans[e.Run][e.Path] = span
}

// toolEnd ends a tool call's span: its outcome, an error status when it
// failed, and the model call of an llm_call tool as a chat child.
func (s *Sink) toolEnd(e runner.Event) {
	span := s.take(e)
	if span == nil {
		return
	}
	outcome := "ok"
	if e.Kind != "" {
		outcome = e.Kind
		span.SetAttributes(attribute.String(keyErrorType, e.Kind))
		span.SetStatus(codes.Error, e.Error)
	}
	span.SetAttributes(attribute.String(keyOutcome, outcome))
	for i := range e.GenAI { // a chat span per model call, retries included
		s.chat(span, &e.GenAI[i])
	}
	span.End(trace.WithTimestamp(e.TS))
}

// take removes and returns the open span of e's invocation or tool call.
func (s *Sink) take(e runner.Event) trace.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	span := s.spans[e.Run][e.Path]
	delete(s.spans[e.Run], e.Path)
	return span
}

func (s *Sink) nodeEnd(e runner.Event) {
	span := s.take(e)
	if span == nil {
		return
	}
	outcome := "ok"
	if e.Kind != "" {
		outcome = e.Kind
	}
	span.SetAttributes(attribute.Int(keyAttempts, e.Attempt), attribute.String(keyOutcome, outcome))
	if e.Event == runner.EventNodeError {
		span.SetAttributes(attribute.String(keyErrorType, e.Kind))
		span.SetStatus(codes.Error, e.Error)
	}
	for i := range e.GenAI { // a chat span per model call, retries included
		s.chat(span, &e.GenAI[i])
	}
	span.End(trace.WithTimestamp(e.TS))
}

// chat records a model call as a `chat {model}` child of its invocation.
func (s *Sink) chat(parent trace.Span, g *nodes.GenAIInfo) {
	attrs := []attribute.KeyValue{
		attribute.String(keyOperationName, opChat),
		attribute.String(keyProviderName, g.Provider),
		attribute.String(keyRequestModel, g.RequestModel),
	}
	if g.MaxTokens > 0 {
		attrs = append(attrs, attribute.Int(keyRequestMaxTokens, g.MaxTokens))
	}
	if g.Temperature != nil {
		attrs = append(attrs, attribute.Float64(keyRequestTemperature, *g.Temperature))
	}
	if g.Error == "" {
		if g.ResponseID != "" {
			attrs = append(attrs, attribute.String(keyResponseID, g.ResponseID))
		}
		attrs = append(attrs,
			attribute.String(keyResponseModel, g.ResponseModel),
			attribute.Int(keyUsageInputTokens, g.InputTokens),
			attribute.Int(keyUsageOutputTokens, g.OutputTokens))
		if g.FinishReason != "" {
			attrs = append(attrs, attribute.StringSlice(keyResponseFinish, []string{g.FinishReason}))
		}
	}
	if s.content {
		attrs = append(attrs, attribute.String(keyInputMessages, g.Prompt), attribute.String(keyOutputMessages, g.Completion))
	}
	model := g.RequestModel
	if model == "" {
		model = g.ResponseModel
	}
	ctx := trace.ContextWithSpan(context.Background(), parent)
	_, span := s.tracer.Start(ctx, opChat+" "+model, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(g.Started), trace.WithAttributes(attrs...))
	if g.Error != "" {
		span.SetAttributes(attribute.String(keyErrorType, "provider"))
		span.SetStatus(codes.Error, g.Error)
	}
	span.End(trace.WithTimestamp(g.Ended))
}

// addEvent adds a span event to the invocation at e.Path, or to the run.
func (s *Sink) addEvent(e runner.Event, name string, attrs ...attribute.KeyValue) {
	s.mu.Lock()
	defer s.mu.Unlock()
	span := s.spans[e.Run][e.Path]
	if span == nil {
		span = s.parent(e.Run, e.Path)
	}
	if span == nil {
		return
	}
	span.AddEvent(name, trace.WithTimestamp(e.TS), trace.WithAttributes(attrs...))
}

// runEnd ends the run span and any invocation left open (an interrupted
// one reports no node_end).
func (s *Sink) runEnd(e runner.Event) {
	s.mu.Lock()
	run := s.runs[e.Run]
	open := s.spans[e.Run]
	delete(s.runs, e.Run)
	delete(s.spans, e.Run)
	s.mu.Unlock()
	for _, sp := range open {
		sp.End(trace.WithTimestamp(e.TS))
	}
	if run == nil {
		return
	}
	run.SetAttributes(attribute.String(keyStatus, e.Status))
	if e.Status == "failed" {
		run.SetStatus(codes.Error, e.Error)
	}
	run.End(trace.WithTimestamp(e.TS))
}

// InvocationContext returns ctx carrying the span of the open invocation
// at path (runner.Options.InvocationContext), so the HTTP client spans of
// its requests (see Provider.Transport) are its children.
func (s *Sink) InvocationContext(ctx context.Context, run, path string) context.Context {
	s.mu.Lock()
	span := s.spans[run][path]
	s.mu.Unlock()
	if span == nil {
		return ctx
	}
	return trace.ContextWithSpan(ctx, span)
}
