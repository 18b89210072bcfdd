package domain

import (
	"crypto/subtle"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Command is what a front-end asks of an account. Secrets arrive already
// hashed or sealed: the decider never sees a password, code or token.
type Command interface{ isCommand() }

// Register creates the account, or reactivates a deactivated one (Cas 1 bis).
type Register struct {
	NIRHash        string
	EmailSealed    string
	MaskedEmail    string
	EmailValidated bool
	PasswordHash   string
	Affiliation    string
}

// Deactivate closes the account.
type Deactivate struct{ Reason string }

// SetAffiliation records what the national register says.
type SetAffiliation struct{ Affiliation string }

// Unlock lifts a block and clears the counters (an adviser's act).
type Unlock struct{}

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

func (Register) isCommand()       {}
func (Deactivate) isCommand()     {}
func (SetAffiliation) isCommand() {}
func (Unlock) isCommand()         {}
func (SubmitPassword) isCommand() {}
func (SendOTP) isCommand()        {}
func (VerifyOTP) isCommand()      {}
func (Logout) isCommand()         {}

// Decider decides commands under a Policy.
type Decider struct{ Policy Policy }

// Decide returns the facts a command causes and the refusal to tell the
// user, if any. A refusal that must still be recorded (a wrong password, a
// wrong code, one code request too many) returns both its event and its
// error. A command that changes nothing returns neither.
func (d Decider) Decide(a Account, c Command, now time.Time) ([]events.Event, error) {
	switch c := c.(type) {
	case Register:
		if !validAffiliation(c.Affiliation) {
			return nil, InvalidRequest("affiliation", "doit valoir active, pending ou none")
		}
		switch a.Status {
		case "":
			return one(events.AccountRegistered{NIRHash: c.NIRHash, EmailSealed: c.EmailSealed, MaskedEmail: c.MaskedEmail,
				EmailValidated: c.EmailValidated, PasswordHash: c.PasswordHash, Affiliation: c.Affiliation, At: now})
		case StatusDeactivated:
			return one(events.AccountReactivated{EmailSealed: c.EmailSealed, MaskedEmail: c.MaskedEmail,
				EmailValidated: c.EmailValidated, PasswordHash: c.PasswordHash, Affiliation: c.Affiliation, At: now})
		}
		return nil, &Error{Code: CodeAccountExists}

	case Deactivate:
		if !a.Exists() {
			return nil, &Error{Code: CodeAccountNotFound}
		}
		if a.Status == StatusDeactivated {
			return nil, nil
		}
		return one(events.AccountDeactivated{Reason: c.Reason, At: now})

	case SetAffiliation:
		if !a.Exists() {
			return nil, &Error{Code: CodeAccountNotFound}
		}
		if !validAffiliation(c.Affiliation) {
			return nil, InvalidRequest("affiliation", "doit valoir active, pending ou none")
		}
		if a.Affiliation == c.Affiliation {
			return nil, nil
		}
		return one(events.AffiliationSet{Affiliation: c.Affiliation, At: now})

	case Unlock:
		if !a.Exists() {
			return nil, &Error{Code: CodeAccountNotFound}
		}
		if !a.Blocked(now) && a.PasswordFailures == 0 && a.OTPFailures == 0 && len(a.OTPRequests) == 0 {
			return nil, nil
		}
		prev := ""
		if a.Blocked(now) {
			prev = a.BlockReason
		}
		return one(events.AccountUnlocked{PreviousReason: prev, At: now})

	case SubmitPassword:
		return d.submitPassword(a, c, now)
	case SendOTP:
		return d.sendOTP(a, c, now)
	case VerifyOTP:
		return d.verifyOTP(a, c, now)

	case Logout:
		if !a.SessionValid(c.SessionHash, now) {
			return nil, nil // logging out twice is not an error
		}
		return one(events.SessionEnded{SessionHash: c.SessionHash, Reason: "logout", At: now})
	}
	if evs, err, handled := d.decideBiometric(a, c, now); handled {
		if !a.Exists() {
			switch c.(type) {
			case RevokeBiometrics:
				return nil, &Error{Code: CodeAccountNotFound}
			case AnswerBiometricOffer, EnrollBiometric:
				return nil, &Error{Code: CodeSessionInvalid}
			}
			return nil, &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}
		}
		return evs, err
	}
	if !a.Exists() {
		switch c.(type) {
		case RequestPasswordReset:
			return nil, nil
		case CompletePasswordReset:
			return nil, &Error{Code: CodeResetTokenInvalid}
		}
		return nil, &Error{Code: CodeSessionInvalid}
	}
	return d.decideChange(a, c, now)
}

// submitPassword: a block is told to anyone; a wrong password gets
// invalid_credentials whatever the account's state; the account's state
// (deactivated, no email, affiliation) is told only after the right password.
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
		return one2(events.LoginRefused{Reason: err.Code, At: now}, err)
	}
	if c.DeviceHash != "" && a.deviceTrusted(c.DeviceHash, now) {
		return one(events.LoginSucceeded{Method: events.MethodTrustedDevice, Channel: c.Channel,
			SessionHash: c.SessionHash, SessionExpiresAt: now.Add(p.SessionLifetime),
			NewPasswordHash: c.NewPasswordHash, At: now})
	}
	return one(events.PasswordVerified{LoginID: c.LoginID, NewPasswordHash: c.NewPasswordHash, At: now})
}

// passwordFailure records a wrong password; the one that reaches the limit
// blocks the account and already says so.
func (d Decider) passwordFailure(a Account, now time.Time) ([]events.Event, error) {
	p := d.Policy
	n := a.PasswordFailures + 1
	if p.PasswordFailureMemory > 0 && !a.PasswordFailedAt.IsZero() && !now.Before(a.PasswordFailedAt.Add(p.PasswordFailureMemory)) {
		n = 1 // the earlier failures are too old to count (PasswordFailureMemory)
	}
	if n >= p.PasswordMaxFailures {
		until := now.Add(p.PasswordBlock)
		return one2(events.PasswordFailed{Failures: n, BlockedUntil: until, NoticeTo: d.notice(a), At: now},
			locked(ReasonPasswordFailures, until))
	}
	return one2(events.PasswordFailed{Failures: n, At: now}, &Error{Code: CodeInvalidCredentials})
}

// refusal is the account state that keeps a holder with the right password out.
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

func (d Decider) openLogin(a Account, loginID string, now time.Time) *Error {
	l, ok := a.Login(loginID)
	if !ok || !now.Before(l.StartedAt.Add(d.Policy.LoginLifetime)) {
		return &Error{Code: CodeLoginExpired}
	}
	return nil
}

func (d Decider) sendOTP(a Account, c SendOTP, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if !a.Exists() {
		return nil, &Error{Code: CodeLoginExpired}
	}
	if a.Blocked(now) {
		return nil, locked(a.BlockReason, a.BlockedUntil)
	}
	if err := d.openLogin(a, c.LoginID, now); err != nil {
		return nil, err
	}
	if err := d.refusal(a); err != nil {
		return nil, err
	}
	recent := countSince(a.OTPRequests, now, p.OTPQuotaWindow)
	if recent >= p.OTPQuota {
		until := now.Add(p.OTPQuotaBlock)
		return one2(events.OTPQuotaExceeded{LoginID: c.LoginID, BlockedUntil: until, NoticeTo: d.notice(a), At: now},
			&Error{Code: CodeOTPQuotaExceeded, Reason: ReasonOTPQuota, BlockedUntil: until})
	}
	return one(events.OTPIssued{LoginID: c.LoginID, CodeHash: c.CodeHash, CodeSealed: c.CodeSealed, ToSealed: a.EmailSealed,
		RequestsLastHour: recent + 1, IssuedAt: now, ExpiresAt: now.Add(p.OTPLifetime)})
}

func (d Decider) verifyOTP(a Account, c VerifyOTP, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if !a.Exists() {
		return nil, &Error{Code: CodeLoginExpired}
	}
	if a.Blocked(now) {
		return nil, locked(a.BlockReason, a.BlockedUntil)
	}
	if err := d.openLogin(a, c.LoginID, now); err != nil {
		return nil, err
	}
	if err := d.refusal(a); err != nil {
		return nil, err
	}
	expired := &Error{Code: CodeOTPExpired, Minutes: int(p.OTPLifetime / time.Minute)}
	// Only the latest code is valid, and only for its own login.
	if a.OTP == nil || a.OTP.LoginID != c.LoginID || !now.Before(a.OTP.ExpiresAt) {
		return nil, expired
	}
	if !equalHash(a.OTP.CodeHash, c.CodeHash) {
		n := a.OTPFailures + 1
		if n >= p.OTPMaxFailures {
			until := now.Add(p.OTPBlock)
			return one2(events.OTPFailed{LoginID: c.LoginID, Failures: n, BlockedUntil: until, NoticeTo: d.notice(a), At: now},
				locked(ReasonOTPFailures, until))
		}
		return one2(events.OTPFailed{LoginID: c.LoginID, Failures: n, At: now},
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
	return one(ok)
}

// notice is the sealed address to warn of a lockout, in profiles that do.
func (d Decider) notice(a Account) string {
	if d.Policy.NotifyLockout && a.EmailValidated {
		return a.EmailSealed
	}
	return ""
}

func (a Account) deviceTrusted(hash string, now time.Time) bool {
	for _, t := range a.TrustedDevices {
		if equalHash(t.Hash, hash) && now.Before(t.ExpiresAt) {
			return true
		}
	}
	return false
}

func validAffiliation(s string) bool {
	return s == AffiliationActive || s == AffiliationPending || s == AffiliationNone
}

// equalHash compares keyed hashes in constant time.
func equalHash(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func one(e events.Event) ([]events.Event, error) { return []events.Event{e}, nil }

func one2(e events.Event, err *Error) ([]events.Event, error) { return []events.Event{e}, err }
