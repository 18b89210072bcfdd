package web_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/web"
)

// tracedFrontEnd is the front-end with its own tracer provider, spans
// recorded in memory, and a fake service that keeps each request's
// traceparent header.
type tracedFrontEnd struct {
	srv   *httptest.Server
	spans *tracetest.InMemoryExporter
	mu    sync.Mutex
	tps   []string // traceparent of each request, in order
}

func newTracedFrontEnd(t *testing.T, traced bool) *tracedFrontEnd {
	t.Helper()
	f := &tracedFrontEnd{spans: tracetest.NewInMemoryExporter()}
	ns := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, ns)
	if _, err := nc.Subscribe("auth.cmd.>", func(m *nats.Msg) {
		f.mu.Lock()
		f.tps = append(f.tps, m.Header.Get("traceparent"))
		f.mu.Unlock()
		_ = m.Respond([]byte(`{"ok":true,"status":"otp_required","login_id":"v1.sealed","masked_email":"v***@y***.fr"}`))
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cfg := web.Config{Conn: natsutil.Connect(t, ns), Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if traced {
		cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(f.spans))
	}
	w, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(w)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *tracedFrontEnd) do(t *testing.T, method, path string, form url.Values, header http.Header) string {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func (f *tracedFrontEnd) span(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	var names []string
	for _, s := range f.spans.GetSpans() {
		if s.Name == name {
			return s
		}
		names = append(names, s.Name)
	}
	t.Fatalf("no span %q among %v", name, names)
	return tracetest.SpanStub{}
}

var traceField = regexp.MustCompile(`name="trace" value="([^"]*)"`)

func traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

// A page request's span is named by its route and carries neither the
// URL's path nor its query (a reset link's token); a browser's own
// traceparent is not followed. A login's pages: the command's request
// carries the trace context of the front-end's client span, the code page
// carries the page's in its hidden field, and the next page continues it.
func TestPageSpansAndTheLoginsTrace(t *testing.T) {
	f := newTracedFrontEnd(t, true)
	forged := "00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-01"
	f.do(t, "GET", "/password/reset?token=SECRETTOKEN", nil, http.Header{"Traceparent": {forged}})
	reset := f.span(t, "GET /password/reset")
	if reset.Parent.IsValid() || reset.SpanContext.TraceID().String() == strings.Repeat("ab", 16) {
		t.Errorf("the browser's traceparent was followed: parent %v", reset.Parent)
	}
	for _, a := range reset.Attributes {
		if strings.Contains(a.Value.Emit(), "SECRETTOKEN") || strings.Contains(a.Value.Emit(), "/password/reset?") {
			t.Errorf("the span shows the URL: %s=%s", a.Key, a.Value.Emit())
		}
	}

	page := f.do(t, "POST", "/connexion", url.Values{"nir": {"2690549588157"}, "password": {"x"}}, nil)
	first, send := f.span(t, "POST /connexion"), f.span(t, "send auth.cmd.login.password")
	m := traceField.FindStringSubmatch(page)
	if m == nil || m[1] != traceparent(first.SpanContext) {
		t.Fatalf("the code page's trace field %v, want the page's span %s", m, traceparent(first.SpanContext))
	}
	f.mu.Lock()
	sentTP := f.tps[0]
	f.mu.Unlock()
	if sentTP != traceparent(send.SpanContext) || send.Parent.SpanID() != first.SpanContext.SpanID() {
		t.Errorf("the request's traceparent %q, want the client span's %q under the page's", sentTP, traceparent(send.SpanContext))
	}
	f.do(t, "POST", "/connexion/envoi-code", url.Values{"login_id": {"v1.sealed"}, "trace": {m[1]}}, nil)
	next := f.span(t, "POST /connexion/envoi-code")
	if next.Parent.SpanID() != first.SpanContext.SpanID() || next.SpanContext.TraceID() != first.SpanContext.TraceID() {
		t.Errorf("the second page's parent %v, want the first page's %v", next.Parent, first.SpanContext)
	}
}

// Without an exporter nothing is added: no trace field, no traceparent,
// not even when a form brings a trace field (it is not read).
func TestNoTraceWithoutExporter(t *testing.T) {
	f := newTracedFrontEnd(t, false)
	page := f.do(t, "POST", "/connexion", url.Values{"nir": {"2690549588157"}, "password": {"x"}}, nil)
	if !strings.Contains(page, `name="login_id"`) || strings.Contains(page, `name="trace"`) {
		t.Fatalf("the code page without tracing: login step %v, trace field %v",
			strings.Contains(page, `name="login_id"`), strings.Contains(page, `name="trace"`))
	}
	forged := "00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-01"
	f.do(t, "POST", "/connexion/envoi-code", url.Values{"login_id": {"v1.sealed"}, "trace": {forged}}, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tps) != 2 || f.tps[0] != "" || f.tps[1] != "" {
		t.Fatalf("traceparents sent without tracing: %q", f.tps)
	}
}

// A span shows a known method as is and any other as "_OTHER" (OTel's
// HTTP semantic conventions), named "HTTP" and the route then (here the
// not-found page's, "/"): the client's method never
// reaches a span (TestReview15SpanNameFromClientMethod sends a long one).
func TestSpanMethodIsKnownOrOther(t *testing.T) {
	f := newTracedFrontEnd(t, true)
	f.do(t, "PROPFIND", "/connexion", nil, nil)
	f.do(t, "GET", "/connexion", nil, nil)
	spans := f.spans.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, want := range [][2]string{{"HTTP /", "_OTHER"}, {"GET /connexion", "GET"}} {
		method := ""
		for _, a := range spans[i].Attributes {
			if a.Key == "http.request.method" {
				method = a.Value.AsString()
			}
		}
		if spans[i].Name != want[0] || method != want[1] {
			t.Errorf("span %q with http.request.method %q, want %q and %q", spans[i].Name, method, want[0], want[1])
		}
	}
}
