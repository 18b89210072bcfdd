package commands

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// lastEvent returns the account's latest event of a type.
func (h *harness) lastEvent(accountID, eventType string) events.Event {
	h.t.Helper()
	envs := h.history(accountID)
	for i := len(envs) - 1; i >= 0; i-- {
		if envs[i].Type == eventType {
			return envs[i].Data
		}
	}
	h.t.Fatalf("no %s event", eventType)
	return nil
}

func (h *harness) open(sealed, accountID string) string {
	h.t.Helper()
	v, err := h.keys.Open(sealed, accountID)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

// login runs a whole login and returns the session token.
func (h *harness) login(accountID, nir, password string) string {
	h.t.Helper()
	loginID := h.startLogin(nir, password)
	rep := h.req("login.otp.verify", obj{"login_id": loginID, "code": h.lastCode(accountID)})
	if !rep.OK {
		h.t.Fatalf("login: %+v", rep.Error)
	}
	return rep.Session.Token
}

func (h *harness) changeCode(acc string) string {
	h.t.Helper()
	return h.open(h.lastEvent(acc, events.TypePasswordChangeCodeIssued).(events.PasswordChangeCodeIssued).CodeSealed, acc)
}

func TestPasswordChangeFlow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.register(nir1, "valerie@yahoo.fr", password)
	other := h.login(acc, nir1, password)
	session := h.login(acc, nir1, password)

	start := h.req("password.change.start", obj{"session": session})
	if !start.OK || start.Status != "code_sent" || start.MaskedEmail != "v***@y***.fr" || !start.ExpiresAt.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("start: %+v %+v", start, start.Error)
	}
	code := h.changeCode(acc)
	if len(code) != 4 {
		t.Fatalf("the seed's confirmation code has 4 digits, got %q", code)
	}
	wantError(t, h.req("password.change.complete", obj{"session": session, "new_password": "Nouveau-mot-2025"}), domain.CodeCodeInvalid)
	if r := h.req("password.change.verify_code", obj{"session": session, "code": code}); !r.OK || r.Status != "code_verified" {
		t.Fatalf("verify: %+v", r.Error)
	}
	wantError(t, h.req("password.change.complete", obj{"session": session, "new_password": "court"}), domain.CodeWeakPassword)
	if r := h.req("password.change.complete", obj{"session": session, "new_password": "Nouveau-mot-2025"}); !r.OK || r.Status != "password_changed" {
		t.Fatalf("complete: %+v", r.Error)
	}
	// This session goes on; the other one ended (ASVS 7.4.3).
	if r := h.req("password.change.start", obj{"session": session}); !r.OK {
		t.Fatalf("own session after the change: %+v", r.Error)
	}
	wantError(t, h.req("password.change.start", obj{"session": other}), domain.CodeSessionInvalid)
	wantError(t, h.req("login.password", obj{"nir": nir1, "password": password}), domain.CodeInvalidCredentials)
	if r := h.req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025"}); r.Status != "otp_required" {
		t.Fatalf("new password: %+v", r.Error)
	}
	changed := h.lastEvent(acc, events.TypePasswordChanged).(events.PasswordChanged)
	if changed.Method != events.MethodChange || h.open(changed.ToSealed, acc) != "valerie@yahoo.fr" {
		t.Fatalf("password.changed: %+v", changed)
	}
}

func TestPasswordChangeCodeLimits(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.register(nir1, "valerie@yahoo.fr", password)
	session := h.login(acc, nir1, password)
	for i := 0; i < 3; i++ {
		if r := h.req("password.change.start", obj{"session": session}); !r.OK {
			t.Fatalf("request %d: %+v", i+1, r.Error)
		}
	}
	rep := h.req("password.change.start", obj{"session": session})
	wantError(t, rep, domain.CodeCodeRequestsExceeded)
	if !rep.Error.BlockedUntil.Equal(t0.Add(time.Hour)) || !strings.Contains(rep.Error.Message,
		"vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au 05/01/2023, 15h30 - heure de Paris.") {
		t.Fatalf("4th request: %+v", rep.Error)
	}
}

// 10 parallel wrong codes: exactly 2 code_invalid, then blocked.
func TestParallelWrongChangeCodesBlockAfterThree(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.register(nir1, "valerie@yahoo.fr", password)
	session := h.login(acc, nir1, password)
	h.req("password.change.start", obj{"session": session})
	wrong := "0000"
	if h.changeCode(acc) == wrong {
		wrong = "9999"
	}
	codes := parallel(t, 10, func(int) Reply {
		return h.req("password.change.verify_code", obj{"session": session, "code": wrong})
	})
	if codes[domain.CodeCodeInvalid] != 2 || codes[domain.CodeCodeAttemptsExceeded] != 8 {
		t.Fatalf("replies: %v; want 2 code_invalid and 8 code_attempts_exceeded", codes)
	}
	if n := count(h.history(acc), events.TypeChangeCodeFailed); n != 3 {
		t.Fatalf("%d failures recorded", n)
	}
}

func TestEmailChangeThenNoPasswordChangeFor48Hours(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.register(nir1, "valerie@yahoo.fr", password)
	session := h.login(acc, nir1, password)
	rep := h.req("email.change", obj{"session": session, "new_email": "nouvelle.adresse@mail.fr"})
	if !rep.OK || rep.MaskedEmail != "n***@m***.fr" {
		t.Fatalf("email.change: %+v %+v", rep, rep.Error)
	}
	issued := h.lastEvent(acc, events.TypeEmailChangeCodeIssued).(events.EmailChangeCodeIssued)
	if h.open(issued.NewEmailSealed, acc) != "nouvelle.adresse@mail.fr" {
		t.Fatal("the code must go to the new address")
	}
	if r := h.req("email.confirm", obj{"session": session, "code": h.open(issued.CodeSealed, acc)}); !r.OK || r.Status != "email_changed" {
		t.Fatalf("email.confirm: %+v", r.Error)
	}
	changed := h.lastEvent(acc, events.TypeEmailChanged).(events.EmailChanged)
	if h.open(changed.OldToSealed, acc) != "valerie@yahoo.fr" {
		t.Fatal("the old address must be told")
	}
	r := h.req("password.change.start", obj{"session": session})
	wantError(t, r, domain.CodeEmailRecentlyChanged)
	if !r.Error.Until.Equal(t0.Add(48*time.Hour)) || !strings.HasPrefix(r.Error.Message, "Impossible de modifier le mot de passe de votre compte ameli. Une nouvelle adresse mail") {
		t.Fatalf("refusal: %+v", r.Error)
	}
	h.clock.Advance(48*time.Hour - time.Minute)
	late := h.login(acc, nir1, password)
	wantError(t, h.req("password.change.start", obj{"session": late}), domain.CodeEmailRecentlyChanged)
	h.clock.Advance(time.Minute)
	if r := h.req("password.change.start", obj{"session": late}); !r.OK || r.MaskedEmail != "n***@m***.fr" {
		t.Fatalf("after 48 hours: %+v %+v", r, r.Error)
	}
}

func TestPasswordResetFlow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.register(nir1, "valerie@yahoo.fr", password)
	session := h.login(acc, nir1, password)
	for i := 0; i < 3; i++ {
		h.req("login.password", obj{"nir": nir1, "password": "bad-password"})
	}
	// The same reply whether the NIR exists or not.
	known := h.raw("password.reset.request", []byte(`{"nir":"`+nir1+`"}`))
	unknown := h.raw("password.reset.request", []byte(`{"nir":"`+nir2+`"}`))
	if !bytes.Equal(known, unknown) || !bytes.Contains(known, []byte(`"reset_requested"`)) {
		t.Fatalf("replies differ:\n%s\n%s", known, unknown)
	}
	req := h.lastEvent(acc, events.TypePasswordResetRequested).(events.PasswordResetRequested)
	token := h.open(req.TokenSealed, acc)
	wantError(t, h.req("password.reset.complete", obj{"token": token + "x", "new_password": "Nouveau-mot-2025"}), domain.CodeResetTokenInvalid)
	if r := h.req("password.reset.complete", obj{"token": token, "new_password": "Nouveau-mot-2025"}); !r.OK || r.Status != "password_reset" {
		t.Fatalf("reset: %+v", r.Error)
	}
	wantError(t, h.req("password.reset.complete", obj{"token": token, "new_password": "Encore-autre-2025"}), domain.CodeResetTokenInvalid)
	wantError(t, h.req("password.change.start", obj{"session": session}), domain.CodeSessionInvalid)
	// The password-failure block is lifted: the new password logs in at once.
	if r := h.req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025"}); r.Status != "otp_required" {
		t.Fatalf("login after reset: %+v", r.Error)
	}
	// An expired link.
	h.raw("password.reset.request", []byte(`{"nir":"`+nir1+`"}`))
	token2 := h.open(h.lastEvent(acc, events.TypePasswordResetRequested).(events.PasswordResetRequested).TokenSealed, acc)
	h.clock.Advance(time.Hour)
	wantError(t, h.req("password.reset.complete", obj{"token": token2, "new_password": "Encore-autre-2025"}), domain.CodeResetTokenInvalid)
}
