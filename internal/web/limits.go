package web

import (
	"errors"
	"mime"
	"net/http"
)

// maxBodyBytes bounds a request's body: 16 KiB. The largest form a page
// posts is the new password's (change or reset): two password fields of
// at most 128 characters each (domain.Policy.PasswordMaxLength, the seed's
// profile), which percent-encoded are at most 128 × 4 bytes × 3 = 1,536
// bytes each, the reset link's token, the masked address and the
// request_id: under 4 KiB. The login's form (NIR, password, the sealed
// login id, the trace field) is smaller. 16 KiB leaves room for a longer
// policy, and is read in one go.
const maxBodyBytes = 16 << 10

// msgTooLarge is the 413 page's message.
const msgTooLarge = "Cette demande est trop volumineuse et n'a pas été traitée. Merci de recommencer depuis le site ameli."

// bounded caps every request's body at maxBodyBytes
// (http.MaxBytesReader): whoever reads past it gets an
// *http.MaxBytesError, and the server closes the connection after the
// answer. It is the outermost handler, so nothing reads a body unbounded.
func bounded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// form wraps a POST page: its form is parsed before h runs, and a body
// over maxBodyBytes is answered 413 with the site's message page, h not
// called (no command is sent). It runs after the cross-origin check and
// the routing: a refused or unknown request's body is never read.
func (s *Server) form(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBodyBytes || tooLarge(parseForm(r)) {
			s.log.Warn("form too large refused", "route", r.Pattern, "content_length", r.ContentLength, "client_ip", s.client.ip(r))
			s.render(w, http.StatusRequestEntityTooLarge, "message", view{Title: "Demande trop volumineuse", Error: msgTooLarge})
			return
		}
		h(w, r)
	}
}

// parseForm parses r's form, url-encoded or multipart (the handlers read
// it with PostFormValue, which drops errors). A body over the bound
// leaves r.Form and r.PostForm unset, so that the next parse meets the
// same error (MaxBytesReader repeats it) instead of a truncated form.
// Other errors (a malformed escape) keep what was parsed, as
// PostFormValue always did.
func parseForm(r *http.Request) error {
	// ParseMultipartForm alone would hide ParseForm's error behind
	// ErrNotMultipart.
	err := r.ParseForm()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && ct == "multipart/form-data" {
		err = r.ParseMultipartForm(maxBodyBytes)
	}
	if tooLarge(err) {
		r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	}
	return err
}

func tooLarge(err error) bool {
	var e *http.MaxBytesError
	return errors.As(err, &e)
}

// urlEncoded tells whether r's body is a url-encoded form.
func urlEncoded(r *http.Request) bool {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/x-www-form-urlencoded"
}
