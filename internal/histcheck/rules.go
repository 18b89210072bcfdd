package histcheck

import (
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// Rule is one predicate over an account's event sequence: Check judges an
// event given the state the events before it fold to (domain.Evolve) and
// what the checker tracks besides (track). It returns "" when the event
// keeps the rule.
type Rule struct {
	ID    string
	Doc   string // the rule of docs/rules.md it checks
	Check func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string
}

// track is what the rules need beyond the decision state.
type track struct {
	succeeded  map[string]bool // login_ids that opened a session
	usedResets map[string]bool // reset token hashes spent
	lastAt     time.Time
}

// CheckHistory checks one account's events, in stream order, against Rules.
func CheckHistory(p domain.Policy, hist []events.Envelope) []Violation {
	var out []Violation
	a := domain.Account{}
	t := &track{succeeded: map[string]bool{}, usedResets: map[string]bool{}}
	for _, e := range hist {
		if a.ID == "" {
			a.ID = e.AccountID
		}
		for _, r := range Rules {
			if msg := r.Check(p, a, t, e); msg != "" {
				out = append(out, Violation{Rule: r.ID, Account: e.AccountID, Event: e.ID, Request: e.CausationID,
					Detail: fmt.Sprintf("%s at %s: %s", e.Type, e.OccurredAt.Format(time.RFC3339), msg)})
			}
		}
		switch d := e.Data.(type) {
		case events.LoginSucceeded:
			if d.LoginID != "" {
				t.succeeded[d.LoginID] = true
			}
		case events.PasswordChanged:
			if d.Method == events.MethodReset && a.Reset != nil {
				t.usedResets[a.Reset.TokenHash] = true
			}
		}
		if e.OccurredAt.After(t.lastAt) {
			t.lastAt = e.OccurredAt
		}
		a = domain.Evolve(a, e.Data)
	}
	return out
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

// at is the time the fact itself carries.
func at(e events.Event) time.Time {
	switch d := e.(type) {
	case events.AccountRegistered:
		return d.At
	case events.AccountReactivated:
		return d.At
	case events.AccountDeactivated:
		return d.At
	case events.AffiliationSet:
		return d.At
	case events.AccountUnlocked:
		return d.At
	case events.PasswordFailed:
		return d.At
	case events.PasswordVerified:
		return d.At
	case events.LoginRefused:
		return d.At
	case events.OTPIssued:
		return d.IssuedAt
	case events.OTPQuotaExceeded:
		return d.At
	case events.OTPFailed:
		return d.At
	case events.LoginSucceeded:
		return d.At
	case events.SessionEnded:
		return d.At
	case events.PasswordChangeCodeIssued:
		return d.IssuedAt
	case events.ChangeCodeVerified:
		return d.At
	case events.PasswordChanged:
		return d.At
	case events.PasswordResetRequested:
		return d.RequestedAt
	case events.EmailChangeCodeIssued:
		return d.IssuedAt
	case events.EmailChanged:
		return d.At
	case events.ChangeRequestsExceeded:
		return d.At
	case events.ChangeCodeFailed:
		return d.At
	case events.BiometricOfferAnswered:
		return d.At
	case events.BiometricEnrolled:
		return d.At
	case events.BiometricChallengeIssued:
		return d.At
	case events.BiometricLoginFailed:
		return d.At
	case events.BiometricRevoked:
		return d.At
	}
	return time.Time{}
}

// loginStep: the events of a login attempt, which a block refuses.
func loginStep(e events.Event) bool {
	switch e.(type) {
	case events.PasswordFailed, events.PasswordVerified, events.LoginRefused, events.OTPIssued,
		events.OTPQuotaExceeded, events.OTPFailed, events.LoginSucceeded:
		return true
	}
	return false
}

func flowOf(a domain.Account, flow string) domain.ChangeFlow {
	if flow == events.FlowEmailChange {
		return a.EmailChange
	}
	return a.PasswordChange
}

func anySession(a domain.Account, now time.Time) bool {
	for _, s := range a.Sessions {
		if now.Before(s.ExpiresAt) {
			return true
		}
	}
	return false
}

func fmtT(t time.Time) string { return t.Format(time.RFC3339) }

// Rules are the predicates CheckHistory applies, each with the rule of
// docs/rules.md it checks. docs/history-check.md lists them.
var Rules = []Rule{
	{ID: "time.order", Doc: "the stream's order agrees with the clock; each fact carries its envelope's time",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			if e.OccurredAt.Before(t.lastAt) {
				return fmt.Sprintf("recorded after an event of %s", fmtT(t.lastAt))
			}
			if at := at(e.Data); !at.Equal(e.OccurredAt) {
				return fmt.Sprintf("the fact says %s, its envelope %s", fmtT(at), fmtT(e.OccurredAt))
			}
			return ""
		}},
	{ID: "account.lifecycle", Doc: "registered once; reactivated only when deactivated; deactivated only when active; nothing before registration (Cas 1 bis)",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			switch e.Data.(type) {
			case events.AccountRegistered:
				if a.Exists() {
					return "the account was already registered"
				}
			case events.AccountReactivated:
				if a.Status != domain.StatusDeactivated {
					return "reactivates an account that is " + a.Status
				}
			case events.AccountDeactivated:
				if a.Status != domain.StatusActive {
					return "deactivates an account that is " + a.Status
				}
			default:
				if !a.Exists() {
					return "before the account was registered"
				}
			}
			return ""
		}},
	{ID: "login.no-attempt-during-block", Doc: "during a block every login attempt is refused without counting and without an event",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			if loginStep(e.Data) && a.Blocked(e.OccurredAt) {
				return fmt.Sprintf("recorded while the account is blocked (%s) until %s", a.BlockReason, fmtT(a.BlockedUntil))
			}
			return ""
		}},
	{ID: "login.password-lockout", Doc: "3 wrong passwords in a row block 15 min; the 3rd carries blocked_until; a failure 30 days after the previous one counts from 1",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			d, ok := e.Data.(events.PasswordFailed)
			if !ok {
				return ""
			}
			want := a.PasswordFailures + 1
			if !a.PasswordFailedAt.IsZero() && !e.OccurredAt.Before(a.PasswordFailedAt.Add(p.PasswordFailureMemory)) {
				want = 1
			}
			return lockoutStep("failure", d.Failures, want, p.PasswordMaxFailures, d.BlockedUntil, e.OccurredAt, p.PasswordBlock)
		}},
	{ID: "login.otp-lockout", Doc: "3 wrong codes in a row block 15 min; the 3rd carries blocked_until; a new code does not reset the count",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			d, ok := e.Data.(events.OTPFailed)
			if !ok {
				return ""
			}
			return lockoutStep("code failure", d.Failures, a.OTPFailures+1, p.OTPMaxFailures, d.BlockedUntil, e.OccurredAt, p.OTPBlock)
		}},
	{ID: "login.otp-quota", Doc: "5 codes per rolling hour; the 6th request is refused and blocks 1 hour",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			n := countSince(a.OTPRequests, e.OccurredAt, p.OTPQuotaWindow)
			switch d := e.Data.(type) {
			case events.OTPIssued:
				if n >= p.OTPQuota {
					return fmt.Sprintf("code %d in the rolling hour (quota %d)", n+1, p.OTPQuota)
				}
				if d.RequestsLastHour != n+1 {
					return fmt.Sprintf("says %d requests in the hour, the history %d", d.RequestsLastHour, n+1)
				}
			case events.OTPQuotaExceeded:
				if n < p.OTPQuota {
					return fmt.Sprintf("quota refused with %d codes in the hour (quota %d)", n, p.OTPQuota)
				}
				if !d.BlockedUntil.Equal(e.OccurredAt.Add(p.OTPQuotaBlock)) {
					return fmt.Sprintf("blocks until %s, want %s", fmtT(d.BlockedUntil), fmtT(e.OccurredAt.Add(p.OTPQuotaBlock)))
				}
			}
			return ""
		}},
	{ID: "login.open-login", Doc: "codes are sent and checked only for a login whose password was right, for 1 hour, on an account that may log in",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			var id string
			switch d := e.Data.(type) {
			case events.OTPIssued:
				id = d.LoginID
			case events.OTPQuotaExceeded:
				id = d.LoginID
			case events.OTPFailed:
				id = d.LoginID
			case events.LoginSucceeded:
				if d.Method != events.MethodOTP {
					return ""
				}
				id = d.LoginID
			default:
				return ""
			}
			l, ok := a.Login(id)
			if !ok {
				return "for a login that is not open (never opened, closed or done)"
			}
			if !e.OccurredAt.Before(l.StartedAt.Add(p.LoginLifetime)) {
				return fmt.Sprintf("for a login opened at %s, past its %s", fmtT(l.StartedAt), p.LoginLifetime)
			}
			if a.Status != domain.StatusActive || !a.EmailValidated {
				return "on an account that may not log in"
			}
			return ""
		}},
	{ID: "login.code-valid", Doc: "only the latest code of this login, before its 15 min, opens a session or counts as wrong; the code's lifetime is the policy's",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			var id string
			switch d := e.Data.(type) {
			case events.OTPIssued:
				if !d.ExpiresAt.Equal(d.IssuedAt.Add(p.OTPLifetime)) {
					return fmt.Sprintf("code valid until %s, want %s", fmtT(d.ExpiresAt), fmtT(d.IssuedAt.Add(p.OTPLifetime)))
				}
				return ""
			case events.OTPFailed:
				id = d.LoginID
			case events.LoginSucceeded:
				if d.Method != events.MethodOTP {
					return ""
				}
				id = d.LoginID
			default:
				return ""
			}
			if a.OTP == nil || a.OTP.LoginID != id {
				return "no current code for this login"
			}
			if !e.OccurredAt.Before(a.OTP.ExpiresAt) {
				return fmt.Sprintf("the code expired at %s", fmtT(a.OTP.ExpiresAt))
			}
			return ""
		}},
	{ID: "login.single-use", Doc: "never two login.succeeded from one login_id (a code is single use)",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			if d, ok := e.Data.(events.LoginSucceeded); ok && d.LoginID != "" && t.succeeded[d.LoginID] {
				return "a second session from login " + d.LoginID
			}
			return ""
		}},
	{ID: "login.refusal-reason", Doc: "login.refused tells the account's state (deactivated, no email, affiliation), and only when it keeps the holder out (Cas 1, 1 bis, 8, 9)",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			want := ""
			switch {
			case a.Status == domain.StatusDeactivated:
				want = domain.CodeAccountDeactivated
			case !a.EmailValidated:
				want = domain.CodeNoValidatedEmail
			case a.Affiliation == domain.AffiliationNone:
				want = domain.CodeAffiliationMissing
			case a.Affiliation == domain.AffiliationPending:
				want = domain.CodeAffiliationPending
			}
			switch d := e.Data.(type) {
			case events.LoginRefused:
				if d.Reason != want {
					return fmt.Sprintf("refused for %q, the account's state says %q", d.Reason, want)
				}
			case events.PasswordVerified, events.OTPIssued, events.LoginSucceeded:
				if want != "" {
					return fmt.Sprintf("a login step on an account refused for %s", want)
				}
			}
			return ""
		}},
	{ID: "session.lifetime", Doc: "a session lasts 30 minutes",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			if d, ok := e.Data.(events.LoginSucceeded); ok && !d.SessionExpiresAt.Equal(d.At.Add(p.SessionLifetime)) {
				return fmt.Sprintf("session until %s, want %s", fmtT(d.SessionExpiresAt), fmtT(d.At.Add(p.SessionLifetime)))
			}
			return ""
		}},
	{ID: "session.in-use", Doc: "what needs a session (logout, change codes, password change, email confirmation, biometric offer and enrolment) uses one that is open: not expired, not logged out, not closed by a change",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			hash := ""
			switch d := e.Data.(type) {
			case events.SessionEnded:
				hash = d.SessionHash
			case events.ChangeCodeVerified:
				hash = d.SessionHash
			case events.PasswordChanged:
				if d.Method != events.MethodChange {
					return ""
				}
				hash = d.KeptSessionHash
			case events.EmailChanged:
				hash = d.KeptSessionHash
			case events.PasswordChangeCodeIssued, events.EmailChangeCodeIssued, events.BiometricOfferAnswered, events.BiometricEnrolled:
				if !anySession(a, e.OccurredAt) {
					return "no session open"
				}
				return ""
			default:
				return ""
			}
			if hash != "" && !a.SessionValid(hash, e.OccurredAt) {
				return "its session is not open (expired, ended or closed)"
			}
			if hash == "" && !anySession(a, e.OccurredAt) {
				return "no session open"
			}
			return ""
		}},
	{ID: "change.verified-code", Doc: "a password change only after the flow's code was verified, by the same session, within the code's 15 minutes",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			switch d := e.Data.(type) {
			case events.PasswordChanged:
				if d.Method != events.MethodChange {
					return ""
				}
				c := a.PasswordChange.Code
				if c == nil || !c.Verified {
					return "no verified code in this flow"
				}
				if c.VerifiedBy != "" && c.VerifiedBy != d.KeptSessionHash {
					return "the code was verified by another session"
				}
				if !e.OccurredAt.Before(c.ExpiresAt) {
					return fmt.Sprintf("the verified code expired at %s", fmtT(c.ExpiresAt))
				}
			case events.ChangeCodeVerified:
				c := a.PasswordChange.Code
				if c == nil || !e.OccurredAt.Before(c.ExpiresAt) {
					return "no current password-change code"
				}
			case events.EmailChanged:
				c := a.EmailChange.Code
				if c == nil || !e.OccurredAt.Before(c.ExpiresAt) {
					return "no current email-change code"
				}
			}
			return ""
		}},
	{ID: "change.email-cooldown", Doc: "no password change (nor its code, nor a reset link) within 48 h of a new address (Cas d'échecs 3)",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			switch d := e.Data.(type) {
			case events.PasswordChanged:
				if d.Method != events.MethodChange {
					return ""
				}
			case events.PasswordChangeCodeIssued, events.ChangeCodeVerified, events.PasswordResetRequested:
			default:
				return ""
			}
			if !a.EmailChangedAt.IsZero() && e.OccurredAt.Before(a.EmailChangedAt.Add(p.EmailChangeCooldown)) {
				return fmt.Sprintf("%s after the new address of %s", e.OccurredAt.Sub(a.EmailChangedAt), fmtT(a.EmailChangedAt))
			}
			return ""
		}},
	{ID: "change.code-quota", Doc: "3 change codes per flow per rolling hour; the 4th request blocks the flow 1 hour; no code while the flow is blocked",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			var flow string
			n := -1
			switch d := e.Data.(type) {
			case events.PasswordChangeCodeIssued:
				flow, n = events.FlowPasswordChange, d.RequestsLastHour
			case events.EmailChangeCodeIssued:
				flow, n = events.FlowEmailChange, d.RequestsLastHour
			case events.ChangeRequestsExceeded:
				flow = d.Flow
			default:
				return ""
			}
			f := flowOf(a, flow)
			if e.OccurredAt.Before(f.BlockedUntil) {
				return fmt.Sprintf("while the %s flow is blocked until %s", flow, fmtT(f.BlockedUntil))
			}
			recent := countSince(f.Requests, e.OccurredAt, p.ChangeCodeWindow)
			if d, ok := e.Data.(events.ChangeRequestsExceeded); ok {
				if recent < p.ChangeCodeMaxRequests {
					return fmt.Sprintf("refused with %d codes in the hour (quota %d)", recent, p.ChangeCodeMaxRequests)
				}
				if !d.BlockedUntil.Equal(e.OccurredAt.Add(p.ChangeRequestsBlock)) {
					return fmt.Sprintf("blocks until %s, want %s", fmtT(d.BlockedUntil), fmtT(e.OccurredAt.Add(p.ChangeRequestsBlock)))
				}
				return ""
			}
			if recent >= p.ChangeCodeMaxRequests {
				return fmt.Sprintf("code %d of the %s flow in the rolling hour (quota %d)", recent+1, flow, p.ChangeCodeMaxRequests)
			}
			if n != recent+1 {
				return fmt.Sprintf("says %d requests in the hour, the history %d", n, recent+1)
			}
			return ""
		}},
	{ID: "change.code-lockout", Doc: "3 wrong change codes block the flow 15 min, the 3rd carries blocked_until; no check while the flow is blocked or without a current code",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			var flow string
			var d events.ChangeCodeFailed
			switch x := e.Data.(type) {
			case events.ChangeCodeFailed:
				flow, d = x.Flow, x
			case events.ChangeCodeVerified:
				flow = events.FlowPasswordChange
			case events.EmailChanged:
				flow = events.FlowEmailChange
			default:
				return ""
			}
			f := flowOf(a, flow)
			if e.OccurredAt.Before(f.BlockedUntil) {
				return fmt.Sprintf("while the %s flow is blocked until %s", flow, fmtT(f.BlockedUntil))
			}
			if e.Type != events.TypeChangeCodeFailed {
				return ""
			}
			if f.Code == nil || !e.OccurredAt.Before(f.Code.ExpiresAt) {
				return "a wrong code counted without a current code"
			}
			return lockoutStep("failure", d.Failures, f.Failures+1, p.ChangeCodeMaxFailures, d.BlockedUntil, e.OccurredAt, p.ChangeFailuresBlock)
		}},
	{ID: "reset.link", Doc: "a reset uses the latest link, within its hour, once, on an active account; links are mailed at most 3 an hour, to an active account with a validated email",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			switch d := e.Data.(type) {
			case events.PasswordChanged:
				if d.Method != events.MethodReset {
					return ""
				}
				if a.Status != domain.StatusActive {
					return "reset of an account that is " + a.Status
				}
				if a.Reset == nil {
					return "no open reset link (never asked, used, or closed by a later change)"
				}
				if t.usedResets[a.Reset.TokenHash] {
					return "the link was already used"
				}
				if !e.OccurredAt.Before(a.Reset.ExpiresAt) {
					return fmt.Sprintf("the link expired at %s", fmtT(a.Reset.ExpiresAt))
				}
			case events.PasswordResetRequested:
				if a.Status != domain.StatusActive || !a.EmailValidated {
					return "a link mailed to an account that cannot receive one"
				}
				if n := countSince(a.ResetRequests, e.OccurredAt, p.ChangeCodeWindow); n >= p.ResetMaxPerWindow {
					return fmt.Sprintf("link %d in the rolling hour (at most %d)", n+1, p.ResetMaxPerWindow)
				}
				if !d.ExpiresAt.Equal(d.RequestedAt.Add(p.ResetLinkLifetime)) {
					return fmt.Sprintf("link valid until %s, want %s", fmtT(d.ExpiresAt), fmtT(d.RequestedAt.Add(p.ResetLinkLifetime)))
				}
			}
			return ""
		}},
	{ID: "unlock.something", Doc: "an adviser's unlock records a fact only when there is a block, a failure count or a code quota to clear",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			if _, ok := e.Data.(events.AccountUnlocked); ok && !a.Blocked(e.OccurredAt) && a.PasswordFailures == 0 && a.OTPFailures == 0 && len(a.OTPRequests) == 0 {
				return "nothing to unlock"
			}
			return ""
		}},
	{ID: "biometric.login", Doc: "a biometric login uses the latest challenge of an enrolled, unexpired, unrevoked device within its 2 minutes; challenges at most 20 per device per hour",
		Check: func(p domain.Policy, a domain.Account, t *track, e events.Envelope) string {
			switch d := e.Data.(type) {
			case events.LoginSucceeded:
				if d.Method != events.MethodBiometric {
					return ""
				}
				b, ok := a.Biometric(d.BiometricDevice)
				if !ok {
					return "device " + d.BiometricDevice + " not enrolled (or revoked)"
				}
				if !e.OccurredAt.Before(b.ExpiresAt) {
					return "enrolment expired"
				}
				if b.Challenge == "" || !e.OccurredAt.Before(b.ChallengeExpiresAt) {
					return "no live challenge"
				}
			case events.BiometricChallengeIssued:
				b, ok := a.Biometric(d.DeviceID)
				if !ok {
					return "challenge for a device not enrolled"
				}
				if !e.OccurredAt.Before(b.ExpiresAt) {
					return "challenge for an expired enrolment"
				}
				if n := countSince(b.Challenges, e.OccurredAt, time.Hour); n >= p.BiometricChallengesPerHour {
					return fmt.Sprintf("challenge %d in the hour", n+1)
				}
				if !d.ExpiresAt.Equal(d.At.Add(p.BiometricChallengeLifetime)) {
					return "challenge lifetime is not the policy's"
				}
			}
			return ""
		}},
}

// lockoutStep checks one recorded failure of a "max in a row, then a block"
// rule (wrong passwords, wrong codes, wrong confirmation codes): it is the
// want-th in a row, and it carries blocked_until = at + block exactly when
// it reaches max. "" when it holds.
func lockoutStep(what string, got, want, max int, blockedUntil, at time.Time, block time.Duration) string {
	if got != want {
		return fmt.Sprintf("%s %d in a row, want %d", what, got, want)
	}
	if got >= max {
		if !blockedUntil.Equal(at.Add(block)) {
			return fmt.Sprintf("%s %d blocks until %s, want %s", what, got, fmtT(blockedUntil), fmtT(at.Add(block)))
		}
	} else if !blockedUntil.IsZero() {
		return fmt.Sprintf("%s %d blocks (until %s)", what, got, fmtT(blockedUntil))
	}
	return ""
}
