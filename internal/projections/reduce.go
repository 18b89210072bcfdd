package projections

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// Name is the projection's name: the key of its checkpoint row and of its
// locks. The three tables are one projection, written in one transaction.
const Name = "auth"

// The read models keep what the decider's state keeps (domain's state
// bounds, defined there once): the tables list the trusted devices and the
// enrolments that still work.
const (
	KeepTrustedDevices = domain.MaxTrustedDevices
	KeepBiometrics     = domain.MaxBiometricDevices
)

// Reason of a wrong password that did not block (the reply the holder got).
const reasonInvalidCredentials = domain.CodeInvalidCredentials

// Reduce returns the read-model changes one event causes. seq is the
// event's stream sequence. Every event of an account moves the account's
// version, even one that changes no column (a session that ended, a type
// this projection does not read yet).
func Reduce(seq uint64, env events.Envelope) []Statement {
	id := env.AccountID
	upd := func(set Field, row AccountRow) UpdateAccount {
		return UpdateAccount{AccountID: id, Seq: seq, At: env.OccurredAt, Set: set, Row: row}
	}
	attempt := func(a Attempt) InsertAttempt {
		a.EventID, a.Seq, a.AccountID = env.ID, seq, id
		a.Channel, a.ClientIP, a.UserAgent = env.Channel, env.ClientIP, env.UserAgent
		if a.At.IsZero() {
			a.At = env.OccurredAt
		}
		return InsertAttempt{Attempt: a}
	}

	switch e := env.Data.(type) {
	case events.AccountRegistered:
		return []Statement{CreateAccount{AccountID: id, Seq: seq, At: env.OccurredAt, Row: AccountRow{
			Status: domain.StatusActive, Affiliation: e.Affiliation,
			MaskedEmail: e.MaskedEmail, EmailValidated: e.EmailValidated,
			RegisteredAt: e.At,
		}}}

	case events.AccountReactivated:
		// The decider starts the account afresh (no block, no counter, no
		// device, no answer to the biometric offer); the read model keeps the
		// history columns (registered_at, last_login_*, password_reset_*)
		// that support still wants to see.
		return []Statement{
			upd(ReactivationResets, AccountRow{Status: domain.StatusActive, Affiliation: e.Affiliation,
				MaskedEmail: e.MaskedEmail, EmailValidated: e.EmailValidated,
				PasswordChangedAt: e.At, ReactivatedAt: e.At}),
			ForgetDevices{AccountID: id},
			RevokeBiometrics{AccountID: id},
			CountDevices{AccountID: id},
		}

	case events.AccountDeactivated:
		return []Statement{
			upd(FieldStatus|FieldDeactivatedAt|FieldDeactivationReason,
				AccountRow{Status: domain.StatusDeactivated, DeactivatedAt: e.At, DeactivationReason: e.Reason}),
			ForgetDevices{AccountID: id},
			RevokeBiometrics{AccountID: id},
			CountDevices{AccountID: id},
		}

	case events.AffiliationSet:
		return []Statement{upd(FieldAffiliation, AccountRow{Affiliation: e.Affiliation})}

	case events.AccountUnlocked:
		return []Statement{upd(FieldBlockedUntil|FieldBlockReason|FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour,
			AccountRow{})}

	case events.PasswordFailed:
		a := Attempt{Step: StepPassword, Outcome: OutcomeFailed, Reason: reasonInvalidCredentials,
			Failures: e.Failures, At: e.At}
		change := upd(FieldPasswordFailures, AccountRow{PasswordFailures: e.Failures})
		if !e.BlockedUntil.IsZero() {
			// The failures that caused the block are spent by it (as in the
			// decider): after the block the holder has a full set of tries.
			a.Outcome, a.Reason, a.BlockedUntil = OutcomeBlocked, domain.ReasonPasswordFailures, e.BlockedUntil
			change = upd(FieldPasswordFailures|FieldBlockedUntil|FieldBlockReason,
				AccountRow{BlockedUntil: e.BlockedUntil, BlockReason: domain.ReasonPasswordFailures})
		}
		return []Statement{change, attempt(a)}

	case events.PasswordVerified:
		return []Statement{upd(0, AccountRow{}),
			attempt(Attempt{Step: StepPassword, Outcome: OutcomeVerified, LoginRef: LoginRef(e.LoginID), At: e.At})}

	case events.LoginRefused:
		return []Statement{upd(0, AccountRow{}),
			attempt(Attempt{Step: StepPassword, Outcome: OutcomeRefused, Reason: e.Reason, At: e.At})}

	case events.OTPIssued:
		return []Statement{
			upd(FieldOTPRequestsLastHour|FieldOTPLastRequestedAt,
				AccountRow{OTPRequestsLastHour: e.RequestsLastHour, OTPLastRequestedAt: e.IssuedAt}),
			attempt(Attempt{Step: StepOTPSend, Outcome: OutcomeCodeSent, LoginRef: LoginRef(e.LoginID), At: e.IssuedAt}),
		}

	case events.OTPQuotaExceeded:
		return []Statement{
			upd(FieldBlockedUntil|FieldBlockReason, AccountRow{BlockedUntil: e.BlockedUntil, BlockReason: domain.ReasonOTPQuota}),
			attempt(Attempt{Step: StepOTPSend, Outcome: OutcomeBlocked, Reason: domain.ReasonOTPQuota,
				BlockedUntil: e.BlockedUntil, LoginRef: LoginRef(e.LoginID), At: e.At}),
		}

	case events.OTPFailed:
		a := Attempt{Step: StepOTP, Outcome: OutcomeFailed, Reason: domain.CodeOTPInvalid,
			Failures: e.Failures, LoginRef: LoginRef(e.LoginID), At: e.At}
		change := upd(FieldOTPFailures, AccountRow{OTPFailures: e.Failures})
		if !e.BlockedUntil.IsZero() {
			a.Outcome, a.Reason, a.BlockedUntil = OutcomeBlocked, domain.ReasonOTPFailures, e.BlockedUntil
			change = upd(FieldOTPFailures|FieldBlockedUntil|FieldBlockReason,
				AccountRow{BlockedUntil: e.BlockedUntil, BlockReason: domain.ReasonOTPFailures})
		}
		return []Statement{change, attempt(a)}

	case events.LoginSucceeded:
		channel := e.Channel
		if channel == "" {
			channel = env.Channel
		}
		out := []Statement{
			upd(FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour|
				FieldLastLoginAt|FieldLastLoginChannel|FieldLastLoginMethod,
				AccountRow{LastLoginAt: e.At, LastLoginChannel: channel, LastLoginMethod: e.Method}),
			attempt(Attempt{Step: successStep(e.Method), Outcome: OutcomeSucceeded, Method: e.Method,
				LoginRef: LoginRef(e.LoginID), At: e.At}),
		}
		if e.DeviceHash != "" {
			ref := DeviceRef(e.DeviceHash)
			out[1] = withDevice(out[1], ref)
			out = append(out,
				TrustDevice{AccountID: id, DeviceRef: ref, Seq: seq,
					CreatedAt: e.At, ExpiresAt: e.DeviceExpiresAt, Channel: channel, Keep: KeepTrustedDevices},
				CountDevices{AccountID: id})
		}
		if e.BiometricDevice != "" {
			out[1] = withDevice(out[1], e.BiometricDevice)
		}
		return out

	case events.PasswordChanged:
		// A new password, changed or reset, ends the trusted devices and the
		// biometric enrolments granted under the old one, as in the decider
		// (docs/rules.md, "What a change of credentials closes").
		closes := []Statement{ForgetDevices{AccountID: id}, RevokeBiometrics{AccountID: id}, CountDevices{AccountID: id}}
		if e.Method != events.MethodReset {
			return append([]Statement{upd(FieldPasswordChangedAt|FieldPasswordChangedBy,
				AccountRow{PasswordChangedAt: e.At, PasswordChangedBy: e.Method})}, closes...)
		}
		// A reset is how a stolen account is recovered: it also clears the
		// password failures and lifts a block they caused (not another one).
		// It is also a step of the takeover pattern the fraud read model
		// shows.
		return append([]Statement{
			upd(FieldPasswordChangedAt|FieldPasswordChangedBy|FieldPasswordFailures,
				AccountRow{PasswordChangedAt: e.At, PasswordChangedBy: e.Method}),
			RecordCredentialChange{AccountID: id, Seq: seq, Kind: ChangePasswordReset, At: e.At},
			LiftBlock{AccountID: id, Reason: domain.ReasonPasswordFailures},
		}, closes...)

	case events.PasswordResetRequested:
		return []Statement{upd(FieldPasswordResetRequestedAt, AccountRow{PasswordResetRequestedAt: e.RequestedAt})}

	case events.EmailChanged:
		// Trusted devices stood in for codes mailed to the old address: they
		// end; biometric enrolments stay (as in the decider).
		return []Statement{upd(FieldMaskedEmail|FieldEmailValidated|FieldEmailChangedAt,
			AccountRow{MaskedEmail: e.MaskedEmail, EmailValidated: true, EmailChangedAt: e.At}),
			ForgetDevices{AccountID: id},
			CountDevices{AccountID: id},
			RecordCredentialChange{AccountID: id, Seq: seq, Kind: ChangeEmail, At: e.At}}

	case events.ChangeRequestsExceeded:
		return []Statement{flowBlock(upd, e.Flow, e.BlockedUntil, domain.CodeCodeRequestsExceeded)}

	case events.ChangeCodeFailed:
		if e.BlockedUntil.IsZero() {
			return []Statement{upd(0, AccountRow{})}
		}
		return []Statement{flowBlock(upd, e.Flow, e.BlockedUntil, domain.CodeCodeAttemptsExceeded)}

	case events.BiometricOfferAnswered:
		return []Statement{upd(FieldBiometricOffer, AccountRow{BiometricOffer: e.Response})}

	case events.BiometricEnrolled:
		return []Statement{upd(0, AccountRow{}),
			EnrollBiometric{AccountID: id, DeviceID: e.DeviceID, Seq: seq, EnrolledAt: e.At, ExpiresAt: e.ExpiresAt, Keep: KeepBiometrics},
			CountDevices{AccountID: id}}

	case events.BiometricChallengeIssued:
		return []Statement{upd(0, AccountRow{}),
			attempt(Attempt{Step: StepChallenge, Outcome: OutcomeIssued, Device: e.DeviceID, At: e.At})}

	case events.BiometricLoginFailed:
		return []Statement{upd(0, AccountRow{}),
			attempt(Attempt{Step: StepBiometric, Outcome: OutcomeFailed, Reason: e.Reason, Device: e.DeviceID, At: e.At})}

	case events.BiometricRevoked:
		return []Statement{upd(0, AccountRow{}),
			RevokeBiometrics{AccountID: id, DeviceID: e.DeviceID},
			CountDevices{AccountID: id}}

	case events.OIDCAuthorized:
		return []Statement{upd(0, AccountRow{}), RecordOIDC{AccountID: id, Seq: seq, Kind: OIDCAuthorized,
			ClientID: e.ClientID, Scopes: e.Scopes, ACR: e.ACR, AMR: e.AMR, At: e.At}}

	case events.OIDCTokenIssued:
		return []Statement{upd(0, AccountRow{}), RecordOIDC{AccountID: id, Seq: seq, Kind: OIDCTokenIssued,
			ClientID: e.ClientID, Scopes: e.Scopes, ACR: e.ACR, At: e.At}}
	}
	// events.SessionEnded, the code requests of the change flows (their
	// quotas are the decider's business), and any type this projection does
	// not read yet.
	return []Statement{upd(0, AccountRow{})}
}

// ReactivationResets is what a reactivation writes: everything but the
// history columns.
const ReactivationResets = FieldStatus | FieldAffiliation | FieldMaskedEmail | FieldEmailValidated |
	FieldBlockedUntil | FieldBlockReason | FieldPasswordFailures | FieldOTPFailures |
	FieldOTPRequestsLastHour | FieldOTPLastRequestedAt | FieldPasswordChangedAt | FieldPasswordChangedBy |
	FieldPasswordChangeBlockedUntil | FieldPasswordChangeBlockReason |
	FieldEmailChangeBlockedUntil | FieldEmailChangeBlockReason | FieldBiometricOffer |
	FieldDeactivatedAt | FieldDeactivationReason | FieldReactivatedAt

// flowBlock blocks one change flow (password or email change).
func flowBlock(upd func(Field, AccountRow) UpdateAccount, flow string, until time.Time, reason string) UpdateAccount {
	switch flow {
	case events.FlowPasswordChange:
		return upd(FieldPasswordChangeBlockedUntil|FieldPasswordChangeBlockReason,
			AccountRow{PasswordChangeBlockedUntil: until, PasswordChangeBlockReason: reason})
	case events.FlowEmailChange:
		return upd(FieldEmailChangeBlockedUntil|FieldEmailChangeBlockReason,
			AccountRow{EmailChangeBlockedUntil: until, EmailChangeBlockReason: reason})
	}
	return upd(0, AccountRow{})
}

func withDevice(s Statement, device string) Statement {
	a := s.(InsertAttempt)
	a.Attempt.Device = device
	return a
}

// successStep is the step that opened the session: the code, the password
// alone on a trusted device, or the biometric signature.
func successStep(method string) string {
	switch method {
	case events.MethodTrustedDevice:
		return StepPassword
	case events.MethodBiometric:
		return StepBiometric
	}
	return StepOTP
}

// LoginRef links the steps of one login without storing its login_id, which
// is a bearer for an hour. The login_id is a ULID (80 random bits), so a
// plain digest cannot be reversed by trying ids.
func LoginRef(loginID string) string {
	if loginID == "" {
		return ""
	}
	return digest("login:", loginID)
}

// DeviceRef names a trusted device by a digest of its token's keyed hash:
// support can tell devices apart, and nothing stored can be matched against
// a cookie without the service's key.
func DeviceRef(deviceHash string) string {
	return digest("device:", deviceHash)
}

func digest(domainSep, s string) string {
	h := sha256.New()
	h.Write([]byte(domainSep))
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
