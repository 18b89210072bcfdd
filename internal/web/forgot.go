package web

import (
	"net/http"
)

// « Mot de passe oublié ? » (seed, FAQ): a request page whose answer is the
// same whatever the NIR, and the page the mailed link opens.

func (s *Server) forgotForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "forgot", view{Title: "Mot de passe oublié", Step: "form", RequestID: newRequestID()})
}

func (s *Server) forgot(w http.ResponseWriter, r *http.Request) {
	nir := r.PostFormValue("nir")
	rep := s.client.send(r, "password.reset.request", formRequestID(r), map[string]any{"nir": nir})
	v := view{Title: "Mot de passe oublié", Step: "sent"}
	if !rep.OK {
		v.Step, v.NIR, v.RequestID = "form", nir, newRequestID()
		s.render(w, statusOf(rep.Error), "forgot", refused(v, rep.Error, "nir"))
		return
	}
	s.render(w, http.StatusOK, "forgot", v)
}

// resetForm is the mailed link's page: /password/reset?token=…
func (s *Server) resetForm(w http.ResponseWriter, r *http.Request) {
	v := view{Title: "Choisir un nouveau mot de passe", Step: "form", Token: r.URL.Query().Get("token"), RequestID: newRequestID()}
	if v.Token == "" || len(v.Token) > 256 {
		v.Step = "nolink"
	}
	s.render(w, http.StatusOK, "reset", v)
}

func (s *Server) reset(w http.ResponseWriter, r *http.Request) {
	v := view{Title: "Choisir un nouveau mot de passe", Step: "form", Token: r.PostFormValue("token"), RequestID: newRequestID()}
	if r.PostFormValue("new_password") != r.PostFormValue("confirm_password") {
		v.FieldErrors = map[string]string{"confirm_password": msgMismatch}
		s.render(w, http.StatusBadRequest, "reset", v)
		return
	}
	rep := s.client.send(r, "password.reset.complete", formRequestID(r),
		map[string]any{"token": v.Token, "new_password": r.PostFormValue("new_password")})
	if rep.OK {
		v.Step = "done"
		s.render(w, http.StatusOK, "reset", v)
		return
	}
	s.render(w, statusOf(rep.Error), "reset", refused(v, rep.Error, "new_password"))
}
