package web_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/web"
)

// Handler tests against a fake commands service on an embedded
// nats-server: what the front-end sends, and what it makes of each reply.

// fakeService answers auth.cmd.<subject> with the canned reply of its
// subject and remembers every request.
type fakeService struct {
	mu       sync.Mutex
	replies  map[string]string
	requests []sent
}

type sent struct {
	subject string
	body    map[string]any
}

func (f *fakeService) answer(subject, reply string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[subject] = reply
}

func (f *fakeService) sent() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.requests...)
}

func (f *fakeService) serve(t *testing.T, nc *nats.Conn) {
	t.Helper()
	_, err := nc.Subscribe("auth.cmd.>", func(m *nats.Msg) {
		subject := strings.TrimPrefix(m.Subject, "auth.cmd.")
		var body map[string]any
		_ = json.Unmarshal(m.Data, &body)
		f.mu.Lock()
		f.requests = append(f.requests, sent{subject, body})
		rep, ok := f.replies[subject]
		f.mu.Unlock()
		if ok {
			_ = m.Respond([]byte(rep))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

type frontEnd struct {
	t    *testing.T
	srv  *httptest.Server
	fake *fakeService
}

func newFrontEnd(t *testing.T, configure ...func(*web.Config)) *frontEnd {
	t.Helper()
	ns := natsutil.RunTestServer(t)
	fake := &fakeService{replies: map[string]string{}}
	fake.serve(t, natsutil.Connect(t, ns))
	cfg := web.Config{Conn: natsutil.Connect(t, ns), Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, c := range configure {
		c(&cfg)
	}
	w, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return &frontEnd{t: t, srv: srv, fake: fake}
}

// do sends a request as a browser on the same site would; no redirect is followed.
func (f *frontEnd) do(method, path string, form url.Values, header http.Header) (*http.Response, string) {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Test")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b)
}

func cookie(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const (
	sessionToken = "01ARZ3NDEKTSV4RRFFQ69G5FAV.sessiontoken"
	loginID      = "v1.sealed-login"
)

func TestLoginSendsWebMetadataAndSetsHostCookies(t *testing.T) {
	f := newFrontEnd(t)
	f.fake.answer("login.otp.verify", `{"ok":true,"status":"authenticated","account_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"session":{"token":"`+sessionToken+`","expires_at":"`+time.Now().Add(30*time.Minute).UTC().Format(time.RFC3339)+`"},
		"device_token":"devicetoken","device_token_expires_at":"`+time.Now().AddDate(0, 6, 0).UTC().Format(time.RFC3339)+`"}`)
	rid := "web-0123456789abcdef0123456789abcdef"
	res, _ := f.do("POST", "/connexion/code", url.Values{"request_id": {rid}, "login_id": {loginID}, "code": {"123456"}, "remember": {"on"}}, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/accueil" {
		t.Fatalf("verify: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	for name, life := range map[string]time.Duration{"__Host-ameli-session": 30 * time.Minute, "__Host-ameli-device": 183 * 24 * time.Hour} {
		c := cookie(res, name)
		if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
			t.Fatalf("%s: %+v", name, c)
		}
		if d := time.Duration(c.MaxAge) * time.Second; d < life-5*24*time.Hour && d < life-time.Minute || d > life+time.Minute {
			t.Fatalf("%s lasts %s, want about %s", name, d, life)
		}
	}
	got := f.fake.sent()
	if len(got) != 1 || got[0].subject != "login.otp.verify" {
		t.Fatalf("sent %+v", got)
	}
	b := got[0].body
	if b["channel"] != "web" || b["request_id"] != rid || b["client_ip"] != "127.0.0.1" || b["user_agent"] != "Mozilla/5.0 (X11; Linux x86_64) Test" ||
		b["login_id"] != loginID || b["code"] != "123456" || b["remember_device"] != true {
		t.Fatalf("request body %v", b)
	}

	// A request_id that is not one of ours is replaced by a fresh one.
	f.fake.answer("login.password", `{"ok":true,"status":"otp_required","login_id":"`+loginID+`","masked_email":"v***@y***.fr"}`)
	f.do("POST", "/connexion", url.Values{"request_id": {"../../etc"}, "nir": {"2690549588157"}, "password": {"x"}}, nil)
	b = f.fake.sent()[1].body
	if id, _ := b["request_id"].(string); !strings.HasPrefix(id, "web-") || len(id) != 36 {
		t.Fatalf("request_id %q", id)
	}
}

// The client_ip sent with each command: the TCP peer, unless the peer is a
// trusted proxy (AUTH_WEB_TRUSTED_PROXIES); then the rightmost
// X-Forwarded-For entry that is not a trusted proxy. The test server's peer
// is 127.0.0.1. A client that writes its own X-Forwarded-For gains nothing:
// entries left of the last untrusted one are its own.
func TestClientIPBehindTrustedProxies(t *testing.T) {
	for _, r := range []struct {
		name    string
		trusted string
		xff     []string
		want    string
	}{
		{"no_trusted_proxy_the_header_is_ignored", "", []string{"198.51.100.7"}, "127.0.0.1"},
		{"a_peer_that_is_not_trusted_keeps_its_address", "10.0.0.0/8", []string{"198.51.100.7"}, "127.0.0.1"},
		{"behind_a_trusted_proxy_the_address_it_saw", "127.0.0.1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"a_spoofed_leftmost_entry_and_a_trusted_hop_are_skipped", "127.0.0.0/8,10.0.0.0/8", []string{"1.2.3.4, 198.51.100.7, 10.0.0.2"}, "198.51.100.7"},
		{"several_header_lines_read_as_one_list", "127.0.0.1", []string{"1.1.1.1", "198.51.100.8"}, "198.51.100.8"},
		{"ipv6_client", "127.0.0.1", []string{"2001:db8::1"}, "2001:db8::1"},
		{"no_header_the_peer", "127.0.0.1", nil, "127.0.0.1"},
		{"a_garbled_rightmost_entry_the_peer", "127.0.0.1", []string{"198.51.100.7, not-an-ip"}, "127.0.0.1"},
		{"every_entry_trusted_the_peer", "127.0.0.0/8,10.0.0.0/8", []string{"10.0.0.3"}, "127.0.0.1"},
	} {
		t.Run(r.name, func(t *testing.T) {
			trusted, err := config.ParseAllowlist(r.trusted)
			if err != nil {
				t.Fatal(err)
			}
			f := newFrontEnd(t, func(c *web.Config) { c.TrustedProxies = trusted })
			f.fake.answer("login.password", `{"ok":true,"status":"otp_required","login_id":"`+loginID+`","masked_email":"v***@y***.fr"}`)
			f.do("POST", "/connexion", url.Values{"nir": {"2690549588157"}, "password": {"x"}}, http.Header{"X-Forwarded-For": r.xff})
			got := f.fake.sent()
			if len(got) != 1 || got[0].body["client_ip"] != r.want {
				t.Fatalf("sent %+v, want client_ip %s", got, r.want)
			}
		})
	}
}

func TestCrossOriginFormsAreRefused(t *testing.T) {
	f := newFrontEnd(t)
	f.fake.answer("login.password", `{"ok":false,"error":{"code":"invalid_credentials","message":"non"}}`)
	form := url.Values{"nir": {"2690549588157"}, "password": {"x"}}
	for name, h := range map[string]http.Header{
		"cross-site fetch metadata": {"Sec-Fetch-Site": {"cross-site"}},
		"foreign origin":            {"Sec-Fetch-Site": nil, "Origin": {"https://evil.example"}},
	} {
		res, body := f.do("POST", "/connexion", form, h)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(body, "depuis un autre site") {
			t.Errorf("%s: %d\n%s", name, res.StatusCode, body)
		}
	}
	if n := len(f.fake.sent()); n != 0 {
		t.Fatalf("%d commands sent for refused forms", n)
	}
	if res, _ := f.do("POST", "/connexion", form, nil); res.StatusCode == http.StatusForbidden {
		t.Fatal("a same-origin form was refused")
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFrontEnd(t)
	for _, c := range []struct {
		path, cache string
		status      int
	}{
		{"/connexion", "no-store", 200},
		{"/mot-de-passe-oublie", "no-store", 200},
		{"/password/reset?token=abc", "no-store", 200},
		{"/accueil", "no-store", 303}, // no session cookie
		{"/nulle-part", "no-store", 404},
		{"/static/style.css", "public, max-age=3600", 200},
	} {
		res, body := f.do("GET", c.path, nil, nil)
		h := res.Header
		if res.StatusCode != c.status || h.Get("Cache-Control") != c.cache || h.Get("Referrer-Policy") != "no-referrer" ||
			h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
			!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || strings.Contains(h.Get("Content-Security-Policy"), "script-src") {
			t.Errorf("%s: %d %v", c.path, res.StatusCode, h)
		}
		if res.StatusCode != http.StatusSeeOther && strings.HasPrefix(h.Get("Content-Type"), "text/html") && (!strings.Contains(body, `<html lang="fr">`) || strings.Contains(body, "<script")) {
			t.Errorf("%s: not a French page without script", c.path)
		}
	}
}

// What each session.check reply makes of a logged-in page.
func TestLoggedInPagesFollowSessionCheck(t *testing.T) {
	session := &http.Cookie{Name: "__Host-ameli-session", Value: sessionToken}
	for _, c := range []struct {
		name, reply string
		status      int
		want        string
		cleared     bool
	}{
		{"valid_with_a_previous_login_in_paris_time",
			`{"ok":true,"status":"session_valid","account_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","expires_at":"2025-07-09T09:02:00Z","previous_login_at":"2025-07-09T08:32:00Z","masked_email":"v***@y***.fr"}`,
			200, "Dernière connexion : 09/07/2025 - 10:32", false},
		{"valid_after_a_first_login",
			`{"ok":true,"status":"session_valid","account_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","expires_at":"2025-07-09T09:02:00Z"}`,
			200, "Première connexion à votre compte ameli.", false},
		{"invalid_goes_to_the_login_page_with_the_service_message",
			`{"ok":false,"error":{"code":"session_invalid","message":"Votre session a expiré. Merci de vous reconnecter à votre compte ameli."}}`,
			422, "Votre session a expiré. Merci de vous reconnecter à votre compte ameli.", true},
		{"unavailable_keeps_the_cookie_and_says_so",
			`{"ok":false,"error":{"code":"unavailable","message":"Le service est momentanément indisponible. Merci de réessayer dans quelques instants."}}`,
			503, "Le service est momentanément indisponible.", false},
		{"unreadable_reply_is_unavailable_never_raw", `{"status":`, 503, "Le service est momentanément indisponible.", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFrontEnd(t)
			f.fake.answer("session.check", c.reply)
			res, body := f.do("GET", "/accueil", nil, http.Header{"Cookie": {session.String()}})
			if res.StatusCode != c.status || !strings.Contains(body, c.want) {
				t.Fatalf("%d, want %d with %q:\n%s", res.StatusCode, c.status, c.want, body)
			}
			if strings.Contains(body, `"ok"`) || strings.Contains(body, "goroutine") {
				t.Fatal("raw JSON or a trace on the page")
			}
			if gone := cookie(res, "__Host-ameli-session"); (gone != nil && gone.MaxAge < 0) != c.cleared {
				t.Fatalf("cookie cleared: %v, want %v", gone, c.cleared)
			}
			if s := f.fake.sent(); len(s) != 1 || s[0].body["session"] != sessionToken || s[0].body["channel"] != "web" {
				t.Fatalf("sent %+v", s)
			}
		})
	}
	t.Run("no_cookie_sends_nothing", func(t *testing.T) {
		f := newFrontEnd(t)
		res, _ := f.do("GET", "/mes-informations", nil, nil)
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/connexion" || len(f.fake.sent()) != 0 {
			t.Fatalf("%d %s, %d sent", res.StatusCode, res.Header.Get("Location"), len(f.fake.sent()))
		}
	})
}

// A refused field is told under the field, linked to it, never as raw JSON.
func TestBadInputIsShownNextToItsField(t *testing.T) {
	f := newFrontEnd(t)
	f.fake.answer("login.password", `{"ok":false,"error":{"code":"invalid_request","field":"nir","message":"Requête invalide : le champ « nir » doit contenir 13 caractères (ou 15 avec la clé)."}}`)
	res, body := f.do("POST", "/connexion", url.Values{"nir": {"123"}, "password": {"x"}}, nil)
	if res.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, `<p id="nir-error" class="field-error" role="alert">Ce champ doit contenir 13 caractères (ou 15 avec la clé).</p>`) ||
		!strings.Contains(body, `aria-invalid="true" aria-describedby="nir-error"`) || strings.Contains(body, "alert-error") {
		t.Fatalf("%d\n%s", res.StatusCode, body)
	}
}

// NATS down: the page says the service is unavailable at once; when NATS
// is back, nats.go has reconnected and the same page works.
func TestServiceUnavailableWhileNATSIsDownAndBackAfter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	store := t.TempDir()
	start := func() *server.Server {
		srv, err := natsutil.StartEmbedded(natsutil.EmbeddedConfig{Listen: addr, StoreDir: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		return srv
	}
	ns := start()
	connect := func() *nats.Conn {
		nc, err := nats.Connect("nats://"+addr, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	fake := &fakeService{replies: map[string]string{"password.reset.request": `{"ok":true,"status":"reset_requested"}`}}
	fakeConn := connect()
	fake.serve(t, fakeConn)
	webConn := connect()
	w, err := web.New(web.Config{Conn: webConn, Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	defer srv.Close()
	f := &frontEnd{t: t, srv: srv, fake: fake}
	ask := func() (*http.Response, string) {
		return f.do("POST", "/mot-de-passe-oublie", url.Values{"nir": {"2690549588157"}}, nil)
	}
	if res, body := ask(); res.StatusCode != 200 || !strings.Contains(body, "un mail contenant un lien sécurisé") {
		t.Fatalf("before: %d", res.StatusCode)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	began := time.Now()
	res, body := ask()
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Le service est momentanément indisponible.") {
		t.Fatalf("NATS down: %d\n%s", res.StatusCode, body)
	}
	if took := time.Since(began); took > 1500*time.Millisecond { // at most the request timeout
		t.Fatalf("NATS down took %s to say so", took)
	}

	start()
	deadline := time.Now().Add(10 * time.Second)
	for !webConn.IsConnected() || !fakeConn.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("nats.go never reconnected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := fakeConn.Flush(); err != nil {
		t.Fatal(err)
	}
	if res, _ := ask(); res.StatusCode != 200 {
		t.Fatalf("after NATS came back: %d", res.StatusCode)
	}
}

// NATS goes away: the page says the service is unavailable (never a raw
// error); NATS comes back on the same address: the front-end's connection
// reconnects by itself and the same form works again.
func TestNATSOutageShowsUnavailableAndRecovers(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	fake := &fakeService{replies: map[string]string{}}
	fake.serve(t, natsutil.Connect(t, ns))
	fake.answer("login.password", `{"ok":true,"status":"otp_required","login_id":"`+loginID+`","masked_email":"v***@y***.fr"}`)
	w, err := web.New(web.Config{Conn: natsutil.Connect(t, ns), Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	f := &frontEnd{t: t, srv: srv, fake: fake}
	form := func() url.Values {
		return url.Values{"request_id": {"web-" + strings.Repeat("a", 32)}, "nir": {"2690549588157"}, "password": {"Motdepasse-2023"}}
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	res, body := f.do("POST", "/connexion", form(), nil)
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "momentanément indisponible") || strings.Contains(body, "nats:") {
		t.Fatalf("with NATS down: %d\n%s", res.StatusCode, body)
	}

	natsutil.RestartTestServer(t, ns)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, body := f.do("POST", "/connexion", form(), nil)
		if res.StatusCode == http.StatusOK && strings.Contains(body, "CLIQUEZ POUR RECEVOIR UN CODE DE SÉCURITÉ") {
			break // the code page of Étape 1: the service answered
		}
		if time.Now().After(deadline) {
			t.Fatalf("the front-end did not recover after NATS came back: %d", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, with a deadline
	}
}
