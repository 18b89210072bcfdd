package histcheck

import (
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// class is what a reply says about the stream.
type class int

const (
	nothing  class = iota // a refusal that records nothing
	maybe                 // a reply that may or may not come with its event
	recorded              // a reply that says its fact was recorded
	unknown               // no reply, or `unavailable`
)

func (c class) String() string {
	return [...]string{"nothing recorded", "maybe recorded", "recorded", "unknown"}[c]
}

// expectation is what an op's reply lets the stream hold under its
// request_id: the event types, and a check of the event's fields against
// the reply.
type expectation struct {
	class class
	types []string
	match func(o Op, e events.Envelope) string // "" when the event fits the reply
}

func (x expectation) allows(o Op, e events.Envelope) string {
	for _, t := range x.types {
		if t == e.Type {
			if x.match != nil {
				return x.match(o, e)
			}
			return ""
		}
	}
	return fmt.Sprintf("a %s event, where the reply %q allows %v", e.Type, o.Outcome(), x.types)
}

func sameTime(a time.Time, b *time.Time) bool {
	return b != nil && a.Truncate(time.Second).Equal(b.Truncate(time.Second))
}

func blockedUntil(e events.Event) time.Time {
	switch e := e.(type) {
	case events.PasswordFailed:
		return e.BlockedUntil
	case events.OTPFailed:
		return e.BlockedUntil
	case events.OTPQuotaExceeded:
		return e.BlockedUntil
	case events.ChangeRequestsExceeded:
		return e.BlockedUntil
	case events.ChangeCodeFailed:
		return e.BlockedUntil
	}
	return time.Time{}
}

// blockMatches: the event blocks until the reply's blocked_until.
func blockMatches(o Op, e events.Envelope) string {
	until := blockedUntil(e.Data)
	if until.IsZero() {
		return fmt.Sprintf("reply %q with blocked_until, but its %s event blocks nothing", o.Outcome(), e.Type)
	}
	if o.Reply == nil || o.Reply.Error == nil || !sameTime(until, o.Reply.Error.BlockedUntil) {
		return fmt.Sprintf("reply %q blocked until %v, its %s event until %s", o.Outcome(), o.Reply.Error.BlockedUntil, e.Type, until)
	}
	return ""
}

// failureMatches: a failure that is no block, with the count the reply's
// attempts_left says.
func failureMatches(max func(domain.Policy) int, p domain.Policy) func(Op, events.Envelope) string {
	return func(o Op, e events.Envelope) string {
		var n int
		var until time.Time
		switch d := e.Data.(type) {
		case events.OTPFailed:
			n, until = d.Failures, d.BlockedUntil
		case events.ChangeCodeFailed:
			n, until = d.Failures, d.BlockedUntil
		case events.PasswordFailed:
			if !d.BlockedUntil.IsZero() {
				return fmt.Sprintf("reply %q, but its %s event blocks until %s", o.Outcome(), e.Type, d.BlockedUntil)
			}
			return ""
		}
		if !until.IsZero() {
			return fmt.Sprintf("reply %q, but its %s event blocks until %s", o.Outcome(), e.Type, until)
		}
		if o.Reply != nil && o.Reply.Error != nil && o.Reply.Error.AttemptsLeft != max(p)-n {
			return fmt.Sprintf("reply %q says %d attempts left, its %s event counts %d failures", o.Outcome(), o.Reply.Error.AttemptsLeft, e.Type, n)
		}
		return ""
	}
}

func flowIs(flow string, then func(Op, events.Envelope) string) func(Op, events.Envelope) string {
	return func(o Op, e events.Envelope) string {
		var f string
		switch d := e.Data.(type) {
		case events.ChangeCodeFailed:
			f = d.Flow
		case events.ChangeRequestsExceeded:
			f = d.Flow
		}
		if f != flow {
			return fmt.Sprintf("reply %q of %s, but its %s event is of flow %s", o.Outcome(), o.Command, e.Type, f)
		}
		if then != nil {
			return then(o, e)
		}
		return ""
	}
}

func methodIs(method string) func(Op, events.Envelope) string {
	return func(o Op, e events.Envelope) string {
		switch d := e.Data.(type) {
		case events.PasswordChanged:
			if d.Method != method {
				return fmt.Sprintf("reply %q, but its password.changed has method %s", o.Outcome(), d.Method)
			}
		case events.LoginSucceeded:
			if d.Method != method {
				return fmt.Sprintf("reply %q of %s, but its login.succeeded has method %s", o.Outcome(), o.Command, d.Method)
			}
		}
		return ""
	}
}

func refusedFor(o Op, e events.Envelope) string {
	if d, ok := e.Data.(events.LoginRefused); ok && d.Reason != o.Outcome() {
		return fmt.Sprintf("reply %q, but its login.refused says %s", o.Outcome(), d.Reason)
	}
	return ""
}

// expect returns what an op's reply lets the stream hold.
func expect(o Op, p domain.Policy) expectation {
	if o.Unknown() {
		return expectation{class: unknown, types: allTypes(o.Command)}
	}
	out := o.Outcome()
	rec := func(t string, m func(Op, events.Envelope) string) expectation {
		return expectation{class: recorded, types: []string{t}, match: m}
	}
	may := func(t string, m func(Op, events.Envelope) string) expectation {
		return expectation{class: maybe, types: []string{t}, match: m}
	}
	otpMax := func(p domain.Policy) int { return p.OTPMaxFailures }
	changeMax := func(p domain.Policy) int { return p.ChangeCodeMaxFailures }
	switch o.Command {
	case contract.CmdLoginPassword:
		switch out {
		case contract.StatusOTPRequired:
			return rec(events.TypePasswordVerified, nil)
		case contract.StatusAuthenticated:
			return rec(events.TypeLoginSucceeded, methodIs(events.MethodTrustedDevice))
		case domain.CodeInvalidCredentials:
			x := may(events.TypePasswordFailed, failureMatches(nil, p))
			if o.Account != "" { // a registered account: the failure is counted
				x.class = recorded
			}
			return x
		case domain.CodeAccountLocked:
			return may(events.TypePasswordFailed, blockMatches)
		case domain.CodeAccountDeactivated, domain.CodeNoValidatedEmail, domain.CodeAffiliationMissing, domain.CodeAffiliationPending:
			return rec(events.TypeLoginRefused, refusedFor)
		}
	case contract.CmdLoginOTPSend:
		switch out {
		case contract.StatusOTPSent:
			return rec(events.TypeOTPIssued, func(o Op, e events.Envelope) string {
				if d := e.Data.(events.OTPIssued); !sameTime(d.ExpiresAt, o.Reply.ExpiresAt) {
					return fmt.Sprintf("reply otp_sent expires at %v, its code at %s", o.Reply.ExpiresAt, d.ExpiresAt)
				}
				return ""
			})
		case domain.CodeOTPQuotaExceeded, domain.CodeAccountLocked:
			x := may(events.TypeOTPQuotaExceeded, blockMatches)
			if out == domain.CodeOTPQuotaExceeded {
				x.class = recorded
			}
			return x
		}
	case contract.CmdLoginOTPVerify:
		switch out {
		case contract.StatusAuthenticated:
			return rec(events.TypeLoginSucceeded, methodIs(events.MethodOTP))
		case domain.CodeOTPInvalid:
			return rec(events.TypeOTPFailed, failureMatches(otpMax, p))
		case domain.CodeAccountLocked:
			return may(events.TypeOTPFailed, blockMatches)
		}
	case contract.CmdSessionLogout:
		if out == contract.StatusLoggedOut {
			return may(events.TypeSessionEnded, nil)
		}
	case contract.CmdAccountRegister:
		switch out {
		case contract.StatusRegistered:
			return rec(events.TypeAccountRegistered, nil)
		case contract.StatusReactivated:
			return rec(events.TypeAccountReactivated, nil)
		}
	case contract.CmdAccountDeactivate:
		if out == contract.StatusDeactivated {
			return may(events.TypeAccountDeactivated, nil)
		}
	case contract.CmdAccountUnlock:
		if out == contract.StatusUnlocked {
			return may(events.TypeAccountUnlocked, nil)
		}
	case contract.CmdAccountSetAffiliation:
		if out == contract.StatusAffiliationSet {
			return may(events.TypeAffiliationSet, nil)
		}
	case contract.CmdPasswordChangeStart, contract.CmdEmailChange:
		flow, issued := events.FlowPasswordChange, events.TypePasswordChangeCodeIssued
		if o.Command == contract.CmdEmailChange {
			flow, issued = events.FlowEmailChange, events.TypeEmailChangeCodeIssued
		}
		switch out {
		case contract.StatusCodeSent:
			return rec(issued, nil)
		case domain.CodeCodeRequestsExceeded:
			return may(events.TypeChangeRequestsExceeded, flowIs(flow, blockMatches))
		}
	case contract.CmdPasswordChangeVerifyCode, contract.CmdEmailConfirm:
		flow, ok := events.FlowPasswordChange, rec(events.TypeChangeCodeVerified, nil)
		if o.Command == contract.CmdEmailConfirm {
			flow, ok = events.FlowEmailChange, rec(events.TypeEmailChanged, nil)
		}
		switch out {
		case contract.StatusCodeVerified, contract.StatusEmailChanged:
			return ok
		case domain.CodeCodeInvalid:
			return rec(events.TypeChangeCodeFailed, flowIs(flow, failureMatches(changeMax, p)))
		case domain.CodeCodeAttemptsExceeded:
			return may(events.TypeChangeCodeFailed, flowIs(flow, blockMatches))
		}
	case contract.CmdPasswordChangeComplete:
		if out == contract.StatusPasswordChanged {
			return rec(events.TypePasswordChanged, methodIs(events.MethodChange))
		}
	case contract.CmdPasswordResetRequest:
		if out == contract.StatusResetRequested {
			return may(events.TypePasswordResetRequested, nil)
		}
	case contract.CmdPasswordResetComplete:
		if out == contract.StatusPasswordReset {
			return rec(events.TypePasswordChanged, methodIs(events.MethodReset))
		}
	case contract.CmdBiometricOffer:
		if out == contract.StatusOfferRecorded {
			return rec(events.TypeBiometricOfferAnswered, nil)
		}
	case contract.CmdBiometricEnroll:
		if out == contract.StatusBiometricEnrolled {
			return rec(events.TypeBiometricEnrolled, nil)
		}
	case contract.CmdBiometricChallenge:
		if out == contract.StatusChallengeIssued {
			return rec(events.TypeBiometricChallengeIssued, nil)
		}
	case contract.CmdBiometricLogin:
		switch out {
		case contract.StatusAuthenticated:
			return rec(events.TypeLoginSucceeded, methodIs(events.MethodBiometric))
		case domain.CodeBiometricFailed:
			return may(events.TypeBiometricLoginFailed, nil)
		}
	case contract.CmdAccountRevokeBiometrics:
		if out == contract.StatusBiometricsRevoked {
			return may(events.TypeBiometricRevoked, nil)
		}
	}
	return expectation{class: nothing}
}

// allTypes is every event type some outcome of the command may record: what
// an op of unknown outcome may have left.
func allTypes(command string) []string {
	switch command {
	case contract.CmdLoginPassword:
		return []string{events.TypePasswordVerified, events.TypeLoginSucceeded, events.TypePasswordFailed, events.TypeLoginRefused}
	case contract.CmdLoginOTPSend:
		return []string{events.TypeOTPIssued, events.TypeOTPQuotaExceeded}
	case contract.CmdLoginOTPVerify:
		return []string{events.TypeLoginSucceeded, events.TypeOTPFailed}
	case contract.CmdSessionLogout:
		return []string{events.TypeSessionEnded}
	case contract.CmdAccountRegister, contract.CmdAccountImport:
		return []string{events.TypeAccountRegistered, events.TypeAccountReactivated}
	case contract.CmdAccountDeactivate:
		return []string{events.TypeAccountDeactivated}
	case contract.CmdAccountUnlock:
		return []string{events.TypeAccountUnlocked}
	case contract.CmdAccountSetAffiliation:
		return []string{events.TypeAffiliationSet}
	case contract.CmdPasswordChangeStart:
		return []string{events.TypePasswordChangeCodeIssued, events.TypeChangeRequestsExceeded, events.TypePasswordFailed}
	case contract.CmdEmailChange:
		return []string{events.TypeEmailChangeCodeIssued, events.TypeChangeRequestsExceeded}
	case contract.CmdPasswordChangeVerifyCode:
		return []string{events.TypeChangeCodeVerified, events.TypeChangeCodeFailed}
	case contract.CmdEmailConfirm:
		return []string{events.TypeEmailChanged, events.TypeChangeCodeFailed}
	case contract.CmdPasswordChangeComplete, contract.CmdPasswordResetComplete:
		return []string{events.TypePasswordChanged}
	case contract.CmdPasswordResetRequest:
		return []string{events.TypePasswordResetRequested}
	case contract.CmdBiometricOffer:
		return []string{events.TypeBiometricOfferAnswered}
	case contract.CmdBiometricEnroll:
		return []string{events.TypeBiometricEnrolled}
	case contract.CmdBiometricChallenge:
		return []string{events.TypeBiometricChallengeIssued}
	case contract.CmdBiometricLogin:
		return []string{events.TypeLoginSucceeded, events.TypeBiometricLoginFailed}
	case contract.CmdAccountRevokeBiometrics:
		return []string{events.TypeBiometricRevoked}
	}
	return nil
}
