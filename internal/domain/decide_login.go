package domain

import (
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// SubmitPassword is the first login step. PasswordOK is the result of the
// argon2id check done outside; NewPasswordHash is set when it was rehashed.
// DeviceHash is the keyed hash of a trusted-device token, if one was sent.
// LoginID and SessionHash are fresh values the outcome may use.
type SubmitPassword struct {
	PasswordOK      bool
	NewPasswordHash string
	DeviceHash      string
	LoginID         string
	SessionHash     string
	Channel         string
}

// SendOTP asks for a security code for a login. CodeHash is the keyed hash
// of the fresh code, CodeSealed the code sealed for the notifier.
type SendOTP struct {
	LoginID    string
	CodeHash   string
	CodeSealed string
}

// VerifyOTP checks a security code. CodeHash is the keyed hash of the code
// typed. With RememberDevice, DeviceHash is the hash of the token to trust.
type VerifyOTP struct {
	LoginID        string
	CodeHash       string
	RememberDevice bool
	DeviceHash     string
	SessionHash    string
	Channel        string
}

// Logout ends a session.
type Logout struct{ SessionHash string }

func (SubmitPassword) isCommand() {}
func (SendOTP) isCommand()        {}
func (VerifyOTP) isCommand()      {}
func (Logout) isCommand()         {}

// submitPassword (seed, Étape 0, Cas 4 and 7): a block is told to anyone; a
// wrong password gets invalid_credentials whatever the account's state; the
// account's state (deactivated, no email, affiliation) is told only after
// the right password (our choice: SPEC, "account states are told only to
// the holder"). A trusted device skips the code (Étape 3, FAQ). An unknown
// account answers as a wrong password (issue 19).
func (d Decider) submitPassword(a Account, c SubmitPassword, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if !a.Exists() {
		return nil, &Error{Code: CodeInvalidCredentials}
	}
	if a.Blocked(now) {
		return nil, locked(a.BlockReason, a.BlockedUntil)
	}
	if !c.PasswordOK {
		return d.passwordFailure(a, now)
	}
	if err := d.refusal(a); err != nil {
		return recordRefusal(events.LoginRefused{Reason: err.Code, At: now}, err)
	}
	if c.DeviceHash != "" && a.deviceTrusted(c.DeviceHash, now) {
		return record(events.LoginSucceeded{Method: events.MethodTrustedDevice, Channel: c.Channel,
			SessionHash: c.SessionHash, SessionExpiresAt: now.Add(p.SessionLifetime),
			NewPasswordHash: c.NewPasswordHash, At: now})
	}
	return record(events.PasswordVerified{LoginID: c.LoginID, NewPasswordHash: c.NewPasswordHash, At: now})
}

// passwordFailure records a wrong password; the one that reaches the limit
// blocks the account and already says so (seed, Cas 7).
func (d Decider) passwordFailure(a Account, now time.Time) ([]events.Event, error) {
	p := d.Policy
	n := a.PasswordFailures + 1
	if p.PasswordFailureMemory > 0 && !a.PasswordFailedAt.IsZero() && !now.Before(a.PasswordFailedAt.Add(p.PasswordFailureMemory)) {
		n = 1 // the earlier failures are too old to count (PasswordFailureMemory)
	}
	if n >= p.PasswordMaxFailures {
		until := now.Add(p.PasswordBlock)
		return recordRefusal(events.PasswordFailed{Failures: n, BlockedUntil: until, NoticeTo: d.notice(a), At: now},
			locked(ReasonPasswordFailures, until))
	}
	return recordRefusal(events.PasswordFailed{Failures: n, At: now}, &Error{Code: CodeInvalidCredentials})
}

// refusal is the account state that keeps a holder with the right password
// out (seed, Cas 1, 1 bis, 8, 9).
func (d Decider) refusal(a Account) *Error {
	switch {
	case a.Status == StatusDeactivated:
		return &Error{Code: CodeAccountDeactivated, DeactivatedAt: a.DeactivatedAt}
	case !a.EmailValidated:
		return &Error{Code: CodeNoValidatedEmail}
	case a.Affiliation == AffiliationNone:
		return &Error{Code: CodeAffiliationMissing}
	case a.Affiliation == AffiliationPending:
		return &Error{Code: CodeAffiliationPending}
	}
	return nil
}

// openLogin: a login whose password was right can ask and check codes for
// LoginLifetime (our choice, SPEC: the login_id stays valid 1 hour).
func (d Decider) openLogin(a Account, loginID string, now time.Time) *Error {
	l, ok := a.Login(loginID)
	if !ok || !now.Before(l.StartedAt.Add(d.Policy.LoginLifetime)) {
		return &Error{Code: CodeLoginExpired}
	}
	return nil
}

// loginStep is what every step after the password needs: the account, no
// block, an open login, and an account state that lets the holder in.
func (d Decider) loginStep(a Account, loginID string, now time.Time) error {
	if !a.Exists() {
		return &Error{Code: CodeLoginExpired}
	}
	if a.Blocked(now) {
		return locked(a.BlockReason, a.BlockedUntil)
	}
	if err := d.openLogin(a, loginID, now); err != nil {
		return err
	}
	if err := d.refusal(a); err != nil {
		return err
	}
	return nil
}

// sendOTP issues a security code by mail (seed, Étapes 1-2), at most OTPQuota
// per rolling window; the one over the quota blocks the account (Cas 3).
func (d Decider) sendOTP(a Account, c SendOTP, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if err := d.loginStep(a, c.LoginID, now); err != nil {
		return nil, err
	}
	recent := countSince(a.OTPRequests, now, p.OTPQuotaWindow)
	if recent >= p.OTPQuota {
		until := now.Add(p.OTPQuotaBlock)
		return recordRefusal(events.OTPQuotaExceeded{LoginID: c.LoginID, BlockedUntil: until, NoticeTo: d.notice(a), At: now},
			&Error{Code: CodeOTPQuotaExceeded, Reason: ReasonOTPQuota, BlockedUntil: until})
	}
	return record(events.OTPIssued{LoginID: c.LoginID, CodeHash: c.CodeHash, CodeSealed: c.CodeSealed, ToSealed: a.EmailSealed,
		RequestsLastHour: recent + 1, IssuedAt: now, ExpiresAt: now.Add(p.OTPLifetime)})
}

// verifyOTP checks the code (seed, Étape 3): only the latest code of this
// login is valid; an expired one is not a failure (Cas 2); a wrong one
// counts, and the one that reaches the limit blocks (Cas 5, 6). "Se
// souvenir de cet appareil" trusts the device for TrustedDeviceMonths.
func (d Decider) verifyOTP(a Account, c VerifyOTP, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if err := d.loginStep(a, c.LoginID, now); err != nil {
		return nil, err
	}
	if a.OTP == nil || a.OTP.LoginID != c.LoginID || !now.Before(a.OTP.ExpiresAt) {
		return nil, &Error{Code: CodeOTPExpired, Minutes: int(p.OTPLifetime / time.Minute)}
	}
	if !equalHash(a.OTP.CodeHash, c.CodeHash) {
		n := a.OTPFailures + 1
		if n >= p.OTPMaxFailures {
			until := now.Add(p.OTPBlock)
			return recordRefusal(events.OTPFailed{LoginID: c.LoginID, Failures: n, BlockedUntil: until, NoticeTo: d.notice(a), At: now},
				locked(ReasonOTPFailures, until))
		}
		return recordRefusal(events.OTPFailed{LoginID: c.LoginID, Failures: n, At: now},
			&Error{Code: CodeOTPInvalid, AttemptsLeft: p.OTPMaxFailures - n})
	}
	ok := events.LoginSucceeded{LoginID: c.LoginID, Method: events.MethodOTP, Channel: c.Channel,
		SessionHash: c.SessionHash, SessionExpiresAt: now.Add(p.SessionLifetime), At: now}
	if c.RememberDevice && c.DeviceHash != "" {
		ok.DeviceHash, ok.DeviceExpiresAt = c.DeviceHash, now.AddDate(0, p.TrustedDeviceMonths, 0)
		if p.NotifyNewTrustedDevice {
			ok.NoticeTo = a.EmailSealed
		}
	}
	return record(ok)
}

// logout ends an open session; logging out twice, or of an unknown
// account, is not an error (our choice: the client's intent is met).
func (d Decider) logout(a Account, c Logout, now time.Time) ([]events.Event, error) {
	if !a.SessionValid(c.SessionHash, now) {
		return nil, nil
	}
	return record(events.SessionEnded{SessionHash: c.SessionHash, Reason: "logout", At: now})
}

func (a Account) deviceTrusted(hash string, now time.Time) bool {
	for _, t := range a.TrustedDevices {
		if equalHash(t.Hash, hash) && now.Before(t.ExpiresAt) {
			return true
		}
	}
	return false
}
