package web

import (
	"context"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/tracing"
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
		if s.readsTraceField(r) {
			if parent := formParent(r); parent.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
			}
		}
		method := spanMethod(r.Method)
		name := method
		if method == semconv.HTTPRequestMethodOther.Value.AsString() {
			name = "HTTP" // the semantic conventions' name for an unknown method
		}
		ctx, span := s.tracer.Start(ctx, name, serverSpan)
		defer span.End()
		if !span.IsRecording() {
			// No exporter: the span costs a context value.
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(sw, r)
		// The mux has set the route on r by now: one of the patterns of
		// routes(), never the path.
		route := r.Pattern
		if _, path, ok := strings.Cut(route, " "); ok {
			route = path
		}
		if route != "" {
			span.SetName(name + " " + route)
		}
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(route),
			semconv.HTTPResponseStatusCode(sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
}

// knownMethods are the HTTP methods of RFC 9110 and PATCH (RFC 5789): the
// semantic conventions' known set. Any other is "_OTHER" on a span
// (http.request.method), as the conventions ask: the method is the
// client's, any token up to the header limit.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true,
	http.MethodTrace: true, http.MethodPatch: true,
}

// spanMethod is the method as a span shows it: one of knownMethods, or
// "_OTHER".
func spanMethod(m string) string {
	if knownMethods[m] {
		return m
	}
	return semconv.HTTPRequestMethodOther.Value.AsString()
}

// readsTraceField tells whether the request's span may continue the trace
// of its form's hidden field: only while spans may record
// (tracing.MayRecord: a provider is installed or given; else the span
// records nothing and the field is not read), for a url-encoded POST
// within the body bound, that the cross-origin check lets through, to a
// page of routes() (not a 404 or a 405). Anything else keeps its body
// for its handler, if any, to read.
func (s *Server) readsTraceField(r *http.Request) bool {
	if r.Method != http.MethodPost || !tracing.MayRecord(s.tp) || !urlEncoded(r) ||
		r.ContentLength < 0 || r.ContentLength > maxBodyBytes || s.csrf.Check(r) != nil {
		return false
	}
	return strings.HasPrefix(s.Route(r), http.MethodPost+" ")
}

// formParent is the trace context of the login's previous page, from the
// hidden field; invalid when there is none. The form is parsed as the
// page's handler would (parseForm: a body over the bound stays an error
// for it).
func formParent(r *http.Request) trace.SpanContext {
	if parseForm(r) != nil {
		return trace.SpanContext{}
	}
	tp := r.PostForm.Get(formTrace)
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
