package domain

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Command is what a front-end asks of an account. Secrets arrive already
// hashed or sealed: the decider never sees a password, code or token. The
// interface is sealed: every command is a type of this package, and Decide
// has a case for each.
type Command interface{ isCommand() }

// ErrUnknownCommand: Decide was given a command it has no rule for. It is a
// programming error, never a refusal told to a user (the commands service
// answers `unavailable`): a command without a rule must not succeed
// silently.
var ErrUnknownCommand = errors.New("domain: unknown command")

// Decider decides commands under a Policy.
type Decider struct{ Policy Policy }

// Decide returns the facts a command causes and the refusal to tell the
// user, if any. A refusal that must still be recorded (a wrong password, a
// wrong code, one code request too many) returns both its event and its
// error. A command that changes nothing returns neither.
//
// One case per command, each a method that checks its own preconditions
// (the account exists, a session is open, no block is in force) before its
// rule: the use case reads top to bottom in one place.
func (d Decider) Decide(a Account, c Command, now time.Time) ([]events.Event, error) {
	switch c := c.(type) {
	// The account's life (decide_account.go).
	case Register:
		return d.register(a, c, now)
	case Deactivate:
		return d.deactivate(a, c, now)
	case SetAffiliation:
		return d.setAffiliation(a, c, now)
	case Unlock:
		return d.unlock(a, now)

	// Login with password and code (decide_login.go).
	case SubmitPassword:
		return d.submitPassword(a, c, now)
	case SendOTP:
		return d.sendOTP(a, c, now)
	case VerifyOTP:
		return d.verifyOTP(a, c, now)
	case Logout:
		return d.logout(a, c, now)

	// Biometric login on the app (decide_biometric.go).
	case AnswerBiometricOffer:
		return d.answerBiometricOffer(a, c, now)
	case EnrollBiometric:
		return d.enrollBiometric(a, c, now)
	case IssueBiometricChallenge:
		return d.issueBiometricChallenge(a, c, now)
	case BiometricLogin:
		return d.biometricLogin(a, c, now)
	case RevokeBiometrics:
		return d.revokeBiometrics(a, c, now)

	// Changes of password and address (decide_change.go).
	case StartPasswordChange:
		return d.startPasswordChange(a, c, now)
	case VerifyChangeCode:
		return d.verifyChangeCode(a, c, now)
	case CompletePasswordChange:
		return d.completePasswordChange(a, c, now)
	case RequestEmailChange:
		return d.requestEmailChange(a, c, now)
	case ConfirmEmailChange:
		return d.confirmEmailChange(a, c, now)
	case RequestPasswordReset:
		return d.requestPasswordReset(a, c, now)
	case CompletePasswordReset:
		return d.completePasswordReset(a, c, now)

	// OpenID Connect (decide_oidc.go).
	case AuthorizeOIDC:
		return d.authorizeOIDC(a, c, now)
	case IssueOIDCToken:
		return d.issueOIDCToken(a, c, now)
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownCommand, c)
}

// notice is the sealed address to warn of a lockout, in profiles that do.
func (d Decider) notice(a Account) string {
	if d.Policy.NotifyLockout && a.EmailValidated {
		return a.EmailSealed
	}
	return ""
}

// equalHash compares keyed hashes in constant time.
func equalHash(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// record is a decision that records one fact and tells no refusal.
func record(e events.Event) ([]events.Event, error) { return []events.Event{e}, nil }

// recordRefusal is a refusal that is itself a fact to record (a wrong
// password, a wrong code, one request too many): the fact and the refusal.
func recordRefusal(e events.Event, err *Error) ([]events.Event, error) {
	return []events.Event{e}, err
}

func countSince(ts []time.Time, now time.Time, window time.Duration) int {
	n := 0
	for _, t := range ts {
		if now.Before(t.Add(window)) {
			n++
		}
	}
	return n
}
