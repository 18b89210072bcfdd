package domain

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// The changes of credentials (rows of the matrix in docs/rules.md, "What a
// change of credentials closes") and what may be outstanding when one happens (its
// columns). Issue 11: a reset link asked before a password change still
// reset the password after it.
const (
	chPasswordChange = "password change"
	chPasswordReset  = "password reset"
	chEmailChange    = "email change confirmed"
	chDeactivation   = "deactivation"
	chReactivation   = "reactivation"
	chUnlock         = "adviser unlock"
	chBiometricRevoc = "biometric revocation"

	outResetLink      = "reset link"
	outLogins         = "pending logins and their code"
	outPasswordCode   = "password-change code"
	outEmailCode      = "email-change code"
	outOtherSessions  = "other sessions"
	outTrustedDevices = "trusted devices"
	outBiometrics     = "biometric enrolments and challenges"

	closed = "closed"
	kept   = "kept"
)

var (
	changes     = []string{chPasswordChange, chPasswordReset, chEmailChange, chDeactivation, chReactivation, chUnlock, chBiometricRevoc}
	outstanding = []string{outResetLink, outLogins, outPasswordCode, outEmailCode, outOtherSessions, outTrustedDevices, outBiometrics}
)

// matrix is the decision, cell by cell. Sources: OWASP ASVS 5 V7.4.3 (other
// sessions end after any change of an authentication factor, a reset
// included), the OWASP Forgot Password cheat sheet (a reset token dies when
// the password changes), and our choice for the rest (docs/rules.md footnotes).
var matrix = map[string]map[string]string{
	chPasswordChange: {outResetLink: closed, outLogins: closed, outPasswordCode: closed, outEmailCode: closed,
		outOtherSessions: closed, outTrustedDevices: closed, outBiometrics: closed},
	chPasswordReset: {outResetLink: closed, outLogins: closed, outPasswordCode: closed, outEmailCode: closed,
		outOtherSessions: closed, outTrustedDevices: closed, outBiometrics: closed},
	chEmailChange: {outResetLink: closed, outLogins: closed, outPasswordCode: closed, outEmailCode: closed,
		outOtherSessions: closed, outTrustedDevices: closed, outBiometrics: kept},
	chDeactivation: {outResetLink: closed, outLogins: closed, outPasswordCode: closed, outEmailCode: closed,
		outOtherSessions: closed, outTrustedDevices: closed, outBiometrics: closed},
	chReactivation: {outResetLink: closed, outLogins: closed, outPasswordCode: closed, outEmailCode: closed,
		outOtherSessions: closed, outTrustedDevices: closed, outBiometrics: closed},
	chUnlock: {outResetLink: kept, outLogins: closed, outPasswordCode: kept, outEmailCode: kept,
		outOtherSessions: kept, outTrustedDevices: kept, outBiometrics: kept},
	chBiometricRevoc: {outResetLink: kept, outLogins: kept, outPasswordCode: kept, outEmailCode: kept,
		outOtherSessions: closed, outTrustedDevices: kept, outBiometrics: closed},
}

// A cell of the matrix is shown by a row (decide_test.go) that names it:
// given a history with everything outstanding and then the change, a Decide
// call shows what became of one outstanding thing. check, when set, looks
// at the state where no command can reach the thing any more (a deactivated
// account has no session to use a code with).

// The timeline: everything is opened in the first minute, the change comes
// at 2:00 and the thing is tried at 2:30, while each would still be valid.
var (
	changeAt = at(2 * minute)
	after    = at(2*minute + 30*sec)
)

// everythingOutstanding: the current session (sess#, on the app, the one
// that makes the changes), another session (other#) whose login trusted
// its browser (dev#), two enrolled phones each with a session they opened
// (bio#, bio2#), a reset link (tok#), a login waiting for its code (L1, c1),
// a password-change code (k1), an email-change code (e1), and a fresh
// challenge for phone-1 (ch1).
func everythingOutstanding() []events.Event {
	other := withDevice(succeeded("L2", t0), "dev#", t0.AddDate(0, 6, 0))
	other.SessionHash = "other#"
	phone2 := events.BiometricEnrolled{DeviceID: "phone-2", PublicKey: "pk2", ExpiresAt: t0.AddDate(0, 6, 0), At: t0}
	bio2 := bioSucceeded(at(10 * sec))
	bio2.BiometricDevice, bio2.SessionHash = "phone-2", "bio2#"
	return []events.Event{
		registered,
		appLogin("L0", t0),
		other,
		enrolled, phone2,
		bioSucceeded(at(10 * sec)), bio2,
		events.PasswordResetRequested{TokenHash: "tok#", TokenSealed: "sealed-tok", ToSealed: "sealed-mail", RequestedAt: t0, ExpiresAt: at(time.Hour)},
		verified("L1", at(20*sec)), issued("L1", "c1", at(20*sec), 1),
		changeCode("k1", at(30*sec), 1),
		events.EmailChangeCodeIssued{NewEmailSealed: "sealed-new", NewMaskedEmail: "n***@m***.fr", CodeHash: "e1", CodeSealed: "sealed-e1",
			RequestsLastHour: 1, IssuedAt: at(30 * sec), ExpiresAt: at(15*minute + 30*sec)},
		challenge("ch1", at(minute)),
	}
}

// withChange is everything outstanding, then the change.
func withChange(more ...events.Event) []events.Event { return append(everythingOutstanding(), more...) }

// The changes, as recorded.
var (
	passwordChanged = events.PasswordChanged{Method: events.MethodChange, PasswordHash: "$argon2id$new", KeptSessionHash: "sess#",
		ToSealed: "sealed-mail", At: changeAt}
	passwordReset  = events.PasswordChanged{Method: events.MethodReset, PasswordHash: "$argon2id$new", ToSealed: "sealed-mail", At: changeAt}
	emailConfirmed = events.EmailChanged{EmailSealed: "sealed-new", MaskedEmail: "n***@m***.fr", OldToSealed: "sealed-mail",
		KeptSessionHash: "sess#", At: changeAt}
	closedByAdviser = events.AccountDeactivated{Reason: "adviser", At: changeAt}
	reopened        = events.AccountReactivated{EmailSealed: "sealed-mail", MaskedEmail: "v***@y***.fr", EmailValidated: true,
		PasswordHash: "$argon2id$new", Affiliation: AffiliationActive, At: changeAt}
	// The unlocked block is a code quota: it leaves the login and its code
	// in place, so the unlock's own effect shows.
	quotaBlock = events.OTPQuotaExceeded{LoginID: "L1", BlockedUntil: at(time.Hour), At: at(90 * sec)}
	unlocked   = events.AccountUnlocked{PreviousReason: ReasonOTPQuota, At: changeAt}
	revokedOne = events.BiometricRevoked{DeviceID: "phone-1", Reason: "adviser", At: changeAt}
	revokedAll = events.BiometricRevoked{Reason: "adviser", At: changeAt}
)

// newSession is a login made after the change, to reach what needs one.
func newSession(t time.Time) events.LoginSucceeded {
	return events.LoginSucceeded{LoginID: "L7", Method: events.MethodOTP, Channel: "web", SessionHash: "new#",
		SessionExpiresAt: t.Add(30 * minute), At: t}
}

// The Decide calls that use each outstanding thing, and their outcomes.
var (
	useResetLink    = CompletePasswordReset{TokenHash: "tok#", PasswordHash: "$argon2id$newer"}
	useLogin        = VerifyOTP{LoginID: "L1", CodeHash: "c1", SessionHash: "s1#", Channel: "web"}
	usePasswordCode = func(session string) VerifyChangeCode { return VerifyChangeCode{SessionHash: session, CodeHash: "k1"} }
	useEmailCode    = func(session string) ConfirmEmailChange {
		return ConfirmEmailChange{SessionHash: session, CodeHash: "e1"}
	}
	useSession = func(session string) RequestEmailChange {
		return RequestEmailChange{SessionHash: session, NewEmailSealed: "sealed-x", NewMaskedEmail: "x***@z***.fr", CodeHash: "e2", CodeSealed: "sealed-e2"}
	}
	useTrustedDevice = SubmitPassword{PasswordOK: true, DeviceHash: "dev#", LoginID: "L5", SessionHash: "s5#", Channel: "web"}
	useBiometric     = bioLogin("ch1", true)

	resetDone = func(t time.Time) []events.Event {
		return []events.Event{events.PasswordChanged{Method: events.MethodReset, PasswordHash: "$argon2id$newer", ToSealed: "sealed-mail", At: t}}
	}
	loginDone = []events.Event{events.LoginSucceeded{LoginID: "L1", Method: events.MethodOTP, Channel: "web", SessionHash: "s1#",
		SessionExpiresAt: after.Add(30 * minute), At: after}}
	passwordCodeDone = []events.Event{events.ChangeCodeVerified{SessionHash: "sess#", At: after}}
	emailCodeDone    = []events.Event{events.EmailChanged{EmailSealed: "sealed-new", MaskedEmail: "n***@m***.fr", OldToSealed: "sealed-mail",
		KeptSessionHash: "sess#", At: after}}
	sessionWorks = []events.Event{events.EmailChangeCodeIssued{NewEmailSealed: "sealed-x", NewMaskedEmail: "x***@z***.fr", CodeHash: "e2",
		CodeSealed: "sealed-e2", RequestsLastHour: 2, IssuedAt: after, ExpiresAt: after.Add(15 * minute)}}
	deviceSkipsCode = []events.Event{events.LoginSucceeded{Method: events.MethodTrustedDevice, Channel: "web", SessionHash: "s5#",
		SessionExpiresAt: after.Add(30 * minute), At: after}}
	deviceAsksCode = []events.Event{events.PasswordVerified{LoginID: "L5", At: after}}
	biometricWorks = []events.Event{bioSucceeded(after)}

	tokenInvalid     = &Error{Code: CodeResetTokenInvalid}
	loginExpired     = &Error{Code: CodeLoginExpired}
	passwordCodeGone = &Error{Code: CodeCodeExpired, Reason: events.FlowPasswordChange, Minutes: 15}
	emailCodeGone    = &Error{Code: CodeCodeExpired, Reason: events.FlowEmailChange, Minutes: 15}
	sessionInvalid   = &Error{Code: CodeSessionInvalid}
	deviceRevoked    = &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}
)

func noCooldown() Policy {
	p := SeedPolicy()
	p.EmailChangeCooldown = 0
	return p
}

func credentialChangeRows() []row {
	return []row{
		// A password change, through a session and a mailed code (seed,
		// "Changement de mot de passe").
		{name: "after_a_password_change_the_reset_link_asked_before_is_invalid",
			change: chPasswordChange, out: outResetLink, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useResetLink, at: after, err: tokenInvalid},
		{name: "after_a_password_change_a_login_waiting_for_its_code_has_ended",
			change: chPasswordChange, out: outLogins, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useLogin, at: after, err: loginExpired},
		{name: "after_a_password_change_its_own_code_cannot_set_another_password",
			change: chPasswordChange, out: outPasswordCode, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged),
			when:  CompletePasswordChange{SessionHash: "sess#", PasswordHash: "$argon2id$newer"}, at: after, err: &Error{Code: CodeCodeInvalid}},
		{name: "after_a_password_change_its_own_code_cannot_be_checked_again",
			change: chPasswordChange, out: outPasswordCode, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: usePasswordCode("sess#"), at: after, err: passwordCodeGone},
		{name: "after_a_password_change_a_pending_email_change_code_is_dead",
			change: chPasswordChange, out: outEmailCode, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useEmailCode("sess#"), at: after, err: emailCodeGone},
		{name: "after_a_password_change_another_session_is_refused",
			change: chPasswordChange, out: outOtherSessions, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useSession("other#"), at: after, err: sessionInvalid},
		{name: "after_a_password_change_a_session_opened_by_biometrics_is_refused",
			change: chPasswordChange, out: outOtherSessions, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useSession("bio#"), at: after, err: sessionInvalid},
		{name: "after_a_password_change_the_session_that_made_it_goes_on",
			change: chPasswordChange, out: outOtherSessions, effect: kept,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useSession("sess#"), at: after, then: sessionWorks},
		{name: "after_a_password_change_a_trusted_browser_asks_the_code_again",
			change: chPasswordChange, out: outTrustedDevices, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useTrustedDevice, at: after, then: deviceAsksCode},
		{name: "after_a_password_change_an_enrolled_phone_cannot_log_in_with_biometrics",
			change: chPasswordChange, out: outBiometrics, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged), when: useBiometric, at: after, err: deviceRevoked},
		{name: "after_a_password_change_an_enrolled_phone_gets_no_challenge",
			change: chPasswordChange, out: outBiometrics, effect: closed,
			given: withChange(events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged),
			when:  IssueBiometricChallenge{DeviceID: "phone-2", ChallengeHash: "ch2"}, at: after, err: deviceRevoked},
		{name: "after_a_password_change_the_holders_never_to_biometrics_stands",
			change: chPasswordChange, out: outBiometrics, effect: kept,
			given: withChange(events.BiometricOfferAnswered{Response: events.OfferNever, At: at(minute)}, events.ChangeCodeVerified{At: at(90 * sec)}, passwordChanged),
			check: func(t *testing.T, a Account) {
				if !a.BiometricNever || a.OfferBiometric(SeedPolicy(), "phone-3", after) {
					t.Fatal("the answer never must survive a password change")
				}
			}},

		// A password reset through the mailed link (FAQ).
		{name: "after_a_reset_its_link_is_spent",
			change: chPasswordReset, out: outResetLink, effect: closed,
			given: withChange(passwordReset), when: useResetLink, at: after, err: tokenInvalid},
		{name: "after_a_reset_a_login_waiting_for_its_code_has_ended",
			change: chPasswordReset, out: outLogins, effect: closed,
			given: withChange(passwordReset), when: useLogin, at: after, err: loginExpired},
		{name: "after_a_reset_a_pending_password_change_code_is_dead_even_from_a_new_session",
			change: chPasswordReset, out: outPasswordCode, effect: closed,
			given: withChange(passwordReset, newSession(at(2*minute+10*sec))), when: usePasswordCode("new#"), at: after, err: passwordCodeGone},
		{name: "after_a_reset_a_pending_email_change_code_is_dead_even_from_a_new_session",
			change: chPasswordReset, out: outEmailCode, effect: closed,
			given: withChange(passwordReset, newSession(at(2*minute+10*sec))), when: useEmailCode("new#"), at: after, err: emailCodeGone},
		{name: "after_a_reset_every_session_is_refused",
			change: chPasswordReset, out: outOtherSessions, effect: closed,
			given: withChange(passwordReset), when: useSession("sess#"), at: after, err: sessionInvalid},
		{name: "after_a_reset_a_trusted_browser_asks_the_code_again",
			change: chPasswordReset, out: outTrustedDevices, effect: closed,
			given: withChange(passwordReset), when: useTrustedDevice, at: after, then: deviceAsksCode},
		{name: "after_a_reset_an_enrolled_phone_cannot_log_in_with_biometrics",
			change: chPasswordReset, out: outBiometrics, effect: closed,
			given: withChange(passwordReset), when: useBiometric, at: after, err: deviceRevoked},

		// A new address, confirmed with the code it received.
		{name: "after_an_email_change_the_reset_link_sent_to_the_old_address_is_invalid",
			change: chEmailChange, out: outResetLink, effect: closed,
			given: withChange(emailConfirmed), when: useResetLink, at: after, err: tokenInvalid},
		{name: "after_an_email_change_a_login_whose_code_went_to_the_old_address_has_ended",
			change: chEmailChange, out: outLogins, effect: closed,
			given: withChange(emailConfirmed), when: useLogin, at: after, err: loginExpired},
		{name: "after_an_email_change_a_password_change_code_mailed_to_the_old_address_is_dead",
			change: chEmailChange, out: outPasswordCode, effect: closed, policy: noCooldown(), // the seed's 48 hours would hide it
			given: withChange(emailConfirmed), when: usePasswordCode("sess#"), at: after, err: passwordCodeGone},
		{name: "after_an_email_change_its_own_code_is_spent",
			change: chEmailChange, out: outEmailCode, effect: closed,
			given: withChange(emailConfirmed), when: useEmailCode("sess#"), at: after, err: emailCodeGone},
		{name: "after_an_email_change_another_session_is_refused",
			change: chEmailChange, out: outOtherSessions, effect: closed,
			given: withChange(emailConfirmed), when: useSession("other#"), at: after, err: sessionInvalid},
		{name: "after_an_email_change_the_session_that_confirmed_it_goes_on",
			change: chEmailChange, out: outOtherSessions, effect: kept,
			given: withChange(emailConfirmed), when: useSession("sess#"), at: after, then: sessionWorks},
		{name: "an_email_change_recorded_before_kept_sessions_existed_ends_every_session",
			change: chEmailChange, out: outOtherSessions, effect: closed,
			given: withChange(events.EmailChanged{EmailSealed: "sealed-new", MaskedEmail: "n***@m***.fr", OldToSealed: "sealed-mail", At: changeAt}),
			when:  useSession("sess#"), at: after, err: sessionInvalid},
		{name: "after_an_email_change_a_trusted_browser_asks_the_code_again",
			change: chEmailChange, out: outTrustedDevices, effect: closed,
			given: withChange(emailConfirmed), when: useTrustedDevice, at: after, then: deviceAsksCode},
		{name: "after_an_email_change_an_enrolled_phone_still_logs_in_with_biometrics",
			change: chEmailChange, out: outBiometrics, effect: kept,
			given: withChange(emailConfirmed), when: useBiometric, at: after, then: biometricWorks},

		// Deactivation (by the holder or an adviser). Nothing can reach a
		// code without a session, so check shows those in the state.
		{name: "after_a_deactivation_the_reset_link_is_invalid",
			change: chDeactivation, out: outResetLink, effect: closed,
			given: withChange(closedByAdviser), when: useResetLink, at: after, err: tokenInvalid,
			check: func(t *testing.T, a Account) {
				if a.Reset != nil {
					t.Fatal("the link must be closed, not only refused while deactivated")
				}
			}},
		{name: "after_a_deactivation_a_login_waiting_for_its_code_has_ended",
			change: chDeactivation, out: outLogins, effect: closed,
			given: withChange(closedByAdviser), when: useLogin, at: after, err: loginExpired},
		{name: "after_a_deactivation_the_password_change_code_is_gone",
			change: chDeactivation, out: outPasswordCode, effect: closed,
			given: withChange(closedByAdviser), when: usePasswordCode("sess#"), at: after, err: sessionInvalid,
			check: func(t *testing.T, a Account) {
				if a.PasswordChange.Code != nil {
					t.Fatal("the password-change code must be closed")
				}
			}},
		{name: "after_a_deactivation_the_email_change_code_is_gone",
			change: chDeactivation, out: outEmailCode, effect: closed,
			given: withChange(closedByAdviser), when: useEmailCode("sess#"), at: after, err: sessionInvalid,
			check: func(t *testing.T, a Account) {
				if a.EmailChange.Code != nil {
					t.Fatal("the email-change code must be closed")
				}
			}},
		{name: "after_a_deactivation_every_session_is_refused",
			change: chDeactivation, out: outOtherSessions, effect: closed,
			given: withChange(closedByAdviser), when: useSession("other#"), at: after, err: sessionInvalid},
		{name: "after_a_deactivation_the_trusted_browser_is_forgotten",
			change: chDeactivation, out: outTrustedDevices, effect: closed,
			given: withChange(closedByAdviser), when: useTrustedDevice, at: after,
			then: []events.Event{events.LoginRefused{Reason: CodeAccountDeactivated, At: after}},
			err:  &Error{Code: CodeAccountDeactivated, DeactivatedAt: changeAt},
			check: func(t *testing.T, a Account) {
				if len(a.TrustedDevices) != 0 {
					t.Fatal("trusted devices must be closed")
				}
			}},
		{name: "after_a_deactivation_an_enrolled_phone_is_unknown",
			change: chDeactivation, out: outBiometrics, effect: closed,
			given: withChange(closedByAdviser), when: useBiometric, at: after, err: deviceRevoked},

		// Reactivation, registering the same NIR again (Cas 1 bis): the
		// account starts afresh.
		{name: "after_a_reactivation_the_old_reset_link_is_invalid",
			change: chReactivation, out: outResetLink, effect: closed,
			given: withChange(closedByAdviser, reopened), when: useResetLink, at: after, err: tokenInvalid},
		{name: "after_a_reactivation_an_old_login_has_ended",
			change: chReactivation, out: outLogins, effect: closed,
			given: withChange(closedByAdviser, reopened), when: useLogin, at: after, err: loginExpired},
		{name: "after_a_reactivation_an_old_password_change_code_is_dead",
			change: chReactivation, out: outPasswordCode, effect: closed,
			given: withChange(closedByAdviser, reopened, newSession(at(2*minute+10*sec))), when: usePasswordCode("new#"), at: after, err: passwordCodeGone},
		{name: "after_a_reactivation_an_old_email_change_code_is_dead",
			change: chReactivation, out: outEmailCode, effect: closed,
			given: withChange(closedByAdviser, reopened, newSession(at(2*minute+10*sec))), when: useEmailCode("new#"), at: after, err: emailCodeGone},
		{name: "after_a_reactivation_an_old_session_is_refused",
			change: chReactivation, out: outOtherSessions, effect: closed,
			given: withChange(closedByAdviser, reopened), when: useSession("sess#"), at: after, err: sessionInvalid},
		{name: "after_a_reactivation_an_old_trusted_browser_asks_the_code",
			change: chReactivation, out: outTrustedDevices, effect: closed,
			given: withChange(closedByAdviser, reopened), when: useTrustedDevice, at: after, then: deviceAsksCode},
		{name: "after_a_reactivation_an_old_enrolment_is_unknown",
			change: chReactivation, out: outBiometrics, effect: closed,
			given: withChange(closedByAdviser, reopened), when: useBiometric, at: after, err: deviceRevoked},

		// An adviser's unlock: not a change of credentials.
		{name: "after_an_unlock_the_reset_link_still_works",
			change: chUnlock, out: outResetLink, effect: kept,
			given: withChange(quotaBlock, unlocked), when: useResetLink, at: after, then: resetDone(after)},
		{name: "after_an_unlock_the_blocked_login_is_over_and_a_fresh_one_starts",
			change: chUnlock, out: outLogins, effect: closed,
			given: withChange(quotaBlock, unlocked), when: useLogin, at: after, err: loginExpired},
		{name: "after_an_unlock_the_blocked_login_cannot_ask_a_new_code",
			change: chUnlock, out: outLogins, effect: closed,
			given: withChange(quotaBlock, unlocked), when: send("L1", "c2"), at: after, err: loginExpired},
		{name: "after_an_unlock_the_password_change_code_still_works",
			change: chUnlock, out: outPasswordCode, effect: kept,
			given: withChange(quotaBlock, unlocked), when: usePasswordCode("sess#"), at: after, then: passwordCodeDone},
		{name: "after_an_unlock_the_email_change_code_still_works",
			change: chUnlock, out: outEmailCode, effect: kept,
			given: withChange(quotaBlock, unlocked), when: useEmailCode("sess#"), at: after, then: emailCodeDone},
		{name: "after_an_unlock_other_sessions_go_on",
			change: chUnlock, out: outOtherSessions, effect: kept,
			given: withChange(quotaBlock, unlocked), when: useSession("other#"), at: after, then: sessionWorks},
		{name: "after_an_unlock_a_trusted_browser_still_skips_the_code",
			change: chUnlock, out: outTrustedDevices, effect: kept,
			given: withChange(quotaBlock, unlocked), when: useTrustedDevice, at: after, then: deviceSkipsCode},
		{name: "after_an_unlock_an_enrolled_phone_still_logs_in_with_biometrics",
			change: chUnlock, out: outBiometrics, effect: kept,
			given: withChange(quotaBlock, unlocked), when: useBiometric, at: after, then: biometricWorks},

		// Revoking biometric enrolments (account.revoke_biometrics).
		{name: "after_revoking_every_phone_the_reset_link_still_works",
			change: chBiometricRevoc, out: outResetLink, effect: kept,
			given: withChange(revokedAll), when: useResetLink, at: after, then: resetDone(after)},
		{name: "after_revoking_every_phone_a_login_waiting_for_its_code_goes_on",
			change: chBiometricRevoc, out: outLogins, effect: kept,
			given: withChange(revokedAll), when: useLogin, at: after, then: loginDone},
		{name: "after_revoking_every_phone_the_password_change_code_still_works",
			change: chBiometricRevoc, out: outPasswordCode, effect: kept,
			given: withChange(revokedAll), when: usePasswordCode("sess#"), at: after, then: passwordCodeDone},
		{name: "after_revoking_every_phone_the_email_change_code_still_works",
			change: chBiometricRevoc, out: outEmailCode, effect: kept,
			given: withChange(revokedAll), when: useEmailCode("sess#"), at: after, then: emailCodeDone},
		{name: "after_revoking_a_phone_the_session_it_opened_is_refused",
			change: chBiometricRevoc, out: outOtherSessions, effect: closed,
			given: withChange(revokedOne), when: useSession("bio#"), at: after, err: sessionInvalid},
		{name: "after_revoking_a_phone_the_session_another_phone_opened_goes_on",
			change: chBiometricRevoc, out: outOtherSessions, effect: kept,
			given: withChange(revokedOne), when: useSession("bio2#"), at: after, then: sessionWorks},
		{name: "after_revoking_every_phone_every_session_they_opened_is_refused",
			change: chBiometricRevoc, out: outOtherSessions, effect: closed,
			given: withChange(revokedAll), when: useSession("bio2#"), at: after, err: sessionInvalid},
		{name: "after_revoking_every_phone_sessions_opened_with_a_code_go_on",
			change: chBiometricRevoc, out: outOtherSessions, effect: kept,
			given: withChange(revokedAll), when: useSession("other#"), at: after, then: sessionWorks},
		{name: "after_revoking_every_phone_a_trusted_browser_still_skips_the_code",
			change: chBiometricRevoc, out: outTrustedDevices, effect: kept,
			given: withChange(revokedAll), when: useTrustedDevice, at: after, then: deviceSkipsCode},
		{name: "after_revoking_a_phone_its_challenge_is_dead",
			change: chBiometricRevoc, out: outBiometrics, effect: closed,
			given: withChange(revokedOne), when: useBiometric, at: after, err: deviceRevoked},
		{name: "after_revoking_a_phone_another_phone_still_gets_a_challenge",
			change: chBiometricRevoc, out: outBiometrics, effect: kept,
			given: withChange(revokedOne), when: IssueBiometricChallenge{DeviceID: "phone-2", ChallengeHash: "ch2"}, at: after,
			then: []events.Event{events.BiometricChallengeIssued{DeviceID: "phone-2", ChallengeHash: "ch2", ExpiresAt: after.Add(2 * minute), At: after}}},
	}
}

// Before the change, every outstanding thing works: the cells above show
// what the change did, not what was never there.
func TestEverythingOutstandingWorksBeforeAnyChange(t *testing.T) {
	runRows(t, []row{
		{name: "the_reset_link_works", given: everythingOutstanding(), when: useResetLink, at: after, then: resetDone(after)},
		{name: "the_login_waiting_for_its_code_works", given: everythingOutstanding(), when: useLogin, at: after, then: loginDone},
		{name: "the_password_change_code_works", given: everythingOutstanding(), when: usePasswordCode("sess#"), at: after, then: passwordCodeDone},
		{name: "the_email_change_code_works", given: everythingOutstanding(), when: useEmailCode("sess#"), at: after, then: emailCodeDone},
		{name: "another_session_works", given: everythingOutstanding(), when: useSession("other#"), at: after, then: sessionWorks},
		{name: "a_session_opened_by_biometrics_works", given: everythingOutstanding(), when: useSession("bio#"), at: after, then: sessionWorks},
		{name: "the_trusted_browser_skips_the_code", given: everythingOutstanding(), when: useTrustedDevice, at: after, then: deviceSkipsCode},
		{name: "the_enrolled_phone_logs_in_with_biometrics", given: everythingOutstanding(), when: useBiometric, at: after, then: biometricWorks},
	})
}

func TestWhatAChangeOfCredentialsCloses(t *testing.T) {
	runRows(t, credentialChangeRows())
}

// Every cell of the matrix has a test showing its decision.
func TestEveryCellOfTheMatrixIsShown(t *testing.T) {
	shown := map[[2]string]bool{}
	for _, r := range credentialChangeRows() {
		want, ok := matrix[r.change][r.out]
		if !ok {
			t.Errorf("%s: no cell %q × %q in the matrix", r.name, r.change, r.out)
		}
		if r.effect != closed && r.effect != kept {
			t.Errorf("%s: effect %q", r.name, r.effect)
		}
		// A row whose effect differs from its cell shows the cell's
		// exception (the session that made the change goes on, another
		// phone keeps its enrolment, the "never" answer stands): it does
		// not count as showing the cell, which another row must.
		if r.effect == want {
			shown[[2]string{r.change, r.out}] = true
		}
	}
	for _, c := range changes {
		for _, o := range outstanding {
			if !shown[[2]string{c, o}] {
				t.Errorf("no test shows that a %s leaves the %s %s", c, o, matrix[c][o])
			}
		}
	}
}

// Evolve applies the closures to a copy: the state it was given (shared by
// the cache and by concurrent deciders) is left as it was.
func TestClosuresLeaveTheGivenStateUntouched(t *testing.T) {
	base := Account{ID: "acc"}
	for _, e := range everythingOutstanding() {
		base = Evolve(base, e)
	}
	before, _ := json.Marshal(base)
	for _, e := range []events.Event{passwordChanged, passwordReset, emailConfirmed, closedByAdviser, reopened, unlocked, revokedOne, revokedAll} {
		_ = Evolve(base, e)
		if now, _ := json.Marshal(base); string(now) != string(before) {
			t.Fatalf("%s changed the state it was given", e.EventType())
		}
	}
}
