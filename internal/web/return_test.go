package web_test

import (
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/web"
)

// The login's return to a pending OpenID Connect authorization
// (internal/oidc): only to the provider's login step, never elsewhere (no
// open redirect, RFC 9700 4.11); carried through the steps; and the code
// asked whatever the device when the return asks it.

func newFrontEndReturning(t *testing.T, prefix string) *frontEnd {
	t.Helper()
	ns := natsutil.RunTestServer(t)
	fake := &fakeService{replies: map[string]string{}}
	fake.serve(t, natsutil.Connect(t, ns))
	w, err := web.New(web.Config{Conn: natsutil.Connect(t, ns), Timeout: time.Second, ReturnPrefix: prefix,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return &frontEnd{t: t, srv: srv, fake: fake}
}

func TestLoginReturnOnlyToTheProvider(t *testing.T) {
	f := newFrontEndReturning(t, "/oidc/login?")
	const safe = "/oidc/login?id=0123456789abcdef0123456789abcdef"
	for _, ret := range []string{safe, "/oidc/login?id=x&y=z"} {
		_, body := f.do("GET", "/connexion?retour="+url.QueryEscape(ret), nil, nil)
		if !strings.Contains(body, `name="retour" value="`+html.EscapeString(ret)+`"`) {
			t.Fatalf("safe return %q dropped", ret)
		}
	}
	for _, ret := range []string{"https://evil.example/oidc/login?id=1", "//evil.example/oidc/login?id=1", "/\\evil.example/oidc/login?id=1",
		"/oidc/login?id=1//evil", "/oidc/loginx?id=1", "/oidc/login", "/accueil", "/oidc/login?id=1\r\nSet-Cookie:x", "/oidc/login?id=1 2",
		"/oidc/login?id=" + strings.Repeat("a", 600), "javascript:alert(1)//oidc/login?"} {
		_, body := f.do("GET", "/connexion?retour="+url.QueryEscape(ret), nil, nil)
		if strings.Contains(body, `name="retour"`) {
			t.Fatalf("unsafe return %q kept", ret)
		}
	}

	// code_requis=1: the trusted-device token is not sent.
	device := http.Header{"Cookie": {"__Host-ameli-device=devicetoken"}}
	f.fake.answer("login.password", `{"ok":true,"status":"otp_required","login_id":"`+loginID+`","masked_email":"v***@y***.fr"}`)
	_, body := f.do("POST", "/connexion", url.Values{"nir": {"2690549588157"}, "password": {"x"}, "retour": {safe}, "code_requis": {"1"}}, device)
	sent := f.fake.sent()
	if _, has := sent[len(sent)-1].body["device_token"]; has {
		t.Fatal("the device token was sent although the client requires the code")
	}
	if !strings.Contains(body, `name="retour" value="`+html.EscapeString(safe)+`"`) || !strings.Contains(body, `name="code_requis" value="1"`) {
		t.Fatal("the code step lost the return")
	}
	f.do("POST", "/connexion", url.Values{"nir": {"2690549588157"}, "password": {"x"}, "retour": {safe}}, device)
	sent = f.fake.sent()
	if sent[len(sent)-1].body["device_token"] != "devicetoken" {
		t.Fatal("the device token was not sent for a return that does not ask the code")
	}
	// code_requis without a return means nothing.
	f.do("POST", "/connexion", url.Values{"nir": {"2690549588157"}, "password": {"x"}, "code_requis": {"1"}}, device)
	sent = f.fake.sent()
	if sent[len(sent)-1].body["device_token"] != "devicetoken" {
		t.Fatal("code_requis alone dropped the device token")
	}

	// Once logged in: the return, by a page that moves on; else home.
	f.fake.answer("login.otp.verify", `{"ok":true,"status":"authenticated","account_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"session":{"token":"`+sessionToken+`","expires_at":"`+time.Now().Add(30*time.Minute).UTC().Format(time.RFC3339)+`"}}`)
	res, body := f.do("POST", "/connexion/code", url.Values{"login_id": {loginID}, "code": {"123456"}, "retour": {safe}}, nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `<meta http-equiv="refresh" content="0;url=`+html.EscapeString(safe)) || cookie(res, "__Host-ameli-session") == nil {
		t.Fatalf("return after login: %d %s", res.StatusCode, body)
	}
	res, _ = f.do("POST", "/connexion/code", url.Values{"login_id": {loginID}, "code": {"123456"}, "retour": {"https://evil.example/"}}, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/accueil" {
		t.Fatalf("unsafe return after login: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	// Without a provider, no return at all.
	g := newFrontEndReturning(t, "")
	if _, body := g.do("GET", "/connexion?retour="+url.QueryEscape(safe), nil, nil); strings.Contains(body, `name="retour"`) {
		t.Fatal("a return kept without a provider")
	}
}
