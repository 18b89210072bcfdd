package commands

// Use cases: oidc.authorize, oidc.token and oidc.userinfo, what the OpenID
// Connect provider of the web process asks (issue 18,
// docs/oidc-commands.md). The provider never sees an account id, a NIR or
// a key: it keeps the opaque grant that oidc.authorize seals, and only this
// service opens it.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// grantContext binds a sealed grant to its use: a value sealed for
// anything else does not open as a grant.
const grantContext = "ameli-auth/oidc-grant/v1"

// Bounds of the OpenID Connect requests' fields (our choice: above any
// client id or FranceConnect scope list).
const (
	maxOIDCName   = 255 // client_id, sector
	maxScopes     = 20
	maxScopeBytes = 64
	maxGrantBytes = 4096
)

// The scopes that select claims (FranceConnect's); others are ignored.
const (
	ScopeEmail   = "email"
	ScopeProfile = "profile"
	ScopeBirth   = "birth"
)

type oidcAuthorizeRequest struct {
	Common
	Session     string   `json:"session"`
	ClientID    string   `json:"client_id"`
	Sector      string   `json:"sector"`
	Scopes      []string `json:"scopes"`
	RequireCode bool     `json:"require_code"`
}

type oidcGrantRequest struct {
	Common
	Grant    string   `json:"grant"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// oidcAuthorize answers oidc.authorize: the web session authorizes a
// client. Refusals: invalid_request naming the field; session_invalid (no
// such, closed or expired session); account_locked and the login's
// account refusals; code_required (the client requires the code and the
// session was opened by a trusted device or biometrics). On success it
// records oidc.authorized and answers the grant (sealed, 1 hour:
// domain.GrantLifetime), the pairwise subject of (sector, account), acr,
// amr and auth_time. A retry of a recorded request (same request_id and
// body) is answered from the recorded fact, with a grant sealed again.
func (s *Service) oidcAuthorize(ctx context.Context, data []byte) contract.Reply {
	var req oidcAuthorizeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := oidcName("client_id", req.ClientID, true); err != nil {
		return errorReply(err)
	}
	if req.Sector == "" {
		req.Sector = req.ClientID
	}
	if err := oidcName("sector", req.Sector, true); err != nil {
		return errorReply(err)
	}
	if err := scopesField(req.Scopes, true); err != nil {
		return errorReply(err)
	}
	accountID, hash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	out, err := s.accounts.execute(ctx, accountID, s.clock.Now(), metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.AuthorizeOIDC{SessionHash: hash, ClientID: req.ClientID, Scopes: req.Scopes, RequireCode: req.RequireCode}, nil
	})
	if err != nil {
		return s.fail(contract.CmdOIDCAuthorize, err)
	}
	if out.refusal != nil {
		return errorReplyFor(req.Channel, out.refusal)
	}
	e, ok := recordedAs[events.OIDCAuthorized](out)
	if !ok {
		return s.fail(contract.CmdOIDCAuthorize, fmt.Errorf("account %s: oidc.authorize recorded no oidc.authorized", accountID))
	}
	g := domain.OIDCGrant{AccountID: accountID, SessionHash: hash, AMR: e.AMR, AuthAt: e.AuthTime, ClientID: e.ClientID,
		Sector: req.Sector, Scopes: e.Scopes, IssuedAt: e.At, ExpiresAt: e.At.Add(domain.GrantLifetime)}
	plain, err := json.Marshal(g)
	if err != nil {
		return s.fail(contract.CmdOIDCAuthorize, fmt.Errorf("encode grant: %w", err))
	}
	return contract.OIDCReply{Done: contract.OK(contract.StatusAuthorized), Grant: s.keys.SealGrant(string(plain), grantContext),
		Sub: s.keys.PairwiseSubject(req.Sector, accountID), ACR: e.ACR, AMR: e.AMR, AuthTime: contract.Timestamp(e.AuthTime)}
}

// oidcToken answers oidc.token: the provider exchanges a grant for the
// holder's claims, for the scopes asked (a subset of the grant's; all of
// them when none is named). Refusals: invalid_request naming the field;
// grant_invalid (the grant does not open, has expired, names another
// client, or its session is no longer open or its credentials changed:
// domain.Account.CheckGrant). On success it records oidc.token_issued.
func (s *Service) oidcToken(ctx context.Context, data []byte) contract.Reply {
	var req oidcGrantRequest
	g, fail := s.openGrantRequest(data, &req)
	if fail != nil {
		return *fail
	}
	out, err := s.accounts.execute(ctx, g.AccountID, s.clock.Now(), metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.IssueOIDCToken{Grant: g, ClientID: req.ClientID, Scopes: req.Scopes}, nil
	})
	if err != nil {
		return s.fail(contract.CmdOIDCToken, err)
	}
	if out.refusal != nil {
		return errorReplyFor(req.Channel, out.refusal)
	}
	e, ok := recordedAs[events.OIDCTokenIssued](out)
	if !ok {
		return s.fail(contract.CmdOIDCToken, fmt.Errorf("account %s: oidc.token recorded no oidc.token_issued", g.AccountID))
	}
	return s.tokenReply(contract.CmdOIDCToken, g, out.state, e.Scopes)
}

// oidcUserinfo answers oidc.userinfo: oidc.token's reply and refusals for
// a grant, on the account's state checked against the stream, recording
// nothing.
func (s *Service) oidcUserinfo(ctx context.Context, data []byte) contract.Reply {
	var req oidcGrantRequest
	g, fail := s.openGrantRequest(data, &req)
	if fail != nil {
		return *fail
	}
	c, err := s.accounts.current(ctx, g.AccountID)
	if err != nil {
		return s.fail(contract.CmdOIDCUserinfo, err)
	}
	scopes, err := c.state.CheckGrant(g, req.ClientID, req.Scopes, s.clock.Now())
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return s.tokenReply(contract.CmdOIDCUserinfo, g, c.state, scopes)
}

// openGrantRequest decodes an oidc.token or oidc.userinfo request and
// opens its grant; fail is the refusal to answer.
func (s *Service) openGrantRequest(data []byte, req *oidcGrantRequest) (domain.OIDCGrant, *contract.Failure) {
	refuse := func(err error) (domain.OIDCGrant, *contract.Failure) {
		f := errorReplyFor(req.Channel, err)
		return domain.OIDCGrant{}, &f
	}
	if err := decode(data, req); err != nil {
		return refuse(err)
	}
	if err := required("grant", req.Grant, maxGrantBytes); err != nil {
		return refuse(err)
	}
	if err := oidcName("client_id", req.ClientID, true); err != nil {
		return refuse(err)
	}
	if err := scopesField(req.Scopes, false); err != nil {
		return refuse(err)
	}
	plain, err := s.keys.OpenGrant(req.Grant, grantContext)
	if err != nil {
		// A forged, tampered or foreign value, or one sealed under a key
		// no longer held: the holder logs in again.
		return refuse(&domain.Error{Code: domain.CodeGrantInvalid})
	}
	var g domain.OIDCGrant
	if err := json.Unmarshal([]byte(plain), &g); err != nil || !validAccountID(g.AccountID) {
		return refuse(&domain.Error{Code: domain.CodeGrantInvalid})
	}
	return g, nil
}

// tokenReply is token_issued with the claims the scopes select among
// what the account holds: email (opened from its seal) and, if given,
// its identity.
func (s *Service) tokenReply(subject string, g domain.OIDCGrant, a domain.Account, scopes []string) contract.Reply {
	claims, err := s.claims(a, scopes)
	if err != nil {
		return s.fail(subject, err)
	}
	return contract.OIDCReply{Done: contract.OK(contract.StatusTokenIssued), Sub: s.keys.PairwiseSubject(g.Sector, g.AccountID),
		ACR: events.ACREidas1, AMR: g.AMR, AuthTime: contract.Timestamp(g.AuthAt), Claims: claims}
}

// claims selects the account's claims by scope (FranceConnect's): email
// gives email and email_verified, profile given_name, family_name, gender
// and birthdate, birth birthplace (absent for a birth abroad) and
// birthcountry. An account without an identity gives only its email;
// nil when no scope selects anything.
func (s *Service) claims(a domain.Account, scopes []string) (*contract.OIDCClaims, error) {
	var c contract.OIDCClaims
	some := false
	if slices.Contains(scopes, ScopeEmail) && a.EmailSealed != "" {
		email, err := s.keys.Open(a.EmailSealed, a.ID)
		if err != nil {
			return nil, fmt.Errorf("account %s: open the address: %w", a.ID, err)
		}
		verified := a.EmailValidated
		c.Email, c.EmailVerified, some = email, &verified, true
	}
	profile, birth := slices.Contains(scopes, ScopeProfile), slices.Contains(scopes, ScopeBirth)
	if a.IdentitySealed != "" && (profile || birth) {
		id, err := s.openIdentity(a)
		if err != nil {
			return nil, err
		}
		if profile {
			c.GivenName, c.FamilyName, c.Gender, c.Birthdate, some = id.GivenName, id.FamilyName, id.Gender, id.Birthdate, true
		}
		if birth {
			c.Birthplace, c.Birthcountry, some = id.Birthplace, id.Birthcountry, true
		}
	}
	if !some {
		return nil, nil
	}
	return &c, nil
}

// openIdentity opens the account's sealed identity.
func (s *Service) openIdentity(a domain.Account) (domain.Identity, error) {
	plain, err := s.keys.Open(a.IdentitySealed, a.ID)
	if err != nil {
		return domain.Identity{}, fmt.Errorf("account %s: open the identity: %w", a.ID, err)
	}
	var id domain.Identity
	if err := json.Unmarshal([]byte(plain), &id); err != nil {
		return domain.Identity{}, fmt.Errorf("account %s: read the identity: %w", a.ID, err)
	}
	return id, nil
}

// recordedAs is the outcome's recorded fact of type E: the one a new
// decision appended, or the one a retried request's first try did.
func recordedAs[E events.Event](out outcome) (E, bool) {
	for _, e := range out.recorded {
		if v, ok := e.(E); ok {
			return v, true
		}
	}
	var zero E
	return zero, false
}

// oidcName checks a client id or sector identifier: 1 to 255 bytes of
// printable ASCII without spaces (RFC 6749's client_id is VSCHAR; ours
// stays out of spaces and controls).
func oidcName(field, v string, mandatory bool) error {
	if v == "" {
		if mandatory {
			return domain.InvalidRequest(field, "est obligatoire")
		}
		return nil
	}
	if len(v) > maxOIDCName {
		return domain.InvalidRequest(field, fmt.Sprintf("doit faire au plus %d octets", maxOIDCName))
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return domain.InvalidRequest(field, "ne doit contenir que des caractères ASCII visibles, sans espace")
	}
	return nil
}

// scopesField checks a scope list: at most maxScopes distinct scopes of
// 1 to 64 characters among letters, digits and _ . : - (RFC 6749's
// scope-token, narrowed); at least one when mandatory.
func scopesField(scopes []string, mandatory bool) error {
	switch {
	case len(scopes) == 0 && mandatory:
		return domain.InvalidRequest("scopes", "est obligatoire")
	case len(scopes) > maxScopes:
		return domain.InvalidRequest("scopes", fmt.Sprintf("doit compter au plus %d portées", maxScopes))
	}
	for i, sc := range scopes {
		if sc == "" || len(sc) > maxScopeBytes || strings.ContainsFunc(sc, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == ':' || r == '-')
		}) {
			return domain.InvalidRequest("scopes", fmt.Sprintf("doivent faire 1 à %d caractères parmi lettres, chiffres, _ . : -", maxScopeBytes))
		}
		if slices.Contains(scopes[:i], sc) {
			return domain.InvalidRequest("scopes", "ne doivent pas se répéter")
		}
	}
	return nil
}
