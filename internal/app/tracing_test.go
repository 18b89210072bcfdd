package app

import (
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// One login through the web front-end is one trace: its three pages, the
// commands they send, the password check, the appends, and the notifier's
// handling of the code's event down to the SMTP send, with the parent
// chain from the mail back to the first page; and no span names or
// carries the NIR, the address, the account id, the password, the code or
// the session. The real components (dev stack: web, commands, notifier
// with the mail catcher), spans exported synchronously to the SDK's
// in-memory exporter.
func TestOneLoginIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp) // the components take the global provider at start
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})

	ctx := context.Background()
	d, err := StartDev(ctx, devConfig(t, t.TempDir(), pgtestDB(t)), io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	if _, err := d.EnsureDemoAccount(ctx); err != nil {
		t.Fatal(err)
	}
	demo, err := readDemo(d.Config.VarDir)
	if err != nil || demo.AccountID == "" {
		t.Fatalf("demo account: %+v, %v", demo, err)
	}

	// The login, as a browser does it.
	web := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		res, err := web.PostForm(d.Web.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, page := post("/connexion", url.Values{"nir": {DemoNIR}, "password": {DemoPassword}, "request_id": {"web-" + strings.Repeat("1", 32)}})
	state := hiddenFields(page)
	if res.StatusCode != http.StatusOK || state.Get("login_id") == "" || state.Get("trace") == "" {
		t.Fatalf("password page %d, fields %v", res.StatusCode, state)
	}
	state.Set("request_id", "web-"+strings.Repeat("2", 32))
	res, page = post("/connexion/envoi-code", state)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("send code page %d", res.StatusCode)
	}
	state = hiddenFields(page)
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	m, err := d.Catcher.Wait(wctx, catcher.To(DemoEmail)) // the only mail of this stack
	if err != nil || m.Code == "" {
		t.Fatalf("no code mailed: %v", err)
	}
	state.Set("request_id", "web-"+strings.Repeat("3", 32))
	state.Set("code", m.Code)
	res, _ = post("/connexion/code", state)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("code page %d, want the redirection home", res.StatusCode)
	}
	var session string
	for _, c := range res.Cookies() {
		if strings.Contains(c.Name, "session") {
			session = c.Value
		}
	}

	// The notifier's span of the code's event ends after the catcher has
	// the mail (and its SMTP span).
	otpIssued := func(s tracetest.SpanStub) bool { return attr(s.Attributes, "auth.event.type") == "login.otp_issued" }
	var spans tracetest.SpanStubs
	testwait.For(t, "the notifier's span of the code", 10*time.Second, func() bool {
		spans = exp.GetSpans()
		return find(spans, "process AUTH_EVENTS", otpIssued) != nil
	})
	first := find(spans, "POST /connexion", nil)
	if first == nil {
		t.Fatalf("no span of the first page; spans: %v", names(spans))
	}
	if first.Parent.IsValid() {
		t.Errorf("the login's first page has a parent %v: it must start the trace", first.Parent)
	}
	traceID := first.SpanContext.TraceID()
	inTrace := tracetest.SpanStubs{}
	for _, s := range spans {
		if s.SpanContext.TraceID() == traceID {
			inTrace = append(inTrace, s)
		}
	}
	for _, want := range []string{"POST /connexion", "POST /connexion/envoi-code", "POST /connexion/code",
		"send auth.cmd.login.password", "process auth.cmd.login.password", "password verify",
		"process auth.cmd.login.otp.send", "process auth.cmd.login.otp.verify", "append AUTH_EVENTS",
		"process AUTH_EVENTS", "smtp send"} {
		if find(inTrace, want, nil) == nil {
			t.Errorf("the login's trace has no %q span; it has %v", want, names(inTrace))
		}
	}

	if testing.Verbose() {
		for _, s := range spans {
			t.Logf("%s %s parent=%s kind=%v %v status=%v events=%d", s.SpanContext.TraceID().String()[:6], s.Name, s.Parent.SpanID(), s.SpanKind, s.Attributes, s.Status, len(s.Events))
		}
	}
	// From the mail back to the first page, parent by parent.
	smtp := find(inTrace, "smtp send", nil)
	if smtp == nil {
		t.Fatalf("the SMTP send is not in the login's trace")
	}
	chain := []string{"smtp send"}
	for s := smtp; s.Parent.IsValid(); {
		p := byID(spans, s.Parent.SpanID())
		if p == nil {
			t.Fatalf("span %q: its parent %s was not exported", s.Name, s.Parent.SpanID())
		}
		chain = append(chain, p.Name)
		s = p
	}
	want := []string{"smtp send", "process AUTH_EVENTS", "append AUTH_EVENTS", "process auth.cmd.login.otp.send",
		"send auth.cmd.login.otp.send", "POST /connexion/envoi-code", "POST /connexion"}
	if strings.Join(chain, " <- ") != strings.Join(want, " <- ") {
		t.Errorf("parent chain of the mail:\n got %s\nwant %s", strings.Join(chain, " <- "), strings.Join(want, " <- "))
	}
	consumer := byID(spans, smtp.Parent.SpanID())
	if got := attr(consumer.Attributes, "auth.event.type"); got != "login.otp_issued" {
		t.Errorf("the notifier's span says event type %q", got)
	}
	if got := attr(consumer.Attributes, "auth.outcome"); got != "sent" {
		t.Errorf("the notifier's span says outcome %q", got)
	}
	if got := attr(find(inTrace, "process auth.cmd.login.otp.verify", nil).Attributes, "auth.outcome"); got != "authenticated" {
		t.Errorf("the verify command's span says outcome %q", got)
	}
	if consumer.SpanKind != trace.SpanKindConsumer || smtp.SpanKind != trace.SpanKindClient {
		t.Errorf("kinds: notifier %v, smtp %v", consumer.SpanKind, smtp.SpanKind)
	}

	// Nothing personal anywhere, in any trace (the registration's too).
	secrets := map[string]string{"NIR": DemoNIR, "NIR digits": strings.ReplaceAll(DemoNIR, " ", ""),
		"email": DemoEmail, "account id": demo.AccountID, "password": DemoPassword, "code": m.Code,
		"login id": state.Get("login_id")}
	if session != "" {
		secrets["session"] = session
	}
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key)+"="+a.Value.Emit())
		}
		for _, e := range s.Events {
			texts = append(texts, e.Name)
			for _, a := range e.Attributes {
				texts = append(texts, string(a.Key)+"="+a.Value.Emit())
			}
		}
		for what, v := range secrets {
			for _, text := range texts {
				if strings.Contains(text, v) {
					t.Errorf("span %q shows the %s: %q", s.Name, what, text)
				}
			}
		}
	}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// hiddenFields are a page's hidden inputs: the login's state between pages.
func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func find(spans tracetest.SpanStubs, name string, ok func(tracetest.SpanStub) bool) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name && (ok == nil || ok(spans[i])) {
			return &spans[i]
		}
	}
	return nil
}

func byID(spans tracetest.SpanStubs, id trace.SpanID) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].SpanContext.SpanID() == id {
			return &spans[i]
		}
	}
	return nil
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attr(attrs []attribute.KeyValue, key string) string {
	for _, a := range attrs {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}
