package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

// The web front-end's NATS user (deploy/nats/users.conf, frontend) may run
// the provider: create and use its buckets. Production mode: the key from
// a PEM file, an https issuer.
func TestNATSFrontendUserRunsTheProvider(t *testing.T) {
	r := startRestricted(t)
	cfg := r.config("frontend")
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	cfg.OIDCKeys = filepath.Join(dir, "oidc.pem")
	if err := os.WriteFile(cfg.OIDCKeys, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.OIDCClients = filepath.Join(dir, "clients.json")
	if err := os.WriteFile(cfg.OIDCClients, []byte(`[{"client_id":"fc","token_endpoint_auth_method":"none","redirect_uris":["https://fc.example/cb"],"scopes":["email"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.OIDCIssuer = "https://moncompte.example/oidc"
	web, err := StartWeb(cfg, r.srv.ClientURL(), nil, r.log("frontend"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Stop(context.Background()) })
	var disc struct {
		Issuer string `json:"issuer"`
	}
	fetchJSON(t, web.URL+"/oidc/.well-known/openid-configuration", &disc)
	if disc.Issuer != cfg.OIDCIssuer {
		t.Fatalf("issuer %q", disc.Issuer)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {"fc"}, "redirect_uri": {"https://fc.example/cb"}, "response_type": {"code"}, "scope": {"openid email"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	resp, err := client.Get(web.URL + "/oidc/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login := resp.Header.Get("Location")
	if !strings.HasPrefix(login, "/oidc/login?id=") {
		t.Fatalf("authorize: %d %s", resp.StatusCode, login)
	}
	// The cookie binding the authorization to this browser (Secure: the
	// issuer is https, so carried by hand over the test's http).
	req, _ := http.NewRequest("GET", web.URL+login, nil)
	for _, c := range resp.Cookies() {
		if !c.Secure || !c.HttpOnly {
			t.Fatalf("binding cookie %+v", c)
		}
		req.AddCookie(c)
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if l := resp.Header.Get("Location"); !strings.HasPrefix(l, "/connexion?retour=") {
		t.Fatalf("login step: %d %s", resp.StatusCode, l)
	}
}
