package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Dev mode: the provider at the web front-end's URL + /oidc, its key made
// once in the dev NATS (the same after a restart), and the example client's
// page starting a code flow with PKCE.
func TestDevModeServesTheProviderAndTheExampleClient(t *testing.T) {
	varDir, dbURL := t.TempDir(), pgtestDB(t)
	ctx := context.Background()
	kid := func(d *Dev) string {
		t.Helper()
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		fetchJSON(t, d.Web.URL+"/oidc/.well-known/openid-configuration", &disc)
		if disc.Issuer != d.Web.URL+"/oidc" {
			t.Fatalf("issuer %q", disc.Issuer)
		}
		var jwks struct {
			Keys []struct {
				Kid string `json:"kid"`
				Alg string `json:"alg"`
			} `json:"keys"`
		}
		fetchJSON(t, disc.JWKSURI, &jwks)
		if len(jwks.Keys) != 1 || jwks.Keys[0].Alg != "ES256" {
			t.Fatalf("jwks %+v", jwks)
		}
		return jwks.Keys[0].Kid
	}
	d, _ := startDev(t, varDir, dbURL)
	first := kid(d)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(d.Web.URL + "/dev/rp/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), d.Web.URL+"/oidc/authorize?") ||
		loc.Query().Get("client_id") != DevClientID || loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("nonce") == "" {
		t.Fatalf("example client: %d %s", resp.StatusCode, loc)
	}
	// The authorization sends a browser without a session to the login.
	resp, err = client.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if l := resp.Header.Get("Location"); !strings.HasPrefix(l, "/oidc/login?id=") {
		t.Fatalf("authorize: %d %s", resp.StatusCode, l)
	}
	d.Stop(ctx)
	d, _ = startDev(t, varDir, dbURL)
	defer d.Stop(ctx)
	if again := kid(d); again != first {
		t.Fatalf("dev mode made a new signing key at its second start: %s then %s", first, again)
	}
}

func fetchJSON(t *testing.T, u string, into any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
}
