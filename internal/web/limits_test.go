package web_test

import (
	"bytes"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/web"
)

// A form over the 16 KiB body bound is refused with 413 and the site's
// message page, and sends no command (so nothing is appended), whether
// the browser says its length, streams it (chunked, no length) or sends
// it as multipart; the largest legitimate form (a reset with two
// passwords of 128 four-byte characters) still goes through.
func TestOversizedFormIsRefused(t *testing.T) {
	f := newFrontEnd(t)
	f.fake.answer("login.password", `{"ok":false,"error":{"code":"invalid_credentials","message":"non"}}`)
	f.fake.answer("password.reset", `{"ok":true,"status":"password_reset"}`)
	big := url.Values{"nir": {"2690549588157"}, "password": {strings.Repeat("x", 17<<10)}}.Encode()

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("nir", "2690549588157")
	_ = mw.WriteField("password", strings.Repeat("x", 17<<10))
	_ = mw.Close()

	for _, c := range []struct {
		name, contentType string
		body              func() io.Reader
	}{
		{"with a length", "application/x-www-form-urlencoded", func() io.Reader { return strings.NewReader(big) }},
		{"chunked", "application/x-www-form-urlencoded", func() io.Reader { return io.MultiReader(strings.NewReader(big)) }},
		{"multipart chunked", mw.FormDataContentType(), func() io.Reader { return io.MultiReader(bytes.NewReader(mp.Bytes())) }},
	} {
		req, err := http.NewRequest("POST", f.srv.URL+"/connexion", c.body())
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", c.contentType)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		page, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(page), "trop volumineuse") ||
			res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s (chunked: %v): %d, want 413 with the site's page\n%.300s", c.name, req.ContentLength < 0, res.StatusCode, page)
		}
	}
	if sent := f.fake.sent(); len(sent) != 0 {
		t.Fatalf("oversized forms sent %d commands: %v", len(sent), sent[0].subject)
	}

	pw := strings.Repeat("😀", 128) // 512 bytes, 1,536 percent-encoded
	res, _ := f.do("POST", "/password/reset", url.Values{"request_id": {"web-0123456789abcdef0123456789abcdef"},
		"token": {strings.Repeat("t", 300)}, "new_password": {pw}, "confirm_password": {pw}}, nil)
	if sent := f.fake.sent(); res.StatusCode == http.StatusRequestEntityTooLarge || len(sent) != 1 || sent[0].body["new_password"] != pw {
		t.Fatalf("the largest legitimate form: %d, sent %v", res.StatusCode, sent)
	}
}

// readCounter is a request body that counts the bytes read from it.
type readCounter struct {
	r io.Reader
	n atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// With tracing on, the trace field is read only from a url-encoded POST
// to a page, that the cross-origin check lets through: the body of a
// refused form, or of a page that does not exist (or not for that
// method), is never read.
func TestTraceFieldIsReadOnlyFromAPagesForm(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	w, err := web.New(web.Config{Conn: natsutil.Connect(t, ns), Timeout: time.Second,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))})
	if err != nil {
		t.Fatal(err)
	}
	form := "trace=00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-01&nir=1"
	for _, c := range []struct {
		name, method, path, contentType string
		header                          http.Header
		status                          int
	}{
		{"cross-origin", "POST", "/connexion", "application/x-www-form-urlencoded", http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"no such page", "POST", "/nulle-part", "application/x-www-form-urlencoded", nil, http.StatusNotFound},
		{"a GET page", "POST", "/accueil", "application/x-www-form-urlencoded", nil, http.StatusNotFound},
		{"an unknown method", "PROPFIND", "/connexion", "application/x-www-form-urlencoded", nil, http.StatusNotFound},
	} {
		body := &readCounter{r: strings.NewReader(form)}
		req := httptest.NewRequest(c.method, c.path, body)
		req.Header.Set("Content-Type", c.contentType)
		for k, v := range c.header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, req)
		if rec.Code != c.status || body.n.Load() != 0 {
			t.Errorf("%s: %d (want %d), %d bytes of the body read", c.name, rec.Code, c.status, body.n.Load())
		}
	}
}
