package web

import (
	"net/http"
	"net/url"
	"strings"
)

// The login (seed: Étapes 0 to 3). login.password first: the service checks
// the password before any code is sent (SPEC section 2), so a wrong
// password (Cas 4) is told on this first page. With a trusted-device cookie
// the right password logs in at once.

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	v := view{Title: "J'accède à mon compte ameli", Step: "password", RequestID: newRequestID()}
	v.Return, v.ForceCode = s.loginReturn(r.URL.Query().Get("retour"), r.URL.Query().Get("code_requis"))
	if r.URL.Query().Has("deconnecte") {
		v.Info = "Vous êtes déconnecté de votre compte ameli."
	}
	s.render(w, http.StatusOK, "login", v)
}

func (s *Server) loginPassword(w http.ResponseWriter, r *http.Request) {
	nir := r.PostFormValue("nir")
	ret, forceCode := s.loginReturn(r.PostFormValue("retour"), r.PostFormValue("code_requis"))
	body := map[string]any{"nir": nir, "password": r.PostFormValue("password")}
	// A client that requires the code (internal/oidc, require_code): the
	// trusted-device token is not sent, so the service asks the code.
	if token := s.cookies.device(r); token != "" && !forceCode {
		body["device_token"] = token
	}
	rep := s.client.send(r, "login.password", formRequestID(r), body)
	switch {
	case rep.OK && rep.Status == "authenticated":
		s.signedIn(w, r, rep, ret)
	case rep.OK:
		s.render(w, http.StatusOK, "login", view{Title: "J'accède à mon compte ameli", Step: "send",
			NIR: nir, LoginID: rep.LoginID, MaskedEmail: rep.MaskedEmail, RequestID: newRequestID(), Trace: traceField(r),
			Return: ret, ForceCode: forceCode})
	default:
		s.loginRefusedTo(w, nir, rep.Error, ret, forceCode)
	}
}

// loginSendCode: « CLIQUEZ POUR RECEVOIR UN CODE DE SÉCURITÉ » and
// « RECEVOIR UN NOUVEAU CODE DE SÉCURITÉ ».
func (s *Server) loginSendCode(w http.ResponseWriter, r *http.Request) {
	v := s.loginStep(r)
	rep := s.client.send(r, "login.otp.send", formRequestID(r), map[string]any{"login_id": v.LoginID})
	switch {
	case rep.OK:
		v.Step, v.MaskedEmail, v.Info = "code", rep.MaskedEmail, rep.Message
		s.render(w, http.StatusOK, "login", v)
	case backToStart(rep.Error.Code):
		s.loginRefusedTo(w, v.NIR, rep.Error, v.Return, v.ForceCode) // Cas 3
	default:
		s.render(w, statusOf(rep.Error), "login", refused(v, rep.Error))
	}
}

// loginVerifyCode: « ME CONNECTER » with the code and « Se souvenir de cet appareil ».
func (s *Server) loginVerifyCode(w http.ResponseWriter, r *http.Request) {
	v := s.loginStep(r)
	v.Step = "code"
	remember := r.PostFormValue("remember") == "on"
	rep := s.client.send(r, "login.otp.verify", formRequestID(r),
		map[string]any{"login_id": v.LoginID, "code": r.PostFormValue("code"), "remember_device": remember})
	switch {
	case rep.OK:
		if rep.DeviceToken != "" && rep.DeviceTokenExpiresAt != nil {
			s.cookies.setDevice(w, rep.DeviceToken, *rep.DeviceTokenExpiresAt)
		}
		s.signedIn(w, r, rep, v.Return)
	case backToStart(rep.Error.Code):
		s.loginRefusedTo(w, v.NIR, rep.Error, v.Return, v.ForceCode) // Cas 6
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

// loginRefusedTo shows the first page with the refusal (Cas 1 to 9),
// keeping where the login goes once done.
func (s *Server) loginRefusedTo(w http.ResponseWriter, nir string, f *failure, ret string, forceCode bool) {
	v := view{Title: "J'accède à mon compte ameli", Step: "password", NIR: nir, RequestID: newRequestID(), Return: ret, ForceCode: forceCode}
	s.render(w, statusOf(f), "login", refused(v, f, "nir", "password"))
}

// loginStep reads the login carried between the code steps.
func (s *Server) loginStep(r *http.Request) view {
	v := view{Title: "J'accède à mon compte ameli", Step: "send", RequestID: newRequestID(),
		NIR: r.PostFormValue("nir"), LoginID: r.PostFormValue("login_id"), MaskedEmail: r.PostFormValue("masked_email"),
		Trace: traceField(r)}
	v.Return, v.ForceCode = s.loginReturn(r.PostFormValue("retour"), r.PostFormValue("code_requis"))
	return v
}

// loginReturn is the login's return (a safe one, else "") and whether it
// asks the code whatever the device: only a login with a return may force
// the code (the return is what wants it).
func (s *Server) loginReturn(ret, codeRequired string) (string, bool) {
	ret = s.safeReturn(ret)
	return ret, ret != "" && codeRequired == "1"
}

// safeReturn accepts a return only to our own pending authorizations: a
// path (no scheme, no host, no "//" nor "\\" a browser would read as
// another host) under Config.ReturnPrefix, at most 512 bytes. Anything
// else is "" (home): never an open redirect (RFC 9700 section 4.11).
func (s *Server) safeReturn(ret string) string {
	if s.returnPrefix == "" || ret == "" || len(ret) > 512 || !strings.HasPrefix(ret, s.returnPrefix) ||
		strings.Contains(ret, "//") || strings.ContainsAny(ret, "\\\x00\r\n\t ") {
		return ""
	}
	u, err := url.Parse(ret)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Path+"?"+u.RawQuery != ret {
		return ""
	}
	return ret
}

// signedIn keeps the session in its cookie and goes home, or back to the
// authorization that asked for the login (ret, already safe). That step is
// a page that moves on by itself (meta refresh), not a redirect of the
// form's POST: the authorization then redirects to the relying party's
// site, which the pages' CSP form-action 'self' would refuse within the
// form's navigation.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, rep reply, ret string) {
	if rep.Session == nil {
		s.render(w, http.StatusServiceUnavailable, "message", view{Title: "Service indisponible", Error: msgUnavailable})
		return
	}
	s.cookies.setSession(w, rep.Session)
	if ret != "" {
		s.render(w, http.StatusOK, "continue", view{Title: "Connexion réussie", Refresh: ret})
		return
	}
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
