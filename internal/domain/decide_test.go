package domain

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// t0 is 5 January 2023, 14:30 in Paris (13:30 UTC), the seed's example day.
var t0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const (
	minute = time.Minute
	sec    = time.Second
)

var (
	registered = events.AccountRegistered{NIRHash: "nir#", EmailSealed: "sealed-mail", MaskedEmail: "v***@y***.fr",
		EmailValidated: true, PasswordHash: "$argon2id$old", Affiliation: AffiliationActive, At: t0.Add(-24 * time.Hour)}
	unvalidated  = withEmail(registered, false)
	deactivated  = events.AccountDeactivated{Reason: "holder", At: time.Date(2024, 4, 12, 8, 0, 0, 0, time.UTC)}
	pendingAffil = events.AffiliationSet{Affiliation: AffiliationPending, At: t0.Add(-time.Hour)}
	noAffil      = events.AffiliationSet{Affiliation: AffiliationNone, At: t0.Add(-time.Hour)}
)

func withEmail(r events.AccountRegistered, validated bool) events.AccountRegistered {
	r.EmailValidated = validated
	return r
}

func pwFailed(n int, t time.Time) events.PasswordFailed {
	return events.PasswordFailed{Failures: n, At: t}
}
func pwBlocked(n int, t time.Time, until time.Time) events.PasswordFailed {
	return events.PasswordFailed{Failures: n, BlockedUntil: until, At: t}
}
func verified(login string, t time.Time) events.PasswordVerified {
	return events.PasswordVerified{LoginID: login, At: t}
}
func issued(login, code string, t time.Time, n int) events.OTPIssued {
	return events.OTPIssued{LoginID: login, CodeHash: code, CodeSealed: "sealed-" + code, ToSealed: "sealed-mail",
		RequestsLastHour: n, IssuedAt: t, ExpiresAt: t.Add(15 * minute)}
}
func otpFailed(login string, n int, t time.Time) events.OTPFailed {
	return events.OTPFailed{LoginID: login, Failures: n, At: t}
}
func succeeded(login string, t time.Time) events.LoginSucceeded {
	return events.LoginSucceeded{LoginID: login, Method: events.MethodOTP, Channel: "web", SessionHash: "sess#",
		SessionExpiresAt: t.Add(30 * minute), At: t}
}
func withDevice(e events.LoginSucceeded, hash string, until time.Time) events.LoginSucceeded {
	e.DeviceHash, e.DeviceExpiresAt = hash, until
	return e
}

func rightPassword() SubmitPassword {
	return SubmitPassword{PasswordOK: true, LoginID: "L1", SessionHash: "sess#", Channel: "web"}
}
func wrongPassword() SubmitPassword {
	return SubmitPassword{PasswordOK: false, LoginID: "L1", SessionHash: "sess#", Channel: "web"}
}
func verify(login, code string) VerifyOTP {
	return VerifyOTP{LoginID: login, CodeHash: code, SessionHash: "sess#", Channel: "web"}
}
func send(login, code string) SendOTP {
	return SendOTP{LoginID: login, CodeHash: code, CodeSealed: "sealed-" + code}
}

// row is one given / when / then rule: after the given facts, deciding when
// at that time records then and tells err. The credential-change matrix
// (credential_changes_test.go) also names the cell a row shows, and may
// check the state itself where no command reaches what it shows.
type row struct {
	name   string
	policy Policy // zero: the seed's
	given  []events.Event
	when   Command // nil: check only
	at     time.Time
	then   []events.Event
	err    *Error // nil: accepted

	change string                        // the matrix's row: a change of credentials
	out    string                        // the matrix's column: what was outstanding
	effect string                        // closed or kept: what this row shows
	check  func(t *testing.T, a Account) // looks at the state after given
}

func TestDecide(t *testing.T) {
	fiveIssued := []events.Event{registered,
		verified("L1", at(0)), issued("L1", "c1", at(0), 1), issued("L1", "c2", at(1*minute), 2),
		issued("L1", "c3", at(2*minute), 3), issued("L1", "c4", at(3*minute), 4), issued("L1", "c5", at(4*minute), 5)}
	fourIssued := fiveIssued[:6]

	rows := []row{
		// Registration and the account's life (Cas 1 bis, Cas 8-9, advisers).
		{name: "registering_a_new_NIR_creates_the_account",
			when: Register{NIRHash: "nir#", EmailSealed: "s", MaskedEmail: "v***@y***.fr", EmailValidated: true, PasswordHash: "h", Affiliation: "active"},
			at:   t0, then: []events.Event{events.AccountRegistered{NIRHash: "nir#", EmailSealed: "s", MaskedEmail: "v***@y***.fr", EmailValidated: true, PasswordHash: "h", Affiliation: "active", At: t0}}},
		{name: "registering_an_active_account_again_is_refused",
			given: []events.Event{registered}, when: Register{Affiliation: "active"}, at: t0, err: &Error{Code: CodeAccountExists}},
		{name: "registering_a_deactivated_account_again_reactivates_it",
			given: []events.Event{registered, deactivated},
			when:  Register{EmailSealed: "s2", MaskedEmail: "n***@m***.fr", EmailValidated: true, PasswordHash: "h2", Affiliation: "active"}, at: t0,
			then: []events.Event{events.AccountReactivated{EmailSealed: "s2", MaskedEmail: "n***@m***.fr", EmailValidated: true, PasswordHash: "h2", Affiliation: "active", At: t0}}},
		{name: "registering_with_an_unknown_affiliation_is_an_invalid_request",
			when: Register{Affiliation: "maybe"}, at: t0, err: &Error{Code: CodeInvalidRequest, Field: "affiliation"}},
		{name: "deactivating_records_the_date",
			given: []events.Event{registered}, when: Deactivate{Reason: "adviser"}, at: t0,
			then: []events.Event{events.AccountDeactivated{Reason: "adviser", At: t0}}},
		{name: "deactivating_twice_changes_nothing",
			given: []events.Event{registered, deactivated}, when: Deactivate{}, at: t0},
		{name: "deactivating_an_unknown_account_is_refused",
			when: Deactivate{}, at: t0, err: &Error{Code: CodeAccountNotFound}},
		{name: "setting_the_same_affiliation_changes_nothing",
			given: []events.Event{registered}, when: SetAffiliation{Affiliation: "active"}, at: t0},
		{name: "setting_a_new_affiliation_records_it",
			given: []events.Event{registered}, when: SetAffiliation{Affiliation: "pending"}, at: t0,
			then: []events.Event{events.AffiliationSet{Affiliation: "pending", At: t0}}},

		// Password step (Étape 0, Cas 4, Cas 7).
		{name: "right_password_opens_a_login_waiting_for_a_code",
			given: []events.Event{registered}, when: rightPassword(), at: t0,
			then: []events.Event{verified("L1", t0)}},
		{name: "right_password_with_new_hash_parameters_records_the_rehash",
			given: []events.Event{registered}, when: SubmitPassword{PasswordOK: true, NewPasswordHash: "$argon2id$new", LoginID: "L1"}, at: t0,
			then: []events.Event{events.PasswordVerified{LoginID: "L1", NewPasswordHash: "$argon2id$new", At: t0}}},
		{name: "unknown_account_is_told_invalid_credentials",
			when: rightPassword(), at: t0, err: &Error{Code: CodeInvalidCredentials}},
		{name: "first_wrong_password_counts_one_failure",
			given: []events.Event{registered}, when: wrongPassword(), at: t0,
			then: []events.Event{pwFailed(1, t0)}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "second_wrong_password_counts_two",
			given: []events.Event{registered, pwFailed(1, t0)}, when: wrongPassword(), at: at(minute),
			then: []events.Event{pwFailed(2, at(minute))}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "a_wrong_password_30_days_after_the_last_failure_starts_a_new_count",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, at(minute))}, when: wrongPassword(), at: at(minute + 30*24*time.Hour),
			then: []events.Event{pwFailed(1, at(minute+30*24*time.Hour))}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "a_wrong_password_a_second_before_30_days_still_counts",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, at(minute))}, when: wrongPassword(), at: at(minute + 30*24*time.Hour - sec),
			then: []events.Event{pwBlocked(3, at(minute+30*24*time.Hour-sec), at(minute+30*24*time.Hour-sec+15*minute))},
			err:  &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(minute + 30*24*time.Hour - sec + 15*minute)}},
		{name: "third_wrong_password_blocks_15_minutes_and_already_says_so",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, at(minute))}, when: wrongPassword(), at: at(2 * minute),
			then: []events.Event{pwBlocked(3, at(2*minute), at(17*minute))},
			err:  &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(17 * minute)}},
		{name: "right_password_during_the_block_is_refused_without_counting",
			given: []events.Event{registered, pwBlocked(3, t0, at(15*minute))}, when: rightPassword(), at: at(15*minute - sec),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(15 * minute)}},
		{name: "wrong_password_during_the_block_neither_counts_nor_extends_it",
			given: []events.Event{registered, pwBlocked(3, t0, at(15*minute))}, when: wrongPassword(), at: at(10 * minute),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(15 * minute)}},
		{name: "at_exactly_15_minutes_the_block_is_over",
			given: []events.Event{registered, pwBlocked(3, t0, at(15*minute))}, when: rightPassword(), at: at(15 * minute),
			then: []events.Event{verified("L1", at(15*minute))}},
		{name: "after_a_block_the_count_starts_again_from_one",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, t0), pwBlocked(3, t0, at(15*minute))}, when: wrongPassword(), at: at(16 * minute),
			then: []events.Event{pwFailed(1, at(16*minute))}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "right_password_alone_does_not_reset_the_failure_count",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, t0), verified("L0", t0)}, when: wrongPassword(), at: at(minute),
			then: []events.Event{pwBlocked(3, at(minute), at(16*minute))}, err: &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(16 * minute)}},
		{name: "a_successful_login_resets_the_password_failures",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, t0), verified("L0", t0), issued("L0", "c", t0, 1), succeeded("L0", at(minute))},
			when:  wrongPassword(), at: at(2 * minute),
			then: []events.Event{pwFailed(1, at(2*minute))}, err: &Error{Code: CodeInvalidCredentials}},

		// Account states, told only after the right password (Cas 1, 1 bis, 8, 9).
		{name: "deactivated_account_with_right_password_is_told_its_date",
			given: []events.Event{registered, deactivated}, when: rightPassword(), at: t0,
			then: []events.Event{events.LoginRefused{Reason: CodeAccountDeactivated, At: t0}},
			err:  &Error{Code: CodeAccountDeactivated, DeactivatedAt: deactivated.At}},
		{name: "deactivated_account_with_wrong_password_is_told_invalid_credentials",
			given: []events.Event{registered, deactivated}, when: wrongPassword(), at: t0,
			then: []events.Event{pwFailed(1, t0)}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "no_validated_email_with_right_password_is_refused",
			given: []events.Event{unvalidated}, when: rightPassword(), at: t0,
			then: []events.Event{events.LoginRefused{Reason: CodeNoValidatedEmail, At: t0}}, err: &Error{Code: CodeNoValidatedEmail}},
		{name: "no_validated_email_with_wrong_password_is_told_invalid_credentials",
			given: []events.Event{unvalidated}, when: wrongPassword(), at: t0,
			then: []events.Event{pwFailed(1, t0)}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "affiliation_none_is_refused_with_cas_8",
			given: []events.Event{registered, noAffil}, when: rightPassword(), at: t0,
			then: []events.Event{events.LoginRefused{Reason: CodeAffiliationMissing, At: t0}}, err: &Error{Code: CodeAffiliationMissing}},
		{name: "affiliation_pending_is_refused_with_cas_9",
			given: []events.Event{registered, pendingAffil}, when: rightPassword(), at: t0,
			then: []events.Event{events.LoginRefused{Reason: CodeAffiliationPending, At: t0}}, err: &Error{Code: CodeAffiliationPending}},

		// Trusted devices ("Se souvenir de cet appareil", FAQ).
		{name: "trusted_device_skips_the_code",
			given: []events.Event{registered, withDevice(succeeded("L0", t0.Add(-24*time.Hour)), "dev#", t0.Add(-24*time.Hour).AddDate(0, 6, 0))},
			when:  SubmitPassword{PasswordOK: true, DeviceHash: "dev#", LoginID: "L1", SessionHash: "s2#", Channel: "web"}, at: t0,
			then: []events.Event{events.LoginSucceeded{Method: events.MethodTrustedDevice, Channel: "web", SessionHash: "s2#", SessionExpiresAt: at(30 * minute), At: t0}}},
		{name: "trusted_device_still_needs_the_right_password",
			given: []events.Event{registered, withDevice(succeeded("L0", t0), "dev#", t0.AddDate(0, 6, 0))},
			when:  SubmitPassword{PasswordOK: false, DeviceHash: "dev#", LoginID: "L1"}, at: at(minute),
			then: []events.Event{pwFailed(1, at(minute))}, err: &Error{Code: CodeInvalidCredentials}},
		{name: "trusted_device_a_day_after_6_months_asks_the_code_again",
			given: []events.Event{registered, withDevice(succeeded("L0", t0), "dev#", t0.AddDate(0, 6, 0))},
			when:  SubmitPassword{PasswordOK: true, DeviceHash: "dev#", LoginID: "L1"}, at: t0.AddDate(0, 6, 1),
			then: []events.Event{verified("L1", t0.AddDate(0, 6, 1))}},
		{name: "another_device_token_asks_the_code",
			given: []events.Event{registered, withDevice(succeeded("L0", t0), "dev#", t0.AddDate(0, 6, 0))},
			when:  SubmitPassword{PasswordOK: true, DeviceHash: "other#", LoginID: "L1"}, at: at(minute),
			then: []events.Event{verified("L1", at(minute))}},

		// Code issuance (Étape 1-2, Cas 3).
		{name: "a_code_is_issued_for_an_open_login_valid_15_minutes",
			given: []events.Event{registered, verified("L1", t0)}, when: send("L1", "c1"), at: at(sec),
			then: []events.Event{issued("L1", "c1", at(sec), 1)}},
		{name: "a_code_for_an_unknown_login_is_refused",
			given: []events.Event{registered, verified("L1", t0)}, when: send("nope", "c1"), at: at(sec), err: &Error{Code: CodeLoginExpired}},
		{name: "a_login_can_still_ask_a_code_after_59_minutes_59",
			given: []events.Event{registered, verified("L1", t0)}, when: send("L1", "c1"), at: at(time.Hour - sec),
			then: []events.Event{issued("L1", "c1", at(time.Hour-sec), 1)}},
		{name: "a_login_cannot_ask_a_code_after_exactly_one_hour",
			given: []events.Event{registered, verified("L1", t0)}, when: send("L1", "c1"), at: at(time.Hour), err: &Error{Code: CodeLoginExpired}},
		{name: "the_5th_request_in_the_hour_is_served",
			given: fourIssued, when: send("L1", "c5"), at: at(4 * minute),
			then: []events.Event{issued("L1", "c5", at(4*minute), 5)}},
		{name: "the_6th_request_in_the_hour_is_refused_and_blocks_one_hour",
			given: fiveIssued, when: send("L1", "c6"), at: at(5 * minute),
			then: []events.Event{events.OTPQuotaExceeded{LoginID: "L1", BlockedUntil: at(65 * minute), At: at(5 * minute)}},
			err:  &Error{Code: CodeOTPQuotaExceeded, Reason: ReasonOTPQuota, BlockedUntil: at(65 * minute)}},
		{name: "the_window_rolls_the_oldest_request_out_after_exactly_one_hour",
			given: append(append([]events.Event{}, fiveIssued...), verified("L2", at(50*minute))), when: send("L2", "c6"), at: at(time.Hour),
			then: []events.Event{issued("L2", "c6", at(time.Hour), 5)}},
		{name: "one_second_before_the_window_rolls_the_6th_is_still_refused",
			given: append(append([]events.Event{}, fiveIssued...), verified("L2", at(50*minute))), when: send("L2", "c6"), at: at(time.Hour - sec),
			then: []events.Event{events.OTPQuotaExceeded{LoginID: "L2", BlockedUntil: at(2*time.Hour - sec), At: at(time.Hour - sec)}},
			err:  &Error{Code: CodeOTPQuotaExceeded, Reason: ReasonOTPQuota, BlockedUntil: at(2*time.Hour - sec)}},
		{name: "the_quota_block_refuses_the_password_step_too",
			given: append(append([]events.Event{}, fiveIssued...), events.OTPQuotaExceeded{LoginID: "L1", BlockedUntil: at(65 * minute), At: at(5 * minute)}),
			when:  rightPassword(), at: at(30 * minute),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonOTPQuota, BlockedUntil: at(65 * minute)}},
		{name: "a_successful_login_clears_the_code_quota",
			given: append(append([]events.Event{}, fiveIssued...), succeeded("L1", at(5*minute)), verified("L2", at(6*minute))),
			when:  send("L2", "c6"), at: at(7 * minute),
			then: []events.Event{issued("L2", "c6", at(7*minute), 1)}},

		// Code verification (Étape 3, Cas 2, 5, 6).
		{name: "the_right_code_opens_a_session",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)}, when: verify("L1", "c1"), at: at(minute),
			then: []events.Event{succeeded("L1", at(minute))}},
		{name: "the_right_code_at_14_59_is_accepted",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)}, when: verify("L1", "c1"), at: at(15*minute - sec),
			then: []events.Event{succeeded("L1", at(15*minute-sec))}},
		{name: "the_right_code_at_exactly_15_minutes_has_expired_and_is_not_a_failure",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)}, when: verify("L1", "c1"), at: at(15 * minute),
			err: &Error{Code: CodeOTPExpired, Minutes: 15}},
		{name: "a_wrong_expired_code_is_not_a_failure_either",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)}, when: verify("L1", "bad"), at: at(20 * minute),
			err: &Error{Code: CodeOTPExpired, Minutes: 15}},
		{name: "a_code_checked_before_any_was_sent_says_ask_one",
			given: []events.Event{registered, verified("L1", t0)}, when: verify("L1", "c1"), at: at(minute),
			err: &Error{Code: CodeOTPExpired, Minutes: 15}},
		{name: "a_wrong_code_counts_one_failure_with_two_attempts_left",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)}, when: verify("L1", "bad"), at: at(minute),
			then: []events.Event{otpFailed("L1", 1, at(minute))}, err: &Error{Code: CodeOTPInvalid, AttemptsLeft: 2}},
		{name: "the_third_wrong_code_blocks_15_minutes_and_already_says_so",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), otpFailed("L1", 1, t0), otpFailed("L1", 2, t0)},
			when:  verify("L1", "bad"), at: at(minute),
			then: []events.Event{events.OTPFailed{LoginID: "L1", Failures: 3, BlockedUntil: at(16 * minute), At: at(minute)}},
			err:  &Error{Code: CodeAccountLocked, Reason: ReasonOTPFailures, BlockedUntil: at(16 * minute)}},
		{name: "a_new_code_does_not_reset_the_code_failures",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), otpFailed("L1", 1, t0), otpFailed("L1", 2, t0), issued("L1", "c2", at(minute), 2)},
			when:  verify("L1", "bad"), at: at(2 * minute),
			then: []events.Event{events.OTPFailed{LoginID: "L1", Failures: 3, BlockedUntil: at(17 * minute), At: at(2 * minute)}},
			err:  &Error{Code: CodeAccountLocked, Reason: ReasonOTPFailures, BlockedUntil: at(17 * minute)}},
		{name: "password_and_code_failures_are_counted_separately",
			given: []events.Event{registered, pwFailed(1, t0), pwFailed(2, t0), verified("L1", t0), issued("L1", "c1", t0, 1)},
			when:  verify("L1", "bad"), at: at(minute),
			then: []events.Event{otpFailed("L1", 1, at(minute))}, err: &Error{Code: CodeOTPInvalid, AttemptsLeft: 2}},
		{name: "only_the_latest_code_is_valid",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), issued("L1", "c2", at(minute), 2)},
			when:  verify("L1", "c1"), at: at(2 * minute),
			then: []events.Event{otpFailed("L1", 1, at(2*minute))}, err: &Error{Code: CodeOTPInvalid, AttemptsLeft: 2}},
		{name: "a_code_is_single_use",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), succeeded("L1", at(minute))},
			when:  verify("L1", "c1"), at: at(2 * minute), err: &Error{Code: CodeLoginExpired}},
		{name: "a_code_checked_during_a_block_is_refused_without_counting",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), pwBlocked(3, t0, at(15*minute))},
			when:  verify("L1", "c1"), at: at(minute),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(15 * minute)}},
		{name: "a_code_cannot_be_asked_during_a_block",
			given: []events.Event{registered, verified("L1", t0), events.OTPFailed{LoginID: "L1", Failures: 3, BlockedUntil: at(15 * minute), At: t0}},
			when:  send("L1", "c2"), at: at(minute),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonOTPFailures, BlockedUntil: at(15 * minute)}},
		{name: "remember_this_device_issues_a_6_month_token",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)},
			when:  VerifyOTP{LoginID: "L1", CodeHash: "c1", RememberDevice: true, DeviceHash: "dev#", SessionHash: "sess#", Channel: "web"}, at: at(minute),
			then: []events.Event{withDevice(succeeded("L1", at(minute)), "dev#", at(minute).AddDate(0, 6, 0))}},

		// Advisers and sessions.
		{name: "an_adviser_unlocks_a_blocked_account",
			given: []events.Event{registered, pwBlocked(3, t0, at(15*minute))}, when: Unlock{}, at: at(minute),
			then: []events.Event{events.AccountUnlocked{PreviousReason: ReasonPasswordFailures, At: at(minute)}}},
		{name: "unlocking_an_account_with_nothing_to_clear_changes_nothing",
			given: []events.Event{registered}, when: Unlock{}, at: t0},
		{name: "after_an_unlock_the_right_password_goes_through",
			given: []events.Event{registered, pwBlocked(3, t0, at(15*minute)), events.AccountUnlocked{At: at(minute)}}, when: rightPassword(), at: at(2 * minute),
			then: []events.Event{verified("L1", at(2*minute))}},
		{name: "logout_ends_the_session",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), succeeded("L1", at(minute))},
			when:  Logout{SessionHash: "sess#"}, at: at(2 * minute),
			then: []events.Event{events.SessionEnded{SessionHash: "sess#", Reason: "logout", At: at(2 * minute)}}},
		{name: "logout_of_an_expired_session_changes_nothing",
			given: []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), succeeded("L1", at(minute))},
			when:  Logout{SessionHash: "sess#"}, at: at(31 * minute)},

		// The strict profile.
		{name: "strict_codes_live_10_minutes",
			policy: StrictPolicy(),
			given:  []events.Event{registered, verified("L1", t0)}, when: send("L1", "c1"), at: t0,
			then: []events.Event{events.OTPIssued{LoginID: "L1", CodeHash: "c1", CodeSealed: "sealed-c1", ToSealed: "sealed-mail", RequestsLastHour: 1, IssuedAt: t0, ExpiresAt: at(10 * minute)}}},
		{name: "strict_lockout_sends_a_notice",
			policy: StrictPolicy(),
			given:  []events.Event{registered, pwFailed(1, t0), pwFailed(2, t0)}, when: wrongPassword(), at: t0,
			then: []events.Event{events.PasswordFailed{Failures: 3, BlockedUntil: at(15 * minute), NoticeTo: "sealed-mail", At: t0}},
			err:  &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(15 * minute)}},
		{name: "strict_new_trusted_device_sends_a_notice",
			policy: StrictPolicy(),
			given:  []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1)},
			when:   VerifyOTP{LoginID: "L1", CodeHash: "c1", RememberDevice: true, DeviceHash: "dev#", SessionHash: "sess#", Channel: "web"}, at: at(minute),
			then: []events.Event{func() events.Event {
				e := withDevice(succeeded("L1", at(minute)), "dev#", at(minute).AddDate(0, 6, 0))
				e.NoticeTo = "sealed-mail"
				return e
			}()}},
	}

	runRows(t, rows)
}

// runRows runs every row: the given facts folded with Evolve, the command
// decided, the facts and the refusal compared, and the refusal rebuilt from
// the recorded fact (Decider.Refusal).
func runRows(t *testing.T, rows []row) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			p := r.policy
			if p.Name == "" {
				p = SeedPolicy()
			}
			d := Decider{Policy: p}
			state := Account{ID: "acc"}
			for _, e := range r.given {
				state = Evolve(state, e)
			}
			if r.when != nil {
				got, err := d.Decide(state, r.when, r.at)
				if !reflect.DeepEqual(got, r.then) {
					t.Errorf("events:\n got  %#v\n want %#v", got, r.then)
				}
				checkErr(t, err, r.err)
				checkRefusalRebuilt(t, d, state, got, err)
			}
			if r.check != nil {
				r.check(t, state)
			}
		})
	}
}

// checkRefusalRebuilt: the refusal told with a recorded fact can be rebuilt
// from the fact alone (Decider.Refusal), so a retried request is answered
// from the stream exactly as its first try was.
func checkRefusalRebuilt(t *testing.T, d Decider, state Account, got []events.Event, err error) {
	t.Helper()
	if len(got) != 1 {
		return
	}
	rebuilt := d.Refusal(state, got[0])
	if err == nil {
		if rebuilt != nil {
			t.Fatalf("Refusal(%T) = %v for a fact told as a success", got[0], rebuilt)
		}
		return
	}
	var want *Error
	if !errors.As(err, &want) {
		t.Fatalf("refusal %v is not a domain error", err)
	}
	if rebuilt == nil {
		t.Fatalf("Refusal(%T) = nil, Decide said %v", got[0], err)
	}
	checkErr(t, rebuilt, want)
}

func checkErr(t *testing.T, err error, want *Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected refusal %v", err)
		}
		return
	}
	var got *Error
	if !errors.As(err, &got) {
		t.Fatalf("want %s, got %v", want.Code, err)
	}
	if got.Code != want.Code || got.Reason != want.Reason || !got.BlockedUntil.Equal(want.BlockedUntil) ||
		got.AttemptsLeft != want.AttemptsLeft || !got.DeactivatedAt.Equal(want.DeactivatedAt) ||
		got.Minutes != want.Minutes || got.Field != want.Field {
		t.Fatalf("refusal:\n got  %+v\n want %+v", got, want)
	}
}

// Evolve must keep the state bounded whatever the history: the cost of a
// command cannot grow with the number of past events.
func TestEvolveKeepsStateBounded(t *testing.T) {
	s := Evolve(Account{ID: "acc"}, registered)
	at := t0
	for i := 0; i < 5000; i++ {
		at = at.Add(time.Minute)
		s = Evolve(s, verified("L", at))
		s = Evolve(s, issued("L", "c", at, 1))
		s = Evolve(s, withDevice(events.LoginSucceeded{LoginID: "L", Method: "otp", SessionHash: "s", SessionExpiresAt: at.Add(24 * time.Hour), At: at}, "d", at.AddDate(1, 0, 0)))
	}
	if len(s.Logins) > MaxPendingLogins || len(s.Sessions) > MaxSessions || len(s.TrustedDevices) > MaxTrustedDevices || len(s.OTPRequests) > MaxRecentRequests {
		t.Fatalf("state grew: %d logins, %d sessions, %d devices, %d requests", len(s.Logins), len(s.Sessions), len(s.TrustedDevices), len(s.OTPRequests))
	}
}

func TestSessionValidUntilItsExpiry(t *testing.T) {
	s := Account{ID: "acc"}
	for _, e := range []events.Event{registered, verified("L1", t0), issued("L1", "c1", t0, 1), succeeded("L1", t0)} {
		s = Evolve(s, e)
	}
	if !s.SessionValid("sess#", at(30*minute-sec)) {
		t.Fatal("session should be valid at 29:59")
	}
	if s.SessionValid("sess#", at(30*minute)) {
		t.Fatal("session should have expired at 30:00")
	}
	if s.SessionValid("other#", t0) {
		t.Fatal("unknown session hash accepted")
	}
}
