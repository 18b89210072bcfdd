package domain

import (
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// StartPasswordChange asks a confirmation code for a password change from a
// logged-in session; asking again is the seed's "Renvoyer le code par mail".
// PasswordOK is the check of the current password, which the strict profile
// requires.
type StartPasswordChange struct {
	SessionHash string
	PasswordOK  bool
	CodeHash    string
	CodeSealed  string
}

// VerifyChangeCode checks the password-change code.
type VerifyChangeCode struct {
	SessionHash string
	CodeHash    string
}

// CompletePasswordChange sets the new password after a verified code.
type CompletePasswordChange struct {
	SessionHash  string
	PasswordHash string
}

// RequestEmailChange sends a code to a new address.
type RequestEmailChange struct {
	SessionHash    string
	NewEmailSealed string
	NewMaskedEmail string
	CodeHash       string
	CodeSealed     string
}

// ConfirmEmailChange records the new address once its code is typed.
type ConfirmEmailChange struct {
	SessionHash string
	CodeHash    string
}

// RequestPasswordReset mails a single-use reset link ("Mot de passe oublié ?").
type RequestPasswordReset struct {
	TokenHash   string
	TokenSealed string
}

// CompletePasswordReset sets a new password with a reset link's token.
type CompletePasswordReset struct {
	TokenHash    string
	PasswordHash string
}

func (StartPasswordChange) isCommand()    {}
func (VerifyChangeCode) isCommand()       {}
func (CompletePasswordChange) isCommand() {}
func (RequestEmailChange) isCommand()     {}
func (ConfirmEmailChange) isCommand()     {}
func (RequestPasswordReset) isCommand()   {}
func (CompletePasswordReset) isCommand()  {}

// startPasswordChange mails a confirmation code (seed, « Changement de mot
// de passe », Étape 1; asking again is « Renvoyer le code par mail »), at
// most ChangeCodeMaxRequests per window (Cas d'échecs 1). The strict
// profile also asks the current password (NIST SP 800-63B-4).
func (d Decider) startPasswordChange(a Account, c StartPasswordChange, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if err := d.passwordChangeAllowed(a, c.SessionHash, now); err != nil {
		return nil, err
	}
	if p.ChangeRequiresCurrentPassword {
		// The current password is checked here as at login, so the
		// login's block holds here too: no second path around it.
		if a.Blocked(now) {
			return nil, locked(a.BlockReason, a.BlockedUntil)
		}
		if !c.PasswordOK {
			return d.passwordFailure(a, now)
		}
	}
	recent, evs, err := d.codeRequest(a.PasswordChange, events.FlowPasswordChange, now)
	if err != nil {
		return evs, err
	}
	return record(events.PasswordChangeCodeIssued{CodeHash: c.CodeHash, CodeSealed: c.CodeSealed, ToSealed: a.EmailSealed,
		RequestsLastHour: recent + 1, IssuedAt: now, ExpiresAt: now.Add(p.ChangeCodeLifetime)})
}

// verifyChangeCode checks the password-change code (seed, Étape 1; three
// wrong codes block the change, Cas d'échecs 2).
func (d Decider) verifyChangeCode(a Account, c VerifyChangeCode, now time.Time) ([]events.Event, error) {
	if err := d.passwordChangeAllowed(a, c.SessionHash, now); err != nil {
		return nil, err
	}
	if evs, err := d.codeCheck(a.PasswordChange, events.FlowPasswordChange, c.CodeHash, now); evs != nil || err != nil {
		return evs, err
	}
	return record(events.ChangeCodeVerified{SessionHash: c.SessionHash, At: now})
}

// completePasswordChange sets the new password after a verified code,
// within the code's lifetime; the holder is mailed (seed, the « mot de
// passe modifié » mail).
func (d Decider) completePasswordChange(a Account, c CompletePasswordChange, now time.Time) ([]events.Event, error) {
	if err := d.passwordChangeAllowed(a, c.SessionHash, now); err != nil {
		return nil, err
	}
	code := a.PasswordChange.Code
	// Only the session that typed the code sets the password (our
	// choice, issue 11): a thief's session cannot finish the holder's
	// change after the holder typed the code.
	if code == nil || !code.Verified || code.VerifiedBy != "" && !equalHash(code.VerifiedBy, c.SessionHash) {
		return nil, &Error{Code: CodeCodeInvalid}
	}
	if !now.Before(code.ExpiresAt) {
		return nil, &Error{Code: CodeCodeExpired, Minutes: int(d.Policy.ChangeCodeLifetime / time.Minute)}
	}
	return record(events.PasswordChanged{Method: events.MethodChange, PasswordHash: c.PasswordHash,
		KeptSessionHash: c.SessionHash, ToSealed: a.EmailSealed, At: now})
}

// requestEmailChange mails a code to the new address, with the same limits
// as the password change's code (our choice, after Cas d'échecs 1).
func (d Decider) requestEmailChange(a Account, c RequestEmailChange, now time.Time) ([]events.Event, error) {
	if !a.Exists() || !a.SessionValid(c.SessionHash, now) {
		return nil, &Error{Code: CodeSessionInvalid}
	}
	recent, evs, err := d.codeRequest(a.EmailChange, events.FlowEmailChange, now)
	if err != nil {
		return evs, err
	}
	return record(events.EmailChangeCodeIssued{NewEmailSealed: c.NewEmailSealed, NewMaskedEmail: c.NewMaskedEmail,
		CodeHash: c.CodeHash, CodeSealed: c.CodeSealed, RequestsLastHour: recent + 1, IssuedAt: now,
		ExpiresAt: now.Add(d.Policy.ChangeCodeLifetime)})
}

// confirmEmailChange records the new address once its code is typed; the
// old address is told, and the 48 hours of Cas d'échecs 3 start.
func (d Decider) confirmEmailChange(a Account, c ConfirmEmailChange, now time.Time) ([]events.Event, error) {
	if !a.Exists() || !a.SessionValid(c.SessionHash, now) {
		return nil, &Error{Code: CodeSessionInvalid}
	}
	if evs, err := d.codeCheck(a.EmailChange, events.FlowEmailChange, c.CodeHash, now); evs != nil || err != nil {
		return evs, err
	}
	pending := a.EmailChange.Code
	return record(events.EmailChanged{EmailSealed: pending.NewEmailSealed, MaskedEmail: pending.NewMaskedEmail,
		OldToSealed: a.EmailSealed, KeptSessionHash: c.SessionHash, At: now})
}

// requestPasswordReset mails a single-use link (seed, FAQ « oubli de mot de
// passe »). Whatever happens here the user is told the same thing (SPEC);
// only an account that can receive the link gets one, a few per hour.
func (d Decider) requestPasswordReset(a Account, c RequestPasswordReset, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if a.Status != StatusActive || !a.EmailValidated || countSince(a.ResetRequests, now, p.ChangeCodeWindow) >= p.ResetMaxPerWindow {
		return nil, nil
	}
	// No link to an address recorded less than 48 hours ago (seed, Cas
	// d'échecs 3, applied to the other way of setting a password: a
	// session thief who changed the address would otherwise reset the
	// password at once; issue 11, a second path around a lock).
	if d.emailRecentlyChanged(a, now) {
		return nil, nil
	}
	return record(events.PasswordResetRequested{TokenHash: c.TokenHash, TokenSealed: c.TokenSealed, ToSealed: a.EmailSealed,
		RequestedAt: now, ExpiresAt: now.Add(p.ResetLinkLifetime)})
}

// completePasswordReset sets a new password with the latest link's token,
// within its lifetime, on an active account (seed, FAQ; OWASP Forgot
// Password cheat sheet: single use).
func (d Decider) completePasswordReset(a Account, c CompletePasswordReset, now time.Time) ([]events.Event, error) {
	r := a.Reset
	if a.Status != StatusActive || r == nil || !equalHash(r.TokenHash, c.TokenHash) || !now.Before(r.ExpiresAt) {
		return nil, &Error{Code: CodeResetTokenInvalid}
	}
	return record(events.PasswordChanged{Method: events.MethodReset, PasswordHash: c.PasswordHash, ToSealed: a.EmailSealed, At: now})
}

// passwordChangeAllowed: a session, no new address in the last 48 hours
// (seed, Cas d'échecs 3), and no block of the flow.
func (d Decider) passwordChangeAllowed(a Account, sessionHash string, now time.Time) *Error {
	if !a.Exists() || !a.SessionValid(sessionHash, now) {
		return &Error{Code: CodeSessionInvalid}
	}
	if d.emailRecentlyChanged(a, now) {
		return &Error{Code: CodeEmailRecentlyChanged, Until: a.EmailChangedAt.Add(d.Policy.EmailChangeCooldown)}
	}
	return nil
}

// emailRecentlyChanged: a new address was recorded less than
// EmailChangeCooldown ago.
func (d Decider) emailRecentlyChanged(a Account, now time.Time) bool {
	return !a.EmailChangedAt.IsZero() && now.Before(a.EmailChangedAt.Add(d.Policy.EmailChangeCooldown))
}

// codeRequest applies a flow's block and its request quota (seed, Cas
// d'échecs 1: the 4th request within the hour blocks the flow an hour).
func (d Decider) codeRequest(f ChangeFlow, flow string, now time.Time) (int, []events.Event, error) {
	p := d.Policy
	if now.Before(f.BlockedUntil) {
		return 0, nil, &Error{Code: f.BlockCode, Reason: flow, BlockedUntil: f.BlockedUntil}
	}
	recent := countSince(f.Requests, now, p.ChangeCodeWindow)
	if recent >= p.ChangeCodeMaxRequests {
		until := now.Add(p.ChangeRequestsBlock)
		return recent, []events.Event{events.ChangeRequestsExceeded{Flow: flow, BlockedUntil: until, At: now}},
			&Error{Code: CodeCodeRequestsExceeded, Reason: flow, BlockedUntil: until}
	}
	return recent, nil, nil
}

// codeCheck checks a flow's confirmation code. No event and no error: right.
func (d Decider) codeCheck(f ChangeFlow, flow, codeHash string, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if now.Before(f.BlockedUntil) {
		return nil, &Error{Code: f.BlockCode, Reason: flow, BlockedUntil: f.BlockedUntil}
	}
	if f.Code == nil || !now.Before(f.Code.ExpiresAt) {
		return nil, &Error{Code: CodeCodeExpired, Reason: flow, Minutes: int(p.ChangeCodeLifetime / time.Minute)}
	}
	if equalHash(f.Code.CodeHash, codeHash) {
		return nil, nil
	}
	n := f.Failures + 1
	if n >= p.ChangeCodeMaxFailures {
		until := now.Add(p.ChangeFailuresBlock)
		return []events.Event{events.ChangeCodeFailed{Flow: flow, Failures: n, BlockedUntil: until, At: now}},
			&Error{Code: CodeCodeAttemptsExceeded, Reason: flow, BlockedUntil: until}
	}
	return []events.Event{events.ChangeCodeFailed{Flow: flow, Failures: n, At: now}},
		&Error{Code: CodeCodeInvalid, Reason: flow, AttemptsLeft: p.ChangeCodeMaxFailures - n}
}
