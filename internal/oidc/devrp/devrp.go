// Package devrp is dev mode's example relying party (never in
// production): a page on the web front-end, /dev/rp/, that logs a person in
// through the OpenID Connect provider with github.com/coreos/go-oidc and
// golang.org/x/oauth2 (code flow, PKCE S256, state, nonce) and shows the
// id_token's and userinfo's claims. docs/dev.md says how to use it.
package devrp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ameli-auth/authsvc/internal/oidc"
)

// Path is where the example page is served.
const Path = "/dev/rp"

// Client is the example client's registration: public (PKCE), the
// trusted device allowed, every scope.
func Client(base, id string) oidc.ClientConfig {
	return oidc.ClientConfig{ID: id, Name: "Exemple de fournisseur de service (dev)", AuthMethod: oidc.AuthNone,
		RedirectURIs: []string{base + Path + "/callback"}, PostLogoutRedirectURIs: []string{base + Path + "/"},
		Scopes: []string{"profile", "email", "birth"}, AllowTrustedDevice: false}
}

type rp struct {
	base, issuer, clientID string
	log                    *slog.Logger
	mu                     sync.Mutex
	provider               *gooidc.Provider
}

// New serves the example relying party under Path.
func New(base, issuer, clientID string, log *slog.Logger) http.Handler {
	r := &rp{base: base, issuer: issuer, clientID: clientID, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path+"/{$}", r.home)
	mux.HandleFunc("GET "+Path+"/login", r.login)
	mux.HandleFunc("GET "+Path+"/callback", r.callback)
	return mux
}

func (r *rp) oauth(ctx context.Context) (*gooidc.Provider, *oauth2.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.provider == nil {
		p, err := gooidc.NewProvider(ctx, r.issuer)
		if err != nil {
			return nil, nil, err
		}
		r.provider = p
	}
	return r.provider, &oauth2.Config{ClientID: r.clientID, Endpoint: r.provider.Endpoint(), RedirectURL: r.base + Path + "/callback",
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email", "birth"}}, nil
}

var page = template.Must(template.New("rp").Parse(`<!doctype html><html lang="fr"><head><meta charset="utf-8">
<title>Exemple de fournisseur de service (dev)</title></head><body>
<h1>Exemple de fournisseur de service (dev)</h1>
{{with .Error}}<p id="error" style="color:#b00">{{.}}</p>{{end}}
{{if .IDToken}}
<h2>id_token</h2><pre id="id-token">{{.IDToken}}</pre>
<h2>userinfo</h2><pre id="userinfo">{{.Userinfo}}</pre>
<p><a id="logout" href="{{.Logout}}">Se déconnecter (end_session)</a></p>
{{else}}
<p><a id="login" href="{{.Login}}">Se connecter avec le compte ameli</a></p>
{{end}}
</body></html>`))

type view struct {
	Error, IDToken, Userinfo, Logout, Login string
}

func (r *rp) render(w http.ResponseWriter, status int, v view) {
	v.Login = Path + "/login"
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = page.Execute(w, v)
}

func (r *rp) home(w http.ResponseWriter, req *http.Request) { r.render(w, http.StatusOK, view{}) }

func random() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

const cookieName = "devrp-flow"

// login starts the flow: state, nonce and the PKCE verifier kept in a
// cookie of this browser.
func (r *rp) login(w http.ResponseWriter, req *http.Request) {
	_, cfg, err := r.oauth(req.Context())
	if err != nil {
		r.render(w, http.StatusBadGateway, view{Error: "discovery: " + err.Error()})
		return
	}
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: state + "." + nonce + "." + verifier, Path: Path, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: 900})
	http.Redirect(w, req, cfg.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (r *rp) callback(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	p, cfg, err := r.oauth(ctx)
	if err != nil {
		r.render(w, http.StatusBadGateway, view{Error: err.Error()})
		return
	}
	ck, err := req.Cookie(cookieName)
	parts := []string{}
	if err == nil {
		parts = strings.Split(ck.Value, ".")
	}
	if len(parts) != 3 || req.URL.Query().Get("state") != parts[0] {
		r.render(w, http.StatusBadRequest, view{Error: "state absent ou différent"})
		return
	}
	if e := req.URL.Query().Get("error"); e != "" {
		r.render(w, http.StatusOK, view{Error: "refus du fournisseur : " + e + " " + req.URL.Query().Get("error_description")})
		return
	}
	tok, err := cfg.Exchange(ctx, req.URL.Query().Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		r.render(w, http.StatusBadGateway, view{Error: "token: " + err.Error()})
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&gooidc.Config{ClientID: r.clientID}).Verify(ctx, raw)
	if err != nil || idt.Nonce != parts[1] {
		r.render(w, http.StatusBadGateway, view{Error: "id_token refusé (signature, audience ou nonce)"})
		return
	}
	var idClaims map[string]any
	_ = idt.Claims(&idClaims)
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	var uiClaims map[string]any
	if err == nil {
		_ = ui.Claims(&uiClaims)
	}
	a, _ := json.MarshalIndent(idClaims, "", "  ")
	b, _ := json.MarshalIndent(uiClaims, "", "  ")
	logout := strings.TrimSuffix(r.issuer, "/") + "/end_session?" + url.Values{"id_token_hint": {raw},
		"post_logout_redirect_uri": {r.base + Path + "/"}}.Encode()
	r.render(w, http.StatusOK, view{IDToken: string(a), Userinfo: string(b), Logout: logout})
}
