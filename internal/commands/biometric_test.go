package commands_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// phone is the app's side: a P-256 key as the platform keystore would hold it.
type phone struct {
	id  string
	key *ecdsa.PrivateKey
}

func newPhone(t *testing.T, id string) phone {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return phone{id: id, key: k}
}

func (p phone) publicKey(t *testing.T) string {
	der, err := x509.MarshalPKIXPublicKey(&p.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func (p phone) sign(t *testing.T, challenge string) string {
	raw, err := base64.StdEncoding.DecodeString(challenge)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(raw)
	sig, err := ecdsa.SignASN1(rand.Reader, p.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// appLogin logs in on the app with password and code.
func (h *harness) appLogin(acc, deviceID string) Reply {
	h.T.Helper()
	rep := h.Req("login.password", obj{"nir": nir1, "password": password, "channel": "app"})
	h.Req("login.otp.send", obj{"login_id": rep.LoginID, "channel": "app"})
	ok := h.Req("login.otp.verify", obj{"login_id": rep.LoginID, "code": h.LastCode(acc), "channel": "app", "device_id": deviceID})
	if !ok.OK {
		h.T.Fatalf("app login: %+v", ok.Error)
	}
	return ok
}

func TestBiometricFlow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	p := newPhone(t, "phone-A1")

	first := h.appLogin(acc, p.id)
	if first.OfferBiometric == nil || *first.OfferBiometric {
		t.Fatal("the first app login must not offer biometrics")
	}
	second := h.appLogin(acc, p.id)
	if second.OfferBiometric == nil || !*second.OfferBiometric {
		t.Fatal("the second app login must offer biometrics")
	}
	if r := h.Req("biometric.offer", obj{"session": second.Session.Token, "response": "later", "channel": "app"}); !r.OK || r.Status != contract.StatusOfferRecorded {
		t.Fatalf("offer: %+v", r.Error)
	}
	// Enrolment from a web session is refused; from the app it works.
	web := h.Login(acc, nir1, password)
	wantError(t, h.Req("biometric.enroll", obj{"session": web, "device_id": p.id, "public_key": p.publicKey(t)}), domain.CodeSessionInvalid)
	wantError(t, h.Req("biometric.enroll", obj{"session": second.Session.Token, "device_id": p.id, "public_key": "bm90IGEga2V5"}), domain.CodeInvalidRequest)
	enr := h.Req("biometric.enroll", obj{"session": second.Session.Token, "device_id": p.id, "public_key": p.publicKey(t), "channel": "app"})
	if !enr.OK || !enr.ExpiresAt.Equal(t0.AddDate(0, 6, 0)) {
		t.Fatalf("enroll: %+v %+v", enr, enr.Error)
	}
	if third := h.appLogin(acc, p.id); third.OfferBiometric == nil || *third.OfferBiometric {
		t.Fatal("an enrolled device must not be offered biometrics again")
	}

	ch := h.Req("biometric.challenge", obj{"device_id": p.id, "channel": "app"})
	if !ch.OK || ch.Challenge == "" || !ch.ExpiresAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("challenge: %+v %+v", ch, ch.Error)
	}
	// Another key's signature fails, spends the challenge, and locks nothing.
	thief := newPhone(t, "thief")
	wantError(t, h.Req("biometric.login", obj{"device_id": p.id, "challenge": ch.Challenge, "signature": thief.sign(t, ch.Challenge)}), domain.CodeBiometricFailed)
	wantError(t, h.Req("biometric.login", obj{"device_id": p.id, "challenge": ch.Challenge, "signature": p.sign(t, ch.Challenge)}), domain.CodeBiometricFailed)

	ch = h.Req("biometric.challenge", obj{"device_id": p.id})
	in := h.Req("biometric.login", obj{"device_id": p.id, "challenge": ch.Challenge, "signature": p.sign(t, ch.Challenge), "channel": "app"})
	if !in.OK || in.Status != contract.StatusAuthenticated || in.AccountID != acc || in.Session == nil {
		t.Fatalf("biometric login: %+v %+v", in, in.Error)
	}
	// A replayed challenge fails.
	wantError(t, h.Req("biometric.login", obj{"device_id": p.id, "challenge": ch.Challenge, "signature": p.sign(t, ch.Challenge)}), domain.CodeBiometricFailed)
	if r := h.Req("login.password", obj{"nir": nir1, "password": password}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("biometric failures must not lock the account: %+v", r.Error)
	}

	// An adviser revokes; the app falls back to password and code.
	if r := h.Req("account.revoke_biometrics", obj{"account_id": acc}); !r.OK {
		t.Fatalf("revoke: %+v", r.Error)
	}
	wantError(t, h.Req("biometric.challenge", obj{"device_id": p.id}), domain.CodeBiometricFailed)
}

func TestBiometricEnrolmentExpiresAfterSixMonths(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	p := newPhone(t, "phone-B")
	s := h.appLogin(acc, p.id)
	if r := h.Req("biometric.enroll", obj{"session": s.Session.Token, "device_id": p.id, "public_key": p.publicKey(t)}); !r.OK {
		t.Fatal(r.Error)
	}
	h.Clock.Advance(t0.AddDate(0, 6, 1).Sub(t0)) // six months and a day after the enrolment
	wantError(t, h.Req("biometric.challenge", obj{"device_id": p.id}), domain.CodeBiometricExpired)
}

// Parallel use of one challenge opens at most one session.
func TestParallelUseOfOneChallengeOpensOneSession(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	p := newPhone(t, "phone-C")
	s := h.appLogin(acc, p.id)
	if r := h.Req("biometric.enroll", obj{"session": s.Session.Token, "device_id": p.id, "public_key": p.publicKey(t)}); !r.OK {
		t.Fatal(r.Error)
	}
	ch := h.Req("biometric.challenge", obj{"device_id": p.id})
	sig := p.sign(t, ch.Challenge)
	codes := parallel(t, 10, func(int) Reply {
		return h.Req("biometric.login", obj{"device_id": p.id, "challenge": ch.Challenge, "signature": sig})
	})
	if codes[contract.StatusAuthenticated] != 1 || codes[domain.CodeBiometricFailed] != 9 {
		t.Fatalf("replies: %v", codes)
	}
	n := 0
	for _, e := range h.History(acc) {
		if v, ok := e.Data.(events.LoginSucceeded); ok && v.Method == events.MethodBiometric {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d biometric sessions recorded", n)
	}
}

func TestDeviceIDBelongsToOneAccount(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	p := newPhone(t, "phone-D")
	s := h.appLogin(acc, p.id)
	if r := h.Req("biometric.enroll", obj{"session": s.Session.Token, "device_id": p.id, "public_key": p.publicKey(t)}); !r.OK {
		t.Fatal(r.Error)
	}
	acc2 := h.Register(nir2, "jean@exemple.fr", password)
	login := h.StartLogin(nir2, password)
	s2 := h.Req("login.otp.verify", obj{"login_id": login, "code": h.LastCode(acc2), "channel": "app"})
	rep := h.Req("biometric.enroll", obj{"session": s2.Session.Token, "device_id": p.id, "public_key": newPhone(t, "x").publicKey(t)})
	wantError(t, rep, domain.CodeInvalidRequest)
	if rep.Error.Field != "device_id" {
		t.Fatalf("field %q", rep.Error.Field)
	}
}
