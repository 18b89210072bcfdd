package events

// IsAttempt says whether e is a login attempt that may leave the stream
// once the attempts' retention has passed (AUTH_ATTEMPTS_RETENTION, issue
// 16; docs/retention.md): the steps of a login (password, code, biometric
// challenge, their failures, blocks and refusals), its success and the
// end of a session. Every rule that reads them looks back a bounded time
// (at most the trusted devices' months: domain.Policy.AttemptsMemory),
// and the commands service keeps a snapshot of the account that covers
// each of them before it can expire.
//
// The others stay for good: what the account is (registration,
// credentials, address, affiliation, enrolments, closing), the change
// flows, and an attempt that carries a new password hash (a rehash at
// login): the account's password never depends on a snapshot.
func IsAttempt(e Event) bool {
	switch e := e.(type) {
	case PasswordVerified:
		return e.NewPasswordHash == ""
	case LoginSucceeded:
		return e.NewPasswordHash == ""
	case PasswordFailed, LoginRefused, OTPIssued, OTPQuotaExceeded, OTPFailed, SessionEnded,
		BiometricChallengeIssued, BiometricLoginFailed:
		return true
	}
	return false
}
