package commands_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

func (h *harness) changeCode(acc string) string {
	h.T.Helper()
	return h.Open(h.LastEvent(acc, events.TypePasswordChangeCodeIssued).(events.PasswordChangeCodeIssued).CodeSealed, acc)
}

func TestPasswordChangeFlow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	other := h.Login(acc, nir1, password)
	session := h.Login(acc, nir1, password)

	start := h.Req("password.change.start", obj{"session": session})
	if !start.OK || start.Status != contract.StatusCodeSent || start.MaskedEmail != "v***@y***.fr" || !start.ExpiresAt.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("start: %+v %+v", start, start.Error)
	}
	code := h.changeCode(acc)
	if len(code) != 4 {
		t.Fatalf("the seed's confirmation code has 4 digits, got %q", code)
	}
	wantError(t, h.Req("password.change.complete", obj{"session": session, "new_password": "Nouveau-mot-2025"}), domain.CodeCodeInvalid)
	if r := h.Req("password.change.verify_code", obj{"session": session, "code": code}); !r.OK || r.Status != contract.StatusCodeVerified {
		t.Fatalf("verify: %+v", r.Error)
	}
	wantError(t, h.Req("password.change.complete", obj{"session": session, "new_password": "court"}), domain.CodeWeakPassword)
	if r := h.Req("password.change.complete", obj{"session": session, "new_password": "Nouveau-mot-2025"}); !r.OK || r.Status != contract.StatusPasswordChanged {
		t.Fatalf("complete: %+v", r.Error)
	}
	// This session goes on; the other one ended (ASVS 7.4.3).
	if r := h.Req("password.change.start", obj{"session": session}); !r.OK {
		t.Fatalf("own session after the change: %+v", r.Error)
	}
	wantError(t, h.Req("password.change.start", obj{"session": other}), domain.CodeSessionInvalid)
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": password}), domain.CodeInvalidCredentials)
	if r := h.Req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025"}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("new password: %+v", r.Error)
	}
	changed := h.LastEvent(acc, events.TypePasswordChanged).(events.PasswordChanged)
	if changed.Method != events.MethodChange || h.Open(changed.ToSealed, acc) != "valerie@yahoo.fr" {
		t.Fatalf("password.changed: %+v", changed)
	}
}

func TestPasswordChangeCodeLimits(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	session := h.Login(acc, nir1, password)
	for i := 0; i < 3; i++ {
		if r := h.Req("password.change.start", obj{"session": session}); !r.OK {
			t.Fatalf("request %d: %+v", i+1, r.Error)
		}
	}
	rep := h.Req("password.change.start", obj{"session": session})
	wantError(t, rep, domain.CodeCodeRequestsExceeded)
	if !rep.Error.BlockedUntil.Equal(t0.Add(time.Hour)) || !strings.Contains(rep.Error.Message,
		"vous avez déjà demandé 3 codes de confirmation et l'accès au service est bloqué jusqu'au 05/01/2023, 15h30 - heure de Paris.") {
		t.Fatalf("4th request: %+v", rep.Error)
	}
}

// 10 parallel wrong codes: exactly 2 code_invalid, then blocked.
func TestParallelWrongChangeCodesBlockAfterThree(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	session := h.Login(acc, nir1, password)
	h.Req("password.change.start", obj{"session": session})
	wrong := "0000"
	if h.changeCode(acc) == wrong {
		wrong = "9999"
	}
	codes := parallel(t, 10, func(int) Reply {
		return h.Req("password.change.verify_code", obj{"session": session, "code": wrong})
	})
	if codes[domain.CodeCodeInvalid] != 2 || codes[domain.CodeCodeAttemptsExceeded] != 8 {
		t.Fatalf("replies: %v; want 2 code_invalid and 8 code_attempts_exceeded", codes)
	}
	if n := count(h.History(acc), events.TypeChangeCodeFailed); n != 3 {
		t.Fatalf("%d failures recorded", n)
	}
}

func TestEmailChangeThenNoPasswordChangeFor48Hours(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	session := h.Login(acc, nir1, password)
	rep := h.Req("email.change", obj{"session": session, "new_email": "nouvelle.adresse@mail.fr"})
	if !rep.OK || rep.MaskedEmail != "n***@m***.fr" {
		t.Fatalf("email.change: %+v %+v", rep, rep.Error)
	}
	issued := h.LastEvent(acc, events.TypeEmailChangeCodeIssued).(events.EmailChangeCodeIssued)
	if h.Open(issued.NewEmailSealed, acc) != "nouvelle.adresse@mail.fr" {
		t.Fatal("the code must go to the new address")
	}
	if r := h.Req("email.confirm", obj{"session": session, "code": h.Open(issued.CodeSealed, acc)}); !r.OK || r.Status != contract.StatusEmailChanged {
		t.Fatalf("email.confirm: %+v", r.Error)
	}
	changed := h.LastEvent(acc, events.TypeEmailChanged).(events.EmailChanged)
	if h.Open(changed.OldToSealed, acc) != "valerie@yahoo.fr" {
		t.Fatal("the old address must be told")
	}
	r := h.Req("password.change.start", obj{"session": session})
	wantError(t, r, domain.CodeEmailRecentlyChanged)
	if !r.Error.Until.Equal(t0.Add(48*time.Hour)) || !strings.HasPrefix(r.Error.Message, "Impossible de modifier le mot de passe de votre compte ameli. Une nouvelle adresse mail") {
		t.Fatalf("refusal: %+v", r.Error)
	}
	h.Clock.Advance(48*time.Hour - time.Minute)
	late := h.Login(acc, nir1, password)
	wantError(t, h.Req("password.change.start", obj{"session": late}), domain.CodeEmailRecentlyChanged)
	h.Clock.Advance(time.Minute)
	if r := h.Req("password.change.start", obj{"session": late}); !r.OK || r.MaskedEmail != "n***@m***.fr" {
		t.Fatalf("after 48 hours: %+v %+v", r, r.Error)
	}
}

func TestPasswordResetFlow(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	session := h.Login(acc, nir1, password)
	for i := 0; i < 3; i++ {
		h.Req("login.password", obj{"nir": nir1, "password": "bad-password"})
	}
	// The same reply whether the NIR exists or not.
	known := h.Raw("password.reset.request", []byte(`{"nir":"`+nir1+`"}`))
	unknown := h.Raw("password.reset.request", []byte(`{"nir":"`+nir2+`"}`))
	if !bytes.Equal(known, unknown) || !bytes.Contains(known, []byte(`"reset_requested"`)) {
		t.Fatalf("replies differ:\n%s\n%s", known, unknown)
	}
	req := h.LastEvent(acc, events.TypePasswordResetRequested).(events.PasswordResetRequested)
	token := h.Open(req.TokenSealed, acc)
	wantError(t, h.Req("password.reset.complete", obj{"token": token + "x", "new_password": "Nouveau-mot-2025"}), domain.CodeResetTokenInvalid)
	if r := h.Req("password.reset.complete", obj{"token": token, "new_password": "Nouveau-mot-2025"}); !r.OK || r.Status != contract.StatusPasswordReset {
		t.Fatalf("reset: %+v", r.Error)
	}
	wantError(t, h.Req("password.reset.complete", obj{"token": token, "new_password": "Encore-autre-2025"}), domain.CodeResetTokenInvalid)
	wantError(t, h.Req("password.change.start", obj{"session": session}), domain.CodeSessionInvalid)
	// The password-failure block is lifted: the new password logs in at once.
	if r := h.Req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025"}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("login after reset: %+v", r.Error)
	}
	// An expired link.
	h.Raw("password.reset.request", []byte(`{"nir":"`+nir1+`"}`))
	token2 := h.Open(h.LastEvent(acc, events.TypePasswordResetRequested).(events.PasswordResetRequested).TokenSealed, acc)
	h.Clock.Advance(time.Hour)
	wantError(t, h.Req("password.reset.complete", obj{"token": token2, "new_password": "Encore-autre-2025"}), domain.CodeResetTokenInvalid)
}
