// Package events defines the facts the account decider records, their
// envelope on the stream, and the codec that reads old versions.
//
// It imports only the standard library (and the ULID generator): neither the
// domain nor the consumers need NATS to read an event.
package events

import "time"

// Event is one fact about an account. Its data carries every time the
// decider's Evolve needs, so Evolve never reads a clock.
type Event interface {
	EventType() string
}

// Event type names: `<aggregate>.<fact in the past tense>`. They are part of
// the contract with the projector, the notifier and the audit teams: never
// rename one; add a version and an upcaster instead.
const (
	TypeAccountRegistered  = "account.registered"
	TypeAccountReactivated = "account.reactivated"
	TypeAccountDeactivated = "account.deactivated"
	TypeAffiliationSet     = "account.affiliation_set"
	TypeAccountUnlocked    = "account.unlocked"
	TypePasswordFailed     = "login.password_failed"
	TypePasswordVerified   = "login.password_verified"
	TypeLoginRefused       = "login.refused"
	TypeOTPIssued          = "login.otp_issued"
	TypeOTPQuotaExceeded   = "login.otp_quota_exceeded"
	TypeOTPFailed          = "login.otp_failed"
	TypeLoginSucceeded     = "login.succeeded"
	TypeSessionEnded       = "session.ended"

	TypePasswordChangeCodeIssued = "password.change_code_issued"
	TypeChangeCodeVerified       = "password.change_code_verified"
	TypePasswordChanged          = "password.changed"
	TypePasswordResetRequested   = "password.reset_requested"
	TypeEmailChangeCodeIssued    = "email.change_code_issued"
	TypeEmailChanged             = "email.changed"
	TypeChangeRequestsExceeded   = "change.requests_exceeded"
	TypeChangeCodeFailed         = "change.code_failed"

	TypeBiometricOfferAnswered   = "biometric.offer_answered"
	TypeBiometricEnrolled        = "biometric.enrolled"
	TypeBiometricChallengeIssued = "biometric.challenge_issued"
	TypeBiometricLoginFailed     = "biometric.login_failed"
	TypeBiometricRevoked         = "biometric.revoked"

	TypeOIDCAuthorized  = "oidc.authorized"
	TypeOIDCTokenIssued = "oidc.token_issued"
)

// Change flows: the two changes of credentials that need a confirmation code.
const (
	FlowPasswordChange = "password_change"
	FlowEmailChange    = "email_change"
)

// AccountRegistered: a new account. The NIR is kept only as a keyed hash
// (the uniqueness index key) and the email only sealed for the notifier, with
// its masked form for people, and the civil identity, if given, only sealed.
type AccountRegistered struct {
	NIRHash        string `json:"nir_hash"`
	EmailSealed    string `json:"email_sealed"`
	MaskedEmail    string `json:"masked_email"`
	EmailValidated bool   `json:"email_validated"`
	PasswordHash   string `json:"password_hash"`
	Affiliation    string `json:"affiliation"`
	// IdentitySealed is the holder's civil identity (domain.Identity's
	// JSON), sealed as the email is; absent when none was given (and in
	// events before issue 18).
	IdentitySealed string    `json:"identity_sealed,omitempty"`
	At             time.Time `json:"at"`
}

func (AccountRegistered) EventType() string { return TypeAccountRegistered }

// AccountReactivated: a deactivated account registered again with its NIR
// (seed, Cas 1 bis). It carries the new credentials and contact.
type AccountReactivated struct {
	EmailSealed    string `json:"email_sealed"`
	MaskedEmail    string `json:"masked_email"`
	EmailValidated bool   `json:"email_validated"`
	PasswordHash   string `json:"password_hash"`
	Affiliation    string `json:"affiliation"`
	// IdentitySealed is the holder's civil identity (domain.Identity's
	// JSON), sealed as the email is; absent when none was given (and in
	// events before issue 18).
	IdentitySealed string    `json:"identity_sealed,omitempty"`
	At             time.Time `json:"at"`
}

func (AccountReactivated) EventType() string { return TypeAccountReactivated }

// AccountDeactivated: the account was closed (by its holder or an adviser).
type AccountDeactivated struct {
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

func (AccountDeactivated) EventType() string { return TypeAccountDeactivated }

// AffiliationSet: the national register said where the holder stands.
type AffiliationSet struct {
	Affiliation string    `json:"affiliation"`
	At          time.Time `json:"at"`
}

func (AffiliationSet) EventType() string { return TypeAffiliationSet }

// AccountUnlocked: an adviser lifted a block and cleared the counters.
type AccountUnlocked struct {
	PreviousReason string    `json:"previous_reason,omitempty"`
	At             time.Time `json:"at"`
}

func (AccountUnlocked) EventType() string { return TypeAccountUnlocked }

// PasswordFailed: a wrong password. Failures is the count in a row after
// this one; when it reaches the limit the same fact blocks the account until
// BlockedUntil (one decision, one event: the block cannot be lost between two
// appends). NoticeTo is the sealed address to warn, in profiles that do.
type PasswordFailed struct {
	Failures     int       `json:"failures"`
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
	NoticeTo     string    `json:"notice_to,omitempty"`
	At           time.Time `json:"at"`
}

func (PasswordFailed) EventType() string { return TypePasswordFailed }

// PasswordVerified: the right password; a login is open, waiting for a code.
// NewPasswordHash is set when the stored hash was rehashed with the current
// parameters.
type PasswordVerified struct {
	LoginID         string    `json:"login_id"`
	NewPasswordHash string    `json:"new_password_hash,omitempty"`
	At              time.Time `json:"at"`
}

func (PasswordVerified) EventType() string { return TypePasswordVerified }

// LoginRefused: the right password, but the account cannot log in
// (no validated email, deactivated, affiliation missing or pending).
type LoginRefused struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func (LoginRefused) EventType() string { return TypeLoginRefused }

// OTPIssued: a security code was issued for a login. The code itself is
// kept as a keyed hash; CodeSealed and ToSealed are for the notifier only.
type OTPIssued struct {
	LoginID          string    `json:"login_id"`
	CodeHash         string    `json:"code_hash"`
	CodeSealed       string    `json:"code_sealed"`
	ToSealed         string    `json:"to_sealed"`
	RequestsLastHour int       `json:"requests_last_hour"`
	IssuedAt         time.Time `json:"issued_at"`
	ExpiresAt        time.Time `json:"expires_at"`
}

func (OTPIssued) EventType() string { return TypeOTPIssued }

// OTPQuotaExceeded: one code too many in the rolling window; the request is
// refused and the account blocked until BlockedUntil (seed, Cas 3).
type OTPQuotaExceeded struct {
	LoginID      string    `json:"login_id"`
	BlockedUntil time.Time `json:"blocked_until"`
	NoticeTo     string    `json:"notice_to,omitempty"`
	At           time.Time `json:"at"`
}

func (OTPQuotaExceeded) EventType() string { return TypeOTPQuotaExceeded }

// OTPFailed: a wrong security code; as PasswordFailed, the failure that
// reaches the limit blocks the account in the same fact.
type OTPFailed struct {
	LoginID      string    `json:"login_id"`
	Failures     int       `json:"failures"`
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
	NoticeTo     string    `json:"notice_to,omitempty"`
	At           time.Time `json:"at"`
}

func (OTPFailed) EventType() string { return TypeOTPFailed }

// Login methods.
const (
	MethodOTP           = "otp"
	MethodTrustedDevice = "trusted_device"
	MethodBiometric     = "biometric"
)

// LoginSucceeded: a session was opened. It clears the failure counters and
// the code quota. DeviceHash is set when a trusted-device token was issued
// ("Se souvenir de cet appareil").
type LoginSucceeded struct {
	LoginID          string    `json:"login_id,omitempty"`
	Method           string    `json:"method"`
	Channel          string    `json:"channel"`
	SessionHash      string    `json:"session_hash"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
	DeviceHash       string    `json:"device_hash,omitempty"`
	DeviceExpiresAt  time.Time `json:"device_expires_at,omitzero"`
	BiometricDevice  string    `json:"biometric_device,omitempty"` // the enrolled device of a biometric login
	NewPasswordHash  string    `json:"new_password_hash,omitempty"`
	NoticeTo         string    `json:"notice_to,omitempty"`
	At               time.Time `json:"at"`
}

func (LoginSucceeded) EventType() string { return TypeLoginSucceeded }

// SessionEnded: a session was closed before its expiry.
type SessionEnded struct {
	SessionHash string    `json:"session_hash"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}

func (SessionEnded) EventType() string { return TypeSessionEnded }

// PasswordChangeCodeIssued: a confirmation code for a password change was
// mailed to the account's address (a new one is the seed's "resend").
type PasswordChangeCodeIssued struct {
	CodeHash         string    `json:"code_hash"`
	CodeSealed       string    `json:"code_sealed"`
	ToSealed         string    `json:"to_sealed"`
	RequestsLastHour int       `json:"requests_last_hour"`
	IssuedAt         time.Time `json:"issued_at"`
	ExpiresAt        time.Time `json:"expires_at"`
}

func (PasswordChangeCodeIssued) EventType() string { return TypePasswordChangeCodeIssued }

// ChangeCodeVerified: the password-change code was right; the new password
// may be set until the code's expiry.
type ChangeCodeVerified struct {
	// SessionHash is the keyed hash of the session that typed the code:
	// only it may set the new password (issue 11: a verified code is not
	// a pass for another session). Empty in events before it existed.
	SessionHash string    `json:"session_hash,omitempty"`
	At          time.Time `json:"at"`
}

func (ChangeCodeVerified) EventType() string { return TypeChangeCodeVerified }

// Password change methods.
const (
	MethodChange = "change"
	MethodReset  = "reset"
)

// PasswordChanged: a new password. It closes what was opened under the old
// one (docs/rules.md, "What a change of credentials closes"): the reset link,
// pending logins and their code, both change flows' pending codes, trusted
// devices and biometric enrolments, and every session but KeptSessionHash
// (ASVS 5 V7.4.3). A change keeps the session that made it; a reset (how a
// stolen account is recovered) keeps none and lifts a password-failure
// block. ToSealed is the address told of the change.
type PasswordChanged struct {
	Method          string    `json:"method"`
	PasswordHash    string    `json:"password_hash"`
	KeptSessionHash string    `json:"kept_session_hash,omitempty"`
	ToSealed        string    `json:"to_sealed,omitempty"`
	At              time.Time `json:"at"`
}

func (PasswordChanged) EventType() string { return TypePasswordChanged }

// PasswordResetRequested: a single-use reset link was mailed. TokenSealed
// lets the notifier build the link; only the latest link is valid.
type PasswordResetRequested struct {
	TokenHash   string    `json:"token_hash"`
	TokenSealed string    `json:"token_sealed"`
	ToSealed    string    `json:"to_sealed"`
	RequestedAt time.Time `json:"requested_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (PasswordResetRequested) EventType() string { return TypePasswordResetRequested }

// EmailChangeCodeIssued: a code was mailed to a new address, to prove it.
type EmailChangeCodeIssued struct {
	NewEmailSealed   string    `json:"new_email_sealed"`
	NewMaskedEmail   string    `json:"new_masked_email"`
	CodeHash         string    `json:"code_hash"`
	CodeSealed       string    `json:"code_sealed"`
	RequestsLastHour int       `json:"requests_last_hour"`
	IssuedAt         time.Time `json:"issued_at"`
	ExpiresAt        time.Time `json:"expires_at"`
}

func (EmailChangeCodeIssued) EventType() string { return TypeEmailChangeCodeIssued }

// EmailChanged: the new address is recorded (and validated: its code was
// typed). OldToSealed is the previous address, told of the change. Password
// changes are refused for a while after it (seed, Cas d'échecs 3).
//
// The address is the factor the security codes go to, so the change closes
// what was opened under the old one (docs/rules.md, "What a change of credentials
// closes"): the reset link, pending logins, the password-change code, trusted
// devices, and every session but KeptSessionHash, the one that confirmed the
// change (ASVS 5 V7.4.3). An event written before KeptSessionHash existed
// has none and so ends every session: harmless, sessions last 30 minutes.
type EmailChanged struct {
	EmailSealed     string    `json:"email_sealed"`
	MaskedEmail     string    `json:"masked_email"`
	OldToSealed     string    `json:"old_to_sealed,omitempty"`
	KeptSessionHash string    `json:"kept_session_hash,omitempty"`
	At              time.Time `json:"at"`
}

func (EmailChanged) EventType() string { return TypeEmailChanged }

// ChangeRequestsExceeded: one code request too many for a change flow; the
// flow is blocked until BlockedUntil (seed, Cas d'échecs 1).
type ChangeRequestsExceeded struct {
	Flow         string    `json:"flow"`
	BlockedUntil time.Time `json:"blocked_until"`
	At           time.Time `json:"at"`
}

func (ChangeRequestsExceeded) EventType() string { return TypeChangeRequestsExceeded }

// ChangeCodeFailed: a wrong confirmation code; the failure that reaches the
// limit blocks the flow in the same fact (seed, Cas d'échecs 2).
type ChangeCodeFailed struct {
	Flow         string    `json:"flow"`
	Failures     int       `json:"failures"`
	BlockedUntil time.Time `json:"blocked_until,omitzero"`
	At           time.Time `json:"at"`
}

func (ChangeCodeFailed) EventType() string { return TypeChangeCodeFailed }

// Answers to the biometric offer (seed, app Étape 4).
const (
	OfferLater  = "later"  // "plus tard": offered again at the next login
	OfferNever  = "never"  // "ne plus me le rappeler"
	OfferRefuse = "refuse" // declined this time, back to the home page
)

// BiometricOfferAnswered: the holder answered the app's biometric offer.
type BiometricOfferAnswered struct {
	Response string    `json:"response"`
	At       time.Time `json:"at"`
}

func (BiometricOfferAnswered) EventType() string { return TypeBiometricOfferAnswered }

// BiometricEnrolled: a device's public key (ECDSA P-256, base64 DER
// SubjectPublicKeyInfo) may log in with biometrics until ExpiresAt. A public
// key is no secret. Re-enrolling a device replaces its key.
type BiometricEnrolled struct {
	DeviceID  string    `json:"device_id"`
	PublicKey string    `json:"public_key"`
	ExpiresAt time.Time `json:"expires_at"`
	At        time.Time `json:"at"`
}

func (BiometricEnrolled) EventType() string { return TypeBiometricEnrolled }

// BiometricChallengeIssued: a single-use challenge for a device to sign;
// only the latest is valid.
type BiometricChallengeIssued struct {
	DeviceID      string    `json:"device_id"`
	ChallengeHash string    `json:"challenge_hash"`
	ExpiresAt     time.Time `json:"expires_at"`
	At            time.Time `json:"at"`
}

func (BiometricChallengeIssued) EventType() string { return TypeBiometricChallengeIssued }

// BiometricLoginFailed: a biometric login was refused (the challenge is
// spent). It never locks the account: a forged signature cannot be guessed,
// and counting failures would let anyone lock a holder out.
type BiometricLoginFailed struct {
	DeviceID string    `json:"device_id"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

func (BiometricLoginFailed) EventType() string { return TypeBiometricLoginFailed }

// BiometricRevoked: enrolments ended before their expiry (by an adviser);
// DeviceID empty means every device. It also ends the sessions that a
// revoked device opened. A password change or reset revokes enrolments too,
// as part of password.changed.
type BiometricRevoked struct {
	DeviceID string    `json:"device_id,omitempty"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

func (BiometricRevoked) EventType() string { return TypeBiometricRevoked }

// OpenID Connect's authentication context (issue 18): acr is eIDAS low
// (FranceConnect's "eidas1") for every login the service makes, and amr
// (RFC 8176) says how the session was opened.
const (
	ACREidas1 = "eidas1"
	AMRPwd    = "pwd" // a password
	AMROTP    = "otp" // a one-time code
	AMRSwk    = "swk" // a software-secured key: the trusted device's token
	AMRHwk    = "hwk" // a hardware-secured key: the app's biometric device key
)

// OIDCAuthorized: the account's open session authorized an OpenID Connect
// client (oidc.authorize) for these scopes, with this acr and amr, the
// session's login being at AuthTime. For audit: the pairwise subject and
// the grant are not recorded.
type OIDCAuthorized struct {
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	ACR      string    `json:"acr"`
	AMR      []string  `json:"amr"`
	AuthTime time.Time `json:"auth_time"`
	At       time.Time `json:"at"`
}

func (OIDCAuthorized) EventType() string { return TypeOIDCAuthorized }

// OIDCTokenIssued: the provider exchanged an authorization's grant for
// tokens (oidc.token), for these scopes. For audit.
type OIDCTokenIssued struct {
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes"`
	ACR      string    `json:"acr"`
	At       time.Time `json:"at"`
}

func (OIDCTokenIssued) EventType() string { return TypeOIDCTokenIssued }
