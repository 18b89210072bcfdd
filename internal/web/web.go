// Package web is the web front-end: server-rendered pages of the seed's
// « Compte ameli web » (login with a security code, the error cases, the
// home page, the password and email changes, the forgotten password), and a
// backend-for-frontend that is a plain client of the commands service over
// NATS. Each handler parses its form, sends one command and renders the
// reply; every rule and every message stays in the service. See
// docs/web.md.
package web

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/tracing"
)

// Config wires the web front-end. Conn is required.
type Config struct {
	Conn    *nats.Conn
	Prefix  string        // subject prefix, "auth" by default
	Timeout time.Duration // per command; 3 s by default, so a page never hangs
	// DevCookies names the cookies without the __Host- prefix and drops
	// Secure, for a browser that refuses Secure cookies over plain http
	// (dev mode only; Chromium and Firefox accept them on localhost and
	// 127.0.0.1, so it is off unless asked for: docs/web.md).
	DevCookies bool
	// TrustedProxies are the reverse proxies in front of this server
	// (AUTH_WEB_TRUSTED_PROXIES): from a request whose TCP peer is one of
	// them, the client's address is taken from X-Forwarded-For (the
	// rightmost entry not in this list). Empty: the TCP peer is the client.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	// TracerProvider makes a span per page request and per command sent
	// (tracing.go). nil: the global provider, which exports nothing
	// unless tracing.Setup installed an exporter.
	TracerProvider trace.TracerProvider
	// ReturnPrefix is the path prefix a login may return to once done
	// (/connexion?retour=…): the OpenID Connect provider's login step
	// (internal/oidc, "<issuer path>/login?"). "": none, a login goes home.
	ReturnPrefix string
}

// Server serves the pages.
type Server struct {
	client  *client
	pages   *pages
	cookies cookies
	log     *slog.Logger
	handler http.Handler
	mux     *http.ServeMux
	csrf    *http.CrossOriginProtection
	tracer  trace.Tracer
	// tp is the configured provider, nil for the global one:
	// tracing.MayRecord(tp) is asked per request (Setup may come after
	// New).
	tp trace.TracerProvider
	// returnPrefix: Config.ReturnPrefix.
	returnPrefix string
}

// New checks the configuration and builds the handler.
func New(cfg Config) (*Server, error) {
	if cfg.Conn == nil {
		return nil, errors.New("web: a NATS connection is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "auth"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	tracer := tracing.Provider(cfg.TracerProvider).Tracer(tracing.Scope + "/internal/web")
	ip, err := newClientIP(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{
		client:  &client{nc: cfg.Conn, prefix: cfg.Prefix, timeout: cfg.Timeout, log: cfg.Logger, tracer: tracer, ip: ip},
		pages:   p,
		cookies: newCookies(cfg.DevCookies),
		log:     cfg.Logger,
		tracer:  tracer,
		tp:      cfg.TracerProvider,

		returnPrefix: cfg.ReturnPrefix,
	}
	s.handler = s.routes()
	return s, nil
}

// SessionToken is the browser's web session token (its cookie), "" when
// none: the OpenID Connect provider asks oidc.authorize with it.
func (s *Server) SessionToken(r *http.Request) string { return s.cookies.session(r) }

// ClientIP is the browser's address as the commands carry it (the TCP peer,
// or behind trusted proxies the forwarded address): the provider's
// oidc.authorize sends the same.
func (s *Server) ClientIP(r *http.Request) string { return s.client.ip(r) }

// ClearSession makes the browser forget its web session (end_session of
// the OpenID Connect provider, after session.logout).
func (s *Server) ClearSession(w http.ResponseWriter) { s.cookies.clearSession(w) }

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Route is the pattern that serves r ("POST /connexion", "GET
// /rubrique/{tab}", "/" for a page that does not exist), for metrics: a
// fixed set, never the path (a reset link's path and query hold a token).
func (s *Server) Route(r *http.Request) string {
	_, pattern := s.mux.Handler(r)
	return pattern
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.mux = mux
	mux.Handle("GET /static/", staticFiles())
	mux.HandleFunc("GET /{$}", s.root)

	// Login (seed: Étapes 0 to 3, Cas 1 to 9).
	mux.HandleFunc("GET /connexion", s.loginForm)
	mux.HandleFunc("POST /connexion", s.form(s.loginPassword))
	mux.HandleFunc("POST /connexion/envoi-code", s.form(s.loginSendCode))
	mux.HandleFunc("POST /connexion/code", s.form(s.loginVerifyCode))
	mux.HandleFunc("POST /deconnexion", s.form(s.logout))

	// Logged in.
	mux.HandleFunc("GET /accueil", s.home)
	mux.HandleFunc("GET /mes-informations", s.infos)
	mux.HandleFunc("GET /rubrique/{tab}", s.tab)
	mux.HandleFunc("POST /mes-informations/mot-de-passe/code", s.form(s.passwordChangeStart))
	mux.HandleFunc("POST /mes-informations/mot-de-passe/verification", s.form(s.passwordChangeVerify))
	mux.HandleFunc("POST /mes-informations/mot-de-passe", s.form(s.passwordChangeComplete))
	mux.HandleFunc("GET /mes-informations/mail", s.emailForm)
	mux.HandleFunc("POST /mes-informations/mail", s.form(s.emailChange))
	mux.HandleFunc("POST /mes-informations/mail/confirmation", s.form(s.emailConfirm))

	// Forgotten password; /password/reset is the mailed link's page
	// (AUTH_PUBLIC_URL + the notifier's reset path).
	mux.HandleFunc("GET /mot-de-passe-oublie", s.forgotForm)
	mux.HandleFunc("POST /mot-de-passe-oublie", s.form(s.forgot))
	mux.HandleFunc("GET /password/reset", s.resetForm)
	mux.HandleFunc("POST /password/reset", s.form(s.reset))

	// Explanatory pages.
	mux.HandleFunc("GET /creer-un-compte", s.static("create", "Créer mon compte ameli"))
	mux.HandleFunc("GET /numero-de-securite-sociale", s.static("nir", "Où trouver mon numéro de sécurité sociale ?"))

	mux.HandleFunc("/", s.notFound)

	// Outermost first: every body bounded (limits.go), the page's span
	// (tracing.go), the headers, the recoverer, the cross-origin check,
	// then the page; a POST page parses its form (s.form) only there.
	s.csrf = http.NewCrossOriginProtection()
	s.csrf.SetDenyHandler(http.HandlerFunc(s.crossOrigin))
	return bounded(s.traced(securityHeaders(s.recoverer(s.csrf.Handler(mux)))))
}

// securityHeaders: no script, no frame, no referrer (the reset link's token
// is in its URL), and nothing of a page kept by a cache (every page is a
// form or a logged-in page). Static files may be cached.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		h.Set("Strict-Transport-Security", "max-age=63072000") // ignored over http (dev)
		if strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "public, max-age=3600")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer shows the unavailable page instead of a stack trace.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("web handler panic", "path", r.URL.Path, "panic", p)
				s.render(w, http.StatusInternalServerError, "message", view{Title: "Service indisponible", Error: msgUnavailable})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// crossOrigin answers a form posted from another site (CSRF).
func (s *Server) crossOrigin(w http.ResponseWriter, r *http.Request) {
	s.log.Warn("cross-origin form refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "client_ip", s.client.ip(r))
	s.render(w, http.StatusForbidden, "message", view{Title: "Demande refusée",
		Error: "Cette demande a été envoyée depuis un autre site et a été refusée. Merci de recommencer depuis le site ameli."})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusNotFound, "message", view{Title: "Page introuvable",
		Info: "La page demandée n'existe pas ou n'est plus disponible."})
}

// root sends a visitor to the login page, or home when a session cookie is there.
func (s *Server) root(w http.ResponseWriter, r *http.Request) {
	if s.cookies.session(r) != "" {
		http.Redirect(w, r, "/accueil", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/connexion", http.StatusSeeOther)
}

func (s *Server) static(name, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.render(w, http.StatusOK, name, view{Title: title})
	}
}
