package commands_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// An idempotency key identifies one request, not a slot (issue 11, kind 1):
// the same request_id with the same body is a retry and gets the first
// reply, on any instance, appending nothing; with another body it is
// another request, decided and recorded as such. One row per command that
// takes a request_id, i.e. every command.
type idemRow struct {
	subject string
	// setup prepares an account and returns two different bodies that will
	// share one request_id. a always records one event.
	setup func(t *testing.T, h *harness) (acc string, a, b obj)
	wantA string // status or error code of a
	wantB string // status or error code of b, decided on the state a left
	// recordsB: b, a new request, records an event of its own.
	recordsB bool
	// secret: a's reply holds a fresh secret the stream keeps only hashed,
	// so another instance cannot give it again and answers `unavailable`.
	secret bool
	// readOnly: the command records nothing, a included (session.check).
	readOnly bool
}

func codeOf(rep Reply) string {
	if rep.OK {
		return rep.Status
	}
	return rep.Error.Code
}

// wrongCode returns the n-th code of right's length that is not right.
func wrongCode(right string, n int) string {
	for i := n; ; i += 1000 {
		if c := fmt.Sprintf("%0*d", len(right), i); c != right {
			return c
		}
	}
}

func idemRows() []idemRow {
	withSession := func(t *testing.T, h *harness) (string, string) {
		acc := h.Register(nir1, "valerie@yahoo.fr", password)
		return acc, h.Login(acc, nir1, password)
	}
	return []idemRow{
		{subject: "login.password", wantA: domain.CodeInvalidCredentials, wantB: domain.CodeInvalidCredentials, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				return acc, obj{"nir": nir1, "password": "faux-mot-1"}, obj{"nir": nir1, "password": "faux-mot-2"}
			}},
		{subject: "login.otp.send", wantA: contract.StatusOTPSent, wantB: contract.StatusOTPSent, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				login := h.Req("login.password", obj{"nir": nir1, "password": password}).LoginID
				return acc, obj{"login_id": login}, obj{"login_id": login, "channel": "app"}
			}},
		{subject: "login.otp.verify", wantA: domain.CodeOTPInvalid, wantB: domain.CodeOTPInvalid, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				login := h.StartLogin(nir1, password)
				code := h.LastCode(acc)
				return acc, obj{"login_id": login, "code": wrongCode(code, 1)}, obj{"login_id": login, "code": wrongCode(code, 2)}
			}},
		{subject: "session.logout", wantA: contract.StatusLoggedOut, wantB: contract.StatusLoggedOut,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				return acc, obj{"session": s}, obj{"session": s, "channel": "app"}
			}},
		{subject: contract.CmdSessionCheck, wantA: contract.StatusSessionValid, wantB: contract.StatusSessionValid, readOnly: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				return acc, obj{"session": s}, obj{"session": s, "channel": "app"}
			}},
		{subject: "account.register", wantA: contract.StatusRegistered, wantB: domain.CodeAccountExists,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				a := obj{"nir": nir2, "email": "paul@example.fr", "password": password, "email_validated": true, "affiliation": "active"}
				b := obj{"nir": nir2, "email": "autre@example.fr", "password": password, "email_validated": true, "affiliation": "active"}
				return "", a, b
			}},
		{subject: "account.deactivate", wantA: contract.StatusDeactivated, wantB: contract.StatusDeactivated,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				return acc, obj{"account_id": acc, "reason": "holder"}, obj{"account_id": acc, "reason": "fraud"}
			}},
		{subject: "account.set_affiliation", wantA: contract.StatusAffiliationSet, wantB: contract.StatusAffiliationSet, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				return acc, obj{"account_id": acc, "affiliation": "pending"}, obj{"account_id": acc, "affiliation": "none"}
			}},
		{subject: "account.unlock", wantA: contract.StatusUnlocked, wantB: contract.StatusUnlocked,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				for i := range 3 {
					h.Req("login.password", obj{"nir": nir1, "password": fmt.Sprintf("faux-%d", i)})
				}
				return acc, obj{"account_id": acc}, obj{"nir": nir1}
			}},
		{subject: "password.change.start", wantA: contract.StatusCodeSent, wantB: contract.StatusCodeSent, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				return acc, obj{"session": s}, obj{"session": s, "channel": "app"}
			}},
		{subject: "password.change.verify_code", wantA: domain.CodeCodeInvalid, wantB: domain.CodeCodeInvalid, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				h.Req("password.change.start", obj{"session": s})
				code := h.changeCode(acc)
				return acc, obj{"session": s, "code": wrongCode(code, 1)}, obj{"session": s, "code": wrongCode(code, 2)}
			}},
		{subject: "password.change.complete", wantA: contract.StatusPasswordChanged, wantB: domain.CodeCodeInvalid,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				h.Req("password.change.start", obj{"session": s})
				h.Req("password.change.verify_code", obj{"session": s, "code": h.changeCode(acc)})
				return acc, obj{"session": s, "new_password": "Nouveau-mot-2025"}, obj{"session": s, "new_password": "Encore-autre-2025"}
			}},
		{subject: "password.reset.request", wantA: contract.StatusResetRequested, wantB: contract.StatusResetRequested, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				return acc, obj{"nir": nir1}, obj{"nir": nir1, "channel": "app"}
			}},
		{subject: "password.reset.complete", wantA: contract.StatusPasswordReset, wantB: domain.CodeResetTokenInvalid,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				h.Req("password.reset.request", obj{"nir": nir1})
				token := h.Open(h.LastEvent(acc, events.TypePasswordResetRequested).(events.PasswordResetRequested).TokenSealed, acc)
				return acc, obj{"token": token, "new_password": "Nouveau-mot-2025"}, obj{"token": token, "new_password": "Encore-autre-2025"}
			}},
		{subject: "email.change", wantA: contract.StatusCodeSent, wantB: contract.StatusCodeSent, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				return acc, obj{"session": s, "new_email": "nouvelle@example.fr"}, obj{"session": s, "new_email": "autre@example.fr"}
			}},
		{subject: "email.confirm", wantA: domain.CodeCodeInvalid, wantB: domain.CodeCodeInvalid, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				h.Req("email.change", obj{"session": s, "new_email": "nouvelle@example.fr"})
				e := h.LastEvent(acc, events.TypeEmailChangeCodeIssued).(events.EmailChangeCodeIssued)
				code := h.Open(e.CodeSealed, acc)
				return acc, obj{"session": s, "code": wrongCode(code, 1)}, obj{"session": s, "code": wrongCode(code, 2)}
			}},
		{subject: "biometric.offer", wantA: contract.StatusOfferRecorded, wantB: contract.StatusOfferRecorded, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				s := h.appLogin(acc, "phone-1").Session.Token
				return acc, obj{"session": s, "response": "later", "channel": "app"}, obj{"session": s, "response": "never", "channel": "app"}
			}},
		{subject: "biometric.enroll", wantA: contract.StatusBiometricEnrolled, wantB: contract.StatusBiometricEnrolled, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				s := h.appLogin(acc, "phone-1").Session.Token
				return acc, obj{"session": s, "device_id": "phone-1", "public_key": newPhone(t, "phone-1").publicKey(t), "channel": "app"},
					obj{"session": s, "device_id": "phone-2", "public_key": newPhone(t, "phone-2").publicKey(t), "channel": "app"}
			}},
		{subject: "biometric.challenge", wantA: contract.StatusChallengeIssued, wantB: contract.StatusChallengeIssued, recordsB: true, secret: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				enrolled(t, h, acc, newPhone(t, "phone-1"))
				return acc, obj{"device_id": "phone-1", "channel": "app"}, obj{"device_id": "phone-1", "channel": "app", "client_ip": "192.0.2.1"}
			}},
		{subject: "biometric.login", wantA: domain.CodeBiometricFailed, wantB: domain.CodeBiometricFailed,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				p := enrolled(t, h, acc, newPhone(t, "phone-1"))
				ch := h.Req("biometric.challenge", obj{"device_id": p.id, "channel": "app"}).Challenge
				thief := newPhone(t, "phone-1")
				return acc, obj{"device_id": p.id, "challenge": ch, "signature": thief.sign(t, ch), "channel": "app"},
					obj{"device_id": p.id, "challenge": ch, "signature": thief.sign(t, ch), "channel": "app"}
			}},
		{subject: "account.revoke_biometrics", wantA: contract.StatusBiometricsRevoked, wantB: contract.StatusBiometricsRevoked, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				enrolled(t, h, acc, newPhone(t, "phone-1"))
				enrolled(t, h, acc, newPhone(t, "phone-2"))
				return acc, obj{"account_id": acc, "device_id": "phone-1"}, obj{"account_id": acc}
			}},
		{subject: "account.import", wantA: contract.StatusRegistered, wantB: domain.CodeAccountExists,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				hash := secrets.HashPassword(password, cheapArgon2)
				a := obj{"nir": nir2, "email": "paul@example.fr", "password_hash": hash, "email_validated": true, "affiliation": "active"}
				b := obj{"nir": nir2, "email": "autre@example.fr", "password_hash": hash, "email_validated": true, "affiliation": "active"}
				return "", a, b
			}},
		{subject: "account.import_batch", wantA: contract.StatusImported, wantB: contract.StatusImported,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				hash := secrets.HashPassword(password, cheapArgon2)
				a := obj{"rows": []obj{{"nir": nir2, "email": "paul@example.fr", "password_hash": hash, "email_validated": true, "affiliation": "active"}}}
				b := obj{"rows": []obj{{"nir": nir2, "email": "autre@example.fr", "password_hash": hash, "email_validated": true, "affiliation": "active"}}}
				return "", a, b
			}},
		// A retried authorization gets the same grant, byte for byte (a
		// deterministic seal of what the stream holds); another client under
		// the same request_id is another authorization.
		{subject: contract.CmdOIDCAuthorize, wantA: contract.StatusAuthorized, wantB: contract.StatusAuthorized, recordsB: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				return acc, obj{"session": s, "client_id": "fc-demo", "scopes": []string{"openid"}},
					obj{"session": s, "client_id": "other-client", "scopes": []string{"openid"}}
			}},
		{subject: contract.CmdOIDCToken, wantA: contract.StatusTokenIssued, wantB: domain.CodeGrantInvalid,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				g := h.authorize(s, []string{"openid", "email"}).Grant
				return acc, obj{"grant": g, "client_id": "fc-demo"}, obj{"grant": g, "client_id": "other-client"}
			}},
		{subject: contract.CmdOIDCUserinfo, wantA: contract.StatusTokenIssued, wantB: contract.StatusTokenIssued, readOnly: true,
			setup: func(t *testing.T, h *harness) (string, obj, obj) {
				acc, s := withSession(t, h)
				g := h.authorize(s, []string{"openid", "email"}).Grant
				return acc, obj{"grant": g, "client_id": "fc-demo"}, obj{"grant": g, "client_id": "fc-demo", "scopes": []string{"openid"}}
			}},
	}
}

// enrolled logs in on the app and enrols the phone's key.
func enrolled(t *testing.T, h *harness, acc string, p phone) phone {
	t.Helper()
	s := h.appLogin(acc, p.id).Session.Token
	if r := h.Req("biometric.enroll", obj{"session": s, "device_id": p.id, "public_key": p.publicKey(t), "channel": "app"}); !r.OK {
		t.Fatalf("enrol %s: %+v", p.id, r.Error)
	}
	return p
}

func withID(o obj, requestID string) obj {
	o2 := obj{"request_id": requestID}
	for k, v := range o {
		o2[k] = v
	}
	return o2
}

func body(t *testing.T, o obj, requestID string) []byte {
	t.Helper()
	b, err := json.Marshal(withID(o, requestID))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestIDIdentifiesOneRequest(t *testing.T) {
	rows := idemRows()
	if len(rows) != len(contract.Commands()) {
		t.Fatalf("%d rows for %d commands: every command takes a request_id", len(rows), len(contract.Commands()))
	}
	for _, r := range rows {
		t.Run(r.subject, func(t *testing.T) {
			h := newHarness(t, 2, testPolicy())
			acc, a, b := r.setup(t, h)
			streamBefore := h.StreamCount()
			decode := func(raw []byte) Reply {
				var rep Reply
				if err := json.Unmarshal(raw, &rep); err != nil {
					t.Fatal(err)
				}
				return rep
			}

			first := h.Raw(r.subject, body(t, a, "r1"))
			if got := codeOf(decode(first)); got != r.wantA {
				t.Fatalf("first try: %s, want %s\n%s", got, r.wantA, first)
			}
			wantAppended := uint64(1)
			if r.readOnly {
				wantAppended = 0
			}
			if n := h.StreamCount(); n != streamBefore+wantAppended {
				t.Fatalf("first try appended %d events, want %d", n-streamBefore, wantAppended)
			}
			if acc == "" {
				acc = decode(first).AccountID
			}
			if rs := decode(first).Results; acc == "" && len(rs) > 0 {
				acc = rs[0].AccountID // account.import_batch: the first row's
			}
			recorded := len(h.History(acc))

			// Same id, same body: the first reply, nothing appended, on the
			// instance that answered and on one that never saw the request.
			for i, svc := range h.Svcs {
				again := svc.Handle(context.Background(), r.subject, body(t, a, "r1"))
				switch {
				case bytes.Equal(again, first):
				case r.secret && codeOf(decode(again)) == domain.CodeUnavailable:
				default:
					t.Fatalf("retry on instance %d:\n got  %s\n want %s", i, again, first)
				}
			}
			if n := len(h.History(acc)); n != recorded {
				t.Fatalf("retries appended %d events", n-recorded)
			}

			// Same id, another body: another request, decided on what the
			// first left and recorded if it records anything.
			second := decode(h.Raw(r.subject, body(t, b, "r1")))
			if got := codeOf(second); got != r.wantB {
				t.Fatalf("other body under the same request_id: %s, want %s (%+v)", got, r.wantB, second.Error)
			}
			want := recorded
			if r.recordsB {
				want++
			}
			if n := len(h.History(acc)); n != want {
				t.Fatalf("other body under the same request_id: account has %d events, want %d", n, want)
			}
		})
	}
}

// The seed's lockouts hold whatever request_id a client reuses: every
// failure is recorded, and the third one blocks (issue 11's example, and
// the same path for codes and confirmation codes).
type lockRow struct {
	name    string
	subject string
	policy  func() domain.Policy
	// setup returns the i-th wrong body and the fact a failure records.
	setup   func(t *testing.T, h *harness) (acc string, wrong func(i int) obj, failure string)
	blocked string // the code of the third failure and of every attempt after it
	first   string // the code of the first two failures
}

func lockRows() []lockRow {
	return []lockRow{
		{name: "wrong_passwords", subject: "login.password", first: domain.CodeInvalidCredentials, blocked: domain.CodeAccountLocked,
			setup: func(t *testing.T, h *harness) (string, func(int) obj, string) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				return acc, func(i int) obj { return obj{"nir": nir1, "password": fmt.Sprintf("faux-%d", i)} }, events.TypePasswordFailed
			}},
		{name: "wrong_security_codes", subject: "login.otp.verify", first: domain.CodeOTPInvalid, blocked: domain.CodeAccountLocked,
			setup: func(t *testing.T, h *harness) (string, func(int) obj, string) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				login := h.StartLogin(nir1, password)
				code := h.LastCode(acc)
				return acc, func(i int) obj { return obj{"login_id": login, "code": wrongCode(code, i)} }, events.TypeOTPFailed
			}},
		{name: "wrong_password_change_codes", subject: "password.change.verify_code", first: domain.CodeCodeInvalid, blocked: domain.CodeCodeAttemptsExceeded,
			setup: func(t *testing.T, h *harness) (string, func(int) obj, string) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				s := h.Login(acc, nir1, password)
				h.Req("password.change.start", obj{"session": s})
				code := h.changeCode(acc)
				return acc, func(i int) obj { return obj{"session": s, "code": wrongCode(code, i)} }, events.TypeChangeCodeFailed
			}},
		{name: "wrong_email_change_codes", subject: "email.confirm", first: domain.CodeCodeInvalid, blocked: domain.CodeCodeAttemptsExceeded,
			setup: func(t *testing.T, h *harness) (string, func(int) obj, string) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				s := h.Login(acc, nir1, password)
				h.Req("email.change", obj{"session": s, "new_email": "nouvelle@example.fr"})
				code := h.Open(h.LastEvent(acc, events.TypeEmailChangeCodeIssued).(events.EmailChangeCodeIssued).CodeSealed, acc)
				return acc, func(i int) obj { return obj{"session": s, "code": wrongCode(code, i)} }, events.TypeChangeCodeFailed
			}},
		{name: "wrong_current_passwords_strict", subject: "password.change.start", first: domain.CodeInvalidCredentials, blocked: domain.CodeAccountLocked,
			policy: func() domain.Policy { p := domain.StrictPolicy(); p.Argon2 = cheapArgon2; return p },
			setup: func(t *testing.T, h *harness) (string, func(int) obj, string) {
				acc := h.Register(nir1, "valerie@yahoo.fr", "Motdepasse-2023-long")
				s := h.Login(acc, nir1, "Motdepasse-2023-long")
				return acc, func(i int) obj { return obj{"session": s, "current_password": fmt.Sprintf("faux-%d", i)} }, events.TypePasswordFailed
			}},
	}
}

// start runs the row's setup on two instances with the row's policy.
func (r lockRow) start(t *testing.T) (h *harness, acc string, wrong func(int) obj, failure string) {
	p := testPolicy()
	if r.policy != nil {
		p = r.policy()
	}
	h = newHarness(t, 2, p)
	acc, wrong, failure = r.setup(t, h)
	return h, acc, wrong, failure
}

func TestReusedRequestIDNeverHidesAFailure(t *testing.T) {
	for _, r := range lockRows() {
		t.Run(r.name, func(t *testing.T) {
			h, acc, wrong, failure := r.start(t)
			for i := range 6 {
				want := r.first
				if i >= 2 {
					want = r.blocked
				}
				rep := h.Req(r.subject, withID(wrong(i), "r1"))
				if got := codeOf(rep); got != want {
					t.Fatalf("attempt %d: %s, want %s", i+1, got, want)
				}
			}
			if n := count(h.History(acc), failure); n != 3 {
				t.Fatalf("%d failures recorded, want 3", n)
			}
			if r.subject == "login.password" {
				// The right password under the same request_id is refused
				// until the block ends.
				wantError(t, h.Req("login.password", obj{"nir": nir1, "password": password, "request_id": "r1"}), domain.CodeAccountLocked)
			}
		})
	}
}

// The same attack in parallel, over two instances: still exactly three
// failures recorded, and every reply says what the stream holds.
func TestReusedRequestIDNeverHidesAFailureInParallel(t *testing.T) {
	for _, r := range lockRows() {
		t.Run(r.name, func(t *testing.T) {
			h, acc, wrong, failure := r.start(t)
			const n = 12
			codes := parallel(t, n, func(i int) Reply {
				return h.Req(r.subject, withID(wrong(i), "r1"))
			})
			if codes[r.first] != 2 || codes[r.blocked] != n-2 {
				t.Fatalf("replies %v; want 2 %s and %d %s", codes, r.first, n-2, r.blocked)
			}
			if got := count(h.History(acc), failure); got != 3 {
				t.Fatalf("%d failures recorded, want 3", got)
			}
		})
	}
}

// Identical requests sent at once, to both instances: one fact, and every
// reply is the first one's.
func TestIdenticalRequestsInParallelRecordOnce(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	b := body(t, obj{"nir": nir1, "password": "faux-mot"}, "same")
	replies := make(chan string, 20)
	parallel(t, 20, func(int) Reply {
		raw := h.Raw("login.password", b)
		replies <- string(raw)
		var rep Reply
		_ = json.Unmarshal(raw, &rep)
		return rep
	})
	close(replies)
	seen := map[string]int{}
	for r := range replies {
		seen[r]++
	}
	if len(seen) != 1 {
		t.Fatalf("%d different replies to one request: %v", len(seen), seen)
	}
	if n := count(h.History(acc), events.TypePasswordFailed); n != 1 {
		t.Fatalf("%d failures recorded for one request", n)
	}
}
