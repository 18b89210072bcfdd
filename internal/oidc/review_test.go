package oidc

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ameli-auth/authsvc/internal/oidc/oidctest"
)

// Review (oidcreview): end_session must close the browser's session only
// for an id_token_hint of that session's holder. Any valid id_token (even
// expired, even the attacker's own, for any client) is accepted today, so a
// cross-site link or <a> to end_session?id_token_hint=<attacker's token>
// logs the victim out: the « a bare link from another site must not end a
// session » guard of docs/oidc.md does not hold.
func TestReviewEndSessionHintOfAnotherAccount(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public")
	// The attacker logs in with their own account and keeps the id_token.
	e.session("acc-attacker", oidctest.Session{})
	v := oauth2.GenerateVerifier()
	q := e.authorize(e.browser(), cfg.AuthCodeURL("s", gooidc.Nonce("n"), oauth2.S256ChallengeOption(v)))
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := tok.Extra("id_token").(string)

	// The victim's browser, logged in to its own account, follows the
	// attacker's link.
	victimToken := e.session("acc-victim", oidctest.Session{})
	victim := e.browser()
	srvURL, _ := url.Parse(e.srv.URL)
	victim.Jar.SetCookies(srvURL, []*http.Cookie{{Name: "sess", Value: victimToken, Path: "/"}})
	noFollow := &http.Client{Jar: victim.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.issuer + "/end_session?" + url.Values{"id_token_hint": {hint}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := e.fake.Calls("session.logout"); n != 0 {
		t.Fatalf("an id_token_hint of another account closed the victim's session (%d session.logout, redirect %q)", n, resp.Header.Get("Location"))
	}
}

// Review (oidcreview): a code is marked used by AuthRequestByCode, which
// zitadel's op calls before it authenticates the client or checks PKCE and
// the redirect URI. So anyone holding a code (another client, or nobody
// with a wrong secret) burns it, and the rightful client's exchange then
// fails. RFC 6749 4.1.3 asks the client to be authenticated and the code to
// be bound to it before the code is acted upon.
func TestReviewCodeNotBurntByAnotherClient(t *testing.T) {
	e := newEnv(t)
	e.session("acc-r2", oidctest.Session{})
	ctx := context.Background()
	_, cfg := e.rp(ctx, "public", "email")
	v := oauth2.GenerateVerifier()
	code := e.authorize(e.browser(), cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Get("code")

	other := *cfg
	other.ClientID, other.ClientSecret = "basic", "not-the-secret"
	other.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if _, err := other.Exchange(ctx, code, oauth2.VerifierOption(v)); oauthErr(err) == "" {
		t.Fatalf("another client with a wrong secret redeemed the code: %v", err)
	}
	if _, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(v)); err != nil {
		t.Fatalf("the rightful client's exchange, after an unauthenticated attempt by another: %v", err)
	}
}
