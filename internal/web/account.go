package web

import (
	"net/http"
)

// The logged-in pages ask session.check first: the session is the
// service's, never the front-end's.

// checked asks session.check for the session cookie. When the session is
// not open the cookie goes and the login page says why; false means the
// answer was written.
func (s *Server) checked(w http.ResponseWriter, r *http.Request) (reply, bool) {
	token := s.cookies.session(r)
	if token == "" {
		http.Redirect(w, r, "/connexion", http.StatusSeeOther)
		return reply{}, false
	}
	rep := s.client.send(r, "session.check", newRequestID(), map[string]any{"session": token})
	if !rep.OK {
		s.sessionRefused(w, rep.Error)
		return reply{}, false
	}
	return rep, true
}

// sessionRefused answers a logged-in page whose command was refused for
// its session (or could not be asked): the login page, with the message.
func (s *Server) sessionRefused(w http.ResponseWriter, f *failure) {
	if f.Code != codeUnavailable {
		s.cookies.clearSession(w)
	}
	s.loginRefusedTo(w, "", f, "", false)
}

// loggedIn is the view of a logged-in page.
func loggedIn(title, tab string) view {
	return view{Title: title, LoggedIn: true, Tab: tab, RequestID: newRequestID()}
}

// home: « Accueil », with « Dernière connexion » (the login before this one).
func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.accountPage(w, r, "home", "Accueil", "accueil")
}

// infos: « Mes informations », and its « Paramètres de compte ».
func (s *Server) infos(w http.ResponseWriter, r *http.Request) {
	s.accountPage(w, r, "infos", "Mes informations", "infos")
}

// accountPage shows a page of the account as session.check tells it.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request, page, title, tab string) {
	rep, ok := s.checked(w, r)
	if !ok {
		return
	}
	v := loggedIn(title, tab)
	v.LastLogin, v.MaskedEmail = lastLogin(rep.PreviousLoginAt), rep.MaskedEmail
	s.render(w, http.StatusOK, page, v)
}

// tabs are the home page's other tabs: not part of this service.
var tabs = map[string]string{"paiements": "Mes paiements", "demarches": "Mes démarches", "prevention": "Mon espace prévention"}

func (s *Server) tab(w http.ResponseWriter, r *http.Request) {
	name, known := tabs[r.PathValue("tab")]
	if !known {
		s.notFound(w, r)
		return
	}
	if _, ok := s.checked(w, r); !ok {
		return
	}
	v := loggedIn(name, r.PathValue("tab"))
	v.TabName = name
	s.render(w, http.StatusOK, "tab", v)
}
