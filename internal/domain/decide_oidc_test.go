package domain

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// OpenID Connect's decisions (issue 18), given / when / then: the session
// behind /authorize, the client's require_code, and what a grant survives.
func TestDecideOIDC(t *testing.T) {
	login := succeeded("L1", t0)
	trusted := events.LoginSucceeded{Method: events.MethodTrustedDevice, Channel: "web", SessionHash: "sess#", SessionExpiresAt: t0.Add(30 * minute), At: t0}
	bio := events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: "phone", SessionHash: "sess#", SessionExpiresAt: t0.Add(30 * minute), At: t0}
	authorize := func(requireCode bool) AuthorizeOIDC {
		return AuthorizeOIDC{SessionHash: "sess#", ClientID: "fc", Scopes: []string{"openid"}, RequireCode: requireCode}
	}
	authorized := func(amr []string, at time.Time) []events.Event {
		return []events.Event{events.OIDCAuthorized{ClientID: "fc", Scopes: []string{"openid"}, ACR: "eidas1", AMR: amr, AuthTime: t0, At: at}}
	}
	grant := OIDCGrant{AccountID: "acc", SessionHash: "sess#", AMR: AMR(events.MethodOTP), AuthAt: t0, ClientID: "fc",
		Sector: "fc", Scopes: []string{"openid", "email"}, IssuedAt: at(minute), ExpiresAt: at(minute + GrantLifetime)}
	token := func(scopes ...string) IssueOIDCToken {
		return IssueOIDCToken{Grant: grant, ClientID: "fc", Scopes: scopes}
	}
	issued := func(at time.Time, scopes ...string) []events.Event {
		return []events.Event{events.OIDCTokenIssued{ClientID: "fc", Scopes: scopes, ACR: "eidas1", At: at}}
	}
	long := SeedPolicy()
	long.SessionLifetime = 3 * time.Hour
	longLogin := login
	longLogin.SessionExpiresAt = t0.Add(3 * time.Hour)
	invalid := &Error{Code: CodeGrantInvalid}
	runRows(t, []row{
		{name: "a_session_opened_with_the_code_authorizes_with_pwd_otp", given: []events.Event{registered, login},
			when: authorize(true), at: at(minute), then: authorized([]string{"pwd", "otp"}, at(minute))},
		{name: "a_trusted_device_session_is_refused_when_the_code_is_required", given: []events.Event{registered, trusted},
			when: authorize(true), at: at(minute), err: &Error{Code: CodeCodeRequired}},
		{name: "a_trusted_device_session_authorizes_with_pwd_swk_otherwise", given: []events.Event{registered, trusted},
			when: authorize(false), at: at(minute), then: authorized([]string{"pwd", "swk"}, at(minute))},
		{name: "a_biometric_session_is_refused_when_the_code_is_required", given: []events.Event{registered, bio},
			when: authorize(true), at: at(minute), err: &Error{Code: CodeCodeRequired}},
		{name: "a_biometric_session_authorizes_with_hwk_otherwise", given: []events.Event{registered, bio},
			when: authorize(false), at: at(minute), then: authorized([]string{"hwk"}, at(minute))},
		{name: "one_millisecond_before_the_session_ends_it_authorizes", given: []events.Event{registered, login},
			when: authorize(false), at: at(30*minute - time.Millisecond), then: authorized([]string{"pwd", "otp"}, at(30*minute-time.Millisecond))},
		{name: "at_the_session_end_it_is_invalid", given: []events.Event{registered, login},
			when: authorize(false), at: at(30 * minute), err: &Error{Code: CodeSessionInvalid}},
		{name: "an_unknown_account_has_no_session", when: authorize(false), at: t0, err: &Error{Code: CodeSessionInvalid}},
		{name: "a_logged_out_session_is_invalid", given: []events.Event{registered, login, events.SessionEnded{SessionHash: "sess#", Reason: "logout", At: at(minute)}},
			when: authorize(false), at: at(2 * minute), err: &Error{Code: CodeSessionInvalid}},
		{name: "a_block_in_force_is_told", given: []events.Event{registered, login, pwBlocked(3, at(minute), at(16*minute))},
			when: authorize(false), at: at(2 * minute), err: locked(ReasonPasswordFailures, at(16*minute))},
		{name: "an_affiliation_pending_since_the_login_is_told", given: []events.Event{registered, login, pendingAffil},
			when: authorize(false), at: at(2 * minute), err: &Error{Code: CodeAffiliationPending}},

		{name: "a_grant_is_exchanged_for_its_scopes", given: []events.Event{registered, login},
			when: token(), at: at(2 * minute), then: issued(at(2*minute), "openid", "email")},
		{name: "a_grant_is_exchanged_for_a_subset", given: []events.Event{registered, login},
			when: token("email"), at: at(2 * minute), then: issued(at(2*minute), "email")},
		{name: "a_scope_outside_the_grant_is_an_invalid_request", given: []events.Event{registered, login},
			when: token("openid", "birth"), at: at(2 * minute), err: InvalidRequest("scopes", "ne doivent demander que des portées accordées par l'autorisation")},
		{name: "another_client_is_refused", given: []events.Event{registered, login},
			when: IssueOIDCToken{Grant: grant, ClientID: "other"}, at: at(2 * minute), err: invalid},
		{name: "a_grant_of_another_account_is_refused", given: []events.Event{registered, login},
			when: IssueOIDCToken{Grant: func() OIDCGrant { g := grant; g.AccountID = "other"; return g }(), ClientID: "fc"}, at: at(2 * minute), err: invalid},
		{name: "one_millisecond_before_its_hour_it_is_exchanged", policy: long, given: []events.Event{registered, longLogin},
			when: token(), at: at(minute + GrantLifetime - time.Millisecond), then: issued(at(minute+GrantLifetime-time.Millisecond), "openid", "email")},
		{name: "at_its_hour_it_is_refused", policy: long, given: []events.Event{registered, longLogin},
			when: token(), at: at(minute + GrantLifetime), err: invalid},
		{name: "after_logout_it_is_refused", given: []events.Event{registered, login, events.SessionEnded{SessionHash: "sess#", Reason: "logout", At: at(2 * minute)}},
			when: token(), at: at(3 * minute), err: invalid},
		{name: "after_a_password_change_by_its_own_session_it_is_refused",
			given: []events.Event{registered, login, events.PasswordChanged{Method: events.MethodChange, PasswordHash: "new", KeptSessionHash: "sess#", At: at(2 * minute)}},
			when:  token(), at: at(3 * minute), err: invalid},
		{name: "a_password_change_before_the_grant_does_not_void_it",
			given: []events.Event{registered, login, events.PasswordChanged{Method: events.MethodChange, PasswordHash: "new", KeptSessionHash: "sess#", At: at(minute - time.Millisecond)}},
			when:  token(), at: at(3 * minute), then: issued(at(3*minute), "openid", "email")},
		{name: "after_an_email_change_by_its_own_session_it_is_refused",
			given: []events.Event{registered, login, events.EmailChanged{EmailSealed: "s2", MaskedEmail: "n***@m***.fr", KeptSessionHash: "sess#", At: at(minute)}},
			when:  token(), at: at(3 * minute), err: invalid},
		{name: "after_deactivation_it_is_refused", given: []events.Event{registered, login, events.AccountDeactivated{Reason: "holder", At: at(2 * minute)}},
			when: token(), at: at(3 * minute), err: invalid},
	})
}
