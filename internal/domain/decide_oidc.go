package domain

// OpenID Connect (issue 18): an open session authorizes a client
// (oidc.authorize), and the grant that authorization gives the provider is
// exchanged for the holder's claims (oidc.token, oidc.userinfo) for as long
// as the session it came from is open.

import (
	"slices"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// GrantLifetime is how long a grant of oidc.authorize may be exchanged
// (oidc.token, oidc.userinfo) after it was given: 1 hour (our choice: the
// provider's access tokens live less; a session lives 30 minutes anyway,
// and the grant never outlives its session).
const GrantLifetime = time.Hour

// OIDCGrant is what oidc.authorize hands the provider, sealed (the
// commands service seals and opens it; the provider never reads it): the
// account and the keyed hash of the session that authorized, how and when
// that session was opened (its amr and login time), the client, its sector, the scopes granted,
// and when the grant was given and ends.
type OIDCGrant struct {
	AccountID   string    `json:"a"`
	SessionHash string    `json:"s"`
	AMR         []string  `json:"m"`
	AuthAt      time.Time `json:"t"`
	ClientID    string    `json:"c"`
	Sector      string    `json:"x"`
	Scopes      []string  `json:"sc"`
	IssuedAt    time.Time `json:"i"`
	ExpiresAt   time.Time `json:"e"`
}

// AuthorizeOIDC: the session SessionHash authorizes ClientID for Scopes;
// with RequireCode (the client's policy) only a session opened with the
// security code does.
type AuthorizeOIDC struct {
	SessionHash string
	ClientID    string
	Scopes      []string
	RequireCode bool
}

// IssueOIDCToken: the provider exchanges Grant for tokens, for ClientID
// and Scopes (nil: the grant's).
type IssueOIDCToken struct {
	Grant    OIDCGrant
	ClientID string
	Scopes   []string
}

func (AuthorizeOIDC) isCommand()  {}
func (IssueOIDCToken) isCommand() {}

// AMR is the amr claim (RFC 8176) of a session opened by a login method:
// a password and the code ["pwd","otp"]; a password and a trusted device
// ["pwd","swk"] (the device's token is a software key); the app's
// biometric login ["hwk"] (issue 18: a key the phone keeps in hardware,
// unlocked by biometrics). A session without a method (none exists:
// login.succeeded has always carried one) says only ["pwd"].
func AMR(method string) []string {
	switch method {
	case events.MethodOTP:
		return []string{events.AMRPwd, events.AMROTP}
	case events.MethodTrustedDevice:
		return []string{events.AMRPwd, events.AMRSwk}
	case events.MethodBiometric:
		return []string{events.AMRHwk}
	}
	return []string{events.AMRPwd}
}

// authorizeOIDC (issue 18): the login behind /authorize is the web's, so
// its rules hold as on the web: the session must be open (session_invalid
// otherwise: the provider sends the browser to the login page), a block
// in force is told (account_locked), as are the account states a login
// refuses (seed, Cas 1 to 9: no validated email, affiliation missing or
// pending), and a client that requires the code is refused a session
// opened without it, by a trusted device or biometrics (code_required:
// the provider sends the browser through a login that asks it). The
// authorization is recorded for audit, acr eidas1 for every login.
func (d Decider) authorizeOIDC(a Account, c AuthorizeOIDC, now time.Time) ([]events.Event, error) {
	if !a.Exists() {
		return nil, &Error{Code: CodeSessionInvalid}
	}
	s, open := a.OpenSession(c.SessionHash, now)
	if !open {
		return nil, &Error{Code: CodeSessionInvalid}
	}
	if a.Blocked(now) {
		return nil, locked(a.BlockReason, a.BlockedUntil)
	}
	if err := d.refusal(a); err != nil {
		return nil, err
	}
	if c.RequireCode && s.Method != events.MethodOTP {
		return nil, &Error{Code: CodeCodeRequired}
	}
	return record(events.OIDCAuthorized{ClientID: c.ClientID, Scopes: slices.Clone(c.Scopes),
		ACR: events.ACREidas1, AMR: AMR(s.Method), AuthTime: s.AuthAt, At: now})
}

// issueOIDCToken records a token issuance for a grant that CheckGrant
// admits.
func (d Decider) issueOIDCToken(a Account, c IssueOIDCToken, now time.Time) ([]events.Event, error) {
	scopes, err := a.CheckGrant(c.Grant, c.ClientID, c.Scopes, now)
	if err != nil {
		return nil, err
	}
	return record(events.OIDCTokenIssued{ClientID: c.ClientID, Scopes: scopes, ACR: events.ACREidas1, At: now})
}

// CheckGrant tells whether a grant (opened: its seal held) may be
// exchanged at now by clientID for scopes, and returns the scopes
// granted (the grant's when scopes is empty). grant_invalid when the grant
// is of another account, has expired, names another client, or its
// session is no longer open: logged out, expired, closed by a change of
// credentials or a deactivation; and, though the session that made it
// stays open, after a password or email change made since the grant was
// given (a token never survives a change of credentials). A scope the
// grant lacks is invalid_request naming scopes.
func (a Account) CheckGrant(g OIDCGrant, clientID string, scopes []string, now time.Time) ([]string, error) {
	invalid := &Error{Code: CodeGrantInvalid}
	switch {
	case !a.Exists() || a.Status != StatusActive || g.AccountID != a.ID:
		return nil, invalid
	case !now.Before(g.ExpiresAt), g.ClientID != clientID:
		return nil, invalid
	case changedSince(a.PasswordChangedAt, g.IssuedAt), changedSince(a.EmailChangedAt, g.IssuedAt):
		return nil, invalid
	}
	if _, open := a.OpenSession(g.SessionHash, now); !open {
		return nil, invalid
	}
	if len(scopes) == 0 {
		return slices.Clone(g.Scopes), nil
	}
	for _, s := range scopes {
		if !slices.Contains(g.Scopes, s) {
			return nil, InvalidRequest("scopes", "ne doivent demander que des portées accordées par l'autorisation")
		}
	}
	return slices.Clone(scopes), nil
}

// changedSince: a change at t happened at or after since (the same
// millisecond counts: the grant may not survive it).
func changedSince(t, since time.Time) bool { return !t.IsZero() && !t.Before(since) }
