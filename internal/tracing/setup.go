// Package tracing exports a run's events as OpenTelemetry traces following
// the GenAI semantic conventions, when the standard OTEL_* environment asks
// for it.
package tracing

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Provider is tracing switched on: a tracer provider exporting over OTLP.
type Provider struct {
	tp   *sdktrace.TracerProvider
	sink *Sink
}

// Enabled reports whether the environment asks for traces: an OTLP
// endpoint (for all signals or for traces) is set.
func Enabled(getenv func(string) string) bool {
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv returns a Provider configured by the standard OTEL_* variables,
// or nil when tracing is off. The exporter reads the endpoint, headers,
// timeout and TLS settings itself and the SDK the sampler
// (OTEL_TRACES_SAMPLER); FromEnv picks the protocol
// (OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL: http/protobuf, the default, or
// grpc) and the service name (OTEL_SERVICE_NAME, default lgx).
// LGX_TRACE_CONTENT=1 adds prompts and completions (redacted) to spans.
func FromEnv(ctx context.Context, getenv func(string) string) (*Provider, error) {
	if !Enabled(getenv) {
		return nil, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch strings.TrimSpace(proto) {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("tracing: OTEL_EXPORTER_OTLP_PROTOCOL %q is not supported (use http/protobuf or grpc)", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// The default name first: WithFromEnv (OTEL_SERVICE_NAME,
	// OTEL_RESOURCE_ATTRIBUTES) overrides it.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "lgx")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{tp: tp, sink: NewSink(tp, getenv("LGX_TRACE_CONTENT") == "1")}, nil
}

// NewTracerProvider returns an SDK tracer provider whose root spans take
// the trace id a Sink asks for (TraceID of the run).
func NewTracerProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithIDGenerator(idGenerator{})}, opts...)...)
}

// Sink returns the runner sink making the spans.
func (p *Provider) Sink() *Sink { return p.sink }

// Transport wraps rt so each HTTP request lgx makes (model SDK calls,
// http_fetch) is a client span.
func (p *Provider) Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(p.tp))
}

// Shutdown exports what is buffered and stops the exporter; ctx bounds it.
func (p *Provider) Shutdown(ctx context.Context) error {
	if err := p.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: export: %w", err)
	}
	return nil
}

// WarnTo reports export failures (an unreachable collector) to w as
// warnings, instead of the SDK's default log line.
func WarnTo(w io.Writer) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		fmt.Fprintf(w, "lgx: warning: traces: %v\n", err)
	}))
}

type runTraceKey struct{}

// withRunTrace asks the id generator for trace id for a new root span.
func withRunTrace(ctx context.Context, id trace.TraceID) context.Context {
	return context.WithValue(ctx, runTraceKey{}, id)
}

// idGenerator gives a root span the trace id its context asks for (a
// run's), and random ids otherwise, as the SDK's default does.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	if id, ok := ctx.Value(runTraceKey{}).(trace.TraceID); ok && id.IsValid() {
		tid = id
	} else {
		for !tid.IsValid() {
			_, _ = crand.Read(tid[:])
		}
	}
	return tid, newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		_, _ = crand.Read(sid[:])
	}
	return sid
}
