package commands_test

import (
	"testing"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// resetToken asks a reset link for the NIR and returns the token the
// notifier would put in it.
func (h *harness) resetToken(acc, nir string) string {
	h.T.Helper()
	if r := h.Req("password.reset.request", obj{"nir": nir}); !r.OK || r.Status != contract.StatusResetRequested {
		h.T.Fatalf("reset request: %+v", r.Error)
	}
	return h.Open(h.LastEvent(acc, events.TypePasswordResetRequested).(events.PasswordResetRequested).TokenSealed, acc)
}

// changePassword runs the seed's password change from a session: start,
// the mailed code, the new password.
func (h *harness) changePassword(acc, session, newPassword string) {
	h.T.Helper()
	if r := h.Req("password.change.start", obj{"session": session}); !r.OK {
		h.T.Fatalf("password.change.start: %+v", r.Error)
	}
	if r := h.Req("password.change.verify_code", obj{"session": session, "code": h.changeCode(acc)}); !r.OK {
		h.T.Fatalf("password.change.verify_code: %+v", r.Error)
	}
	if r := h.Req("password.change.complete", obj{"session": session, "new_password": newPassword}); !r.OK || r.Status != contract.StatusPasswordChanged {
		h.T.Fatalf("password.change.complete: %+v", r.Error)
	}
}

// Issue 11, the example: a reset link asked before a password change no
// longer resets the password after it (OWASP Forgot Password cheat sheet).
func TestAResetLinkAskedBeforeAPasswordChangeIsInvalidAfterIt(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	token := h.resetToken(acc, nir1)

	session := h.Login(acc, nir1, password)
	h.changePassword(acc, session, "Nouveau-mot-2025")

	wantError(t, h.Req("password.reset.complete", obj{"token": token, "new_password": "Encore-autre-2025"}), domain.CodeResetTokenInvalid)
	// The password is the one the change set.
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "Encore-autre-2025"}), domain.CodeInvalidCredentials)
	if r := h.Req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025"}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("login with the changed password: %+v", r.Error)
	}
}

// A browser remembered under the old password asks the code again after a
// password change; the session that made the change goes on.
func TestAPasswordChangeForgetsRememberedBrowsers(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	loginID := h.StartLogin(nir1, password)
	remembered := h.Req("login.otp.verify", obj{"login_id": loginID, "code": h.LastCode(acc), "remember_device": true})
	if !remembered.OK || remembered.DeviceToken == "" {
		t.Fatalf("remember this device: %+v", remembered.Error)
	}
	session := h.Login(acc, nir1, password)
	h.changePassword(acc, session, "Nouveau-mot-2025")

	if r := h.Req("login.password", obj{"nir": nir1, "password": "Nouveau-mot-2025", "device_token": remembered.DeviceToken}); r.Status != contract.StatusOTPRequired {
		t.Fatalf("a browser remembered before the change: got %q %+v, want otp_required", r.Status, r.Error)
	}
	wantError(t, h.Req("password.change.start", obj{"session": remembered.Session.Token}), domain.CodeSessionInvalid)
	if r := h.Req("password.change.start", obj{"session": session}); !r.OK {
		t.Fatalf("the session that made the change: %+v", r.Error)
	}
}
