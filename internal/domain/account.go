// Package domain is the account decider: Decide(state, command, now) returns
// the facts to record, Evolve(state, fact) folds them into the state. It is
// pure: no I/O, no clock, no randomness. Codes, tokens and password checks
// are computed outside and come in with the command.
package domain

import (
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Account statuses.
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
)

// Affiliations, from the national register of individuals (seed, Cas 8-9).
const (
	AffiliationActive  = "active"
	AffiliationPending = "pending"
	AffiliationNone    = "none"
)

// State bounds: the most of each kind an account's state keeps, whatever
// its history, so the cost of a command does not grow with the number of
// past events (SPEC section 3). They are part of the state's shape, not of
// the Policy: Evolve applies them, and Evolve must fold a history to the same
// state in every component and every deployment (the commands service, its
// snapshots, the projector's read models, an auditor's replay), whatever
// profile each runs. Each is above what any profile's rule needs, and
// Policy.Validate checks it. Changing one changes what Evolve leaves in the
// state: bump StateVersion (state_version_test.go says so). The projections
// keep the same bounds in the read models from these constants.
const (
	// MaxPendingLogins: logins whose password was right, waiting for a code.
	MaxPendingLogins = 5
	// MaxSessions: open sessions; the oldest ends first.
	MaxSessions = 10
	// MaxTrustedDevices: "Se souvenir de cet appareil" tokens; the oldest is
	// forgotten first.
	MaxTrustedDevices = 10
	// MaxBiometricDevices: enrolled phones; a new enrolment beyond it
	// replaces the oldest.
	MaxBiometricDevices = 5
	// MaxRecentRequests: times of recent requests kept per kind (codes,
	// reset links, challenges), for the rolling quotas.
	MaxRecentRequests = 64
)

// StateVersion names Account's shape and Evolve's rules together. A stored
// state (a snapshot) is used only if it was written at this version;
// otherwise the account is rebuilt from its events, the source of truth.
// Bump it when the shape changes (a field, a JSON tag, a type, the state
// bounds) or when Evolve would leave another state after the same history:
// state_version_test.go compares both with testdata/state_version.golden
// and fails until it is bumped and the golden regenerated (-update).
//
// 2: what a change of credentials closes (issue 11, kind 2).
// 3: each session keeps the login before it (session.check, issue 13).
// 4: the sealed identity, and each session's login method and time
// (OpenID Connect, issue 18).
const StateVersion = 4

// Account is the decision state of one account. It is serialized in
// snapshots, so every field is exported and tagged.
type Account struct {
	ID             string `json:"id"`
	Status         string `json:"status,omitempty"` // "" = never registered
	NIRHash        string `json:"nir_hash,omitempty"`
	EmailSealed    string `json:"email_sealed,omitempty"`
	MaskedEmail    string `json:"masked_email,omitempty"`
	EmailValidated bool   `json:"email_validated,omitempty"`
	PasswordHash   string `json:"password_hash,omitempty"`
	Affiliation    string `json:"affiliation,omitempty"`
	// IdentitySealed is the holder's civil identity (Identity's JSON),
	// sealed; "" when none was given.
	IdentitySealed string `json:"identity_sealed,omitempty"`

	DeactivatedAt time.Time `json:"deactivated_at,omitzero"`
	BlockedUntil  time.Time `json:"blocked_until,omitzero"`
	BlockReason   string    `json:"block_reason,omitempty"`

	PasswordFailures int         `json:"password_failures,omitempty"`
	PasswordFailedAt time.Time   `json:"password_failed_at,omitzero"` // the latest counted failure
	OTPFailures      int         `json:"otp_failures,omitempty"`
	OTPRequests      []time.Time `json:"otp_requests,omitempty"` // issue times, oldest first

	Logins         []PendingLogin  `json:"logins,omitempty"`
	OTP            *PendingOTP     `json:"otp,omitempty"`
	Sessions       []Session       `json:"sessions,omitempty"`
	TrustedDevices []TrustedDevice `json:"trusted_devices,omitempty"`
	LastLoginAt    time.Time       `json:"last_login_at,omitzero"`

	PasswordChange    ChangeFlow    `json:"password_change,omitzero"`
	EmailChange       ChangeFlow    `json:"email_change,omitzero"`
	PasswordChangedAt time.Time     `json:"password_changed_at,omitzero"`
	EmailChangedAt    time.Time     `json:"email_changed_at,omitzero"`
	Reset             *PendingReset `json:"reset,omitempty"`
	ResetRequests     []time.Time   `json:"reset_requests,omitempty"`

	AppLogins      int               `json:"app_logins,omitempty"`
	BiometricNever bool              `json:"biometric_never,omitempty"`
	Biometrics     []BiometricDevice `json:"biometrics,omitempty"`
}

// BiometricDevice is an enrolled device of the app, with its latest challenge.
type BiometricDevice struct {
	DeviceID           string      `json:"device_id"`
	PublicKey          string      `json:"public_key"`
	ExpiresAt          time.Time   `json:"expires_at"`
	Challenge          string      `json:"challenge,omitempty"` // keyed hash of the latest challenge
	ChallengeExpiresAt time.Time   `json:"challenge_expires_at,omitzero"`
	Challenges         []time.Time `json:"challenges,omitempty"` // issue times, for the rate limit
}

// Biometric returns the enrolment of a device.
func (a Account) Biometric(deviceID string) (BiometricDevice, bool) {
	for _, b := range a.Biometrics {
		if b.DeviceID == deviceID {
			return b, true
		}
	}
	return BiometricDevice{}, false
}

// OfferBiometric tells whether a successful app login should offer
// biometrics: from the policy's nth app login on, unless the holder said
// "never" or this device is already enrolled.
func (a Account) OfferBiometric(p Policy, deviceID string, now time.Time) bool {
	if a.BiometricNever || a.AppLogins < p.BiometricOfferFromLogin {
		return false
	}
	b, ok := a.Biometric(deviceID)
	return !(ok && deviceID != "" && now.Before(b.ExpiresAt))
}

// withBiometric returns the devices with d replaced (or added), keeping at
// most max: the oldest enrolment goes first.
func withBiometric(ds []BiometricDevice, d BiometricDevice, max int) []BiometricDevice {
	out := make([]BiometricDevice, 0, len(ds)+1)
	for _, x := range ds {
		if x.DeviceID != d.DeviceID {
			out = append(out, x)
		}
	}
	return appendBounded(out, d, max)
}

// ChangeFlow is the state of a change that needs a confirmation code
// (password change, email change): its code, its limits and its block.
type ChangeFlow struct {
	Requests     []time.Time  `json:"requests,omitempty"`
	Failures     int          `json:"failures,omitempty"`
	BlockedUntil time.Time    `json:"blocked_until,omitzero"`
	BlockCode    string       `json:"block_code,omitempty"` // code_requests_exceeded or code_attempts_exceeded
	Code         *PendingCode `json:"code,omitempty"`
}

// PendingCode is a flow's latest confirmation code.
type PendingCode struct {
	CodeHash       string    `json:"code_hash"`
	IssuedAt       time.Time `json:"issued_at"`
	ExpiresAt      time.Time `json:"expires_at"`
	Verified       bool      `json:"verified,omitempty"`
	VerifiedBy     string    `json:"verified_by,omitempty"` // session hash that typed the code
	NewEmailSealed string    `json:"new_email_sealed,omitempty"`
	NewMaskedEmail string    `json:"new_masked_email,omitempty"`
}

// PendingReset is the latest password-reset link's token hash.
type PendingReset struct {
	TokenHash string    `json:"token_hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *Account) flow(name string) *ChangeFlow {
	if name == events.FlowEmailChange {
		return &a.EmailChange
	}
	return &a.PasswordChange
}

// PendingLogin is a login whose password was right, waiting for its code.
type PendingLogin struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"started_at"`
}

// PendingOTP is the latest security code; only it is valid.
type PendingOTP struct {
	LoginID   string    `json:"login_id"`
	CodeHash  string    `json:"code_hash"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is an open session, known by the keyed hash of its token. Device
// is the enrolled device of a biometric login: revoking it ends the session.
type Session struct {
	Hash      string    `json:"hash"`
	Channel   string    `json:"channel,omitempty"`
	Device    string    `json:"device_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	// PreviousLoginAt is the account's login before this session's, for
	// « Dernière connexion » (session.check); zero for the first login.
	PreviousLoginAt time.Time `json:"previous_login_at,omitzero"`
	// Method is how the session was opened (events.MethodOTP,
	// MethodTrustedDevice, MethodBiometric: login.succeeded's method,
	// which every such event carries) and AuthAt when: OpenID Connect's
	// amr and auth_time (issue 18).
	Method string    `json:"method,omitempty"`
	AuthAt time.Time `json:"auth_at,omitzero"`
}

// TrustedDevice is a "Se souvenir de cet appareil" token's keyed hash.
type TrustedDevice struct {
	Hash      string    `json:"hash"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Exists tells whether the account was ever registered.
func (a Account) Exists() bool { return a.Status != "" }

// Blocked tells whether a block is in force at now.
func (a Account) Blocked(now time.Time) bool { return now.Before(a.BlockedUntil) }

// Login returns the pending login with this id.
func (a Account) Login(id string) (PendingLogin, bool) {
	for _, l := range a.Logins {
		if l.ID == id {
			return l, true
		}
	}
	return PendingLogin{}, false
}

// SessionValid tells whether a session with this token hash is open at now.
func (a Account) SessionValid(hash string, now time.Time) bool {
	for _, s := range a.Sessions {
		if equalHash(s.Hash, hash) && now.Before(s.ExpiresAt) {
			return true
		}
	}
	return false
}

// Evolve applies one recorded fact. It never refuses: facts happened.
func Evolve(a Account, e events.Event) Account {
	switch e := e.(type) {
	case events.AccountRegistered:
		a.Status = StatusActive
		a.NIRHash = e.NIRHash
		a.EmailSealed, a.MaskedEmail, a.EmailValidated = e.EmailSealed, e.MaskedEmail, e.EmailValidated
		a.PasswordHash = e.PasswordHash
		a.Affiliation = e.Affiliation
		a.IdentitySealed = e.IdentitySealed
	case events.AccountReactivated:
		// A reactivated account starts afresh: nothing of the closed one
		// (sessions, devices, blocks, counters) carries over.
		a = Account{ID: a.ID, NIRHash: a.NIRHash, Status: StatusActive,
			EmailSealed: e.EmailSealed, MaskedEmail: e.MaskedEmail, EmailValidated: e.EmailValidated,
			PasswordHash: e.PasswordHash, Affiliation: e.Affiliation, IdentitySealed: e.IdentitySealed}
	case events.AccountDeactivated:
		// A closed account keeps nothing open (closures.go).
		a = a.closeAll()
		a.Status = StatusDeactivated
		a.DeactivatedAt = e.At
	case events.AffiliationSet:
		a.Affiliation = e.Affiliation
	case events.AccountUnlocked:
		a.BlockedUntil, a.BlockReason = time.Time{}, ""
		a.PasswordFailures, a.OTPFailures, a.OTPRequests = 0, 0, nil
		// Not a change of credentials: only the logins of the attempt that
		// was blocked end; the holder starts a fresh login (our choice).
		a = a.closeLogins()
	case events.PasswordFailed:
		a.PasswordFailures, a.PasswordFailedAt = e.Failures, e.At
		if !e.BlockedUntil.IsZero() {
			// The failures that caused the block are spent by it: after the
			// block the holder has a full set of tries again.
			a.BlockedUntil, a.BlockReason, a.PasswordFailures = e.BlockedUntil, ReasonPasswordFailures, 0
		}
	case events.PasswordVerified:
		a.Logins = appendBounded(a.Logins, PendingLogin{ID: e.LoginID, StartedAt: e.At}, MaxPendingLogins)
		if e.NewPasswordHash != "" {
			a.PasswordHash = e.NewPasswordHash
		}
	case events.LoginRefused:
		// Recorded for audit; it changes nothing.
	case events.OTPIssued:
		a.OTP = &PendingOTP{LoginID: e.LoginID, CodeHash: e.CodeHash, IssuedAt: e.IssuedAt, ExpiresAt: e.ExpiresAt}
		a.OTPRequests = appendBounded(a.OTPRequests, e.IssuedAt, MaxRecentRequests)
	case events.OTPQuotaExceeded:
		a.BlockedUntil, a.BlockReason = e.BlockedUntil, ReasonOTPQuota
	case events.OTPFailed:
		a.OTPFailures = e.Failures
		if !e.BlockedUntil.IsZero() {
			a.BlockedUntil, a.BlockReason, a.OTPFailures = e.BlockedUntil, ReasonOTPFailures, 0
			a.OTP = nil // a code that led to a block is spent
		}
	case events.LoginSucceeded:
		a.PasswordFailures, a.OTPFailures, a.OTPRequests = 0, 0, nil
		if e.NewPasswordHash != "" {
			a.PasswordHash = e.NewPasswordHash
		}
		if e.LoginID != "" {
			a.Logins = removeLogin(a.Logins, e.LoginID)
			if a.OTP != nil && a.OTP.LoginID == e.LoginID {
				a.OTP = nil // single use
			}
		}
		a.Sessions = appendBounded(pruneSessions(a.Sessions, e.At),
			Session{Hash: e.SessionHash, Channel: e.Channel, Device: e.BiometricDevice, ExpiresAt: e.SessionExpiresAt, PreviousLoginAt: a.LastLoginAt,
				Method: e.Method, AuthAt: e.At}, MaxSessions)
		if e.DeviceHash != "" {
			a.TrustedDevices = appendBounded(pruneDevices(a.TrustedDevices, e.At),
				TrustedDevice{Hash: e.DeviceHash, ExpiresAt: e.DeviceExpiresAt}, MaxTrustedDevices)
		}
		a.LastLoginAt = e.At
		if e.Channel == "app" {
			a.AppLogins++
		}
		if e.BiometricDevice != "" {
			a.Biometrics = spendChallenge(a.Biometrics, e.BiometricDevice)
		}
	case events.PasswordChangeCodeIssued:
		a.PasswordChange.Code = &PendingCode{CodeHash: e.CodeHash, IssuedAt: e.IssuedAt, ExpiresAt: e.ExpiresAt}
		a.PasswordChange.Requests = appendBounded(a.PasswordChange.Requests, e.IssuedAt, MaxRecentRequests)
	case events.EmailChangeCodeIssued:
		a.EmailChange.Code = &PendingCode{CodeHash: e.CodeHash, IssuedAt: e.IssuedAt, ExpiresAt: e.ExpiresAt,
			NewEmailSealed: e.NewEmailSealed, NewMaskedEmail: e.NewMaskedEmail}
		a.EmailChange.Requests = appendBounded(a.EmailChange.Requests, e.IssuedAt, MaxRecentRequests)
	case events.ChangeCodeVerified:
		if c := a.PasswordChange.Code; c != nil {
			v := *c
			v.Verified, v.VerifiedBy = true, e.SessionHash
			a.PasswordChange.Code = &v
		}
	case events.ChangeRequestsExceeded:
		f := a.flow(e.Flow)
		f.BlockedUntil, f.BlockCode, f.Code = e.BlockedUntil, CodeCodeRequestsExceeded, nil
	case events.ChangeCodeFailed:
		f := a.flow(e.Flow)
		f.Failures = e.Failures
		if !e.BlockedUntil.IsZero() {
			f.BlockedUntil, f.BlockCode, f.Failures, f.Code = e.BlockedUntil, CodeCodeAttemptsExceeded, 0, nil
		}
	case events.PasswordChanged:
		// Everything opened under the old password ends with it, sessions
		// but the one that made a change (closures.go, ASVS 5 V7.4.3); a
		// reset keeps no session.
		kept := e.KeptSessionHash
		if e.Method == events.MethodReset {
			kept = ""
		}
		a = a.closeAllBut(kept)
		a.PasswordHash, a.PasswordChangedAt = e.PasswordHash, e.At
		a.PasswordChange.Failures = 0
		if e.Method == events.MethodReset {
			a.PasswordFailures = 0
			if a.BlockReason == ReasonPasswordFailures {
				a.BlockedUntil, a.BlockReason = time.Time{}, ""
			}
		}
	case events.PasswordResetRequested:
		a.Reset = &PendingReset{TokenHash: e.TokenHash, ExpiresAt: e.ExpiresAt}
		a.ResetRequests = appendBounded(a.ResetRequests, e.RequestedAt, MaxRecentRequests)
	case events.EmailChanged:
		// Codes and links went to the old address, and trusted devices stand
		// in for those codes: they end, as do the sessions but the one that
		// confirmed the change. Biometric enrolments are their own factor,
		// bound to a device key, and stay (closures.go).
		a = a.closeResetLink().closeLogins().closeFlowCodes().closeTrustedDevices().keepOnlySession(e.KeptSessionHash)
		a.EmailSealed, a.MaskedEmail, a.EmailValidated, a.EmailChangedAt = e.EmailSealed, e.MaskedEmail, true, e.At
		a.EmailChange.Failures = 0
	case events.BiometricOfferAnswered:
		a.BiometricNever = e.Response == events.OfferNever
	case events.BiometricEnrolled:
		a.Biometrics = withBiometric(a.Biometrics, BiometricDevice{DeviceID: e.DeviceID, PublicKey: e.PublicKey, ExpiresAt: e.ExpiresAt}, MaxBiometricDevices)
	case events.BiometricChallengeIssued:
		if b, ok := a.Biometric(e.DeviceID); ok {
			b.Challenge, b.ChallengeExpiresAt = e.ChallengeHash, e.ExpiresAt
			b.Challenges = appendBounded(b.Challenges, e.At, MaxRecentRequests)
			a.Biometrics = withBiometric(a.Biometrics, b, MaxBiometricDevices)
		}
	case events.BiometricLoginFailed:
		a.Biometrics = spendChallenge(a.Biometrics, e.DeviceID)
	case events.BiometricRevoked:
		a = a.revokeBiometric(e.DeviceID)
	case events.OIDCAuthorized, events.OIDCTokenIssued:
		// Recorded for audit; they change nothing.
	case events.SessionEnded:
		out := a.Sessions[:0:0]
		for _, s := range a.Sessions {
			if s.Hash != e.SessionHash {
				out = append(out, s)
			}
		}
		a.Sessions = out
	}
	return a
}

// appendBounded appends v and keeps the newest max elements. It never writes
// into the input's backing array: states are values, shared by the cache.
func appendBounded[T any](s []T, v T, max int) []T {
	out := make([]T, 0, min(len(s)+1, max))
	if over := len(s) + 1 - max; over > 0 {
		s = s[over:]
	}
	out = append(out, s...)
	return append(out, v)
}

func removeLogin(ls []PendingLogin, id string) []PendingLogin {
	out := make([]PendingLogin, 0, len(ls))
	for _, l := range ls {
		if l.ID != id {
			out = append(out, l)
		}
	}
	return out
}

func pruneSessions(ss []Session, now time.Time) []Session {
	out := make([]Session, 0, len(ss))
	for _, s := range ss {
		if now.Before(s.ExpiresAt) {
			out = append(out, s)
		}
	}
	return out
}

func pruneDevices(ds []TrustedDevice, now time.Time) []TrustedDevice {
	out := make([]TrustedDevice, 0, len(ds))
	for _, d := range ds {
		if now.Before(d.ExpiresAt) {
			out = append(out, d)
		}
	}
	return out
}

// spendChallenge makes a device's latest challenge unusable: single use.
func spendChallenge(ds []BiometricDevice, deviceID string) []BiometricDevice {
	out := make([]BiometricDevice, len(ds))
	copy(out, ds)
	for i := range out {
		if out[i].DeviceID == deviceID {
			out[i].Challenge, out[i].ChallengeExpiresAt = "", time.Time{}
		}
	}
	return out
}
