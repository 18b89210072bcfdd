package commands_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// identity1 is nir1's holder (2 69 05 49 588 157: a woman born in May
// 1969 in commune 588 of département 49).
var identity1 = obj{"given_name": "Valérie", "family_name": "Martin-Lefèvre", "birthdate": "1969-05-23",
	"gender": "female", "birthplace": "49588", "birthcountry": "99100"}

// registerWithIdentity registers nir1 with identity1 and returns the account.
func (h *harness) registerWithIdentity() string {
	h.T.Helper()
	rep := h.Req("account.register", obj{"nir": nir1, "email": "valerie@yahoo.fr", "password": password,
		"email_validated": true, "affiliation": "active", "channel": "backoffice", "identity": identity1})
	if !rep.OK {
		h.T.Fatalf("register with an identity: %+v", rep.Error)
	}
	return rep.AccountID
}

var allScopes = []string{"openid", "profile", "email", "birth"}

// authorize asks oidc.authorize for the fc-demo client and wants it done.
func (h *harness) authorize(session string, scopes []string) Reply {
	h.T.Helper()
	rep := h.Req("oidc.authorize", obj{"session": session, "client_id": "fc-demo", "sector": "fc-demo", "scopes": scopes})
	wantStatus(h.T, rep, contract.StatusAuthorized)
	return rep
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// The whole exchange the provider makes, and what it records: an
// authorization of the web session, its grant for tokens, the userinfo;
// the claims of every scope, the subject not the account id, and nothing
// of the identity, the address or the subject in clear in the stream.
func TestOIDCAuthorizeTokenAndUserinfo(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.registerWithIdentity()
	session := h.Login(acc, nir1, password)
	h.Clock.Advance(time.Minute)

	auth := h.authorize(session, allScopes)
	if !strings.HasPrefix(auth.Grant, "g1.") || !hex64.MatchString(auth.Sub) || strings.Contains(auth.Sub, acc) || auth.Sub == acc {
		t.Fatalf("grant %q sub %q", auth.Grant, auth.Sub)
	}
	if auth.ACR != "eidas1" || !slices.Equal(auth.AMR, []string{"pwd", "otp"}) || auth.AuthTime == nil || !auth.AuthTime.Equal(t0) {
		t.Fatalf("acr %q amr %v auth_time %v, want eidas1 [pwd otp] %s", auth.ACR, auth.AMR, auth.AuthTime, t0)
	}
	a := h.LastEvent(acc, events.TypeOIDCAuthorized).(events.OIDCAuthorized)
	if a.ClientID != "fc-demo" || !slices.Equal(a.Scopes, allScopes) || a.ACR != "eidas1" || !slices.Equal(a.AMR, auth.AMR) || !a.AuthTime.Equal(t0) {
		t.Fatalf("oidc.authorized %+v", a)
	}

	tok := handle(h, 1, "oidc.token", obj{"grant": auth.Grant, "client_id": "fc-demo"})
	wantStatus(t, tok, contract.StatusTokenIssued)
	want := contract.OIDCClaims{Email: "valerie@yahoo.fr", GivenName: "Valérie", FamilyName: "Martin-Lefèvre",
		Birthdate: "1969-05-23", Gender: "female", Birthplace: "49588", Birthcountry: "99100"}
	if tok.Claims == nil || tok.Claims.EmailVerified == nil || !*tok.Claims.EmailVerified {
		t.Fatalf("claims %+v", tok.Claims)
	}
	got := *tok.Claims
	got.EmailVerified = nil
	if got != want || tok.Sub != auth.Sub || tok.ACR != "eidas1" || !slices.Equal(tok.AMR, auth.AMR) || !tok.AuthTime.Equal(t0) {
		t.Fatalf("token: %+v claims %+v", tok, got)
	}
	issued := h.LastEvent(acc, events.TypeOIDCTokenIssued).(events.OIDCTokenIssued)
	if issued.ClientID != "fc-demo" || !slices.Equal(issued.Scopes, allScopes) || issued.ACR != "eidas1" {
		t.Fatalf("oidc.token_issued %+v", issued)
	}

	n := len(h.History(acc))
	info := handle(h, 0, "oidc.userinfo", obj{"grant": auth.Grant, "client_id": "fc-demo", "scopes": []string{"openid", "email"}})
	wantStatus(t, info, contract.StatusTokenIssued)
	if info.Claims == nil || info.Claims.Email != "valerie@yahoo.fr" || info.Claims.GivenName != "" || info.Sub != auth.Sub {
		t.Fatalf("userinfo: %+v %+v", info, info.Claims)
	}
	if len(h.History(acc)) != n {
		t.Fatal("oidc.userinfo recorded an event")
	}

	// Nothing personal in clear in the stream: the identity is sealed,
	// and the subject and grant are not recorded at all.
	for _, env := range h.History(acc) {
		raw, err := events.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"Valérie", "Valerie", "Martin", "1969-05-23", "49588", "valerie@yahoo.fr", auth.Sub, auth.Grant} {
			if strings.Contains(string(raw), secret) {
				t.Fatalf("%s holds %q in clear: %s", env.Type, secret, raw)
			}
		}
	}
	reg := h.LastEvent(acc, events.TypeAccountRegistered).(events.AccountRegistered)
	var sealed domain.Identity
	if err := json.Unmarshal([]byte(h.Open(reg.IdentitySealed, acc)), &sealed); err != nil || sealed.GivenName != "Valérie" || sealed.Birthplace != "49588" {
		t.Fatalf("sealed identity %+v %v", sealed, err)
	}
}

// Scopes select claims (FranceConnect's): email, profile, birth; openid
// alone gives only sub; an account without identity gives only its email.
func TestOIDCClaimsPerScope(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	withID := h.registerWithIdentity()
	without := h.Register(nir2, "paul@mail.fr", password)
	sWith := h.Login(withID, nir1, password)
	sWithout := h.Login(without, nir2, password)
	yes := true
	for _, r := range []struct {
		name    string
		session string
		scopes  []string
		want    *contract.OIDCClaims
	}{
		{"openid_alone_gives_no_claim", sWith, []string{"openid"}, nil},
		{"email_gives_email_and_email_verified", sWith, []string{"openid", "email"}, &contract.OIDCClaims{Email: "valerie@yahoo.fr", EmailVerified: &yes}},
		{"profile_gives_names_gender_birthdate", sWith, []string{"openid", "profile"},
			&contract.OIDCClaims{GivenName: "Valérie", FamilyName: "Martin-Lefèvre", Birthdate: "1969-05-23", Gender: "female"}},
		{"birth_gives_birthplace_and_birthcountry", sWith, []string{"openid", "birth"}, &contract.OIDCClaims{Birthplace: "49588", Birthcountry: "99100"}},
		{"unknown_scopes_are_ignored", sWith, []string{"openid", "phone", "address"}, nil},
		{"without_identity_only_the_email", sWithout, allScopes, &contract.OIDCClaims{Email: "paul@mail.fr", EmailVerified: &yes}},
		{"without_identity_profile_gives_nothing", sWithout, []string{"openid", "profile", "birth"}, nil},
	} {
		t.Run(r.name, func(t *testing.T) {
			auth := h.authorize(r.session, r.scopes)
			for _, subject := range []string{"oidc.token", "oidc.userinfo"} {
				rep := h.Req(subject, obj{"grant": auth.Grant, "client_id": "fc-demo"})
				wantStatus(t, rep, contract.StatusTokenIssued)
				if !sameClaims(rep.Claims, r.want) {
					t.Fatalf("%s: claims %+v, want %+v", subject, rep.Claims, r.want)
				}
			}
		})
	}
}

func sameClaims(a, b *contract.OIDCClaims) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// The pairwise subject (OpenID Connect Core 8.1): one per sector, stable
// across logins and authorizations, never the account id; two accounts
// have two.
func TestOIDCPairwiseSubject(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.registerWithIdentity()
	other := h.Register(nir2, "paul@mail.fr", password)
	sub := func(session, sector string) string {
		rep := h.Req("oidc.authorize", obj{"session": session, "client_id": "fc-demo", "sector": sector, "scopes": []string{"openid"}})
		wantStatus(t, rep, contract.StatusAuthorized)
		return rep.Sub
	}
	s1 := h.Login(acc, nir1, password)
	a := sub(s1, "sector-a")
	if a == acc || strings.Contains(a, strings.ToLower(acc)) || !hex64.MatchString(a) {
		t.Fatalf("sub %q of account %s", a, acc)
	}
	if b := sub(s1, "sector-b"); b == a {
		t.Fatal("two sectors got the same subject")
	}
	s2 := h.Login(acc, nir1, password)
	if again := sub(s2, "sector-a"); again != a {
		t.Fatalf("the subject changed between logins: %s then %s", a, again)
	}
	if o := sub(h.Login(other, nir2, password), "sector-a"); o == a {
		t.Fatal("two accounts got the same subject")
	}
	// Sector omitted: the client's id is the sector.
	rep := h.Req("oidc.authorize", obj{"session": s1, "client_id": "sector-a", "scopes": []string{"openid"}})
	if rep.Sub != a {
		t.Fatalf("sector omitted: sub %q, want the client id's %q", rep.Sub, a)
	}
}

// oidc.authorize's refusals: the web's rules hold behind /authorize.
func TestOIDCAuthorizeRefusals(t *testing.T) {
	for _, r := range []struct {
		name string
		// then prepares the account after a registration (acc) and returns
		// the session and the request's other fields.
		then func(h *harness, acc string) (string, obj)
		want string
		amr  []string
	}{
		{name: "a_forged_session_is_invalid", want: domain.CodeSessionInvalid,
			then: func(h *harness, acc string) (string, obj) { return acc + ".forged", nil }},
		{name: "a_logged_out_session_is_invalid", want: domain.CodeSessionInvalid,
			then: func(h *harness, acc string) (string, obj) {
				s := h.Login(acc, nir1, password)
				wantStatus(h.T, h.Req("session.logout", obj{"session": s}), contract.StatusLoggedOut)
				return s, nil
			}},
		{name: "an_expired_session_is_invalid", want: domain.CodeSessionInvalid,
			then: func(h *harness, acc string) (string, obj) {
				s := h.Login(acc, nir1, password)
				h.Clock.Advance(30 * time.Minute)
				return s, nil
			}},
		{name: "a_trusted_device_login_is_refused_when_the_client_requires_the_code", want: domain.CodeCodeRequired,
			then: func(h *harness, acc string) (string, obj) {
				return h.trustedDeviceSession(acc), obj{"require_code": true}
			}},
		{name: "a_trusted_device_login_is_enough_when_the_client_allows_it", want: contract.StatusAuthorized, amr: []string{"pwd", "swk"},
			then: func(h *harness, acc string) (string, obj) {
				return h.trustedDeviceSession(acc), obj{"require_code": false}
			}},
		{name: "a_login_with_the_code_satisfies_require_code", want: contract.StatusAuthorized, amr: []string{"pwd", "otp"},
			then: func(h *harness, acc string) (string, obj) {
				return h.Login(acc, nir1, password), obj{"require_code": true}
			}},
		{name: "a_block_in_force_is_told", want: domain.CodeAccountLocked,
			then: func(h *harness, acc string) (string, obj) {
				s := h.Login(acc, nir1, password)
				for range 3 {
					h.Req("login.password", obj{"nir": nir1, "password": "wrong-password"})
				}
				return s, nil
			}},
		{name: "an_affiliation_withdrawn_since_the_login_is_told", want: domain.CodeAffiliationMissing,
			then: func(h *harness, acc string) (string, obj) {
				s := h.Login(acc, nir1, password)
				wantStatus(h.T, h.Req("account.set_affiliation", obj{"account_id": acc, "affiliation": "none", "channel": "backoffice"}), contract.StatusAffiliationSet)
				return s, nil
			}},
		{name: "a_missing_client_id_is_an_invalid_request", want: domain.CodeInvalidRequest,
			then: func(h *harness, acc string) (string, obj) { return h.Login(acc, nir1, password), obj{"client_id": ""} }},
		{name: "no_scopes_is_an_invalid_request", want: domain.CodeInvalidRequest,
			then: func(h *harness, acc string) (string, obj) {
				return h.Login(acc, nir1, password), obj{"scopes": []string{}}
			}},
		{name: "a_repeated_scope_is_an_invalid_request", want: domain.CodeInvalidRequest,
			then: func(h *harness, acc string) (string, obj) {
				return h.Login(acc, nir1, password), obj{"scopes": []string{"openid", "openid"}}
			}},
		{name: "a_scope_with_a_space_is_an_invalid_request", want: domain.CodeInvalidRequest,
			then: func(h *harness, acc string) (string, obj) {
				return h.Login(acc, nir1, password), obj{"scopes": []string{"openid email"}}
			}},
	} {
		t.Run(r.name, func(t *testing.T) {
			h := newHarness(t, 1, testPolicy())
			acc := h.Register(nir1, "valerie@yahoo.fr", password)
			session, extra := r.then(h, acc)
			body := obj{"session": session, "client_id": "fc-demo", "scopes": []string{"openid"}}
			for k, v := range extra {
				body[k] = v
			}
			before := count(h.History(acc), events.TypeOIDCAuthorized)
			rep := h.Req("oidc.authorize", body)
			if got := codeOf(rep); got != r.want {
				t.Fatalf("oidc.authorize: %s, want %s (%+v)", got, r.want, rep.Error)
			}
			recorded := count(h.History(acc), events.TypeOIDCAuthorized) - before
			if rep.OK != (recorded == 1) || recorded > 1 {
				t.Fatalf("%d oidc.authorized recorded for %s", recorded, codeOf(rep))
			}
			if rep.OK && !slices.Equal(rep.AMR, r.amr) {
				t.Fatalf("amr %v, want %v", rep.AMR, r.amr)
			}
			if !rep.OK && rep.Error.Message == "" {
				t.Fatal("a refusal without its French message")
			}
		})
	}
}

// trustedDeviceSession logs in once with the code, remembering the
// browser, then again with the password and the device: the second
// session was opened without a code.
func (h *harness) trustedDeviceSession(acc string) string {
	h.T.Helper()
	first := h.Req("login.otp.verify", obj{"login_id": h.StartLogin(nir1, password), "code": h.LastCode(acc), "remember_device": true})
	if !first.OK || first.DeviceToken == "" {
		h.T.Fatalf("remember the device: %+v", first.Error)
	}
	rep := h.Req("login.password", obj{"nir": nir1, "password": password, "device_token": first.DeviceToken})
	if rep.Status != contract.StatusAuthenticated {
		h.T.Fatalf("login with a trusted device: %s %+v", rep.Status, rep.Error)
	}
	return rep.Session.Token
}

// grant_invalid, case by case: a token never survives its session, a
// change of credentials, a deactivation; a grant does not open for another
// client, after its hour, or tampered.
func TestOIDCGrantInvalid(t *testing.T) {
	long := testPolicy()
	long.SessionLifetime = 3 * time.Hour // so that the grant's own hour shows
	for _, r := range []struct {
		name   string
		policy domain.Policy
		// then acts after the authorization (session s, grant g) and
		// returns the request's body.
		then func(h *harness, acc, s, g string) obj
		want string
	}{
		{name: "a_fresh_grant_is_exchanged", want: contract.StatusTokenIssued,
			then: func(h *harness, acc, s, g string) obj { return obj{"grant": g, "client_id": "fc-demo"} }},
		{name: "a_grant_for_another_client", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj { return obj{"grant": g, "client_id": "other-client"} }},
		{name: "a_tampered_grant", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				b := []byte(g)
				i := len(b) - 5
				b[i] = map[bool]byte{true: 'A', false: 'B'}[b[i] != 'A']
				return obj{"grant": string(b), "client_id": "fc-demo"}
			}},
		{name: "a_forged_grant", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				return obj{"grant": "g1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "client_id": "fc-demo"}
			}},
		{name: "a_value_sealed_for_something_else", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				return obj{"grant": "g1." + strings.TrimPrefix(h.Keys.Seal(`{"a":"`+acc+`"}`, acc), "v1."), "client_id": "fc-demo"}
			}},
		{name: "after_logout", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				wantStatus(h.T, h.Req("session.logout", obj{"session": s}), contract.StatusLoggedOut)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_the_session_expired", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				h.Clock.Advance(30 * time.Minute)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_its_hour_though_the_session_is_open", policy: long, want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				h.Clock.Advance(time.Hour)
				wantStatus(h.T, h.Req("session.check", obj{"session": s}), contract.StatusSessionValid)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "one_second_before_its_hour", policy: long, want: contract.StatusTokenIssued,
			then: func(h *harness, acc, s, g string) obj {
				h.Clock.Advance(time.Hour - time.Second)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_a_password_change_by_the_same_session", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				h.Clock.Advance(time.Second)
				h.changePassword(acc, s, "Nouveau-mot-2025")
				wantStatus(h.T, h.Req("session.check", obj{"session": s}), contract.StatusSessionValid) // the session goes on
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_a_password_reset", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				h.Clock.Advance(time.Second)
				token := h.resetToken(acc, nir1)
				wantStatus(h.T, h.Req("password.reset.complete", obj{"token": token, "new_password": "Nouveau-mot-2025"}), contract.StatusPasswordReset)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_an_email_change_by_the_same_session", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				h.Clock.Advance(time.Second)
				wantStatus(h.T, h.Req("email.change", obj{"session": s, "new_email": "nouvelle@mail.fr"}), contract.StatusCodeSent)
				code := h.Open(h.LastEvent(acc, events.TypeEmailChangeCodeIssued).(events.EmailChangeCodeIssued).CodeSealed, acc)
				wantStatus(h.T, h.Req("email.confirm", obj{"session": s, "code": code}), contract.StatusEmailChanged)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_deactivation", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				wantStatus(h.T, h.Req("account.deactivate", obj{"account_id": acc, "channel": "backoffice"}), contract.StatusDeactivated)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "after_deactivation_and_reactivation", want: domain.CodeGrantInvalid,
			then: func(h *harness, acc, s, g string) obj {
				wantStatus(h.T, h.Req("account.deactivate", obj{"account_id": acc, "channel": "backoffice"}), contract.StatusDeactivated)
				h.Register(nir1, "valerie@yahoo.fr", password)
				return obj{"grant": g, "client_id": "fc-demo"}
			}},
		{name: "a_scope_outside_the_grant", want: domain.CodeInvalidRequest,
			then: func(h *harness, acc, s, g string) obj {
				return obj{"grant": g, "client_id": "fc-demo", "scopes": []string{"openid", "birth"}}
			}},
		{name: "a_subset_of_the_grants_scopes", want: contract.StatusTokenIssued,
			then: func(h *harness, acc, s, g string) obj {
				return obj{"grant": g, "client_id": "fc-demo", "scopes": []string{"openid"}}
			}},
		{name: "a_missing_grant", want: domain.CodeInvalidRequest,
			then: func(h *harness, acc, s, g string) obj { return obj{"client_id": "fc-demo"} }},
	} {
		t.Run(r.name, func(t *testing.T) {
			p := r.policy
			if p.Name == "" {
				p = testPolicy()
			}
			h := newHarness(t, 2, p)
			acc := h.Register(nir1, "valerie@yahoo.fr", password)
			s := h.Login(acc, nir1, password)
			g := h.authorize(s, []string{"openid", "email"}).Grant
			body := r.then(h, acc, s, g)
			// On the instance that did not authorize: a stale cache would show.
			before := count(h.History(acc), events.TypeOIDCTokenIssued)
			tok := handle(h, 1, "oidc.token", body)
			if got := codeOf(tok); got != r.want {
				t.Fatalf("oidc.token: %s, want %s (%+v)", got, r.want, tok.Error)
			}
			if recorded := count(h.History(acc), events.TypeOIDCTokenIssued) - before; recorded != map[bool]int{true: 1, false: 0}[tok.OK] {
				t.Fatalf("%d oidc.token_issued recorded for %s", recorded, codeOf(tok))
			}
			if r.want == domain.CodeInvalidRequest && tok.Error.Field == "" {
				t.Fatal("invalid_request without its field")
			}
			info := handle(h, 0, "oidc.userinfo", body)
			if got := codeOf(info); got != r.want {
				t.Fatalf("oidc.userinfo: %s, want %s (%+v)", got, r.want, info.Error)
			}
		})
	}
}

// Idempotency (issue 11, kind 1): the same request_id and body is one
// request, answered from what it recorded; the same request_id with
// another body is another request, never the first's reply.
func TestOIDCRequestIDs(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	s := h.Login(acc, nir1, password)
	body := obj{"request_id": "authz-1", "session": s, "client_id": "fc-demo", "scopes": []string{"openid", "email"}}
	first := handle(h, 0, "oidc.authorize", body)
	again := handle(h, 1, "oidc.authorize", body) // another instance: answered from the stream
	wantStatus(t, again, contract.StatusAuthorized)
	if n := count(h.History(acc), events.TypeOIDCAuthorized); n != 1 {
		t.Fatalf("a retried oidc.authorize recorded %d facts", n)
	}
	if again.Sub != first.Sub || !slices.Equal(again.AMR, first.AMR) || !again.AuthTime.Equal(*first.AuthTime) {
		t.Fatalf("retry: %+v, first %+v", again, first)
	}
	wantStatus(t, h.Req("oidc.token", obj{"grant": again.Grant, "client_id": "fc-demo"}), contract.StatusTokenIssued)

	other := obj{"request_id": "authz-1", "session": s, "client_id": "other-client", "scopes": []string{"openid"}}
	rep := handle(h, 0, "oidc.authorize", other)
	wantStatus(t, rep, contract.StatusAuthorized)
	if n := count(h.History(acc), events.TypeOIDCAuthorized); n != 2 {
		t.Fatalf("the same request_id with another body recorded %d facts in all, want 2", n)
	}
	if last := h.LastEvent(acc, events.TypeOIDCAuthorized).(events.OIDCAuthorized); last.ClientID != "other-client" {
		t.Fatalf("recorded %+v", last)
	}
	wantError(t, h.Req("oidc.token", obj{"grant": rep.Grant, "client_id": "fc-demo"}), domain.CodeGrantInvalid)

	tokBody := obj{"request_id": "tok-1", "grant": again.Grant, "client_id": "fc-demo"}
	handle(h, 0, "oidc.token", tokBody)
	wantStatus(t, handle(h, 1, "oidc.token", tokBody), contract.StatusTokenIssued)
	if n := count(h.History(acc), events.TypeOIDCTokenIssued); n != 2 { // the one above and tok-1 once
		t.Fatalf("%d oidc.token_issued, want 2", n)
	}
}

// Token requests in parallel with a logout, on two instances: every token
// issued is recorded before the session's end, and none after it.
func TestOIDCTokensInParallelWithALogout(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	s := h.Login(acc, nir1, password)
	g := h.authorize(s, []string{"openid", "email"}).Grant
	const n = 24
	var wg sync.WaitGroup
	results := make([]Reply, n)
	for i := range n {
		wg.Go(func() {
			if i == n/2 {
				h.ReqAsync("session.logout", obj{"session": s})
			}
			results[i] = h.ReqAsync("oidc.token", obj{"grant": g, "client_id": "fc-demo"})
		})
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.OK && r.Status == contract.StatusTokenIssued:
			ok++
		case !r.OK && r.Error.Code == domain.CodeGrantInvalid:
		default:
			t.Fatalf("token: %+v %+v", r, r.Error)
		}
	}
	t.Logf("%d of %d tokens issued around the logout", ok, n)
	hist := h.History(acc)
	ended := slices.IndexFunc(hist, func(e events.Envelope) bool { return e.Type == events.TypeSessionEnded })
	if ended < 0 {
		t.Fatal("no session.ended")
	}
	if got := count(hist, events.TypeOIDCTokenIssued); got != ok {
		t.Fatalf("%d tokens answered, %d recorded", ok, got)
	}
	if got := count(hist[ended:], events.TypeOIDCTokenIssued); got != 0 {
		t.Fatalf("%d tokens recorded after the logout", got)
	}
	wantError(t, h.Req("oidc.token", obj{"grant": g, "client_id": "fc-demo"}), domain.CodeGrantInvalid)
}

// The identity fields at registration and import: checked against the
// NIR (a row per field at fault), refused without recording anything.
func TestIdentityFieldsAreCheckedAgainstTheNIR(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	with := func(k, v string) obj {
		id := obj{}
		for key, val := range identity1 {
			id[key] = val
		}
		id[k] = v
		return id
	}
	hash := "$2b$04$" + strings.Repeat("a", 53)
	for _, r := range []struct {
		name, field string
		identity    obj
	}{
		{"another_year", "identity.birthdate", with("birthdate", "1970-05-23")},
		{"another_month", "identity.birthdate", with("birthdate", "1969-06-23")},
		{"another_sex", "identity.gender", with("gender", "male")},
		{"another_departement", "identity.birthplace", with("birthplace", "48588")},
		{"born_abroad_for_a_nir_born_in_france", "identity.birthcountry", obj{"given_name": "Valérie", "family_name": "Martin",
			"birthdate": "1969-05-23", "gender": "female", "birthplace": "", "birthcountry": "99350"}},
		{"a_name_with_digits", "identity.given_name", with("given_name", "V4lérie")},
		{"an_unknown_identity_field", "nickname", with("nickname", "Val")},
	} {
		for _, subject := range []string{"account.register", "account.import", "account.import_batch"} {
			t.Run(r.name+"/"+subject, func(t *testing.T) {
				before := h.StreamCount()
				var rep Reply
				switch subject {
				case "account.register":
					rep = h.Req(subject, obj{"nir": nir1, "email": "valerie@yahoo.fr", "password": password, "email_validated": true, "affiliation": "active", "identity": r.identity})
				case "account.import":
					rep = h.Req(subject, obj{"nir": nir1, "email": "valerie@yahoo.fr", "password_hash": hash, "email_validated": true, "affiliation": "active", "identity": r.identity})
				default:
					batch := h.Req(subject, obj{"rows": []obj{{"nir": nir1, "email": "valerie@yahoo.fr", "password_hash": hash, "email_validated": true, "affiliation": "active", "identity": r.identity}}})
					if r.field == "nickname" { // an unknown field refuses the whole body
						rep = batch
						break
					}
					wantStatus(t, batch, contract.StatusImported)
					rep = Reply{Error: batch.Results[0].Error}
				}
				wantError(t, rep, domain.CodeInvalidRequest)
				if rep.Error.Field != r.field {
					t.Fatalf("field %q, want %q", rep.Error.Field, r.field)
				}
				if h.StreamCount() != before {
					t.Fatal("a refused identity recorded something")
				}
			})
		}
	}
	// Imported with an identity, the claims come out.
	rep := h.Req("account.import_batch", obj{"rows": []obj{{"nir": nir1, "email": "valerie@yahoo.fr", "password_hash": hash,
		"email_validated": true, "affiliation": "active", "identity": identity1}}})
	if !rep.OK || !rep.Results[0].OK {
		t.Fatalf("import: %+v", rep.Results)
	}
	reg := h.LastEvent(rep.Results[0].AccountID, events.TypeAccountRegistered).(events.AccountRegistered)
	if !strings.Contains(h.Open(reg.IdentitySealed, rep.Results[0].AccountID), `"birthplace":"49588"`) {
		t.Fatal("the imported identity is not sealed in account.registered")
	}
}

// session.logout with if_sub (end_session's id_token_hint): the session is
// closed only if its account's pairwise subject for sector is if_sub;
// another account's subject, or the right one for another sector, is
// session_invalid and appends nothing. Without both fields the web's
// logout is unchanged; malformed ones are invalid_request naming the field.
func TestOIDCLogoutIfSub(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.registerWithIdentity()
	other := h.Register(nir2, "paul@mail.fr", password)
	sub := func(session, sector string) string {
		rep := h.Req("oidc.authorize", obj{"session": session, "client_id": "fc-demo", "sector": sector, "scopes": []string{"openid"}})
		wantStatus(t, rep, contract.StatusAuthorized)
		return rep.Sub
	}
	otherSub := sub(h.Login(other, nir2, password), "sector-a")
	for _, r := range []struct {
		name  string
		body  func(s, own string) obj
		want  string
		field string
	}{
		{name: "its_own_subject_closes_it", want: contract.StatusLoggedOut,
			body: func(s, own string) obj { return obj{"session": s, "if_sub": own, "sector": "sector-a"} }},
		{name: "another_accounts_subject_is_refused", want: domain.CodeSessionInvalid,
			body: func(s, own string) obj { return obj{"session": s, "if_sub": otherSub, "sector": "sector-a"} }},
		{name: "its_subject_of_another_sector_is_refused", want: domain.CodeSessionInvalid,
			body: func(s, own string) obj { return obj{"session": s, "if_sub": own, "sector": "sector-b"} }},
		{name: "without_if_sub_the_web_logout_is_unchanged", want: contract.StatusLoggedOut,
			body: func(s, own string) obj { return obj{"session": s} }},
		{name: "if_sub_not_hex", want: domain.CodeInvalidRequest, field: "if_sub",
			body: func(s, own string) obj {
				return obj{"session": s, "if_sub": strings.ToUpper(own), "sector": "sector-a"}
			}},
		{name: "if_sub_too_long", want: domain.CodeInvalidRequest, field: "if_sub",
			body: func(s, own string) obj { return obj{"session": s, "if_sub": own + "0", "sector": "sector-a"} }},
		{name: "sector_without_if_sub", want: domain.CodeInvalidRequest, field: "if_sub",
			body: func(s, own string) obj { return obj{"session": s, "sector": "sector-a"} }},
		{name: "if_sub_without_sector", want: domain.CodeInvalidRequest, field: "sector",
			body: func(s, own string) obj { return obj{"session": s, "if_sub": own} }},
		{name: "sector_too_long", want: domain.CodeInvalidRequest, field: "sector",
			body: func(s, own string) obj { return obj{"session": s, "if_sub": own, "sector": strings.Repeat("a", 256)} }},
	} {
		t.Run(r.name, func(t *testing.T) {
			s := h.Login(acc, nir1, password)
			own := sub(s, "sector-a")
			before := h.StreamCount()
			rep := h.Req("session.logout", r.body(s, own))
			if codeOf(rep) != r.want || (r.field != "" && rep.Error.Field != r.field) {
				t.Fatalf("got %s (%+v), want %s on %q", codeOf(rep), rep.Error, r.want, r.field)
			}
			check := h.Req("session.check", obj{"session": s})
			if r.want == contract.StatusLoggedOut {
				if codeOf(check) != domain.CodeSessionInvalid {
					t.Fatalf("logged out, but session.check says %s", codeOf(check))
				}
				return
			}
			if after := h.StreamCount(); after != before {
				t.Fatalf("a refused logout appended %d events", after-before)
			}
			if codeOf(check) != "session_valid" {
				t.Fatalf("a refused logout closed the session: %s", codeOf(check))
			}
		})
	}
}
