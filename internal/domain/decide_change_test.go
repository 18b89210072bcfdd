package domain

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

func changeCode(code string, t time.Time, n int) events.PasswordChangeCodeIssued {
	return events.PasswordChangeCodeIssued{CodeHash: code, CodeSealed: "sealed-" + code, ToSealed: "sealed-mail",
		RequestsLastHour: n, IssuedAt: t, ExpiresAt: t.Add(15 * minute)}
}

func start(code string) StartPasswordChange {
	return StartPasswordChange{SessionHash: "sess#", PasswordOK: true, CodeHash: code, CodeSealed: "sealed-" + code}
}

func TestDecidePasswordChangeResetAndEmailChange(t *testing.T) {
	loggedIn := []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), succeeded("L1", t0)}
	// a session that lasts the whole test: the blocks below run for an hour
	longSession := func(e events.LoginSucceeded) events.LoginSucceeded {
		e.SessionExpiresAt = e.At.Add(10 * time.Hour)
		return e
	}
	in := func(more ...events.Event) []events.Event {
		base := []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), longSession(succeeded("L1", t0))}
		return append(base, more...)
	}
	threeCodes := []events.Event{changeCode("k1", t0, 1), changeCode("k2", at(minute), 2), changeCode("k3", at(2*minute), 3)}
	emailChanged := events.EmailChanged{EmailSealed: "sealed-new", MaskedEmail: "n***@m***.fr", OldToSealed: "sealed-mail", At: t0}
	reset := events.PasswordResetRequested{TokenHash: "tok#", TokenSealed: "sealed-tok", ToSealed: "sealed-mail", RequestedAt: t0, ExpiresAt: at(time.Hour)}

	rows := []row{
		// Password change (seed: "Changement de mot de passe", Étape 1).
		{name: "a_password_change_needs_a_session",
			given: []events.Event{registered}, when: start("k1"), at: t0, err: &Error{Code: CodeSessionInvalid}},
		{name: "starting_a_change_mails_a_code_valid_15_minutes",
			given: loggedIn, when: start("k1"), at: at(minute), then: []events.Event{changeCode("k1", at(minute), 1)}},
		{name: "the_3rd_code_request_in_the_hour_is_served",
			given: in(threeCodes[:2]...), when: start("k3"), at: at(2 * minute), then: []events.Event{changeCode("k3", at(2*minute), 3)}},
		{name: "the_4th_code_request_in_the_hour_blocks_the_change_one_hour",
			given: in(threeCodes...), when: start("k4"), at: at(3 * minute),
			then: []events.Event{events.ChangeRequestsExceeded{Flow: events.FlowPasswordChange, BlockedUntil: at(63 * minute), At: at(3 * minute)}},
			err:  &Error{Code: CodeCodeRequestsExceeded, Reason: events.FlowPasswordChange, BlockedUntil: at(63 * minute)}},
		{name: "during_the_request_block_a_code_is_refused",
			given: in(append(threeCodes, events.ChangeRequestsExceeded{Flow: events.FlowPasswordChange, BlockedUntil: at(63 * minute), At: at(3 * minute)})...),
			when:  start("k5"), at: at(62 * minute),
			err: &Error{Code: CodeCodeRequestsExceeded, Reason: events.FlowPasswordChange, BlockedUntil: at(63 * minute)}},
		{name: "after_the_request_block_a_code_is_served_again",
			given: in(append(threeCodes, events.ChangeRequestsExceeded{Flow: events.FlowPasswordChange, BlockedUntil: at(63 * minute), At: at(3 * minute)})...),
			when:  start("k5"), at: at(63 * minute), then: []events.Event{changeCode("k5", at(63*minute), 1)}},
		{name: "the_right_code_is_verified",
			given: in(changeCode("k1", t0, 1)), when: VerifyChangeCode{SessionHash: "sess#", CodeHash: "k1"}, at: at(15*minute - sec),
			then: []events.Event{events.ChangeCodeVerified{SessionHash: "sess#", At: at(15*minute - sec)}}},
		{name: "a_code_at_exactly_15_minutes_has_expired",
			given: in(changeCode("k1", t0, 1)), when: VerifyChangeCode{SessionHash: "sess#", CodeHash: "k1"}, at: at(15 * minute),
			err: &Error{Code: CodeCodeExpired, Reason: events.FlowPasswordChange, Minutes: 15}},
		{name: "a_wrong_code_leaves_two_attempts",
			given: in(changeCode("k1", t0, 1)), when: VerifyChangeCode{SessionHash: "sess#", CodeHash: "bad"}, at: at(minute),
			then: []events.Event{events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 1, At: at(minute)}},
			err:  &Error{Code: CodeCodeInvalid, Reason: events.FlowPasswordChange, AttemptsLeft: 2}},
		{name: "the_3rd_wrong_code_blocks_the_change_15_minutes",
			given: in(changeCode("k1", t0, 1), events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 1, At: t0}, events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 2, At: t0}),
			when:  VerifyChangeCode{SessionHash: "sess#", CodeHash: "bad"}, at: at(minute),
			then: []events.Event{events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 3, BlockedUntil: at(16 * minute), At: at(minute)}},
			err:  &Error{Code: CodeCodeAttemptsExceeded, Reason: events.FlowPasswordChange, BlockedUntil: at(16 * minute)}},
		{name: "during_the_attempts_block_even_a_new_code_is_refused",
			given: in(changeCode("k1", t0, 1), events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 3, BlockedUntil: at(16 * minute), At: at(minute)}),
			when:  start("k2"), at: at(10 * minute),
			err: &Error{Code: CodeCodeAttemptsExceeded, Reason: events.FlowPasswordChange, BlockedUntil: at(16 * minute)}},
		{name: "the_new_password_needs_a_verified_code",
			given: in(changeCode("k1", t0, 1)), when: CompletePasswordChange{SessionHash: "sess#", PasswordHash: "new"}, at: at(minute),
			err: &Error{Code: CodeCodeInvalid}},
		{name: "the_new_password_is_set_within_the_codes_lifetime_and_keeps_this_session",
			given: in(changeCode("k1", t0, 1), events.ChangeCodeVerified{At: at(minute)}), when: CompletePasswordChange{SessionHash: "sess#", PasswordHash: "new"}, at: at(2 * minute),
			then: []events.Event{events.PasswordChanged{Method: events.MethodChange, PasswordHash: "new", KeptSessionHash: "sess#", ToSealed: "sealed-mail", At: at(2 * minute)}}},
		{name: "the_new_password_from_another_session_than_the_one_that_typed_the_code_is_refused",
			given: in(func() events.LoginSucceeded {
				e := longSession(succeeded("", at(30*sec)))
				e.SessionHash = "other#"
				return e
			}(), changeCode("k1", t0, 1), events.ChangeCodeVerified{SessionHash: "sess#", At: at(minute)}),
			when: CompletePasswordChange{SessionHash: "other#", PasswordHash: "new"}, at: at(2 * minute),
			err: &Error{Code: CodeCodeInvalid}},
		{name: "the_new_password_from_the_session_that_typed_the_code_is_set",
			given: in(changeCode("k1", t0, 1), events.ChangeCodeVerified{SessionHash: "sess#", At: at(minute)}),
			when:  CompletePasswordChange{SessionHash: "sess#", PasswordHash: "new"}, at: at(2 * minute),
			then: []events.Event{events.PasswordChanged{Method: events.MethodChange, PasswordHash: "new", KeptSessionHash: "sess#", ToSealed: "sealed-mail", At: at(2 * minute)}}},
		{name: "the_new_password_after_the_codes_lifetime_is_refused",
			given: in(changeCode("k1", t0, 1), events.ChangeCodeVerified{At: at(minute)}), when: CompletePasswordChange{SessionHash: "sess#", PasswordHash: "new"}, at: at(15 * minute),
			err: &Error{Code: CodeCodeExpired, Minutes: 15}},
		{name: "a_change_47h59_after_a_new_email_is_refused",
			given: append(in(emailChanged), longSession(succeeded("L2", at(47*time.Hour)))), when: start("k1"), at: at(48*time.Hour - minute),
			err: &Error{Code: CodeEmailRecentlyChanged}},
		{name: "a_change_48h_after_a_new_email_is_allowed",
			given: append(in(emailChanged), longSession(succeeded("L2", at(48*time.Hour-minute)))), when: start("k1"), at: at(48 * time.Hour),
			then: []events.Event{func() events.Event {
				e := changeCode("k1", at(48*time.Hour), 1)
				e.ToSealed = "sealed-new" // the code goes to the new address
				return e
			}()}},
		{name: "strict_a_change_asks_the_current_password",
			policy: StrictPolicy(), given: loggedIn, when: StartPasswordChange{SessionHash: "sess#", PasswordOK: false, CodeHash: "k1"}, at: at(minute),
			then: []events.Event{pwFailed(1, at(minute))}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "strict_a_blocked_account_cannot_try_its_current_password_from_a_session",
			policy: StrictPolicy(), given: append(in(loggedIn...), pwBlocked(3, at(minute), at(16*minute))),
			when: StartPasswordChange{SessionHash: "sess#", PasswordOK: false, CodeHash: "k1"}, at: at(2 * minute),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(16 * minute)}},
		{name: "strict_the_block_ends_for_the_current_password_check_at_its_time",
			policy: StrictPolicy(), given: append(in(loggedIn...), pwBlocked(3, at(minute), at(16*minute))),
			when: StartPasswordChange{SessionHash: "sess#", PasswordOK: false, CodeHash: "k1"}, at: at(16 * minute),
			then: []events.Event{pwFailed(1, at(16*minute))}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "strict_change_codes_live_10_minutes",
			policy: StrictPolicy(), given: loggedIn, when: start("k1"), at: at(minute),
			then: []events.Event{events.PasswordChangeCodeIssued{CodeHash: "k1", CodeSealed: "sealed-k1", ToSealed: "sealed-mail", RequestsLastHour: 1, IssuedAt: at(minute), ExpiresAt: at(11 * minute)}}},

		// Forgotten password (FAQ).
		{name: "a_reset_request_mails_a_link_valid_one_hour",
			given: []events.Event{registered}, when: RequestPasswordReset{TokenHash: "tok#", TokenSealed: "sealed-tok"}, at: t0,
			then: []events.Event{reset}},
		{name: "no_reset_link_47h59_after_a_new_email",
			given: []events.Event{registered, emailChanged}, when: RequestPasswordReset{TokenHash: "tok#", TokenSealed: "sealed-tok"}, at: at(48*time.Hour - minute)},
		{name: "a_reset_link_48h_after_a_new_email_goes_to_it",
			given: []events.Event{registered, emailChanged}, when: RequestPasswordReset{TokenHash: "tok#", TokenSealed: "sealed-tok"}, at: at(48 * time.Hour),
			then: []events.Event{events.PasswordResetRequested{TokenHash: "tok#", TokenSealed: "sealed-tok", ToSealed: "sealed-new", RequestedAt: at(48 * time.Hour), ExpiresAt: at(49 * time.Hour)}}},
		{name: "a_reset_request_for_an_unknown_NIR_records_nothing",
			when: RequestPasswordReset{TokenHash: "tok#"}, at: t0},
		{name: "a_reset_request_without_a_validated_email_records_nothing",
			given: []events.Event{unvalidated}, when: RequestPasswordReset{TokenHash: "tok#"}, at: t0},
		{name: "the_4th_reset_request_in_the_hour_records_nothing",
			given: []events.Event{registered, reset, reset, reset}, when: RequestPasswordReset{TokenHash: "tok2#"}, at: at(minute)},
		{name: "a_reset_link_sets_the_new_password",
			given: []events.Event{registered, reset}, when: CompletePasswordReset{TokenHash: "tok#", PasswordHash: "new"}, at: at(time.Hour - sec),
			then: []events.Event{events.PasswordChanged{Method: events.MethodReset, PasswordHash: "new", ToSealed: "sealed-mail", At: at(time.Hour - sec)}}},
		{name: "a_reset_link_after_exactly_one_hour_is_invalid",
			given: []events.Event{registered, reset}, when: CompletePasswordReset{TokenHash: "tok#", PasswordHash: "new"}, at: at(time.Hour),
			err: &Error{Code: CodeResetTokenInvalid}},
		{name: "a_used_reset_link_is_invalid",
			given: []events.Event{registered, reset, events.PasswordChanged{Method: events.MethodReset, PasswordHash: "new", At: at(minute)}},
			when:  CompletePasswordReset{TokenHash: "tok#", PasswordHash: "newer"}, at: at(2 * minute), err: &Error{Code: CodeResetTokenInvalid}},
		{name: "another_token_is_invalid",
			given: []events.Event{registered, reset}, when: CompletePasswordReset{TokenHash: "other#", PasswordHash: "new"}, at: at(minute),
			err: &Error{Code: CodeResetTokenInvalid}},
		{name: "a_reset_lifts_the_password_block",
			given: []events.Event{registered, reset, pwBlocked(3, t0, at(15*minute)), events.PasswordChanged{Method: events.MethodReset, PasswordHash: "new", At: at(minute)}},
			when:  rightPassword(), at: at(2 * minute), then: []events.Event{verified("L1", at(2*minute))}},
		{name: "a_reset_revokes_trusted_devices",
			given: []events.Event{registered, withDevice(succeeded("L0", t0), "dev#", t0.AddDate(0, 6, 0)), events.PasswordChanged{Method: events.MethodReset, PasswordHash: "new", At: at(minute)}},
			when:  SubmitPassword{PasswordOK: true, DeviceHash: "dev#", LoginID: "L1"}, at: at(2 * minute),
			then: []events.Event{verified("L1", at(2*minute))}},

		// Email change.
		{name: "an_email_change_mails_a_code_to_the_new_address",
			given: loggedIn, when: RequestEmailChange{SessionHash: "sess#", NewEmailSealed: "sealed-new", NewMaskedEmail: "n***@m***.fr", CodeHash: "e1", CodeSealed: "sealed-e1"}, at: at(minute),
			then: []events.Event{events.EmailChangeCodeIssued{NewEmailSealed: "sealed-new", NewMaskedEmail: "n***@m***.fr", CodeHash: "e1", CodeSealed: "sealed-e1", RequestsLastHour: 1, IssuedAt: at(minute), ExpiresAt: at(16 * minute)}}},
		{name: "the_right_code_records_the_new_address_tells_the_old_one_and_keeps_this_session",
			given: in(events.EmailChangeCodeIssued{NewEmailSealed: "sealed-new", NewMaskedEmail: "n***@m***.fr", CodeHash: "e1", IssuedAt: t0, ExpiresAt: at(15 * minute)}),
			when:  ConfirmEmailChange{SessionHash: "sess#", CodeHash: "e1"}, at: at(minute),
			then: []events.Event{events.EmailChanged{EmailSealed: "sealed-new", MaskedEmail: "n***@m***.fr", OldToSealed: "sealed-mail", KeptSessionHash: "sess#", At: at(minute)}}},
		{name: "a_wrong_email_code_counts_in_the_email_flow",
			given: in(events.EmailChangeCodeIssued{NewEmailSealed: "sealed-new", CodeHash: "e1", IssuedAt: t0, ExpiresAt: at(15 * minute)}),
			when:  ConfirmEmailChange{SessionHash: "sess#", CodeHash: "bad"}, at: at(minute),
			then: []events.Event{events.ChangeCodeFailed{Flow: events.FlowEmailChange, Failures: 1, At: at(minute)}},
			err:  &Error{Code: CodeCodeInvalid, Reason: events.FlowEmailChange, AttemptsLeft: 2}},
	}
	runRows(t, rows)
}

// After a change, the session that made it stays open and the others end.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	s := Account{ID: "acc"}
	other := succeeded("L2", t0)
	other.SessionHash = "other#"
	for _, e := range []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), succeeded("L1", t0), other,
		events.PasswordChanged{Method: events.MethodChange, PasswordHash: "new", KeptSessionHash: "sess#", At: at(minute)}} {
		s = Evolve(s, e)
	}
	if !s.SessionValid("sess#", at(2*minute)) || s.SessionValid("other#", at(2*minute)) {
		t.Fatal("a change must keep its own session and end the others")
	}
	s = Evolve(s, events.PasswordChanged{Method: events.MethodReset, PasswordHash: "newer", At: at(3 * minute)})
	if s.SessionValid("sess#", at(4*minute)) {
		t.Fatal("a reset must end every session")
	}
}
