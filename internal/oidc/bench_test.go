package oidc

import (
	"context"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/ameli-auth/authsvc/internal/oidc/oidctest"
)

// One whole authorization of a logged-in browser, over HTTP and the
// embedded NATS with the fake commands: /authorize, the login step, the
// code, the token (id_token verified) and userinfo. What the provider
// adds to the commands' own time.
func BenchmarkAuthorizeTokenUserinfo(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	p, cfg := e.rp(ctx, "public", "email")
	e.session("acc-b", oidctest.Session{})
	br := e.browser()
	verify := p.Verifier(&gooidc.Config{ClientID: "public"})
	b.ResetTimer()
	for b.Loop() {
		v := oauth2.GenerateVerifier()
		q := e.authorize(br, cfg.AuthCodeURL("s", gooidc.Nonce("n"), oauth2.S256ChallengeOption(v)))
		tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := tok.Extra("id_token").(string)
		if _, err := verify.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
		if _, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err != nil {
			b.Fatal(err)
		}
	}
}
