package domain

import (
	"fmt"
	"time"
)

// Error codes of the wire contract (SPEC section 4).
const (
	CodeInvalidRequest       = "invalid_request"
	CodeInvalidCredentials   = "invalid_credentials"
	CodeAccountLocked        = "account_locked"
	CodeOTPQuotaExceeded     = "otp_quota_exceeded"
	CodeOTPInvalid           = "otp_invalid"
	CodeOTPExpired           = "otp_expired"
	CodeNoValidatedEmail     = "no_validated_email"
	CodeAccountDeactivated   = "account_deactivated"
	CodeAffiliationMissing   = "affiliation_missing"
	CodeAffiliationPending   = "affiliation_pending"
	CodeLoginExpired         = "login_expired"
	CodeCodeRequestsExceeded = "code_requests_exceeded"
	CodeCodeAttemptsExceeded = "code_attempts_exceeded"
	CodeEmailRecentlyChanged = "email_recently_changed"
	CodeCodeInvalid          = "code_invalid"
	CodeCodeExpired          = "code_expired"
	CodeWeakPassword         = "weak_password"
	CodeResetTokenInvalid    = "reset_token_invalid"
	CodeSessionInvalid       = "session_invalid"
	CodeBiometricFailed      = "biometric_failed"
	CodeBiometricExpired     = "biometric_expired"
	CodeAccountExists        = "account_exists"
	CodeAccountNotFound      = "account_not_found"
	CodeTooManyAttempts      = "too_many_attempts"
	CodeUnavailable          = "unavailable"
	CodeCodeRequired         = "code_required" // oidc.authorize: the client needs a login with the code
	CodeGrantInvalid         = "grant_invalid" // oidc.token, oidc.userinfo
)

// Block reasons, in `account_locked` replies and in the read models.
const (
	ReasonPasswordFailures = "password_failures"
	ReasonOTPFailures      = "otp_failures"
	ReasonOTPQuota         = "otp_quota"
)

// Error is a refusal told to the user: a code of the wire contract and the
// facts its French message needs. It never holds a secret.
type Error struct {
	Code          string
	Reason        string    // account_locked: why
	BlockedUntil  time.Time // account_locked, *_exceeded
	AttemptsLeft  int       // otp_invalid, code_invalid
	DeactivatedAt time.Time // account_deactivated
	Until         time.Time // email_recently_changed
	Minutes       int       // otp_expired, code_expired: the code's lifetime
	Field         string    // invalid_request: the field at fault
	Detail        string    // invalid_request, weak_password: what is wrong, in French
}

func (e *Error) Error() string {
	switch {
	case e.Field != "":
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Detail)
	case !e.BlockedUntil.IsZero():
		return fmt.Sprintf("%s (%s) until %s", e.Code, e.Reason, e.BlockedUntil.UTC().Format(time.RFC3339))
	}
	return e.Code
}

// Is lets errors.Is match on the code alone: errors.Is(err, &Error{Code: X}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// InvalidRequest builds the `invalid_request` error naming a field.
func InvalidRequest(field, detail string) *Error {
	return &Error{Code: CodeInvalidRequest, Field: field, Detail: detail}
}

func locked(reason string, until time.Time) *Error {
	return &Error{Code: CodeAccountLocked, Reason: reason, BlockedUntil: until}
}
