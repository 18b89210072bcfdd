package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"
	_ "time/tzdata" // Paris time on machines without zone files
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

func staticFiles() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}

// view is what a page shows: the shared parts (title, the red box, the
// information box, the form's request_id) and each page's own.
type view struct {
	Title string
	Error string // the red box (role="alert"): a refusal's message
	Info  string // an information box
	// FieldErrors: a refusal of one field, shown under it and linked to
	// it by aria-describedby. Keys are the service's field names.
	FieldErrors map[string]string
	RequestID   string // the form's idempotency key
	LoggedIn    bool
	Tab         string // the selected tab of a logged-in page

	Step        string // which part of a multi-step page
	NIR         string // as typed, shown again on the code steps
	LoginID     string // the sealed login between the code steps
	MaskedEmail string
	CanResend   bool   // a code expired: offer a new one
	LastLogin   string // « Dernière connexion »
	Token       string // the reset link's token
	Trace       string // the login's trace context, carried between its steps (tracing.go); "" when not traced
	TabName     string // a tab without content in this service

	// Return is where a login goes once done: a pending OpenID Connect
	// authorization under Config.ReturnPrefix (safeReturn), carried
	// between the login's steps; "" goes home.
	Return string
	// ForceCode: the login asks the security code even with a
	// trusted-device cookie (a client whose policy requires the code,
	// internal/oidc).
	ForceCode bool
	// Refresh is a same-site path the page moves to at once (meta
	// refresh): the step after a login that came from an authorization.
	Refresh string
}

// pages are the templates, each page with the shared layout.
type pages struct {
	byName map[string]*template.Template
}

func loadPages() (*pages, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, file := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(file, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").ParseFS(templateFS, "templates/layout.html", file)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", file, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// render writes a page; a template error shows the unavailable page, never
// a trace.
func (s *Server) render(w http.ResponseWriter, status int, name string, v view) {
	t, ok := s.pages.byName[name]
	if !ok {
		s.log.Error("web: no such page", "page", name)
		t, status, v = s.pages.byName["message"], http.StatusInternalServerError, view{Title: "Service indisponible", Error: msgUnavailable}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		s.log.Error("web: render", "page", name, "err", err)
		buf.Reset()
		status = http.StatusInternalServerError
		_ = s.pages.byName["message"].Execute(&buf, view{Title: "Service indisponible", Error: msgUnavailable})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	// A page shows back what was typed (the NIR, hidden fields), and a
	// form may carry any bytes (%FF): html/template escapes markup, not
	// invalid UTF-8, and the page says it is UTF-8.
	_, _ = w.Write(bytes.ToValidUTF8(buf.Bytes(), []byte("\uFFFD")))
}

// refused fills the view with a refusal: a field's, under the field when
// the page has it (fields), else in the red box.
func refused(v view, f *failure, fields ...string) view {
	field, text := f.Field, fieldMessage(f)
	if f.Code == codeWeakPassword {
		field, text = "new_password", f.Message
	}
	if f.Code == codeInvalidRequest || f.Code == codeWeakPassword {
		for _, name := range fields {
			if field == name {
				v.FieldErrors = map[string]string{name: text}
				return v
			}
		}
	}
	v.Error = f.Message
	return v
}

// fieldMessage turns the service's "Requête invalide : le champ « nir »
// doit contenir 13 caractères…" into what a person reads under the field:
// « Ce champ doit contenir 13 caractères… ». Anything else is shown as is.
func fieldMessage(f *failure) string {
	detail, ok := strings.CutPrefix(f.Message, "Requête invalide : le champ « "+f.Field+" » ")
	if !ok {
		return f.Message
	}
	return "Ce champ " + detail
}

// statusOf is the HTTP status of a page showing a refusal.
func statusOf(f *failure) int {
	switch f.Code {
	case codeUnavailable:
		return http.StatusServiceUnavailable
	case codeInvalidRequest:
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity
}

var paris = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// lastLogin writes « Dernière connexion » as the seed does: 09/07/2025 - 10:32, Paris time.
func lastLogin(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.In(paris).Format("02/01/2006 - 15:04")
}
