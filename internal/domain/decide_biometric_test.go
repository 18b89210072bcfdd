package domain

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

func appLogin(login string, t time.Time) events.LoginSucceeded {
	e := succeeded(login, t)
	e.Channel = "app"
	return e
}

var enrolled = events.BiometricEnrolled{DeviceID: "phone-1", PublicKey: "pk", ExpiresAt: t0.AddDate(0, 6, 0), At: t0}

func challenge(hash string, t time.Time) events.BiometricChallengeIssued {
	return events.BiometricChallengeIssued{DeviceID: "phone-1", ChallengeHash: hash, ExpiresAt: t.Add(2 * minute), At: t}
}

func bioLogin(hash string, ok bool) BiometricLogin {
	return BiometricLogin{DeviceID: "phone-1", ChallengeHash: hash, SignatureOK: ok, SessionHash: "bio#"}
}

func bioSucceeded(t time.Time) events.LoginSucceeded {
	return events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: "phone-1",
		SessionHash: "bio#", SessionExpiresAt: t.Add(30 * minute), At: t}
}

func TestDecideBiometric(t *testing.T) {
	onApp := []events.Event{registered, appLogin("L1", t0)}
	withDevice := []events.Event{registered, appLogin("L1", t0), enrolled}
	rows := []row{
		{name: "an_app_session_answers_the_offer",
			given: onApp, when: AnswerBiometricOffer{SessionHash: "sess#", Response: events.OfferNever}, at: at(minute),
			then: []events.Event{events.BiometricOfferAnswered{Response: events.OfferNever, At: at(minute)}}},
		{name: "an_unknown_answer_is_an_invalid_request",
			given: onApp, when: AnswerBiometricOffer{SessionHash: "sess#", Response: "maybe"}, at: at(minute),
			err: &Error{Code: CodeInvalidRequest, Field: "response"}},
		{name: "enrolment_needs_an_app_session",
			given: []events.Event{registered, succeeded("L1", t0)}, when: EnrollBiometric{SessionHash: "sess#", DeviceID: "phone-1", PublicKey: "pk"}, at: at(minute),
			err: &Error{Code: CodeSessionInvalid}},
		{name: "a_session_opened_by_biometrics_cannot_enrol_another_device",
			given: append(withDevice, bioSucceeded(at(minute))), when: EnrollBiometric{SessionHash: "bio#", DeviceID: "phone-2", PublicKey: "pk2"}, at: at(2 * minute),
			err: &Error{Code: CodeSessionInvalid}},
		{name: "an_app_session_enrols_a_device_for_6_months",
			given: onApp, when: EnrollBiometric{SessionHash: "sess#", DeviceID: "phone-1", PublicKey: "pk"}, at: t0,
			then: []events.Event{enrolled}},
		{name: "an_enrolled_device_gets_a_challenge_valid_2_minutes",
			given: withDevice, when: IssueBiometricChallenge{DeviceID: "phone-1", ChallengeHash: "ch1"}, at: at(minute),
			then: []events.Event{challenge("ch1", at(minute))}},
		{name: "an_unknown_device_gets_no_challenge",
			given: withDevice, when: IssueBiometricChallenge{DeviceID: "phone-2", ChallengeHash: "ch1"}, at: at(minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}},
		{name: "six_months_and_a_day_later_the_enrolment_has_expired",
			given: withDevice, when: IssueBiometricChallenge{DeviceID: "phone-1", ChallengeHash: "ch1"}, at: t0.AddDate(0, 6, 1),
			err: &Error{Code: CodeBiometricExpired}},
		{name: "a_signed_challenge_opens_a_session",
			given: append(withDevice, challenge("ch1", at(minute))), when: bioLogin("ch1", true), at: at(2 * minute),
			then: []events.Event{bioSucceeded(at(2 * minute))}},
		{name: "a_challenge_at_exactly_2_minutes_has_expired",
			given: append(withDevice, challenge("ch1", at(minute))), when: bioLogin("ch1", true), at: at(3 * minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricBadChallenge}},
		{name: "a_replayed_challenge_fails",
			given: append(withDevice, challenge("ch1", at(minute)), bioSucceeded(at(2*minute))), when: bioLogin("ch1", true), at: at(2 * minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricBadChallenge}},
		{name: "an_older_challenge_fails",
			given: append(withDevice, challenge("ch1", at(minute)), challenge("ch2", at(minute))), when: bioLogin("ch1", true), at: at(minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricBadChallenge}},
		{name: "a_bad_signature_fails_spends_the_challenge_and_does_not_count",
			given: append(withDevice, challenge("ch1", at(minute))), when: bioLogin("ch1", false), at: at(minute),
			then: []events.Event{events.BiometricLoginFailed{DeviceID: "phone-1", Reason: BiometricBadSignature, At: at(minute)}},
			err:  &Error{Code: CodeBiometricFailed, Reason: BiometricBadSignature}},
		{name: "after_a_bad_signature_the_challenge_is_spent",
			given: append(withDevice, challenge("ch1", at(minute)), events.BiometricLoginFailed{DeviceID: "phone-1", Reason: BiometricBadSignature, At: at(minute)}),
			when:  bioLogin("ch1", true), at: at(minute), err: &Error{Code: CodeBiometricFailed, Reason: BiometricBadChallenge}},
		{name: "a_revoked_enrolment_fails",
			given: append(withDevice, events.BiometricRevoked{Reason: "adviser", At: at(minute)}),
			when:  IssueBiometricChallenge{DeviceID: "phone-1", ChallengeHash: "ch1"}, at: at(2 * minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}},
		{name: "a_password_reset_revokes_enrolments",
			given: append(withDevice, events.PasswordChanged{Method: events.MethodReset, PasswordHash: "new", At: at(minute)}),
			when:  IssueBiometricChallenge{DeviceID: "phone-1", ChallengeHash: "ch1"}, at: at(2 * minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}},
		{name: "a_biometric_login_during_a_block_is_refused",
			given: append(withDevice, challenge("ch1", at(minute)), pwBlocked(3, at(minute), at(16*minute))), when: bioLogin("ch1", true), at: at(2 * minute),
			err: &Error{Code: CodeAccountLocked, Reason: ReasonPasswordFailures, BlockedUntil: at(16 * minute)}},
		{name: "the_21st_challenge_in_the_hour_is_refused",
			given: func() []events.Event {
				g := append([]events.Event{}, withDevice...)
				for i := 0; i < 20; i++ {
					g = append(g, challenge("c", at(time.Duration(i)*minute)))
				}
				return g
			}(),
			when: IssueBiometricChallenge{DeviceID: "phone-1", ChallengeHash: "ch21"}, at: at(30 * minute),
			err: &Error{Code: CodeBiometricFailed, Reason: BiometricRateLimited}},
	}
	runRows(t, rows)
}

// The offer: from the second app login, unless "never" or this device is enrolled.
func TestBiometricOffer(t *testing.T) {
	p := SeedPolicy()
	fold := func(es ...events.Event) Account {
		a := Account{ID: "acc"}
		for _, e := range es {
			a = Evolve(a, e)
		}
		return a
	}
	for _, c := range []struct {
		name   string
		state  Account
		device string
		want   bool
	}{
		{"first_app_login_does_not_offer", fold(registered, appLogin("L1", t0)), "", false},
		{"web_logins_do_not_count", fold(registered, succeeded("L1", t0), succeeded("L2", t0), appLogin("L3", t0)), "", false},
		{"second_app_login_offers", fold(registered, appLogin("L1", t0), appLogin("L2", t0)), "", true},
		{"later_offers_again", fold(registered, appLogin("L1", t0), appLogin("L2", t0), events.BiometricOfferAnswered{Response: events.OfferLater}, appLogin("L3", t0)), "", true},
		{"never_stops_it", fold(registered, appLogin("L1", t0), appLogin("L2", t0), events.BiometricOfferAnswered{Response: events.OfferNever}, appLogin("L3", t0)), "", false},
		{"an_enrolled_device_is_not_offered", fold(registered, appLogin("L1", t0), enrolled, appLogin("L2", t0)), "phone-1", false},
		{"another_device_is_offered", fold(registered, appLogin("L1", t0), enrolled, appLogin("L2", t0)), "phone-2", true},
	} {
		if got := c.state.OfferBiometric(p, c.device, at(minute)); got != c.want {
			t.Errorf("%s: offer=%v, want %v", c.name, got, c.want)
		}
	}
}
