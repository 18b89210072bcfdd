package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The client authentication methods a client may be registered with
// (RFC 7591 token_endpoint_auth_method): public clients "none" (PKCE S256
// required), confidential ones "client_secret_basic" or "private_key_jwt"
// (OpenID Connect Core 9). client_secret_post is not offered: a secret in a
// form body ends up in more logs than an Authorization header.
const (
	AuthNone         = "none"
	AuthSecretBasic  = "client_secret_basic"
	AuthPrivateKeyJW = "private_key_jwt"
)

// ClientConfig is one relying party as registered in AUTH_OIDC_CLIENTS (a
// JSON array of these). Redirect URIs are matched exactly, byte for byte
// (RFC 9700 2.1): no wildcard, no prefix.
type ClientConfig struct {
	ID         string `json:"client_id"`
	Name       string `json:"client_name,omitempty"`
	AuthMethod string `json:"token_endpoint_auth_method"`
	// SecretSHA256 is the hex SHA-256 of the client secret
	// (client_secret_basic): the file never holds the secret itself. A
	// secret is at least 32 random bytes, so a plain hash is enough.
	SecretSHA256 string `json:"client_secret_sha256,omitempty"`
	// JWKS holds the client's public keys (private_key_jwt).
	JWKS                   *jose.JSONWebKeySet `json:"jwks,omitempty"`
	RedirectURIs           []string            `json:"redirect_uris"`
	PostLogoutRedirectURIs []string            `json:"post_logout_redirect_uris,omitempty"`
	// Scopes the client may ask beyond openid: profile, email, birth.
	Scopes []string `json:"scopes,omitempty"`
	// AllowTrustedDevice lets a login with a trusted device (no code)
	// authorize this client; false (the default) asks the security code
	// every time: the strict answer to the seed's FAQ (issue 18).
	AllowTrustedDevice bool `json:"allow_trusted_device,omitempty"`
	// Sector is the sector identifier of the pairwise sub (OpenID
	// Connect Core 8.1): clients of one sector see the same sub.
	// "": the client_id.
	Sector string `json:"sector_identifier,omitempty"`
}

// ScopeBirth is FranceConnect's scope for birthplace and birthcountry.
const ScopeBirth = "birth"

// knownScopes are the scopes a client may be registered for.
var knownScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, ScopeBirth}

// ParseClients reads the clients' JSON array and checks each: a client_id
// of 1 to 64 of [A-Za-z0-9._-], a known auth method with its credential
// (and only that one), at least one absolute redirect URI without a
// fragment, known scopes. An error names the client and the field.
func ParseClients(data []byte) ([]ClientConfig, error) {
	var cs []ClientConfig
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cs); err != nil {
		return nil, fmt.Errorf("oidc clients: %w", err)
	}
	seen := map[string]bool{}
	for i, c := range cs {
		name := fmt.Sprintf("client %d (%q)", i, c.ID)
		if c.ID == "" || len(c.ID) > 64 || strings.Trim(c.ID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return nil, fmt.Errorf("oidc clients: %s: client_id must be 1 to 64 of A-Z a-z 0-9 . _ -", name)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("oidc clients: %s: client_id registered twice", name)
		}
		seen[c.ID] = true
		switch c.AuthMethod {
		case AuthNone:
			if c.SecretSHA256 != "" || c.JWKS != nil {
				return nil, fmt.Errorf("oidc clients: %s: a public client (none) has no secret nor jwks", name)
			}
		case AuthSecretBasic:
			if b, err := hex.DecodeString(c.SecretSHA256); err != nil || len(b) != sha256.Size || c.JWKS != nil {
				return nil, fmt.Errorf("oidc clients: %s: client_secret_basic needs client_secret_sha256 (64 hex digits) and no jwks", name)
			}
		case AuthPrivateKeyJW:
			if c.JWKS == nil || len(c.JWKS.Keys) == 0 || c.SecretSHA256 != "" {
				return nil, fmt.Errorf("oidc clients: %s: private_key_jwt needs jwks (public keys with kid) and no secret", name)
			}
			for _, k := range c.JWKS.Keys {
				if k.KeyID == "" || !k.IsPublic() || !k.Valid() {
					return nil, fmt.Errorf("oidc clients: %s: jwks: each key must be a valid public key with a kid", name)
				}
			}
		default:
			return nil, fmt.Errorf("oidc clients: %s: token_endpoint_auth_method must be none, client_secret_basic or private_key_jwt", name)
		}
		if len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("oidc clients: %s: redirect_uris is empty", name)
		}
		for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.Fragment != "" || strings.Contains(u, "#") {
				return nil, fmt.Errorf("oidc clients: %s: %q is not an absolute http(s) URI without fragment", name, u)
			}
		}
		for _, s := range c.Scopes {
			if !slices.Contains(knownScopes, s) {
				return nil, fmt.Errorf("oidc clients: %s: unknown scope %q (known: %s)", name, s, strings.Join(knownScopes, ", "))
			}
		}
	}
	return cs, nil
}

// ReadClients reads ParseClients' file.
func ReadClients(path string) ([]ClientConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("oidc clients (AUTH_OIDC_CLIENTS): %w", err)
	}
	return ParseClients(b)
}

// client is a registered client as zitadel's op sees it (op.Client).
type client struct {
	cfg       ClientConfig
	loginPath string // "<issuer path>/login"
	insecure  bool   // http redirect URIs accepted (dev mode, tests)
}

var errUnknownClient = errors.New("unknown client")

func (c *client) GetID() string                    { return c.cfg.ID }
func (c *client) RedirectURIs() []string           { return c.cfg.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.cfg.PostLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod {
	switch c.cfg.AuthMethod {
	case AuthNone:
		return oidc.AuthMethodNone
	case AuthPrivateKeyJW:
		return oidc.AuthMethodPrivateKeyJWT
	}
	return oidc.AuthMethodBasic
}
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string    { return c.loginPath + "?id=" + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType {
	return op.AccessTokenTypeJWT
}
func (c *client) IDTokenLifetime() time.Duration { return IDTokenLifetime }
func (c *client) DevMode() bool                  { return c.insecure }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.cfg.Scopes, scope) }

// IDTokenUserinfoClaimsAssertion: false, the identity claims are read at
// userinfo (as FranceConnect does); the id_token says who and how.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

// allowedScopes keeps openid and the scopes the client is registered
// for, in the asked order, without repeats.
func (c *client) allowedScopes(asked []string) []string {
	var out []string
	for _, s := range asked {
		if (s == oidc.ScopeOpenID || c.IsScopeAllowed(s)) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func (c *client) sector() string {
	if c.cfg.Sector != "" {
		return c.cfg.Sector
	}
	return c.cfg.ID
}

// checkSecret compares the secret's SHA-256 in constant time.
func (c *client) checkSecret(secret string) bool {
	want, err := hex.DecodeString(c.cfg.SecretSHA256)
	if err != nil || c.cfg.AuthMethod != AuthSecretBasic {
		return false
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}
