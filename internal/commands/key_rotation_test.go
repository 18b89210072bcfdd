package commands_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// A rotation of AUTH_SECRET_KEY, end to end (docs/keys.md). Under key A:
// accounts, sessions, a trusted device, an enrolled phone, outstanding
// codes, a reset link and a challenge. The service restarts with current
// B and previous A: everything made under A still works, what is new is
// made under B. It restarts again with B alone: what was made under A and
// not made again under B is refused (never an internal failure), as
// docs/keys.md says.
func TestKeyRotation(t *testing.T) {
	keyA := commandstest.MasterKey
	keyB := []byte("another key of thirty-two bytes!")
	policy := testPolicy()
	policy.OTPQuota = 50 // many logins at one instant; the quota is not under test
	h := newHarness(t, 1, policy)
	ctx := context.Background()
	restart := func(current []byte, previous ...[]byte) {
		t.Helper()
		_ = h.Svcs[len(h.Svcs)-1].Stop()
		k, err := secrets.NewKeys(current, previous...)
		if err != nil {
			t.Fatal(err)
		}
		h.Keys = k // the new instance's keys, and what the test opens sealed values with
		h.AddInstance(policy)
	}
	ringOf := func(current []byte, previous ...[]byte) *secrets.Keys {
		k, err := secrets.NewKeys(current, previous...)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	onlyA, onlyB := ringOf(keyA), ringOf(keyB)
	const nir3 = "1840375123456"

	// --- Under A.
	acc1 := h.Register(nir1, "valerie@yahoo.fr", password)
	acc2 := h.Register(nir2, "jean@exemple.fr", password)
	acc3 := h.Register(nir3, "paul@exemple.fr", password)
	p := newPhone(t, "phone-A1")
	h.appLogin(acc1, p.id)
	app := h.appLogin(acc1, p.id)
	if r := h.Req("biometric.enroll", obj{"session": app.Session.Token, "device_id": p.id, "public_key": p.publicKey(t), "channel": "app"}); !r.OK {
		t.Fatalf("enroll: %+v", r.Error)
	}
	remembered := func(acc, nir string) Reply {
		t.Helper()
		r := h.Req("login.otp.verify", obj{"login_id": h.StartLogin(nir, password), "code": h.LastCode(acc), "remember_device": true})
		if !r.OK || r.DeviceToken == "" {
			t.Fatalf("remembered login: %+v", r.Error)
		}
		return r
	}
	r1 := remembered(acc1, nir1)
	session1, device1 := r1.Session.Token, r1.DeviceToken
	if r := h.Req("password.change.start", obj{"session": session1}); !r.OK {
		t.Fatalf("change start: %+v", r.Error)
	}
	changeCode1 := h.changeCode(acc1)
	h.Raw("password.reset.request", []byte(`{"nir":"`+nir1+`"}`))
	resetToken1 := h.Open(h.LastEvent(acc1, events.TypePasswordResetRequested).(events.PasswordResetRequested).TokenSealed, acc1)
	login1 := h.StartLogin(nir1, password)
	otp1 := h.LastCode(acc1)
	challenge1 := h.Req("biometric.challenge", obj{"device_id": p.id, "channel": "app"}).Challenge

	r2 := remembered(acc2, nir2)
	session2 := r2.Session.Token
	h.Raw("password.reset.request", []byte(`{"nir":"`+nir2+`"}`))
	resetToken2 := h.Open(h.LastEvent(acc2, events.TypePasswordResetRequested).(events.PasswordResetRequested).TokenSealed, acc2)
	login2 := h.StartLogin(nir2, password)
	otp2 := h.LastCode(acc2)

	device3 := remembered(acc3, nir3).DeviceToken
	emailSealedA := h.LastEvent(acc1, events.TypeAccountRegistered).(events.AccountRegistered).EmailSealed

	// --- Current B, previous A: what A made still works.
	restart(keyB, keyA)
	bThenA := h.Keys
	if r := h.Req("session.check", obj{"session": session1}); !r.OK {
		t.Fatalf("A-era session after the rotation: %+v", r.Error)
	}
	if r := h.Req("password.change.verify_code", obj{"session": session1, "code": changeCode1}); !r.OK {
		t.Fatalf("A-era change code after the rotation: %+v", r.Error)
	}
	in := h.Req("login.otp.verify", obj{"login_id": login1, "code": otp1})
	if !in.OK || in.Status != contract.StatusAuthenticated {
		t.Fatalf("A-era login code after the rotation: %+v", in.Error)
	}
	// The new session is hashed under B alone.
	if got := h.LastEvent(acc1, events.TypeLoginSucceeded).(events.LoginSucceeded).SessionHash; got != onlyB.TokenHash("session", in.Session.Token) {
		t.Fatal("a session opened after the rotation is not hashed under the current key")
	}
	if r := h.Req("session.check", obj{"session": in.Session.Token}); !r.OK {
		t.Fatalf("new session: %+v", r.Error)
	}
	if r := h.Req("login.password", obj{"nir": nir1, "password": password, "device_token": device1}); r.Status != contract.StatusAuthenticated {
		t.Fatalf("A-era trusted device after the rotation: %+v %+v", r, r.Error)
	}
	// The lookup by NIR found acc1 under A and indexed it under B too.
	if id, err := h.Store.Index().Get(ctx, onlyB.NIRIndexKey(nir1)); err != nil || id != acc1 {
		t.Fatalf("NIR not re-indexed under the current key: %q %v", id, err)
	}
	// The notifier (the same Open, with the same keyring) reads the A-era
	// address, in the old event and in a new one (it comes from the state);
	// the new code is sealed under B.
	if got, err := bThenA.Open(emailSealedA, acc1); err != nil || got != "valerie@yahoo.fr" {
		t.Fatalf("A-era sealed address after the rotation: %q %v", got, err)
	}
	h.StartLogin(nir1, password)
	issued := h.LastEvent(acc1, events.TypeOTPIssued).(events.OTPIssued)
	if got, err := bThenA.Open(issued.ToSealed, acc1); err != nil || got != "valerie@yahoo.fr" {
		t.Fatalf("new mail's address: %q %v", got, err)
	}
	if _, err := onlyB.Open(issued.CodeSealed, acc1); err != nil {
		t.Fatalf("new code not sealed under B: %v", err)
	}
	if _, err := onlyA.Open(issued.CodeSealed, acc1); err == nil {
		t.Fatal("new code still sealed under A")
	}
	bio := h.Req("biometric.login", obj{"device_id": p.id, "challenge": challenge1, "signature": p.sign(t, challenge1), "channel": "app"})
	if !bio.OK || bio.AccountID != acc1 {
		t.Fatalf("A-era enrolled device and challenge after the rotation: %+v", bio.Error)
	}
	// A NIR indexed under A only is not registered twice, nor imported.
	wantError(t, h.Req("account.register", obj{"nir": nir3, "email": "autre@exemple.fr", "password": password, "email_validated": true, "affiliation": "active", "channel": "backoffice"}), domain.CodeAccountExists)
	wantError(t, h.Req("account.import", obj{"nir": nir3, "email": "autre@exemple.fr", "password_hash": secrets.HashPassword("x", commandstest.CheapArgon2), "email_validated": true, "affiliation": "active"}), domain.CodeAccountExists)
	if r := h.Req("password.reset.complete", obj{"token": resetToken1, "new_password": "Nouveau-mot-2025"}); !r.OK {
		t.Fatalf("A-era reset link after the rotation: %+v", r.Error)
	}

	// --- B alone: what only A made is refused, cleanly.
	restart(keyB)
	var replies []Reply
	req := func(command string, body obj) Reply {
		r := h.Req(command, body)
		replies = append(replies, r)
		return r
	}
	// acc2 was never seen while A was still known.
	wantError(t, req("session.check", obj{"session": session2}), domain.CodeSessionInvalid)
	wantError(t, req("login.otp.verify", obj{"login_id": login2, "code": otp2}), domain.CodeLoginExpired)
	wantError(t, req("password.reset.complete", obj{"token": resetToken2, "new_password": "Nouveau-mot-2025"}), domain.CodeResetTokenInvalid)
	// Its NIR is indexed under A only: unknown, answered as a wrong
	// password; and registering it again makes a second account.
	wantError(t, req("login.password", obj{"nir": nir2, "password": password}), domain.CodeInvalidCredentials)
	again := req("account.register", obj{"nir": nir2, "email": "jean@exemple.fr", "password": password, "email_validated": true, "affiliation": "active", "channel": "backoffice"})
	if !again.OK || again.AccountID == acc2 {
		t.Fatalf("a NIR indexed under a dropped key: register = %+v %+v; docs/keys.md says it makes a second account", again, again.Error)
	}
	// acc3 was looked up while A was known: found; its A-era trusted device
	// is not recognised, so the login asks for a code.
	if r := req("login.password", obj{"nir": nir3, "password": password, "device_token": device3}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("A-era trusted device with A dropped: %+v %+v", r, r.Error)
	}
	// acc1's address was sealed under A: its new mails do not open.
	if r := req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025"}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("login of a re-indexed account with A dropped: %+v", r.Error)
	} else if s := req("login.otp.send", obj{"login_id": r.LoginID}); !s.OK {
		t.Fatalf("code send: %+v", s.Error)
	}
	issued = h.LastEvent(acc1, events.TypeOTPIssued).(events.OTPIssued)
	_, err := onlyB.Open(issued.ToSealed, acc1)
	if !errors.Is(err, secrets.ErrSealed) || !strings.Contains(err.Error(), onlyA.ID()) {
		t.Fatalf("address sealed under A, opened with B alone: %v; want ErrSealed naming A's key id", err)
	}
	for _, r := range replies {
		if r.Error != nil && r.Error.Code == domain.CodeUnavailable {
			t.Fatalf("an internal failure after dropping A: %+v", r.Error)
		}
	}
}
