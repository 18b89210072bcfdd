package web

import (
	"net/http"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// cookies names the two cookies the front-end sets: the session token and
// the trusted-device token (« Se souvenir de cet appareil »). Both are
// HttpOnly, Secure, SameSite=Lax and __Host- prefixed: only this host, path
// /, over https (browsers treat localhost and 127.0.0.1 as secure).
type cookies struct {
	sessionName, deviceName string
	secure                  bool
}

func newCookies(dev bool) cookies {
	if dev {
		return cookies{sessionName: "ameli-session", deviceName: "ameli-device"}
	}
	return cookies{sessionName: "__Host-ameli-session", deviceName: "__Host-ameli-device", secure: true}
}

func (c cookies) session(r *http.Request) string { return value(r, c.sessionName) }
func (c cookies) device(r *http.Request) string  { return value(r, c.deviceName) }

func value(r *http.Request, name string) string {
	ck, err := r.Cookie(name)
	if err != nil || len(ck.Value) > 256 {
		return ""
	}
	return ck.Value
}

// setSession keeps the session token until the session ends (30 minutes
// from the login, never extended).
func (c cookies) setSession(w http.ResponseWriter, s *contract.Session) {
	http.SetCookie(w, c.cookie(c.sessionName, s.Token, s.ExpiresAt))
}

// setDevice keeps the trusted-device token for its 6 months.
func (c cookies) setDevice(w http.ResponseWriter, token string, until time.Time) {
	http.SetCookie(w, c.cookie(c.deviceName, token, until))
}

func (c cookies) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, c.cookie(c.sessionName, "", time.Time{}))
}

func (c cookies) cookie(name, value string, until time.Time) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode}
	if until.IsZero() {
		ck.MaxAge = -1
	} else {
		ck.Expires = until.UTC()
		ck.MaxAge = max(1, int(time.Until(until).Seconds()))
	}
	return ck
}
