package web

import (
	"net/http"
)

// The login (seed: Étapes 0 to 3). login.password first: the service checks
// the password before any code is sent (SPEC section 2), so a wrong
// password (Cas 4) is told on this first page. With a trusted-device cookie
// the right password logs in at once.

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	v := view{Title: "J'accède à mon compte ameli", Step: "password", RequestID: newRequestID()}
	if r.URL.Query().Has("deconnecte") {
		v.Info = "Vous êtes déconnecté de votre compte ameli."
	}
	s.render(w, http.StatusOK, "login", v)
}

func (s *Server) loginPassword(w http.ResponseWriter, r *http.Request) {
	nir := r.PostFormValue("nir")
	body := map[string]any{"nir": nir, "password": r.PostFormValue("password")}
	if token := s.cookies.device(r); token != "" {
		body["device_token"] = token
	}
	rep := s.client.send(r, "login.password", formRequestID(r), body)
	switch {
	case rep.OK && rep.Status == "authenticated":
		s.signedIn(w, r, rep)
	case rep.OK:
		s.render(w, http.StatusOK, "login", view{Title: "J'accède à mon compte ameli", Step: "send",
			NIR: nir, LoginID: rep.LoginID, MaskedEmail: rep.MaskedEmail, RequestID: newRequestID(), Trace: traceField(r)})
	default:
		s.loginRefused(w, nir, rep.Error)
	}
}

// loginSendCode: « CLIQUEZ POUR RECEVOIR UN CODE DE SÉCURITÉ » and
// « RECEVOIR UN NOUVEAU CODE DE SÉCURITÉ ».
func (s *Server) loginSendCode(w http.ResponseWriter, r *http.Request) {
	v := loginStep(r)
	rep := s.client.send(r, "login.otp.send", formRequestID(r), map[string]any{"login_id": v.LoginID})
	switch {
	case rep.OK:
		v.Step, v.MaskedEmail, v.Info = "code", rep.MaskedEmail, rep.Message
		s.render(w, http.StatusOK, "login", v)
	case backToStart(rep.Error.Code):
		s.loginRefused(w, v.NIR, rep.Error) // Cas 3
	default:
		s.render(w, statusOf(rep.Error), "login", refused(v, rep.Error))
	}
}

// loginVerifyCode: « ME CONNECTER » with the code and « Se souvenir de cet appareil ».
func (s *Server) loginVerifyCode(w http.ResponseWriter, r *http.Request) {
	v := loginStep(r)
	v.Step = "code"
	remember := r.PostFormValue("remember") == "on"
	rep := s.client.send(r, "login.otp.verify", formRequestID(r),
		map[string]any{"login_id": v.LoginID, "code": r.PostFormValue("code"), "remember_device": remember})
	switch {
	case rep.OK:
		if rep.DeviceToken != "" && rep.DeviceTokenExpiresAt != nil {
			s.cookies.setDevice(w, rep.DeviceToken, *rep.DeviceTokenExpiresAt)
		}
		s.signedIn(w, r, rep)
	case backToStart(rep.Error.Code):
		s.loginRefused(w, v.NIR, rep.Error) // Cas 6
	case rep.Error.Code == codeOTPExpired:
		v.CanResend = true // Cas 2
		s.render(w, statusOf(rep.Error), "login", refused(v, rep.Error))
	default:
		s.render(w, statusOf(rep.Error), "login", refused(v, rep.Error, "code")) // Cas 5
	}
}

// backToStart: refusals the seed shows on the first page, the login having
// to start again (a block, the quota, a login too old).
func backToStart(code string) bool {
	switch code {
	case codeAccountLocked, codeOTPQuotaExceeded, codeLoginExpired:
		return true
	}
	return false
}

// loginRefused shows the first page with the refusal (Cas 1 to 9).
func (s *Server) loginRefused(w http.ResponseWriter, nir string, f *failure) {
	v := view{Title: "J'accède à mon compte ameli", Step: "password", NIR: nir, RequestID: newRequestID()}
	s.render(w, statusOf(f), "login", refused(v, f, "nir", "password"))
}

// loginStep reads the login carried between the code steps.
func loginStep(r *http.Request) view {
	return view{Title: "J'accède à mon compte ameli", Step: "send", RequestID: newRequestID(),
		NIR: r.PostFormValue("nir"), LoginID: r.PostFormValue("login_id"), MaskedEmail: r.PostFormValue("masked_email"),
		Trace: traceField(r)}
}

// signedIn keeps the session in its cookie and goes home.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, rep reply) {
	if rep.Session == nil {
		s.render(w, http.StatusServiceUnavailable, "message", view{Title: "Service indisponible", Error: msgUnavailable})
		return
	}
	s.cookies.setSession(w, rep.Session)
	http.Redirect(w, r, "/accueil", http.StatusSeeOther)
}

// logout: « Se déconnecter ». The cookie goes whatever the service says:
// the browser forgets the session even if the service cannot be told.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if token := s.cookies.session(r); token != "" {
		if rep := s.client.send(r, "session.logout", formRequestID(r), map[string]any{"session": token}); !rep.OK {
			s.log.Warn("logout not recorded", "code", rep.Error.Code)
		}
	}
	s.cookies.clearSession(w)
	http.Redirect(w, r, "/connexion?deconnecte", http.StatusSeeOther)
}
