package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/oidc/oidctest"
)

// The provider against the fake oidc.* commands (oidctest) on an
// embedded NATS, with a stand-in for the web login (/connexion sets the
// session the test chose and returns): the relying party is
// github.com/coreos/go-oidc with golang.org/x/oauth2. The browser test
// through the real login pages is in internal/web.

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type env struct {
	t      testing.TB
	nc     *nats.Conn
	js     jetstream.JetStream
	fake   *oidctest.Fake
	p      *Provider
	srv    *httptest.Server
	issuer string
	clock  *clock
	// next is the session the stand-in login opens; logins counts them,
	// forced those that were asked the code whatever the device.
	next   atomic.Value
	logins atomic.Int32
	forced atomic.Int32
}

const (
	rpRedirect = "http://127.0.0.1:1/cb"
	rpLogout   = "http://127.0.0.1:1/bye"
	secret     = "un-secret-de-test-de-32-octets-au-moins-0123456789"
)

func testKeyPEM(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func secretHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func newEnv(t testing.TB, extra ...ClientConfig) *env {
	t.Helper()
	ns := natsutil.RunTestServer(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	fake, err := oidctest.Start(nc, "auth", true)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, nc: nc, js: js, fake: fake, clock: &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	var h atomic.Value
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().(http.Handler).ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	e.issuer = e.srv.URL + "/oidc"
	keys, err := ParseKeys(testKeyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	clients := append([]ClientConfig{
		{ID: "public", AuthMethod: AuthNone, RedirectURIs: []string{rpRedirect}, PostLogoutRedirectURIs: []string{rpLogout}, Scopes: []string{"profile", "email", "birth"}, Sector: "secteur-a"},
		{ID: "basic", AuthMethod: AuthSecretBasic, SecretSHA256: secretHash(secret), RedirectURIs: []string{rpRedirect}, Scopes: []string{"email"}},
		{ID: "device-ok", AuthMethod: AuthNone, RedirectURIs: []string{rpRedirect}, AllowTrustedDevice: true},
	}, extra...)
	e.p, err = New(context.Background(), Config{Issuer: e.issuer, Clients: clients, Keys: keys, Conn: nc, JS: js,
		Sessions: cookieSessions{}, Insecure: true, Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/oidc/", e.p)
	mux.HandleFunc("GET /connexion", func(w http.ResponseWriter, r *http.Request) {
		ret := r.URL.Query().Get("retour")
		if !strings.HasPrefix(ret, e.p.ReturnPrefix()) {
			http.Error(w, "bad return", http.StatusBadRequest)
			return
		}
		e.logins.Add(1)
		token, _ := e.next.Load().(string)
		if r.URL.Query().Get("code_requis") == "1" {
			// The login asked the code whatever the device: a new
			// session of the same account, opened with the code.
			e.forced.Add(1)
			token += "-code"
			e.fake.AddSession(token, oidctest.Session{Account: e.account(r)})
		}
		http.SetCookie(w, &http.Cookie{Name: "sess", Value: token, Path: "/"})
		http.Redirect(w, r, ret, http.StatusSeeOther)
	})
	h.Store(http.Handler(mux))
	return e
}

type cookieSessions struct{}

func (cookieSessions) SessionToken(r *http.Request) string {
	c, err := r.Cookie("sess")
	if err != nil {
		return ""
	}
	return c.Value
}
func (cookieSessions) ClientIP(r *http.Request) string {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return host
}

func (cookieSessions) ClearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: "sess", Value: "", Path: "/", MaxAge: -1})
}

// browser is a cookie jar that stops at the relying party's redirect URI.
func (e *env) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("redirect loop")
		}
		if !strings.HasPrefix(req.URL.String(), e.srv.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// account is the account of the session the next login opens.
func (e *env) account(*http.Request) string {
	token, _ := e.next.Load().(string)
	return strings.TrimPrefix(token, "sess-")
}

// session makes a session the next login opens.
func (e *env) session(account string, s oidctest.Session) string {
	token := "sess-" + account
	s.Account = account
	if s.Claims == nil {
		s.Claims = map[string]any{"email": account + "@exemple.fr", "email_verified": true, "given_name": "Marie Claire",
			"family_name": "Dupont", "birthdate": "1985-07-14", "gender": "female", "birthplace": "75056", "birthcountry": "99100"}
	}
	e.fake.AddSession(token, s)
	e.next.Store(token)
	return token
}

func (e *env) rp(ctx context.Context, clientID string, scopes ...string) (*gooidc.Provider, *oauth2.Config) {
	e.t.Helper()
	p, err := gooidc.NewProvider(ctx, e.issuer)
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	return p, &oauth2.Config{ClientID: clientID, Endpoint: p.Endpoint(), RedirectURL: rpRedirect, Scopes: append([]string{"openid"}, scopes...)}
}

// authorize follows /authorize to the redirect to the relying party and
// returns its query (code, state, or error).
func (e *env) authorize(b *http.Client, authURL string) url.Values {
	e.t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "http://127.0.0.1:1/") {
		body, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("authorize ended with %d %q, not a redirect to the client: %.300s", resp.StatusCode, loc, body)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

func oauthErr(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// The whole flow: discovery, code + PKCE S256, token, id_token signature
// and claims, userinfo, the code used again (refused, its token revoked),
// then logout.
func TestCodeFlowPublicClientWithPKCE(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p, cfg := e.rp(ctx, "public", "profile", "email", "birth")
	var disc struct {
		Algs   []string `json:"id_token_signing_alg_values_supported"`
		PKCE   []string `json:"code_challenge_methods_supported"`
		Auth   []string `json:"token_endpoint_auth_methods_supported"`
		Scopes []string `json:"scopes_supported"`
	}
	if err := p.Claims(&disc); err != nil {
		t.Fatal(err)
	}
	if strings.Join(disc.Algs, ",") != "ES256" || !contains(disc.PKCE, "S256") || contains(disc.Auth, "client_secret_post") || !contains(disc.Auth, "private_key_jwt") || !contains(disc.Scopes, "birth") {
		t.Fatalf("discovery %+v", disc)
	}
	e.session("acc-1", oidctest.Session{})
	b := e.browser()
	verifier, state, nonce := oauth2.GenerateVerifier(), "etat-1", "nonce-1"
	q := e.authorize(b, cfg.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("redirect %v", q)
	}
	if e.logins.Load() != 1 {
		t.Fatalf("logins %d, want the one web login", e.logins.Load())
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&gooidc.Config{ClientID: "public"}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
		Email    string   `json:"email"`
	}
	_ = idt.Claims(&claims)
	if idt.Nonce != nonce || idt.Subject != oidctest.Sub("secteur-a", "acc-1") || claims.ACR != "eidas1" ||
		strings.Join(claims.AMR, ",") != "pwd,otp" || claims.AuthTime == 0 || claims.Email != "" {
		t.Fatalf("id_token nonce %q sub %q claims %+v", idt.Nonce, idt.Subject, claims)
	}
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uc map[string]any
	_ = ui.Claims(&uc)
	if ui.Subject != idt.Subject || uc["given_name"] != "Marie Claire" || uc["birthplace"] != "75056" || uc["email"] != "acc-1@exemple.fr" || uc["email_verified"] != true {
		t.Fatalf("userinfo %v", uc)
	}

	// The code again: invalid_grant, and the token of its first use revoked.
	if _, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); oauthErr(err) != "invalid_grant" {
		t.Fatalf("reused code: %v", err)
	}
	if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("the access token of a code used twice still works")
	}

	// A second authorization in the same browser: no login, then logout.
	verifier = oauth2.GenerateVerifier()
	q = e.authorize(b, cfg.AuthCodeURL("etat-2", gooidc.Nonce("nonce-2"), oauth2.S256ChallengeOption(verifier)))
	if e.logins.Load() != 1 {
		t.Fatal("the open session was asked to log in again")
	}
	tok, err = cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = tok.Extra("id_token").(string)
	// A bare link to end_session (no id_token_hint) logs nobody out.
	noFollow := &http.Client{Jar: b.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.issuer + "/end_session")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e.fake.Calls("session.logout") != 0 || resp.Header.Get("Location") != "/" {
		t.Fatalf("end_session without id_token_hint: %d to %q, %d logouts", resp.StatusCode, resp.Header.Get("Location"), e.fake.Calls("session.logout"))
	}
	end := e.issuer + "/end_session?" + url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {rpLogout}, "state": {"bye"}}.Encode()
	resp, err = b.Get(end)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != rpLogout+"?state=bye" {
		t.Fatalf("end_session: %d to %q", resp.StatusCode, loc)
	}
	if e.fake.Calls("session.logout") != 1 {
		t.Fatal("end_session did not close the web session")
	}
	srvURL, _ := url.Parse(e.srv.URL)
	for _, c := range b.Jar.Cookies(srvURL) {
		if c.Name == "sess" {
			t.Fatal("the session cookie outlived end_session")
		}
	}
	if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
		t.Fatal("an access token outlived its session's logout")
	}
	// An unregistered post-logout URI is refused, not followed.
	resp, _ = b.Get(e.issuer + "/end_session?" + url.Values{"client_id": {"public"}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
	resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Location"), "https://evil.example") {
		t.Fatal("end_session redirected to an unregistered URI")
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Refused at /authorize: a redirect URI not registered exactly (told to
// the browser, never redirected to), PKCE missing or plain for a public
// client (told to the client), an unknown client.
func TestAuthorizeRefusals(t *testing.T) {
	e := newEnv(t)
	e.session("acc-2", oidctest.Session{})
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public", "email")
	b := e.browser()
	for _, uri := range []string{rpRedirect + "/", rpRedirect + "?x=1", "http://127.0.0.1:1/CB", "http://127.0.0.1:2/cb", "https://evil.example/cb"} {
		c := *cfg
		c.RedirectURL = uri
		resp, err := b.Get(c.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 3 || resp.Header.Get("Location") != "" {
			t.Fatalf("redirect_uri %q: %d to %q", uri, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if q := e.authorize(b, cfg.AuthCodeURL("s1")); q.Get("error") != "invalid_request" || q.Get("state") != "s1" || q.Get("code") != "" {
		t.Fatalf("public client without PKCE: %v", q)
	}
	if q := e.authorize(b, cfg.AuthCodeURL("s2", oauth2.SetAuthURLParam("code_challenge", "abcdefabcdefabcdefabcdefabcdefabcdefabcdefa"), oauth2.SetAuthURLParam("code_challenge_method", "plain"))); q.Get("error") == "" || q.Get("code") != "" {
		t.Fatalf("plain PKCE: %v", q)
	}
	c := *cfg
	c.ClientID = "inconnu"
	resp, _ := b.Get(c.AuthCodeURL("s3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		t.Fatalf("unknown client redirected to %q", resp.Header.Get("Location"))
	}
	if e.logins.Load() != 0 || e.fake.Calls("oidc.authorize") != 0 {
		t.Fatal("a refused authorization went on to the login")
	}

	// A pending authorization is bound to the browser that opened it: a
	// link to its login step in another (logged-in) browser is refused.
	resp, _ = b.Get(cfg.AuthCodeURL("s5", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	resp.Body.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	first, _ := noFollow.Get(cfg.AuthCodeURL("s6", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	first.Body.Close()
	login := first.Header.Get("Location")
	victim := e.browser()
	srvURL, _ := url.Parse(e.srv.URL)
	victim.Jar.SetCookies(srvURL, []*http.Cookie{{Name: "sess", Value: "sess-acc-2", Path: "/"}})
	resp, err := victim.Get(e.srv.URL + login)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || e.fake.Calls("oidc.authorize") != 1 {
		t.Fatalf("another browser's authorization: %d, %d oidc.authorize", resp.StatusCode, e.fake.Calls("oidc.authorize"))
	}
}

// Refused at the token endpoint: the PKCE verifier missing or wrong, the
// wrong redirect_uri, a confidential client's wrong secret, its secret in
// the body. A refused exchange does not burn the code (RFC 6749 4.1.3:
// the code is acted upon only once its client is authenticated and every
// check passed): the rightful exchange still succeeds afterwards, once.
func TestTokenRefusals(t *testing.T) {
	e := newEnv(t)
	e.session("acc-3", oidctest.Session{})
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public", "email")
	b := e.browser()
	code := func(c *oauth2.Config, verifier string) string {
		opts := []oauth2.AuthCodeOption{}
		if verifier != "" {
			opts = append(opts, oauth2.S256ChallengeOption(verifier))
		}
		return e.authorize(b, c.AuthCodeURL("s", opts...)).Get("code")
	}
	v := oauth2.GenerateVerifier()
	c1 := code(cfg, v)
	if _, err := cfg.Exchange(ctx, c1); oauthErr(err) != "invalid_grant" && oauthErr(err) != "invalid_request" {
		t.Fatalf("missing verifier: %v", err)
	}
	if _, err := cfg.Exchange(ctx, c1, oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErr(err) != "invalid_grant" {
		t.Fatalf("wrong verifier: %v", err)
	}
	c2 := c1
	other := *cfg
	other.RedirectURL = rpRedirect + "/autre"
	if _, err := other.Exchange(ctx, c2, oauth2.VerifierOption(v)); oauthErr(err) != "invalid_grant" {
		t.Fatalf("wrong redirect_uri at the token endpoint: %v", err)
	}
	if _, err := cfg.Exchange(ctx, c1, oauth2.VerifierOption(v)); err != nil {
		t.Fatalf("the code was burnt by a refused exchange: %v", err)
	}
	if _, err := cfg.Exchange(ctx, c1, oauth2.VerifierOption(v)); oauthErr(err) != "invalid_grant" {
		t.Fatalf("the code was used twice: %v", err)
	}

	basic := *cfg
	basic.ClientID, basic.ClientSecret = "basic", secret
	basic.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if _, err := basic.Exchange(ctx, code(&basic, "")); err != nil {
		t.Fatalf("client_secret_basic: %v", err)
	}
	wrong := basic
	wrong.ClientSecret = secret + "x"
	cb := code(&basic, "")
	if _, err := wrong.Exchange(ctx, cb); oauthErr(err) != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
	post := basic
	post.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	if _, err := post.Exchange(ctx, cb); oauthErr(err) != "invalid_client" {
		t.Fatalf("client_secret_post: %v", err)
	}
	if _, err := basic.Exchange(ctx, cb); err != nil {
		t.Fatalf("the code was burnt by a wrong secret: %v", err)
	}
	// Another client cannot redeem this client's code, nor burn it.
	cpub := code(cfg, v)
	if _, err := basic.Exchange(ctx, cpub, oauth2.VerifierOption(v)); oauthErr(err) != "invalid_grant" {
		t.Fatalf("a code redeemed by another client: %v", err)
	}
	if _, err := cfg.Exchange(ctx, cpub, oauth2.VerifierOption(v)); err != nil {
		t.Fatalf("the code was burnt by another client: %v", err)
	}
}

// private_key_jwt (RFC 7523 client assertion): the registered key works,
// another key is refused.
func TestPrivateKeyJWT(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	e := newEnv(t, ClientConfig{ID: "pkj", AuthMethod: AuthPrivateKeyJW, JWKS: jwks, RedirectURIs: []string{rpRedirect}, Scopes: []string{"email"}})
	e.session("acc-4", oidctest.Session{})
	ctx := context.Background()
	_, cfg := e.rp(ctx, "pkj", "email")
	b := e.browser()
	exchange := func(signWith *ecdsa.PrivateKey) (int, string) {
		code := e.authorize(b, cfg.AuthCodeURL("s")).Get("code")
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signWith}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		now := time.Now()
		assertion, _ := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "pkj", Subject: "pkj", Audience: jwt.Audience{e.issuer},
			IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: "jti-" + code[:8]}).Serialize()
		resp, err := http.PostForm(cfg.Endpoint.TokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if st, body := exchange(key); st != 200 || !strings.Contains(body, "id_token") {
		t.Fatalf("private_key_jwt: %d %s", st, body)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if st, body := exchange(other); st == 200 {
		t.Fatalf("an assertion signed by another key: %d %s", st, body)
	}
}

// The client's policy: a session opened with a trusted device (no code)
// is sent through a login that asks the code; a client that allows the
// device is authorized at once. A blocked account is refused to the
// client as access_denied.
func TestCodeRequiredAndBlocked(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	token := e.session("acc-5", oidctest.Session{AMR: []string{"pwd", "swk"}})
	b := e.browser()
	srvURL, _ := url.Parse(e.srv.URL)
	b.Jar.SetCookies(srvURL, []*http.Cookie{{Name: "sess", Value: token, Path: "/"}})
	_, cfg := e.rp(ctx, "public")
	// The device session is refused with code_required: the login is
	// asked with code_requis=1, its new session (with the code) is
	// authorized.
	q := e.authorize(b, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if e.forced.Load() != 1 || q.Get("code") == "" {
		t.Fatalf("code_required: forced %d, redirect %v", e.forced.Load(), q)
	}
	_, dev := e.rp(ctx, "device-ok")
	e.session("acc-6", oidctest.Session{AMR: []string{"pwd", "swk"}})
	if q := e.authorize(e.browser(), dev.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); q.Get("code") == "" {
		t.Fatalf("a client that allows the trusted device: %v", q)
	}
	e.session("acc-7", oidctest.Session{Blocked: true})
	if q := e.authorize(e.browser(), cfg.AuthCodeURL("s7", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); q.Get("error") != "access_denied" || q.Get("state") != "s7" || q.Get("code") != "" {
		t.Fatalf("blocked account: %v", q)
	}
}

// storage: a code is used once, whatever the number of parallel
// exchanges; it expires after CodeLifetime (the injected clock).
func codeFor(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	c := e.p.st.clients["public"]
	r, err := e.p.st.CreateAuthRequest(ctx, &zoidc.AuthRequest{ClientID: "public", RedirectURI: rpRedirect, Scopes: []string{"openid"},
		ResponseType: "code", CodeChallenge: "x", CodeChallengeMethod: "S256"}, "")
	if err != nil || c == nil {
		t.Fatal(err)
	}
	a := r.(*authRequest)
	a.done, a.Grant = true, "g"
	code, _ := codeCrypto{}.Encrypt("")
	if err := e.p.st.SaveAuthCode(context.WithValue(ctx, ctxDone, a), a.ID, code); err != nil {
		t.Fatal(err)
	}
	// The same authorization cannot give a second code.
	code2, _ := codeCrypto{}.Encrypt("")
	if err := e.p.st.SaveAuthCode(context.WithValue(ctx, ctxDone, a), a.ID, code2); err == nil {
		t.Fatal("one authorization gave two codes")
	}
	return code
}

func TestCodeSingleUseInParallel(t *testing.T) {
	e := newEnv(t)
	// One authorization, 16 login steps answering it at once (tabs,
	// replicas): one code.
	ctx := context.Background()
	r, err := e.p.st.CreateAuthRequest(ctx, &zoidc.AuthRequest{ClientID: "public", RedirectURI: rpRedirect, Scopes: []string{"openid"},
		ResponseType: "code", CodeChallenge: "x", CodeChallengeMethod: "S256"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var saved atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := e.p.st.pending(ctx, r.GetID())
			if err != nil {
				return
			}
			a.done, a.Grant = true, "g"
			code, _ := codeCrypto{}.Encrypt("")
			if e.p.st.SaveAuthCode(context.WithValue(ctx, ctxDone, a), a.ID, code) == nil {
				saved.Add(1)
			}
		}()
	}
	wg.Wait()
	if saved.Load() != 1 {
		t.Fatalf("one authorization gave %d codes", saved.Load())
	}

	for round := range 5 {
		code := codeFor(t, e)
		var wins atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// AuthRequestByCode only reads; the used mark is
				// CreateAccessToken's (useCode), after the op's checks.
				r, err := e.p.st.AuthRequestByCode(context.Background(), code)
				if err != nil {
					return
				}
				err = e.p.st.useCode(context.Background(), r.(*authRequest))
				var oe *zoidc.Error
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(r.(*authRequest).TokenID)
				case !errors.As(err, &oe) || oe.ErrorType != zoidc.InvalidGrant:
					t.Errorf("the loser of the race: %v, want invalid_grant", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d exchanges of one code succeeded", round, wins.Load())
		}
		if _, err := e.p.st.AuthRequestByCode(context.Background(), code); err == nil {
			t.Fatalf("round %d: the code is still readable after its use", round)
		}
		// The 15 other uses, before or after the winner's mark, revoke
		// its token (RFC 6749 4.1.2).
		ent, err := e.p.st.tokens.Get(ctx, winner.Load().(string))
		var te tokenEntry
		if err != nil || json.Unmarshal(ent.Value(), &te) != nil || !te.Revoked {
			t.Fatalf("round %d: the winner's token is not revoked after 15 other uses: %v", round, err)
		}
	}
}

func TestCodeExpires(t *testing.T) {
	e := newEnv(t)
	code := codeFor(t, e)
	e.clock.Advance(CodeLifetime - time.Second)
	fresh := codeFor(t, e)
	e.clock.Advance(time.Second)
	if _, err := e.p.st.AuthRequestByCode(context.Background(), code); err == nil {
		t.Fatal("a code was exchanged after its 60 s")
	}
	if _, err := e.p.st.AuthRequestByCode(context.Background(), fresh); err != nil {
		t.Fatalf("a code 1 s old: %v", err)
	}
	if _, err := e.p.st.AuthRequestByCode(context.Background(), "pas-un-code"); err == nil {
		t.Fatal("an unknown code")
	}
	// A pending authorization expires too.
	r, _ := e.p.st.CreateAuthRequest(context.Background(), &zoidc.AuthRequest{ClientID: "public", RedirectURI: rpRedirect, Scopes: []string{"openid"},
		ResponseType: "code", CodeChallenge: "x", CodeChallengeMethod: "S256"}, "")
	e.clock.Advance(RequestLifetime)
	if _, err := e.p.st.pending(context.Background(), r.GetID()); !errors.Is(err, errNotFound) {
		t.Fatalf("an authorization past its %s: %v", RequestLifetime, err)
	}
}

func TestKeys(t *testing.T) {
	old, cur := testKeyPEM(t), testKeyPEM(t)
	ks, err := ParseKeys(cur, old)
	if err != nil || len(ks.published()) != 2 || ks.Current.alg != jose.ES256 || ks.published()[1].ID() == ks.Current.id {
		t.Fatalf("rotation: %v %+v", err, ks)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rk, err := ParseKeys(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	if err != nil || rk.Current.alg != jose.RS256 {
		t.Fatalf("RS256: %v", err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	d384, _ := x509.MarshalPKCS8PrivateKey(p384)
	for name, b := range map[string][]byte{
		"rsa1024": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(weak)}),
		"p384":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: d384}),
		"none":    []byte("pas une clé"),
		"public":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
	} {
		if _, err := ParseKeys(b); err == nil {
			t.Fatalf("%s accepted", name)
		}
	}
	// The bucket: production never generates; dev generates once.
	e := newEnv(t)
	ctx := context.Background()
	if _, err := LoadKeysKV(ctx, e.js, false); err == nil {
		t.Fatal("production started without a key")
	}
	a, err := LoadKeysKV(ctx, e.js, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadKeysKV(ctx, e.js, true)
	if err != nil || a.Current.id != b.Current.id {
		t.Fatalf("dev made a new key at the second start: %v", err)
	}
	if c, err := LoadKeysKV(ctx, e.js, false); err != nil || c.Current.id != a.Current.id {
		t.Fatalf("the stored key: %v", err)
	}
}

func TestParseClients(t *testing.T) {
	ok := `[{"client_id":"fc","token_endpoint_auth_method":"client_secret_basic","client_secret_sha256":"` + secretHash(secret) + `","redirect_uris":["https://fc.example/cb"],"scopes":["profile","email","birth"]}]`
	if cs, err := ParseClients([]byte(ok)); err != nil || len(cs) != 1 {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"unknown field": `[{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":["https://a/cb"],"secret":"x"}]`,
		"no redirect":   `[{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":[]}]`,
		"fragment":      `[{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":["https://a/cb#x"]}]`,
		"relative":      `[{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":["/cb"]}]`,
		"post":          `[{"client_id":"a","token_endpoint_auth_method":"client_secret_post","redirect_uris":["https://a/cb"]}]`,
		"basic no hash": `[{"client_id":"a","token_endpoint_auth_method":"client_secret_basic","redirect_uris":["https://a/cb"]}]`,
		"public secret": `[{"client_id":"a","token_endpoint_auth_method":"none","client_secret_sha256":"` + secretHash(secret) + `","redirect_uris":["https://a/cb"]}]`,
		"pkjwt no jwks": `[{"client_id":"a","token_endpoint_auth_method":"private_key_jwt","redirect_uris":["https://a/cb"]}]`,
		"unknown scope": `[{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":["https://a/cb"],"scopes":["admin"]}]`,
		"twice":         `[{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":["https://a/cb"]},{"client_id":"a","token_endpoint_auth_method":"none","redirect_uris":["https://a/cb"]}]`,
		"bad id":        `[{"client_id":"a b","token_endpoint_auth_method":"none","redirect_uris":["https://a/cb"]}]`,
		"not json":      `{`,
	} {
		if _, err := ParseClients([]byte(bad)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	_ = json.Valid
}

// prompt=none without a session answers login_required to the client;
// prompt=login sends a browser with a session to log in again, and only
// the new session is authorized.
func TestPrompt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public")
	pkce := oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
	if q := e.authorize(e.browser(), cfg.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("prompt", "none"))); q.Get("error") != "login_required" || q.Get("state") != "s" {
		t.Fatalf("prompt=none: %v", q)
	}
	if e.logins.Load() != 0 {
		t.Fatal("prompt=none showed the login")
	}
	b := e.browser()
	e.session("acc-8", oidctest.Session{})
	if q := e.authorize(b, cfg.AuthCodeURL("s", pkce)); q.Get("code") == "" {
		t.Fatal(q)
	}
	e.clock.Advance(time.Minute)
	e.session("acc-8", oidctest.Session{AuthTime: e.clock.Now().Add(time.Second)})
	if q := e.authorize(b, cfg.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("prompt", "login"))); q.Get("code") == "" {
		t.Fatal(q)
	}
	if e.logins.Load() != 2 {
		t.Fatalf("prompt=login: %d logins, want 2", e.logins.Load())
	}
}

// failUpdate is a requests bucket whose revision-checked updates fail
// (another replica answered the authorization, or NATS is down).
type failUpdate struct{ jetstream.KeyValue }

func (failUpdate) Update(context.Context, string, []byte, uint64) (uint64, error) {
	return 0, errors.New("update refused")
}

// max_age exceeded, and the new login cannot be recorded on the pending
// request: an error page, never the code (OpenID Connect Core 3.1.2.1).
func TestMaxAgeUpdateFailureIssuesNoCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public")
	e.session("acc-ma", oidctest.Session{AuthTime: e.clock.Now().Add(-time.Hour)})
	e.p.st.requests = failUpdate{e.p.st.requests}
	resp, err := e.browser().Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", "60")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusConflict || strings.Contains(loc, "code=") {
		t.Fatalf("max_age with a failed update: %d to %q, want the 409 page and no code", resp.StatusCode, loc)
	}
	if n := e.fake.Calls("oidc.authorize"); n != 1 {
		t.Fatalf("%d oidc.authorize, want 1 (the session asked once, then refused for its age)", n)
	}
}

// end_session with a valid id_token_hint of another account: session.logout
// is sent with that hint's sub and its client's sector, refused
// (session_invalid), and the browser keeps its cookie and goes where a
// logout without a hint goes, with the RP's state.
func TestEndSessionHintOfAnotherAccountKeepsTheSession(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public")
	e.session("acc-a", oidctest.Session{})
	v := oauth2.GenerateVerifier()
	tok, err := cfg.Exchange(ctx, e.authorize(e.browser(), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := tok.Extra("id_token").(string)
	victimToken := e.session("acc-v", oidctest.Session{})
	victim := e.browser()
	srvURL, _ := url.Parse(e.srv.URL)
	victim.Jar.SetCookies(srvURL, []*http.Cookie{{Name: "sess", Value: victimToken, Path: "/"}})
	noFollow := &http.Client{Jar: victim.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.issuer + "/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLogout}, "state": {"bye"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != rpLogout+"?state=bye" || e.fake.Calls("session.logout refused") != 1 || e.fake.Calls("session.logout") != 0 {
		t.Fatalf("another account's hint: %d to %q, %d refused, %d closed", resp.StatusCode, loc, e.fake.Calls("session.logout refused"), e.fake.Calls("session.logout"))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "sess" {
			t.Fatalf("the victim's session cookie was touched: %v", c)
		}
	}
	// The victim's own hint still logs the victim out.
	v = oauth2.GenerateVerifier()
	tok, err = cfg.Exchange(ctx, e.authorize(victim, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	own, _ := tok.Extra("id_token").(string)
	resp, err = noFollow.Get(e.issuer + "/end_session?" + url.Values{"id_token_hint": {own}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); e.fake.Calls("session.logout") != 1 || loc != "/connexion?deconnecte" {
		t.Fatalf("the victim's own hint: %d to %q, %d logouts", resp.StatusCode, loc, e.fake.Calls("session.logout"))
	}
}

// Outside dev mode a client's redirect URIs are https, or http on the
// loopback interface (RFC 8252 §7.3); anything else is refused at start,
// naming the client (zitadel's op would let a confidential web client
// receive its codes over plain http).
func TestProductionRefusesHTTPRedirectURIs(t *testing.T) {
	keys, err := ParseKeys(testKeyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		redirect, logout string
		ok               bool
	}{
		{"https://rp.example/cb", "", true},
		{"http://127.0.0.1:9000/cb", "", true},
		{"http://[::1]:9000/cb", "", true},
		{"http://localhost:9000/cb", "", true},
		{"http://rp.example/cb", "", false},
		{"http://10.0.0.1/cb", "", false},
		{"https://rp.example/cb", "http://rp.example/bye", false},
	} {
		c := ClientConfig{ID: "rp", AuthMethod: AuthSecretBasic, SecretSHA256: secretHash(secret), RedirectURIs: []string{r.redirect}}
		if r.logout != "" {
			c.PostLogoutRedirectURIs = []string{r.logout}
		}
		// No NATS: a refused client stops New before it needs one; an
		// accepted one gets as far as asking for the connection.
		_, err := New(context.Background(), Config{Issuer: "https://op.example/oidc", Clients: []ClientConfig{c}, Keys: keys})
		refused := err != nil && strings.Contains(err.Error(), "outside loopback")
		if refused == r.ok || err == nil {
			t.Errorf("%s %s: %v, want accepted %v", r.redirect, r.logout, err, r.ok)
		}
	}
}
