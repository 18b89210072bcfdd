package projections

import "time"

// Kinds of rows of auth.oidc_authorizations (issue 18).
const (
	OIDCAuthorized  = "authorized"   // oidc.authorized: a session authorized a client
	OIDCTokenIssued = "token_issued" // oidc.token_issued: its grant was exchanged for tokens
)

// RecordOIDC appends a row to auth.oidc_authorizations: an authorization
// of an OpenID Connect client, or a token issuance, for audit (which
// clients an account used, with which scopes and how the holder logged
// in). No subject, grant or claim: the events hold none.
type RecordOIDC struct {
	AccountID string
	Seq       uint64
	Kind      string // OIDCAuthorized or OIDCTokenIssued
	ClientID  string
	Scopes    []string
	ACR       string
	AMR       []string // authorizations only
	At        time.Time
}

func (RecordOIDC) isStatement() {}
