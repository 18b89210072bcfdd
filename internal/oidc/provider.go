// Package oidc is the OpenID Connect provider (issue 18) of the web
// front-end, on zitadel's certified op package: discovery, JWKS,
// /authorize (authorization code flow), token, userinfo and end_session
// under the issuer's path. The login behind /authorize is the web
// front-end's own (password, then the security code; Cas 1 to 9): the
// provider sends a browser without a web session to /connexion with a
// return to its login step, and asks the commands service (oidc.authorize,
// oidc.token, oidc.userinfo, session.logout) for everything else. It
// keeps no account data: pending authorizations, codes and access tokens
// live in NATS KV buckets (shared by the web replicas) and hold an opaque
// grant only the commands service opens. See docs/oidc.md.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Sessions is the web front-end's side of the browser's session: the
// session cookie's token, and clearing it (internal/web.Server).
type Sessions interface {
	SessionToken(r *http.Request) string
	ClearSession(w http.ResponseWriter)
	// ClientIP is the browser's address as the web's commands carry it
	// (behind trusted proxies, the forwarded one).
	ClientIP(r *http.Request) string
}

// Config wires the provider.
type Config struct {
	// Issuer is the issuer URL (AUTH_OIDC_ISSUER), with a path, e.g.
	// https://moncompte.ameli.example/oidc; the provider serves under
	// that path.
	Issuer   string
	Clients  []ClientConfig
	Keys     *Keys
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Prefix   string // subject prefix, "auth" by default
	Sessions Sessions
	// LoginPath is the web front-end's login page, "/connexion".
	LoginPath string
	// Insecure accepts an http issuer and http redirect URIs (dev mode,
	// tests).
	Insecure bool
	Replicas int // of the KV buckets (AUTH_STREAM_REPLICAS)
	Timeout  time.Duration
	Now      func() time.Time // nil: time.Now
	Logger   *slog.Logger
}

// Provider serves the OpenID Connect endpoints under Path.
type Provider struct {
	path      string // the issuer's path, "/oidc"
	loginPath string // path + "/login"
	webLogin  string
	op        *op.Provider
	handler   http.Handler
	st        *storage
	sessions  Sessions
	cmd       *commander
	log       *slog.Logger
	// secureCookie: the browser-binding cookie is Secure (an https issuer).
	secureCookie bool
}

// bindBrowser: when /authorize sends the browser to the login step, a
// cookie (per pending authorization, on the login step's path, 15
// minutes) binds that authorization to this browser; the login step
// refuses a browser without it, so a link to another browser's pending
// authorization cannot have a logged-in victim authorize it (our choice,
// beyond OpenID Connect Core; RFC 9700 4.7, CSRF).
func (p *Provider) bindBrowser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&bindOnLogin{ResponseWriter: w, p: p}, r)
	})
}

type bindOnLogin struct {
	http.ResponseWriter
	p     *Provider
	wrote bool
}

func (b *bindOnLogin) WriteHeader(status int) {
	if !b.wrote && status >= 300 && status < 400 {
		if id, ok := strings.CutPrefix(b.Header().Get("Location"), b.p.loginPath+"?id="); ok && validID(id) {
			http.SetCookie(b.ResponseWriter, &http.Cookie{Name: bindCookie(id), Value: "1", Path: b.p.loginPath, MaxAge: int(RequestLifetime.Seconds()),
				HttpOnly: true, Secure: b.p.secureCookie, SameSite: http.SameSiteLaxMode})
		}
	}
	b.wrote = true
	b.ResponseWriter.WriteHeader(status)
}

func (b *bindOnLogin) Write(d []byte) (int, error) {
	if !b.wrote {
		b.WriteHeader(http.StatusOK)
	}
	return b.ResponseWriter.Write(d)
}

func bindCookie(id string) string { return "oidc-" + id }

// tlsOrLoopback tells whether a redirect URI is https, or http on the
// loopback interface (a native app's listener, RFC 8252 §7.3: it never
// leaves the machine). Outside dev mode nothing else is registered: the
// redirect endpoint must use TLS (RFC 6749 §3.1.2.1; RFC 9700 §4.1), and
// zitadel's op accepts an http URI for a confidential web client.
func tlsOrLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// New checks the configuration, opens the buckets and builds the
// provider.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(cfg.Insecure && u.Scheme == "http")) || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidc: issuer %q must be an https URL without query nor fragment (AUTH_OIDC_ISSUER)", cfg.Issuer)
	}
	path := strings.TrimSuffix(u.Path, "/")
	if path == "" || strings.Contains(path, "//") {
		return nil, fmt.Errorf("oidc: issuer %q needs a path, e.g. /oidc, under which the provider serves (AUTH_OIDC_ISSUER)", cfg.Issuer)
	}
	if !cfg.Insecure {
		for _, c := range cfg.Clients {
			for _, r := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
				if !tlsOrLoopback(r) {
					return nil, fmt.Errorf("oidc clients: client %q: %q: an http redirect URI outside loopback would carry codes in clear; use https (AUTH_OIDC_CLIENTS)", c.ID, r)
				}
			}
		}
	}
	if cfg.Keys == nil || cfg.Keys.Current == nil {
		return nil, errors.New("oidc: no signing key")
	}
	if cfg.Conn == nil || cfg.JS == nil || cfg.Sessions == nil {
		return nil, errors.New("oidc: a NATS connection, JetStream and the web sessions are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "auth"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LoginPath == "" {
		cfg.LoginPath = "/connexion"
	}
	p := &Provider{path: path, loginPath: path + "/login", webLogin: cfg.LoginPath, sessions: cfg.Sessions, log: cfg.Logger,
		secureCookie: u.Scheme == "https",
		cmd:          &commander{nc: cfg.Conn, prefix: cfg.Prefix, timeout: cfg.Timeout}}
	clients := map[string]*client{}
	for _, c := range cfg.Clients {
		clients[c.ID] = &client{cfg: c, loginPath: p.loginPath, insecure: cfg.Insecure}
	}
	req, codes, tokens, err := openBuckets(ctx, cfg.JS, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	p.st = &storage{clients: clients, keys: cfg.Keys, requests: req, codes: codes, tokens: tokens, cmd: p.cmd, now: cfg.Now, log: cfg.Logger,
		loggedOut: cfg.LoginPath + "?deconnecte"}
	opts := []op.Option{op.WithCrypto(codeCrypto{}), op.WithLogger(cfg.Logger)}
	if cfg.Insecure {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		CodeMethodS256:           true,
		AuthMethodPost:           false,
		AuthMethodPrivateKeyJWT:  true,
		DefaultLogoutRedirectURI: defaultLogoutRedirect,
		SupportedUILocales:       []language.Tag{language.French},
		SupportedScopes:          slices.Clone(knownScopes),
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash",
			"email", "email_verified", "given_name", "family_name", "birthdate", "gender", "birthplace", "birthcountry"},
	}, p.st, op.StaticIssuer(strings.TrimSuffix(cfg.Issuer, "/")), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p.loginPath, p.login)
	mux.Handle(path+"/end_session", p.endSession(http.StripPrefix(path, p.op)))
	mux.Handle(path+"/authorize", p.bindBrowser(http.StripPrefix(path, p.op)))
	mux.Handle(path+"/oauth/token", tokenOnlyBasic(http.StripPrefix(path, p.op)))
	mux.Handle(path+"/", http.StripPrefix(path, p.op))
	p.handler = headers(mux)
	return p, nil
}

// Path is the issuer's path ("/oidc"): the provider serves it and below.
func (p *Provider) Path() string { return p.path }

// ReturnPrefix is the prefix of the web login's returns to the provider
// (web.Config.ReturnPrefix).
func (p *Provider) ReturnPrefix() string { return p.loginPath + "?" }

// ServeHTTP serves the provider's endpoints.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.handler.ServeHTTP(w, r) }

// headers: nothing of the provider is framed, sniffed, cached or told to
// another site in a Referer (the redirect to the client carries the code).
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// tokenOnlyBasic refuses a client secret in the form body
// (client_secret_post is not offered): zitadel would read it there too.
func tokenOnlyBasic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if r.Method == http.MethodPost && r.ParseForm() == nil && r.PostForm.Has("client_secret") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"client_secret_post is not supported: use client_secret_basic"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// endSession gives TerminateSessionFromRequest the browser's session and,
// when the op redirects (the logout accepted), clears the session cookie.
func (p *Provider) endSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		es := &endSession{token: p.sessions.SessionToken(r)}
		ctx := context.WithValue(r.Context(), ctxSession, es)
		next.ServeHTTP(&clearOnRedirect{ResponseWriter: w, es: es, clear: p.sessions.ClearSession}, r.WithContext(ctx))
	})
}

type clearOnRedirect struct {
	http.ResponseWriter
	es    *endSession
	clear func(http.ResponseWriter)
	wrote bool
}

func (c *clearOnRedirect) WriteHeader(status int) {
	if !c.wrote && c.es.closed && status >= 300 && status < 400 {
		c.clear(c.ResponseWriter)
	}
	c.wrote = true
	c.ResponseWriter.WriteHeader(status)
}

func (c *clearOnRedirect) Write(b []byte) (int, error) {
	c.wrote = true
	return c.ResponseWriter.Write(b)
}

// login is the step between /authorize and the code (the client's
// LoginURL): no web session -> the web login with a return here; a
// session -> oidc.authorize, then the code to the client's redirect URI
// (or the refusal there, as OpenID Connect Core 3.1.2.6 says).
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	a, err := p.st.pending(ctx, id)
	if errors.Is(err, errNotFound) {
		p.page(w, http.StatusBadRequest, "Demande de connexion expirée",
			"Cette demande de connexion a expiré ou a déjà été utilisée. Merci de recommencer depuis le site qui vous l'a proposée.")
		return
	}
	if err != nil {
		p.log.Error("oidc: read an authorization", "err", err)
		p.page(w, http.StatusServiceUnavailable, "Service indisponible", msgUnavailable)
		return
	}
	if ck, err := r.Cookie(bindCookie(a.ID)); err != nil || ck.Value != "1" {
		p.page(w, http.StatusBadRequest, "Demande de connexion refusée",
			"Cette demande de connexion a été ouverte dans un autre navigateur. Merci de recommencer depuis le site qui vous l'a proposée.")
		return
	}
	c := p.st.clients[a.ClientID]
	if c == nil {
		p.page(w, http.StatusBadRequest, "Demande de connexion refusée", "Ce service n'est plus autorisé à utiliser le compte ameli.")
		return
	}
	ret := p.loginPath + "?id=" + url.QueryEscape(a.ID)
	promptNone := slices.Contains(a.Prompt, oidc.PromptNone)
	toLogin := func(forceCode bool) {
		if promptNone {
			op.AuthRequestError(w, r, a, oidc.ErrLoginRequired(), p.op)
			return
		}
		to := p.webLogin + "?retour=" + url.QueryEscape(ret)
		if forceCode {
			to += "&code_requis=1"
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
	}
	// prompt=login and max_age ask a login made now: the first time
	// here the browser is sent to log in again, and the session it comes
	// back with must have been opened after that (OpenID Connect Core
	// 3.1.2.1).
	reauth := slices.Contains(a.Prompt, oidc.PromptLogin) || (a.MaxAge != nil && *a.MaxAge == 0)
	token := p.sessions.SessionToken(r)
	if token == "" || (reauth && a.LoginAskedAt.IsZero()) {
		if reauth && a.LoginAskedAt.IsZero() {
			a.LoginAskedAt = p.st.now().UTC()
			if err := p.st.update(ctx, a); err != nil {
				p.page(w, http.StatusConflict, "Demande de connexion expirée", "Cette demande de connexion a déjà été utilisée. Merci de recommencer depuis le site qui vous l'a proposée.")
				return
			}
		}
		toLogin(false)
		return
	}
	body := map[string]any{"session": token, "client_id": c.cfg.ID, "sector": c.sector(), "scopes": a.Scopes,
		"require_code": !c.cfg.AllowTrustedDevice}
	if ip := p.sessions.ClientIP(r); ip != "" {
		body["client_ip"] = ip
	}
	if ua := r.UserAgent(); ua != "" && len(ua) <= 512 {
		body["user_agent"] = ua
	}
	// A fresh request_id per ask (commander.send): the same authorization
	// is asked again with another session after a login, and a request_id
	// names one body (docs/idempotency.md).
	rep, err := p.cmd.send(ctx, cmdAuthorize, body)
	switch {
	case err != nil:
		p.log.Warn("oidc: oidc.authorize not answered", "err", err)
		p.page(w, http.StatusServiceUnavailable, "Service indisponible", msgUnavailable)
		return
	case rep.OK:
	case rep.code() == codeSessionInvalid:
		p.sessions.ClearSession(w)
		toLogin(false)
		return
	case rep.code() == codeCodeRequired:
		toLogin(true)
		return
	case rep.code() == "unavailable":
		p.page(w, http.StatusServiceUnavailable, "Service indisponible", msgUnavailable)
		return
	default:
		// A block, a deactivated account...: refused to the client as
		// access_denied; the person saw the reason on the web pages.
		p.log.Info("oidc: authorization refused", "client_id", c.cfg.ID, "code", rep.code())
		_ = p.st.requests.Delete(ctx, a.ID, jetstream.LastRevision(a.rev))
		op.AuthRequestError(w, r, a, oidc.ErrAccessDenied().WithDescription("%s", rep.code()), p.op)
		return
	}
	if !a.LoginAskedAt.IsZero() && rep.AuthTime.Before(a.LoginAskedAt.Add(-time.Second)) {
		toLogin(false) // the session predates the login asked
		return
	}
	if a.MaxAge != nil && *a.MaxAge > 0 && p.st.now().Sub(rep.AuthTime) > time.Duration(*a.MaxAge)*time.Second {
		a.MaxAge = oidc.NewMaxAge(0)
		a.LoginAskedAt = p.st.now().UTC()
		// The new login must be asked, or nothing given: a failed
		// update (another tab answered this authorization, NATS down)
		// never falls through to the code (OpenID Connect Core
		// 3.1.2.1: past max_age the OP must authenticate again).
		if err := p.st.update(ctx, a); err != nil {
			p.log.Warn("oidc: max_age: the new login could not be recorded", "err", err)
			p.page(w, http.StatusConflict, "Demande de connexion expirée", "Cette demande de connexion a déjà été utilisée. Merci de recommencer depuis le site qui vous l'a proposée.")
			return
		}
		toLogin(false)
		return
	}
	a.Grant, a.Subject, a.ACR, a.AMR, a.AuthTime, a.done = rep.Grant, rep.Sub, rep.ACR, rep.AMR, rep.AuthTime, true
	op.AuthResponse(a, p.op, w, r.WithContext(context.WithValue(ctx, ctxDone, a)))
}

const msgUnavailable = "Le service est momentanément indisponible. Merci de réessayer dans quelques instants."

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – Compte ameli</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main id="contenu" class="wrap"><div class="card narrow"><h1>{{.Title}}</h1>
<div class="alert alert-error" role="alert"><p>{{.Text}}</p></div></div></main></body></html>`))

func (p *Provider) page(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Title, Text string }{title, text})
}

// Route names the endpoint of r for metrics: a fixed set, never the path.
func (p *Provider) Route(r *http.Request) string {
	switch strings.TrimPrefix(r.URL.Path, p.path) {
	case "/.well-known/openid-configuration":
		return "oidc discovery"
	case "/keys":
		return "oidc keys"
	case "/authorize":
		return "oidc authorize"
	case "/login":
		return "oidc login"
	case "/oauth/token":
		return "oidc token"
	case "/userinfo":
		return "oidc userinfo"
	case "/end_session":
		return "oidc end_session"
	}
	return "oidc other"
}
