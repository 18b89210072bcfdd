package domain

import (
	"github.com/ameli-auth/authsvc/internal/events"
)

// Refusal returns the refusal that a recorded fact told its requester, or
// nil for a fact that was a success. It is what Decide returned beside the
// event, rebuilt from the event alone: the commands service answers a
// retried request (same idempotency key, same body) from the fact the first
// try recorded, never from a new decision, so the reply describes what the
// stream holds (issue 11, kind 1). a is the account's state, used only for
// facts that do not carry everything their message needs (the
// deactivation date of a refused login).
//
// Decide's tables check, row by row, that Refusal(event) == Decide's error.
func (d Decider) Refusal(a Account, e events.Event) error {
	p := d.Policy
	switch e := e.(type) {
	case events.PasswordFailed:
		if !e.BlockedUntil.IsZero() {
			return locked(ReasonPasswordFailures, e.BlockedUntil)
		}
		return &Error{Code: CodeInvalidCredentials}
	case events.LoginRefused:
		err := &Error{Code: e.Reason}
		if e.Reason == CodeAccountDeactivated {
			err.DeactivatedAt = a.DeactivatedAt
		}
		return err
	case events.OTPQuotaExceeded:
		return &Error{Code: CodeOTPQuotaExceeded, Reason: ReasonOTPQuota, BlockedUntil: e.BlockedUntil}
	case events.OTPFailed:
		if !e.BlockedUntil.IsZero() {
			return locked(ReasonOTPFailures, e.BlockedUntil)
		}
		return &Error{Code: CodeOTPInvalid, AttemptsLeft: p.OTPMaxFailures - e.Failures}
	case events.ChangeRequestsExceeded:
		return &Error{Code: CodeCodeRequestsExceeded, Reason: e.Flow, BlockedUntil: e.BlockedUntil}
	case events.ChangeCodeFailed:
		if !e.BlockedUntil.IsZero() {
			return &Error{Code: CodeCodeAttemptsExceeded, Reason: e.Flow, BlockedUntil: e.BlockedUntil}
		}
		return &Error{Code: CodeCodeInvalid, Reason: e.Flow, AttemptsLeft: p.ChangeCodeMaxFailures - e.Failures}
	case events.BiometricLoginFailed:
		return &Error{Code: CodeBiometricFailed, Reason: e.Reason}
	}
	return nil
}
