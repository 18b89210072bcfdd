package tracing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// keepGlobals puts back the global provider and error handler Setup sets.
func keepGlobals(t *testing.T) {
	tp, eh := otel.GetTracerProvider(), otel.GetErrorHandler()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetErrorHandler(eh)
	})
}

// Without an endpoint Setup installs nothing: the global provider is the
// one before, its spans do not record, and shutdown has nothing to do.
func TestSetupWithoutEndpointInstallsNothing(t *testing.T) {
	keepGlobals(t)
	before := otel.GetTracerProvider()
	shutdown, err := Setup(context.Background(), Settings{Service: "authsvc-commands"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != before || MayRecord(nil) {
		t.Fatalf("Setup without an endpoint installed %T (may record %v)", otel.GetTracerProvider(), MayRecord(nil))
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Fatal("an SDK provider is installed")
	}
	_, span := otel.GetTracerProvider().Tracer("t").Start(context.Background(), "s")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Errorf("a span without an exporter records (%v) or has an id (%v)", span.IsRecording(), span.SpanContext())
	}
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// With an endpoint, spans are posted as OTLP protobuf to <endpoint>/v1/traces
// (or to the traces endpoint as is), with the component's service name.
func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	for _, c := range []struct {
		name     string
		settings func(url string) Settings
		path     string
	}{
		{"endpoint", func(u string) Settings { return Settings{Service: "authsvc-notifier", Endpoint: u + "/"} }, "/v1/traces"},
		{"traces endpoint", func(u string) Settings {
			return Settings{Service: "authsvc-notifier", Endpoint: u + "/unused", TracesEndpoint: u + "/otlp/spans"}
		}, "/otlp/spans"},
	} {
		t.Run(c.name, func(t *testing.T) {
			keepGlobals(t)
			var mu sync.Mutex
			var got []*collectortrace.ExportTraceServiceRequest
			var paths []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				req := &collectortrace.ExportTraceServiceRequest{}
				if r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, req) != nil {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				mu.Lock()
				got, paths = append(got, req), append(paths, r.URL.Path)
				mu.Unlock()
				w.Header().Set("Content-Type", "application/x-protobuf")
			}))
			defer srv.Close()
			shutdown, err := Setup(context.Background(), c.settings(srv.URL), quiet)
			if err != nil {
				t.Fatal(err)
			}
			_, span := otel.GetTracerProvider().Tracer("t").Start(context.Background(), "process auth.cmd.login.password")
			if !span.IsRecording() || !MayRecord(nil) {
				t.Fatalf("the installed provider records %v, may record %v", span.IsRecording(), MayRecord(nil))
			}
			span.End()
			if err := shutdown(context.Background()); err != nil { // flushes the batch
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || paths[0] != c.path {
				t.Fatalf("%d exports to %v, want 1 to %s", len(got), paths, c.path)
			}
			rs := got[0].ResourceSpans
			if len(rs) != 1 || len(rs[0].ScopeSpans) != 1 || len(rs[0].ScopeSpans[0].Spans) != 1 ||
				rs[0].ScopeSpans[0].Spans[0].Name != "process auth.cmd.login.password" {
				t.Fatalf("exported %v", got[0])
			}
			service := ""
			for _, kv := range rs[0].Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			if service != "authsvc-notifier" {
				t.Errorf("service.name %q", service)
			}
		})
	}
}

func TestServiceName(t *testing.T) {
	for _, c := range [][3]string{{"", "commands", "authsvc-commands"}, {"", "authctl dev", "authsvc-dev"},
		{"", "web", "authsvc-web"}, {"auth-eu", "notifier", "auth-eu"}} {
		if got := ServiceName(c[0], c[1]); got != c[2] {
			t.Errorf("ServiceName(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

// The trace context crosses a NATS message: Inject writes a W3C
// traceparent, Extract gives the same span context back as a remote parent;
// without a span nothing is written, and a message without one leaves the
// context alone.
func TestInjectExtractOverNATSHeaders(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("t").Start(context.Background(), "send")
	defer span.End()

	h := nats.Header{}
	Inject(ctx, h)
	sc := span.SpanContext()
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if got := h.Get("traceparent"); got != want {
		t.Fatalf("traceparent %q, want %q", got, want)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), h))
	if !got.IsRemote() || got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() {
		t.Fatalf("extracted %v, want %v", got, sc)
	}
	if got := trace.SpanContextFromContext(ExtractMap(context.Background(), map[string]string{"traceparent": want})); got.SpanID() != sc.SpanID() {
		t.Fatalf("extracted from a map %v", got)
	}

	empty := nats.Header{}
	Inject(context.Background(), empty)
	if len(empty) != 0 {
		t.Errorf("Inject without a span wrote %v", empty)
	}
	for _, h := range []nats.Header{nil, {}, {"traceparent": {"00-garbage"}}} {
		if got := trace.SpanContextFromContext(Extract(context.Background(), h)); got.IsValid() {
			t.Errorf("Extract(%v) gave %v", h, got)
		}
	}
}

// A requester's tracestate is dropped where it comes in and never written:
// with tracing on, the span under its traceparent has no trace state and
// Inject writes that span's traceparent alone; from a map (an event's
// headers) likewise. (TestReview15TracestateReachesTheEventWithoutTracing
// is the same without an exporter.)
func TestTracestateIsNeverPassedOn(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	parent := "00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-01"
	state := "vendor=" + strings.Repeat("x", 200) + ",other=y"
	for name, ctx := range map[string]context.Context{
		"header": Extract(context.Background(), nats.Header{"traceparent": {parent}, "tracestate": {state}}),
		"map":    ExtractMap(context.Background(), map[string]string{"traceparent": parent, "tracestate": state}),
	} {
		remote := trace.SpanContextFromContext(ctx)
		if remote.TraceID().String() != strings.Repeat("ab", 16) || remote.TraceState().Len() != 0 {
			t.Errorf("%s: extracted trace %s with state %q", name, remote.TraceID(), remote.TraceState())
		}
		ctx, span := tp.Tracer("t").Start(ctx, "process")
		h := nats.Header{}
		Inject(ctx, h)
		span.End()
		sc := span.SpanContext()
		want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
		if len(h) != 1 || h.Get("traceparent") != want || sc.TraceID() != remote.TraceID() {
			t.Errorf("%s: injected %v, want only traceparent %s in the requester's trace", name, h, want)
		}
	}
}

// MayRecord: the global provider until one is installed, and a noop
// provider, never record; an SDK provider, given or installed, may.
func TestMayRecord(t *testing.T) {
	keepGlobals(t)
	sdk := sdktrace.NewTracerProvider()
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
		want bool
	}{{"the global, unset", nil, false}, {"noop", noop.NewTracerProvider(), false}, {"sdk", sdk, true}} {
		if got := MayRecord(c.tp); got != c.want {
			t.Errorf("%s: MayRecord = %v, want %v", c.name, got, c.want)
		}
	}
	otel.SetTracerProvider(sdk)
	if !MayRecord(nil) {
		t.Error("the global provider, once installed, may not record")
	}
}

// BenchmarkSpanWithoutExporter is what a traced step costs when no
// exporter is installed (Setup without an endpoint): a span from the global
// provider, started and ended, after reading an absent traceparent from a
// message's headers, and the check that skips the attributes.
//
//	go test -run '^$' -bench SpanWithoutExporter -benchmem ./internal/tracing/
func BenchmarkSpanWithoutExporter(b *testing.B) {
	tracer := Provider(nil).Tracer("bench")
	h := nats.Header{"Auth-Event-Type": {"login.otp_issued"}}
	kind := trace.WithSpanKind(trace.SpanKindServer)
	for b.Loop() {
		ctx := Extract(context.Background(), h)
		_, span := tracer.Start(ctx, "process auth.cmd.login.password", kind)
		if span.IsRecording() {
			b.Fatal("recording")
		}
		span.End()
	}
}
