package web

import (
	"context"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Traces (internal/tracing): a server span per page request, named by the
// route ("POST /connexion/envoi-code"), parent of the NATS request of the
// command it sends (client.send), so a page request, its command, the
// event appended and the mail it asks for are one trace.
//
// A login is one trace across its pages: the pages of its code steps carry
// the trace context of the request that rendered them in a hidden field,
// `trace` (a W3C traceparent: two random ids and a flag, nothing about the
// person), and the next step's span is a child of it. A browser's own
// traceparent header is not followed: the front-end is the edge, each
// login starts a trace of its own. A forged field only joins or leaves a
// trace (or unsamples the browser's own requests): traces are a
// diagnosis tool, the events stay the audit trail.
//
// The spans carry the method, the route and the status only: never the
// URL's path or query (the reset link's token is in it), the form, the
// address or the user agent of the browser.

// formTrace is the hidden field of the login's trace context.
const formTrace = "trace"

// loginTrace is the propagator of the hidden field: W3C trace context.
var loginTrace = propagation.TraceContext{}

var serverSpan = trace.WithSpanKind(trace.SpanKindServer)

// traced wraps the handler with the page request's span.
func (s *Server) traced(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method == http.MethodPost {
			// Every POST handler reads the form: reading it here first
			// costs nothing more.
			if parent := formParent(r); parent.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
			}
		}
		ctx, span := s.tracer.Start(ctx, r.Method, serverSpan)
		defer span.End()
		if !span.IsRecording() {
			// No exporter: the span costs a context value.
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(sw, r)
		// The mux has set the route on r by now.
		route := r.Pattern
		if _, path, ok := strings.Cut(route, " "); ok {
			route = path
		}
		if route != "" {
			span.SetName(r.Method + " " + route)
		}
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(route),
			semconv.HTTPResponseStatusCode(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// formParent is the trace context of the login's previous page, from the
// hidden field; invalid when there is none.
func formParent(r *http.Request) trace.SpanContext {
	tp := r.PostFormValue(formTrace)
	if tp == "" || len(tp) > 128 {
		return trace.SpanContext{}
	}
	ctx := loginTrace.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// traceField is the value of the hidden field for the next step of a
// login: the trace context of this request's span; "" when not traced.
func traceField(r *http.Request) string {
	if !trace.SpanContextFromContext(r.Context()).IsSampled() {
		return ""
	}
	c := propagation.MapCarrier{}
	loginTrace.Inject(r.Context(), c)
	return c["traceparent"]
}

// statusWriter remembers the response's status for the span.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
