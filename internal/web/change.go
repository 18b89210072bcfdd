package web

import (
	"net/http"
	"strings"
)

// The changes of a logged-in user (seed: « Changement de mot de passe »,
// and the email change from the same page). Each form sends one command
// with the session; a refusal of the session goes back to the login page,
// a block to the seed's « Impossible de modifier… » page.

const (
	msgMismatch   = "Les deux mots de passe saisis ne sont pas identiques."
	passwordTitle = "Modifier votre mot de passe"
	emailTitle    = "Modifier votre adresse mail"
)

// passwordChangeStart: « Mon mot de passe » and « Renvoyer le code par mail ».
func (s *Server) passwordChangeStart(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, "password.change.start", nil, "password", passwordTitle, "code", "code")
}

// passwordChangeVerify: step 1, « Code de confirmation ».
func (s *Server) passwordChangeVerify(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, "password.change.verify_code", map[string]any{"code": r.PostFormValue("code")}, "password", passwordTitle, "new", "code", "code")
}

// passwordChangeComplete: step 2, the new password.
func (s *Server) passwordChangeComplete(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("new_password") != r.PostFormValue("confirm_password") {
		v := loggedIn(passwordTitle, "infos")
		v.Step, v.FieldErrors = "new", map[string]string{"confirm_password": msgMismatch}
		s.render(w, http.StatusBadRequest, "password", v)
		return
	}
	s.change(w, r, "password.change.complete", map[string]any{"new_password": r.PostFormValue("new_password")}, "password", passwordTitle, "done", "new", "new_password")
}

func (s *Server) emailForm(w http.ResponseWriter, r *http.Request) {
	rep, ok := s.checked(w, r)
	if !ok {
		return
	}
	v := loggedIn(emailTitle, "infos")
	v.Step, v.MaskedEmail = "form", rep.MaskedEmail
	s.render(w, http.StatusOK, "email", v)
}

// emailChange sends a code to the new address.
func (s *Server) emailChange(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, "email.change", map[string]any{"new_email": r.PostFormValue("new_email")}, "email", emailTitle, "code", "form", "new_email")
}

func (s *Server) emailConfirm(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, "email.confirm", map[string]any{"code": r.PostFormValue("code")}, "email", emailTitle, "done", "code", "code")
}

// change sends one command of a change and shows its page at step next
// when it is done, at step again with the refusal when it is not. The
// masked address comes from the reply, else from the form.
func (s *Server) change(w http.ResponseWriter, r *http.Request, subject string, body map[string]any,
	page, title, next, again string, fields ...string) {
	rep, ok := s.onSession(w, r, subject, body)
	if !ok {
		return
	}
	v := loggedIn(title, "infos")
	v.MaskedEmail = r.PostFormValue("masked_email")
	if !rep.OK {
		v.Step = again
		s.changeRefused(w, rep.Error, v, page, fields...)
		return
	}
	v.Step = next
	if rep.MaskedEmail != "" {
		v.MaskedEmail = rep.MaskedEmail
	}
	s.render(w, http.StatusOK, page, v)
}

// onSession sends a command of the logged-in user; false means the
// session was refused and the login page written.
func (s *Server) onSession(w http.ResponseWriter, r *http.Request, subject string, body map[string]any) (reply, bool) {
	token := s.cookies.session(r)
	if token == "" {
		http.Redirect(w, r, "/connexion", http.StatusSeeOther)
		return reply{}, false
	}
	if body == nil {
		body = map[string]any{}
	}
	body["session"] = token
	rep := s.client.send(r, subject, formRequestID(r), body)
	if !rep.OK && rep.Error.Code == codeSessionInvalid {
		s.sessionRefused(w, rep.Error)
		return reply{}, false
	}
	return rep, true
}

// changeRefused shows a refused change: the « Impossible de modifier… »
// page for a block (the seed's three failure cases), else the page again
// with the message, under its field when it is one of fields.
func (s *Server) changeRefused(w http.ResponseWriter, f *failure, v view, page string, fields ...string) {
	switch f.Code {
	case codeCodeRequestsExceeded, codeCodeAttemptsExceeded, codeEmailRecentlyChanged:
		// The message starts with the page's title: « Impossible de
		// modifier le mot de passe de votre compte ameli. »
		title, text, found := strings.Cut(f.Message, ". ")
		if !found || !strings.HasPrefix(title, "Impossible de modifier") {
			title, text = "Impossible de modifier votre compte ameli", f.Message
		}
		b := loggedIn(title, "infos")
		b.Error = text
		s.render(w, http.StatusUnprocessableEntity, "blocked", b)
		return
	}
	s.render(w, statusOf(f), page, refused(v, f, fields...))
}
