// Package tracing is the service's OpenTelemetry traces: the exporter
// (Setup), the W3C trace context carried in NATS message headers (Inject,
// Extract) and the span attributes the components share.
//
// One login is one trace: each of its web pages' HTTP span (the pages
// carry the login's trace context between them, internal/web), the
// front-end's NATS request, the commands service's handling of the command
// (with the password hash and the append), and, once the event is read
// back from the stream, the notifier's handling of it and its SMTP send.
// The trace context travels in the `traceparent` header (W3C Trace
// Context) of the request message, then of the appended event, where
// JetStream keeps it with the event.
//
// Spans never carry a NIR, an email address, an account id, a token, a
// password or a code, not even hashed: their names are subjects, stream
// names and command names, their attributes outcomes and event types, and
// their error statuses a fixed description, never an error's text (an
// error may name an account). docs/operations.md, section Traces, lists
// them.
//
// Without an OTLP endpoint, Setup installs nothing: the components' spans
// are the global provider's non-recording ones, which cost a context value
// each and export nothing.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope prefix: each component's tracer is
// named Scope + "/internal/<package>".
const Scope = "github.com/ameli-auth/authsvc"

// Settings say where traces go. Both endpoints empty: nowhere.
type Settings struct {
	// Service is the resource's service.name: OTEL_SERVICE_NAME, else
	// "authsvc-" and the component (ServiceName).
	Service string
	// Endpoint is OTEL_EXPORTER_OTLP_ENDPOINT: the base URL of an OTLP/HTTP
	// receiver; traces go to its path /v1/traces.
	Endpoint string
	// TracesEndpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the full URL
	// traces are posted to, used as is; it wins over Endpoint.
	TracesEndpoint string
}

// Enabled tells whether traces are exported.
func (s Settings) Enabled() bool { return s.Endpoint != "" || s.TracesEndpoint != "" }

// URL is where the spans are posted: TracesEndpoint as is, else Endpoint
// with /v1/traces (the OTLP specification's rule for the signal path).
func (s Settings) URL() string {
	if s.TracesEndpoint != "" {
		return s.TracesEndpoint
	}
	return strings.TrimRight(s.Endpoint, "/") + "/v1/traces"
}

// ServiceName is the service.name of a component's spans: override (from
// OTEL_SERVICE_NAME) when set, else "authsvc-" and the component's name
// ("authctl dev", which runs every component in one process, is
// authsvc-dev).
func ServiceName(override, component string) string {
	if override != "" {
		return override
	}
	return "authsvc-" + strings.TrimPrefix(component, "authctl ")
}

// Setup installs the global tracer provider. With an endpoint: an SDK
// provider that batches spans (the SDK's batch span processor: up to 512
// per export, every 5 s, a queue of 2048 beyond which spans are dropped,
// never waited for) to an OTLP/HTTP (protobuf) exporter, its resource
// service.name s.Service. The exporter reads the other standard
// OTEL_EXPORTER_OTLP_* variables itself (headers, timeout, compression,
// certificates), and the provider OTEL_TRACES_SAMPLER (default: parent
// based, always on) and OTEL_RESOURCE_ATTRIBUTES. Export failures are
// logged as warnings, at most one a minute.
//
// Without an endpoint it installs nothing and returns a shutdown that does
// nothing. shutdown flushes the spans not yet exported and stops the
// exporter; call it once, after the components have stopped.
func Setup(ctx context.Context, s Settings, log *slog.Logger) (shutdown func(context.Context) error, err error) {
	if !s.Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	if s.Service == "" {
		return nil, errors.New("tracing: no service name")
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.URL()))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", redacted(s.URL()), err)
	}
	// Default() detects the SDK's attributes and OTEL_RESOURCE_ATTRIBUTES;
	// the service name set here wins (it already is OTEL_SERVICE_NAME when
	// that is set).
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", s.Service)))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetErrorHandler(rateLimited(log, time.Minute))
	otel.SetTracerProvider(tp)
	log.Info("traces exported over OTLP/HTTP", "url", redacted(s.URL()), "service", s.Service)
	return tp.Shutdown, nil
}

// unset is the global provider as the process starts, before Setup (or a
// test) installs one: its spans record nothing.
var unset = otel.GetTracerProvider()

// MayRecord tells whether tp's spans may record (be sampled and
// exported): tp is nil for the global provider, which may, once Setup (or
// a test) installed one; a noop provider never does. A component uses it
// to skip work that only feeds spans (the web front-end reads a login's
// trace field only then). A true answer leaves the decision to the
// provider's sampler.
func MayRecord(tp trace.TracerProvider) bool {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	switch tp.(type) {
	case noop.TracerProvider, *noop.TracerProvider:
		return false
	}
	// unset's dynamic type is a pointer: the comparison never panics.
	return tp != unset
}

// redacted is the URL with any password masked, for logs.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// rateLimited logs the SDK's errors (a failed export, mostly) as warnings,
// at most one per interval.
func rateLimited(log *slog.Logger, every time.Duration) otel.ErrorHandler {
	var last atomic.Int64
	return otel.ErrorHandlerFunc(func(err error) {
		now := time.Now().UnixNano()
		prev := last.Load()
		if now-prev < int64(every) || !last.CompareAndSwap(prev, now) {
			return
		}
		log.Warn("traces: export failed (further failures are not logged for a minute)", "err", err)
	})
}

// Provider is tp, or the global provider when tp is nil: what a component
// takes from its configuration.
func Provider(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return otel.GetTracerProvider()
	}
	return tp
}

// propagator is the one trace context format on the wire, whatever the
// global propagator is.
var propagator = propagation.TraceContext{}

// Inject writes ctx's span context into h: the traceparent header only.
// Without a valid span context it writes nothing.
//
// A tracestate is never passed on: it is the requester's (any vendor
// data, up to the header limit), and what is injected here may end in an
// event's headers, kept as long as the stream (docs/operations.md,
// section Traces). The service's own spans put nothing in it.
func Inject(ctx context.Context, h nats.Header) {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	if tp := c[HeaderTraceparent]; tp != "" {
		h.Set(HeaderTraceparent, tp)
	}
}

// HeaderTraceparent is the W3C Trace Context header Inject writes and
// Extract reads.
const HeaderTraceparent = "traceparent"

// Extract returns ctx with the remote span context read from h, if h
// carries a valid traceparent; else ctx. A tracestate in h is ignored (see
// Inject): the spans made under ctx, and what they inject, carry none.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return extract(ctx, h.Get(HeaderTraceparent))
}

// ExtractMap is Extract for headers read into a map of single values (a
// watermill message's metadata).
func ExtractMap(ctx context.Context, m map[string]string) context.Context {
	if m == nil {
		return ctx
	}
	return extract(ctx, m[HeaderTraceparent])
}

func extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{HeaderTraceparent: traceparent})
}

// Attributes the components share. None may hold personal data.
var (
	// MessagingNATS is messaging.system on every span of a NATS message.
	MessagingNATS = attribute.String("messaging.system", "nats")
)

// Attribute keys of the service's own facts.
const (
	AttrCommand   = attribute.Key("auth.command")    // the command's name, e.g. login.password
	AttrOutcome   = attribute.Key("auth.outcome")    // the reply's status or error code, or a step's result
	AttrEventType = attribute.Key("auth.event.type") // the event's type, e.g. OTPIssued
	AttrMailKind  = attribute.Key("auth.mail.kind")  // the mail sent for an event, e.g. login_code
)
