package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ameli-auth/authsvc/internal/testwait"
)

// The OpenID Connect provider end to end (issue 18): a relying party
// (github.com/coreos/go-oidc with golang.org/x/oauth2) sends a person at
// Chromium to /oidc/authorize; they log in on the real pages (password,
// then the mailed code); the relying party gets the code, exchanges it,
// checks the id_token and asks userinfo; then the refusals. The whole dev
// stack answers: the real oidc.* commands of the commands service.

// relyingParty is the client's site: it records the redirects it gets.
type relyingParty struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []url.URL
}

func newRelyingParty(t *testing.T) *relyingParty {
	rp := &relyingParty{}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" {
			http.NotFound(w, r)
			return
		}
		rp.mu.Lock()
		rp.hits = append(rp.hits, *r.URL)
		rp.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>RP</title><h1>Fournisseur de service</h1>"))
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *relyingParty) count() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.hits)
}

// reached waits for the relying party's hit number n (from 1) and for the
// browser p to have loaded that page (so that the next navigation does not
// cut this one short).
func (rp *relyingParty) reached(t *testing.T, p *person, n int) url.URL {
	t.Helper()
	u := rp.hit(t, n)
	testwait.For(t, "the relying party's page loaded", 20*time.Second, func() bool {
		return eval[bool](p, `location.href.startsWith(`+strconv.Quote(rp.srv.URL)+`) && document.readyState === "complete"`)
	})
	return u
}

// hit waits for the relying party's hit number n (from 1).
func (rp *relyingParty) hit(t *testing.T, n int) url.URL {
	t.Helper()
	testwait.For(t, "the relying party's redirect", 20*time.Second, func() bool { return rp.count() >= n })
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.hits[n-1]
}

func TestBrowserOIDC(t *testing.T) {
	rp := newRelyingParty(t)
	clients := []map[string]any{{"client_id": "rp-test", "token_endpoint_auth_method": "none",
		"redirect_uris": []string{rp.srv.URL + "/cb"}, "post_logout_redirect_uris": []string{rp.srv.URL + "/bye"},
		"scopes": []string{"profile", "email", "birth"}, "sector_identifier": "secteur-test"},
		{"client_id": "rp-device", "token_endpoint_auth_method": "none", "redirect_uris": []string{rp.srv.URL + "/cb-device"},
			"scopes": []string{"email"}, "allow_trusted_device": true}}
	b, _ := json.Marshal(clients)
	file := filepath.Join(t.TempDir(), "clients.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSiteWith(t, "-oidc-clients", file)
	issuer := s.base + "/oidc"
	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	cfg := &oauth2.Config{ClientID: "rp-test", Endpoint: provider.Endpoint(), RedirectURL: rp.srv.URL + "/cb",
		Scopes: []string{gooidc.ScopeOpenID, "profile", "email"}}
	verify := provider.Verifier(&gooidc.Config{ClientID: "rp-test"})

	// An account with its identity (what its NIR encodes: a woman born
	// in July 1985 in Paris, commune 056).
	opts := map[string]any{"nir": "2850775056123", "email": "marie.dupont@exemple.fr",
		"identity": map[string]any{"given_name": "Marie Claire", "family_name": "Dupont", "birthdate": "1985-07-14",
			"gender": "female", "birthplace": "75056", "birthcountry": "99100"}}
	s.account(t, opts)
	nir := opts["nir"].(string)
	email := "marie.dupont@exemple.fr"
	p := s.person(t)
	verifier, nonce := oauth2.GenerateVerifier(), "nonce-e2e-1"
	p.navigate("authorize", chromedp.Navigate(cfg.AuthCodeURL("etat-1", gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))))
	// The web login page, with the return to the authorization.
	p.wantPage("/connexion", "J'accède à mon compte ameli")
	if !p.has("form[action='/connexion'] input[name='retour']") {
		t.Fatal("the login lost its return to the authorization")
	}
	p.fill("#nir", nir)
	p.fill("#password", password)
	p.click("form[action='/connexion'] button")
	if !p.has("form[action='/connexion/envoi-code']") {
		t.Fatalf("after the password: %s, red box %q", p.path(), p.redBox())
	}
	p.click("form[action='/connexion/envoi-code'] button")
	p.fill("#code", p.mail(email, "code de sécurité").Code)
	p.click("form[action='/connexion/code'] button")
	cb := rp.reached(t, p, 1)
	if cb.Path != "/cb" || cb.Query().Get("state") != "etat-1" || cb.Query().Get("code") == "" {
		t.Fatalf("callback %s", cb.String())
	}
	code := cb.Query().Get("code")
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verify.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	var claims struct {
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
	}
	_ = idt.Claims(&claims)
	if idt.Nonce != nonce || claims.ACR != "eidas1" || !slicesContain(claims.AMR, "otp") || !slicesContain(claims.AMR, "pwd") || claims.AuthTime == 0 || idt.Subject == "" {
		t.Fatalf("id_token sub %q nonce %q claims %+v", idt.Subject, idt.Nonce, claims)
	}
	// The relying party's own check of the nonce: another one is refused.
	if idt.Nonce == "nonce-e2e-autre" {
		t.Fatal("nonce")
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uc map[string]any
	_ = ui.Claims(&uc)
	if ui.Subject != idt.Subject || uc["email"] == nil {
		t.Fatalf("userinfo %v (sub %q)", uc, idt.Subject)
	}
	// The scopes asked (profile, email) select the claims: no birth.
	if uc["email"] != email || uc["given_name"] != "Marie Claire" || uc["family_name"] != "Dupont" || uc["birthdate"] != "1985-07-14" ||
		uc["gender"] != "female" || uc["birthplace"] != nil || uc["birthcountry"] != nil {
		t.Fatalf("userinfo claims %v", uc)
	}

	// A reused code.
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("reused code: %v", err)
	}
	// A second authorization in the same browser needs no login; without
	// the PKCE verifier its code is refused.
	p.navigate("authorize again", chromedp.Navigate(cfg.AuthCodeURL("etat-2", gooidc.Nonce("nonce-e2e-2"), oauth2.S256ChallengeOption(verifier))))
	cb = rp.reached(t, p, 2)
	if cb.Query().Get("state") != "etat-2" {
		t.Fatalf("second callback %s", cb.String())
	}
	if _, err := cfg.Exchange(ctx, cb.Query().Get("code")); err == nil {
		t.Fatal("a code exchanged without its PKCE verifier")
	}
	// A wrong nonce: the id_token of a third authorization carries its
	// own nonce, which the relying party compares with what it sent.
	p.navigate("authorize a third time", chromedp.Navigate(cfg.AuthCodeURL("etat-3", gooidc.Nonce("nonce-e2e-3"), oauth2.S256ChallengeOption(verifier))))
	cb = rp.reached(t, p, 3)
	tok3, err := cfg.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw3, _ := tok3.Extra("id_token").(string)
	idt3, err := verify.Verify(ctx, raw3)
	if err != nil || idt3.Nonce != "nonce-e2e-3" || idt3.Nonce == nonce {
		t.Fatalf("third id_token: %v nonce %q", err, idt3.Nonce)
	}
	// A redirect URI not registered: an error page here, nothing there.
	bad := *cfg
	bad.RedirectURL = rp.srv.URL + "/cb/autre"
	if st := p.navigate("authorize to another URI", chromedp.Navigate(bad.AuthCodeURL("etat-4", oauth2.S256ChallengeOption(verifier)))); st != http.StatusBadRequest {
		t.Fatalf("wrong redirect_uri answered %d", st)
	}
	if rp.count() != 3 {
		t.Fatal("the browser was sent to an unregistered redirect URI")
	}

	// Logout: end_session closes the web session; the tokens die with it.
	p.navigate("end_session", chromedp.Navigate(issuer+"/end_session?"+url.Values{"id_token_hint": {raw3},
		"post_logout_redirect_uri": {rp.srv.URL + "/bye"}}.Encode()))
	if bye := rp.reached(t, p, 4); bye.Path != "/bye" {
		t.Fatalf("after end_session: %s", bye.String())
	}
	if _, kept := p.cookies()["__Host-ameli-session"]; kept {
		t.Fatal("the session cookie outlived end_session")
	}
	if _, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok3)); err == nil {
		t.Fatal("an access token outlived the logout")
	}
	p.open("/accueil")
	p.wantPage("/connexion", "J'accède à mon compte ameli")

	// A blocked account (Cas 7) is refused as on the web; the client gets nothing.
	nir2, _ := s.account(t, nil)
	q := s.person(t)
	q.navigate("authorize", chromedp.Navigate(cfg.AuthCodeURL("etat-5", oauth2.S256ChallengeOption(verifier))))
	for i := range 3 {
		q.fill("#nir", nir2)
		q.fill("#password", "pas-le-bon-"+string(rune('a'+i)))
		q.click("form[action='/connexion'] button")
	}
	q.fill("#nir", nir2)
	q.fill("#password", password)
	q.click("form[action='/connexion'] button")
	if !strings.Contains(q.redBox(), "bloqué") {
		t.Fatalf("blocked account: red box %q", q.redBox())
	}
	q.wantPage("/connexion", "J'accède à mon compte ameli")
	if rp.count() != 4 {
		t.Fatal("a blocked account reached the client")
	}
	trustedDeviceAndTheCode(t, s, rp, provider)
	devExampleClient(t, s)
}

// Dev mode's example client (/dev/rp/, docs/dev.md): a login through the
// provider shows the claims; its logout ends the web session.
func devExampleClient(t *testing.T, s *site) {
	nir, email := s.account(t, nil)
	p := s.person(t)
	p.open("/dev/rp/")
	p.click("#login")
	p.wantPage("/connexion", "J'accède à mon compte ameli")
	p.fill("#nir", nir)
	p.fill("#password", password)
	p.click("form[action='/connexion'] button")
	p.click("form[action='/connexion/envoi-code'] button")
	p.fill("#code", p.mail(email, "code de sécurité").Code)
	p.click("form[action='/connexion/code'] button")
	testwait.For(t, "the example client's page with the claims", 20*time.Second, func() bool { return p.has("#id-token") })
	if got := p.text("#id-token"); !strings.Contains(got, `"acr": "eidas1"`) || !strings.Contains(got, `"otp"`) || !strings.Contains(got, `"nonce"`) {
		t.Fatalf("example client's id_token claims:\n%s (error %q)", got, p.text("#error"))
	}
	if got := p.text("#userinfo"); !strings.Contains(got, `"sub"`) || !strings.Contains(got, `"email"`) {
		t.Fatalf("example client's userinfo:\n%s", got)
	}
	p.shot("30-oidc-client-exemple")
	p.click("#logout")
	testwait.For(t, "back on the example client", 20*time.Second, func() bool { return p.has("#login") })
	if _, kept := p.cookies()["__Host-ameli-session"]; kept {
		t.Fatal("the example client's logout left the web session")
	}
}

// A trusted device (« Se souvenir de cet appareil ») does not spare the
// code to a client that requires it: the browser goes through a login
// that asks the code (amr pwd, otp); a client that allows the device gets
// the password alone (amr pwd, swk).
func trustedDeviceAndTheCode(t *testing.T, s *site, rp *relyingParty, provider *gooidc.Provider) {
	ctx := context.Background()
	nir, email := s.account(t, nil)
	p := s.person(t)
	p.login(nir, email, password, true)
	p.click("form[action='/deconnexion'] button")
	verifier := oauth2.GenerateVerifier()
	amrOf := func(b *person, cfg *oauth2.Config, n int) []string {
		t.Helper()
		cb := rp.reached(t, b, n)
		tok, err := cfg.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatalf("token: %v (callback %s)", err, cb.String())
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&gooidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			AMR []string `json:"amr"`
		}
		_ = idt.Claims(&c)
		return c.AMR
	}

	strict := &oauth2.Config{ClientID: "rp-test", Endpoint: provider.Endpoint(), RedirectURL: rp.srv.URL + "/cb", Scopes: []string{gooidc.ScopeOpenID}}
	p.navigate("authorize", chromedp.Navigate(strict.AuthCodeURL("etat-d1", oauth2.S256ChallengeOption(verifier))))
	p.fill("#nir", nir)
	p.fill("#password", password)
	p.click("form[action='/connexion'] button") // the trusted device opens a session...
	// ...which the client refuses (code_required): the login again, the
	// device's cookie withheld, so the code is asked.
	testwait.For(t, "the login asking the code", 20*time.Second, func() bool { return p.has("input[name='code_requis']") })
	p.fill("#nir", nir)
	p.fill("#password", password)
	p.click("form[action='/connexion'] button")
	p.click("form[action='/connexion/envoi-code'] button")
	p.fill("#code", p.mail(email, "code de sécurité").Code)
	p.click("form[action='/connexion/code'] button")
	if amr := amrOf(p, strict, 5); strings.Join(amr, ",") != "pwd,otp" {
		t.Fatalf("a client requiring the code got amr %v", amr)
	}
	p.click2LogoutThroughTheWeb()

	// The same browser (its device cookie), another tab.
	q := p.sameBrowser()
	lenient := &oauth2.Config{ClientID: "rp-device", Endpoint: provider.Endpoint(), RedirectURL: rp.srv.URL + "/cb-device", Scopes: []string{gooidc.ScopeOpenID}}
	q.navigate("authorize", chromedp.Navigate(lenient.AuthCodeURL("etat-d2", oauth2.S256ChallengeOption(verifier))))
	q.wantPage("/connexion", "J'accède à mon compte ameli")
	q.fill("#nir", nir)
	q.fill("#password", password)
	q.click("form[action='/connexion'] button")
	if amr := amrOf(q, lenient, 6); strings.Join(amr, ",") != "pwd,swk" {
		t.Fatalf("a client allowing the trusted device got amr %v", amr)
	}
}

// click2LogoutThroughTheWeb ends the web session on the pages.
func (p *person) click2LogoutThroughTheWeb() {
	p.t.Helper()
	p.open("/accueil")
	p.click("form[action='/deconnexion'] button")
}

func slicesContain(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}
