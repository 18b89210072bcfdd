package contract

import "time"

// Reply statuses: the "status" of a successful reply, what was done
// (schemas/replies/reply.json lists the same). The comment of each says
// which command answers it and with which reply type.
const (
	StatusOTPRequired       = "otp_required"       // login.password, LoginReply: login_id, masked_email
	StatusOTPSent           = "otp_sent"           // login.otp.send, LoginReply: masked_email, expires_at, message
	StatusAuthenticated     = "authenticated"      // login.password, login.otp.verify, biometric.login: AuthenticatedReply
	StatusLoggedOut         = "logged_out"         // session.logout: Done
	StatusSessionValid      = "session_valid"      // session.check: SessionReply
	StatusRegistered        = "registered"         // account.register, account.import: AccountReply
	StatusReactivated       = "reactivated"        // account.register of a deactivated account: AccountReply
	StatusImported          = "imported"           // account.import_batch: ImportBatchReply, a result per row
	StatusDeactivated       = "deactivated"        // account.deactivate: AccountReply with deactivated_at
	StatusAffiliationSet    = "affiliation_set"    // account.set_affiliation: AccountReply
	StatusUnlocked          = "unlocked"           // account.unlock: AccountReply
	StatusBiometricsRevoked = "biometrics_revoked" // account.revoke_biometrics: AccountReply
	StatusClockAdvanced     = "clock_advanced"     // dev.clock.advance: ClockReply
	StatusCodeSent          = "code_sent"          // password.change.start, email.change: ChangeReply
	StatusCodeVerified      = "code_verified"      // password.change.verify_code: Done
	StatusPasswordChanged   = "password_changed"   // password.change.complete: Done
	StatusEmailChanged      = "email_changed"      // email.confirm: ChangeReply with masked_email
	StatusResetRequested    = "reset_requested"    // password.reset.request: Done
	StatusPasswordReset     = "password_reset"     // password.reset.complete: Done
	StatusOfferRecorded     = "offer_recorded"     // biometric.offer: Done
	StatusBiometricEnrolled = "biometric_enrolled" // biometric.enroll: BiometricReply with expires_at
	StatusChallengeIssued   = "challenge_issued"   // biometric.challenge: BiometricReply with challenge, expires_at
	StatusAuthorized        = "authorized"         // oidc.authorize: OIDCReply with grant, sub, acr, amr, auth_time
	StatusTokenIssued       = "token_issued"       // oidc.token, oidc.userinfo: OIDCReply with sub, acr, amr, auth_time, claims
)

// Statuses lists every reply status.
func Statuses() []string {
	return []string{
		StatusOTPRequired, StatusOTPSent, StatusAuthenticated, StatusLoggedOut, StatusSessionValid,
		StatusRegistered, StatusReactivated, StatusImported, StatusDeactivated, StatusAffiliationSet, StatusUnlocked, StatusBiometricsRevoked,
		StatusClockAdvanced,
		StatusCodeSent, StatusCodeVerified, StatusPasswordChanged, StatusEmailChanged, StatusResetRequested, StatusPasswordReset,
		StatusOfferRecorded, StatusBiometricEnrolled, StatusChallengeIssued,
		StatusAuthorized, StatusTokenIssued,
	}
}

// Reply is any reply the service sends: one JSON object with "ok", then
// either a status and its facts (one of the *Reply types below, or Done)
// or the refusal (Failure). Field order is part of the contract: replies
// are compared byte for byte (a retried request gets the very bytes of the
// first reply), so each type keeps the order of AnyReply's fields.
type Reply interface {
	// Outcome is the reply's status when ok, else its error code.
	Outcome() (ok bool, outcome string)
}

// Done is a successful reply with its status and nothing else
// (logged_out, code_verified, password_changed, reset_requested,
// password_reset, offer_recorded); every other success type starts with it.
type Done struct {
	OK     bool   `json:"ok"` // always true: use OK(status)
	Status string `json:"status,omitempty"`
}

// OK is the start of a successful reply with that status.
func OK(status string) Done { return Done{OK: true, Status: status} }

// Outcome implements Reply.
func (d Done) Outcome() (bool, string) { return d.OK, d.Status }

// LoginReply answers the password and code steps of a login that needs a
// security code: otp_required (LoginID, MaskedEmail) and otp_sent
// (MaskedEmail, ExpiresAt, and Message when a code was sent again).
type LoginReply struct {
	Done
	LoginID     string     `json:"login_id,omitempty"`     // sealed, opaque: "v1." and base64url
	MaskedEmail string     `json:"masked_email,omitempty"` // e.g. v***@y***.fr
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`   // the code's end, UTC, whole seconds
	Message     string     `json:"message,omitempty"`      // the seed's "code sent again" text, French
}

// SessionReply answers session.check for an open session: its account, its
// end (no sliding extension: the login decided it), the address's mask and
// the login before this session's (« Dernière connexion »; absent for a
// first login).
type SessionReply struct {
	Done
	MaskedEmail     string     `json:"masked_email,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	AccountID       string     `json:"account_id,omitempty"`
	PreviousLoginAt *time.Time `json:"previous_login_at,omitempty"`
}

// AuthenticatedReply opens a session: authenticated, from login.password
// (trusted device), login.otp.verify or biometric.login.
type AuthenticatedReply struct {
	Done
	AccountID string   `json:"account_id,omitempty"` // ULID
	Session   *Session `json:"session,omitempty"`
	// OfferBiometric is set on the app channel only: whether to offer
	// biometric login now.
	OfferBiometric *bool `json:"offer_biometric,omitempty"`
	// DeviceToken and its end (6 months), when remember_device was true.
	DeviceToken          string     `json:"device_token,omitempty"`
	DeviceTokenExpiresAt *time.Time `json:"device_token_expires_at,omitempty"`
}

// AccountReply answers the account commands (register, import,
// deactivate, set_affiliation, unlock, revoke_biometrics): the account
// acted on, and for deactivated when it was closed.
type AccountReply struct {
	Done
	AccountID     string     `json:"account_id,omitempty"`     // ULID
	DeactivatedAt *time.Time `json:"deactivated_at,omitempty"` // deactivated only, UTC, whole seconds
}

// ImportBatchReply answers account.import_batch (status imported): one
// result per row of the request, in its order, each the reply
// account.import gives that row alone (registered or reactivated with the
// account, or the refusal: invalid_request naming the field,
// account_exists, unavailable...). A batch is not atomic: each row is
// decided on its own.
type ImportBatchReply struct {
	Done
	Results []ImportResult `json:"results,omitempty"`
}

// Partial tells whether a row was answered unavailable: the batch as a
// whole succeeded, but that row may be sent again, so the reply is not
// kept as the request's final answer (commands: the idempotency cache).
func (r ImportBatchReply) Partial() bool {
	for _, row := range r.Results {
		if row.Error != nil && row.Error.Code == "unavailable" {
			return true
		}
	}
	return false
}

// ImportResult is one row's outcome in an ImportBatchReply: AccountReply's
// or Failure's fields, in the wire's order.
type ImportResult struct {
	OK        bool       `json:"ok"`
	Status    string     `json:"status,omitempty"`
	AccountID string     `json:"account_id,omitempty"`
	Error     *ErrorBody `json:"error,omitempty"`
}

// ChangeReply answers a credential change that sends a code (code_sent:
// where it went and until when) or confirms a new address (email_changed:
// the new masked address).
type ChangeReply struct {
	Done
	MaskedEmail string     `json:"masked_email,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"` // the code's end, UTC, whole seconds
}

// BiometricReply answers biometric.enroll (biometric_enrolled: the
// enrolment's end) and biometric.challenge (challenge_issued: the
// challenge, base64 of 32 random bytes, and its end).
type BiometricReply struct {
	Done
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Challenge string     `json:"challenge,omitempty"`
}

// ClockReply answers dev.clock.advance: the development clock's new time.
type ClockReply struct {
	Done
	Now *time.Time `json:"now,omitempty"`
}

// OIDCReply answers the OpenID Connect commands (issue 18): authorized
// (oidc.authorize: the sealed grant for the provider to keep with its
// authorization code, and the subject and authentication context) and
// token_issued (oidc.token, oidc.userinfo: the subject, the context and the
// claims the scopes select). Sub is the pairwise subject, 64 hex
// characters, never the account id.
type OIDCReply struct {
	Done
	Grant    string      `json:"grant,omitempty"` // "g1." and base64url, opaque
	Sub      string      `json:"sub,omitempty"`
	ACR      string      `json:"acr,omitempty"`
	AMR      []string    `json:"amr,omitempty"`
	AuthTime *time.Time  `json:"auth_time,omitempty"` // when the session's login was, UTC, whole seconds
	Claims   *OIDCClaims `json:"claims,omitempty"`
}

// OIDCClaims are the holder's claims a token carries, by scope
// (FranceConnect's): email gives email and email_verified; profile
// given_name, family_name, gender and birthdate; birth birthplace and
// birthcountry. A claim the account lacks (no identity given) is left
// out.
type OIDCClaims struct {
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Birthdate     string `json:"birthdate,omitempty"`
	Gender        string `json:"gender,omitempty"`
	Birthplace    string `json:"birthplace,omitempty"`
	Birthcountry  string `json:"birthcountry,omitempty"`
}

// Session is an opened session's bearer token, "<account id>.<random>".
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"` // UTC
}

// Failure is every refusal: ok false and the error.
type Failure struct {
	OK    bool       `json:"ok"` // always false
	Error *ErrorBody `json:"error,omitempty"`
}

// Outcome implements Reply: the error code.
func (f Failure) Outcome() (bool, string) {
	if f.Error == nil {
		return false, ""
	}
	return false, f.Error.Code
}

// ErrorBody is a refusal: its code (internal/domain's Code* constants),
// its French message and its facts.
type ErrorBody struct {
	Code          string     `json:"code"`
	Message       string     `json:"message"`
	Field         string     `json:"field,omitempty"`          // invalid_request: the field at fault, "body" for the payload
	Reason        string     `json:"reason,omitempty"`         // account_locked, biometric_failed, code_*: why or which flow
	BlockedUntil  *time.Time `json:"blocked_until,omitempty"`  // end of a block
	AttemptsLeft  int        `json:"attempts_left,omitempty"`  // otp_invalid, code_invalid
	DeactivatedAt *time.Time `json:"deactivated_at,omitempty"` // account_deactivated
	Until         *time.Time `json:"until,omitempty"`          // email_recently_changed: end of the 48 h
}

// AnyReply is any reply as a client reads it: the union of every reply
// type's fields, in the wire's order. The service never builds one; clients
// (authctl, the bench, tests) decode into it.
type AnyReply struct {
	OK     bool   `json:"ok"`
	Status string `json:"status,omitempty"`

	LoginID              string         `json:"login_id,omitempty"`
	MaskedEmail          string         `json:"masked_email,omitempty"`
	ExpiresAt            *time.Time     `json:"expires_at,omitempty"`
	Message              string         `json:"message,omitempty"`
	AccountID            string         `json:"account_id,omitempty"`
	Session              *Session       `json:"session,omitempty"`
	OfferBiometric       *bool          `json:"offer_biometric,omitempty"`
	DeviceToken          string         `json:"device_token,omitempty"`
	DeviceTokenExpiresAt *time.Time     `json:"device_token_expires_at,omitempty"`
	DeactivatedAt        *time.Time     `json:"deactivated_at,omitempty"`
	Challenge            string         `json:"challenge,omitempty"`
	Now                  *time.Time     `json:"now,omitempty"`
	PreviousLoginAt      *time.Time     `json:"previous_login_at,omitempty"`
	Results              []ImportResult `json:"results,omitempty"`
	Grant                string         `json:"grant,omitempty"`
	Sub                  string         `json:"sub,omitempty"`
	ACR                  string         `json:"acr,omitempty"`
	AMR                  []string       `json:"amr,omitempty"`
	AuthTime             *time.Time     `json:"auth_time,omitempty"`
	Claims               *OIDCClaims    `json:"claims,omitempty"`

	Error *ErrorBody `json:"error,omitempty"`
}

// Outcome implements Reply: the status, or the error code.
func (r AnyReply) Outcome() (bool, string) {
	if r.OK {
		return true, r.Status
	}
	if r.Error == nil {
		return false, ""
	}
	return false, r.Error.Code
}

// Timestamp is how the contract writes a time: UTC, truncated to the
// second; nil for the zero time (the field is then left out).
func Timestamp(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}
