package ops

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Every label value below comes from a fixed set named by the contract or
// the code (a command's subject, a reply status or error code, an event
// type, a lockout or code kind, a mail kind, a route pattern, an HTTP
// status, a connection or consumer name): never a NIR, an email, an
// account id or a token. A test scans every label value after an
// end-to-end flow (internal/app).

// CommandMetrics are the commands service's: requests by subject and
// outcome and their duration; the facts recorded, lockouts and codes
// issued by kind; lost races; the hashing pool's queue. Give its Observe to
// commands.Config.Observe and the value itself to commands.Config.Metrics.
type CommandMetrics struct {
	total     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	appended  *prometheus.CounterVec
	lockouts  *prometheus.CounterVec
	codes     *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	retries   *prometheus.CounterVec
	hashWait  prometheus.Histogram
	hashing   prometheus.Gauge
	cacheMax  *prometheus.GaugeVec
	cached    *prometheus.GaugeVec
	evicted   *prometheus.CounterVec
	covered   *prometheus.CounterVec
	coverAge  prometheus.Histogram
	sources   *prometheus.CounterVec
}

// NewCommandMetrics registers the commands' metrics on reg.
func NewCommandMetrics(reg prometheus.Registerer) *CommandMetrics {
	m := &CommandMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_commands_total",
			Help: "Commands handled, by subject and outcome (reply status or error code).",
		}, []string{"subject", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auth_command_duration_seconds",
			Help:    "Time to decide a command (before any response floor), by subject.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"subject"}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_events_appended_total",
			Help: "Events appended to the accounts' streams, by event type.",
		}, []string{"type"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_lockouts_total",
			Help: "Blocks recorded, by kind: password, otp, otp_quota, password_change_requests, password_change_code, email_change_requests, email_change_code. Includes NIRs without an account (shadow accounts).",
		}, []string{"kind"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_codes_issued_total",
			Help: "Security codes and reset links issued to accounts (each one mailed by the notifier), by kind: login, password_change, email_change, password_reset.",
		}, []string{"kind"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_append_conflicts_total",
			Help: "Writes that lost a race (optimistic concurrency), by store: account (an append's expected sequence) or shadow (a NIR's shadow state).",
		}, []string{"store"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_decision_retries_total",
			Help: "Decisions made again on a reloaded state, by reason: conflict (after a lost race) or stale (the cached state was behind the stream).",
		}, []string{"reason"}),
		hashWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auth_hash_queue_wait_seconds",
			Help:    "Time a password check or hash waited for a worker of the hashing pool.",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		hashing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auth_hashes_in_flight",
			Help: "Password hashes (argon2id, or bcrypt of imported accounts) being computed now.",
		}),
		cacheMax: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auth_cache_max_entries",
			Help: "The most entries a cache of the commands service keeps, by cache: accounts (account states), shadows (NIRs without an account), replies (replies to retried requests).",
		}, []string{"cache"}),
		cached: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auth_cache_entries",
			Help: "Entries a cache of the commands service holds now, by cache (at most auth_cache_max_entries).",
		}, []string{"cache"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_cache_evictions_total",
			Help: "Entries dropped from a cache of the commands service to stay within its bound (the least recently used) or because they expired, by cache.",
		}, []string{"cache"}),
		covered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_attempts_covered_total",
			Help: "Login attempts the coverer handled (a snapshot must cover each before its retention ends), by outcome: already (a snapshot covered it), snapshot (one was written), gone (it had expired first: its effect is lost).",
		}, []string{"outcome"}),
		coverAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auth_attempts_cover_age_seconds",
			Help:    "Age of a login attempt when the coverer handled it, from its append: about 60 s when the coverers keep up.",
			Buckets: []float64{1, 30, 60, 65, 90, 120, 300, 900, 3600, 21600, 86400, 604800},
		}),
		sources: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_sources_total",
			Help: "The password-spraying defence by source (issue 20), by what (throttled: a source spent its budget, a fraud.source_throttled; released: its throttle ended, a fraud.source_released; refused: a login.password refused with too_many_attempts before any hash; event_lost: a fraud event AUTH_FRAUD refused) and kind (ip or prefix). Never the address.",
		}, []string{"what", "kind"}),
	}
	reg.MustRegister(m.total, m.duration, m.appended, m.lockouts, m.codes, m.conflicts, m.retries, m.hashWait, m.hashing,
		m.cacheMax, m.cached, m.evicted, m.covered, m.coverAge, m.sources)
	return m
}

// Observe counts one command; it is commands.Config.Observe.
func (m *CommandMetrics) Observe(subject, outcome string, d time.Duration) {
	if outcome == "" {
		outcome = "unknown"
	}
	m.total.WithLabelValues(subject, outcome).Inc()
	m.duration.WithLabelValues(subject).Observe(d.Seconds())
}

// Recorded counts a fact (commands.Metrics): by type when appended, as a
// lockout when it blocks, as a code when it issues one to an account.
func (m *CommandMetrics) Recorded(e events.Event, shadow bool) {
	if !shadow {
		m.appended.WithLabelValues(e.EventType()).Inc()
		if kind := CodeKind(e); kind != "" {
			m.codes.WithLabelValues(kind).Inc()
		}
	}
	if kind := LockoutKind(e); kind != "" {
		m.lockouts.WithLabelValues(kind).Inc()
	}
}

// Conflict counts a lost race (commands.Metrics).
func (m *CommandMetrics) Conflict(store string) { m.conflicts.WithLabelValues(store).Inc() }

// Retry counts a decision made again (commands.Metrics).
func (m *CommandMetrics) Retry(reason string) { m.retries.WithLabelValues(reason).Inc() }

// HashWaited observes a wait for a hashing worker (commands.Metrics).
func (m *CommandMetrics) HashWaited(d time.Duration) { m.hashWait.Observe(d.Seconds()) }

// Hashing moves the hashes in flight (commands.Metrics).
func (m *CommandMetrics) Hashing(delta int) { m.hashing.Add(float64(delta)) }

// CacheBound sets a cache's bound (commands.Metrics).
func (m *CommandMetrics) CacheBound(cache string, max int) {
	m.cacheMax.WithLabelValues(cache).Set(float64(max))
	// The cache's series exist from the start, at 0.
	m.cached.WithLabelValues(cache).Add(0)
	m.evicted.WithLabelValues(cache).Add(0)
}

// Cached moves a cache's entries and counts its evictions
// (commands.Metrics).
func (m *CommandMetrics) Cached(cache string, added, evicted int) {
	if added != 0 {
		m.cached.WithLabelValues(cache).Add(float64(added))
	}
	if evicted > 0 {
		m.evicted.WithLabelValues(cache).Add(float64(evicted))
	}
}

// Covered counts a login attempt the coverer handled (commands.Metrics).
func (m *CommandMetrics) Covered(outcome string, age time.Duration) {
	m.covered.WithLabelValues(outcome).Inc()
	m.coverAge.Observe(age.Seconds())
}

// Source counts what the password-spraying defence did (commands.Metrics).
func (m *CommandMetrics) Source(what, kind string) {
	m.sources.WithLabelValues(what, kind).Inc()
}

// LockoutKind is the kind of block a fact records, "" if it blocks
// nothing: the fact that reaches a limit carries the block itself (one
// decision, one event; docs/rules.md).
func LockoutKind(e events.Event) string {
	switch e := e.(type) {
	case events.PasswordFailed:
		if !e.BlockedUntil.IsZero() {
			return "password"
		}
	case events.OTPFailed:
		if !e.BlockedUntil.IsZero() {
			return "otp"
		}
	case events.OTPQuotaExceeded:
		return "otp_quota"
	case events.ChangeRequestsExceeded:
		return flow(e.Flow) + "_requests"
	case events.ChangeCodeFailed:
		if !e.BlockedUntil.IsZero() {
			return flow(e.Flow) + "_code"
		}
	}
	return ""
}

// flow keeps a change flow's name to the contract's two.
func flow(f string) string {
	switch f {
	case events.FlowPasswordChange, events.FlowEmailChange:
		return f
	}
	return "other_change"
}

// CodeKind is the kind of code or link a fact issues, "" if none.
func CodeKind(e events.Event) string {
	switch e.(type) {
	case events.OTPIssued:
		return "login"
	case events.PasswordChangeCodeIssued:
		return "password_change"
	case events.EmailChangeCodeIssued:
		return "email_change"
	case events.PasswordResetRequested:
		return "password_reset"
	}
	return ""
}

// ProjectorMetrics are the projector's (its lag is a Consumer of the page).
type ProjectorMetrics struct {
	applied  prometheus.Counter
	batch    prometheus.Histogram
	took     prometheus.Histogram
	isLeader atomic.Pointer[func() bool]
}

// NewProjectorMetrics registers the projector's metrics on reg.
func NewProjectorMetrics(reg prometheus.Registerer) *ProjectorMetrics {
	m := &ProjectorMetrics{
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auth_projector_events_applied_total",
			Help: "Events applied to the read models by this replica.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auth_projector_batch_events",
			Help:    "Events per committed batch (one transaction; at most AUTH_PROJECTOR_BATCH).",
			Buckets: []float64{1, 10, 100, 1000, 5000, 10000, 20000, 50000},
		}),
		took: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auth_projector_batch_duration_seconds",
			Help:    "Time of a batch's transaction, from begin to commit.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	leader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "auth_projector_leader",
		Help: "1 while this replica leads (applies the events), 0 while it stands by.",
	}, func() float64 {
		if f := m.isLeader.Load(); f != nil && (*f)() {
			return 1
		}
		return 0
	})
	reg.MustRegister(m.applied, m.batch, m.took, leader)
	return m
}

// Committed counts a committed batch (projector.Config.AfterCommit).
func (m *ProjectorMetrics) Committed(events int, took time.Duration) {
	m.applied.Add(float64(events))
	m.batch.Observe(float64(events))
	m.took.Observe(took.Seconds())
}

// FollowLeader makes auth_projector_leader read leader (the running
// replica's Leader).
func (m *ProjectorMetrics) FollowLeader(leader func() bool) { m.isLeader.Store(&leader) }

// Outcomes of a mail, for NotifierMetrics.Mail (notifier.Config.Mails).
const (
	MailSent         = "sent"          // the SMTP server accepted it
	MailExpired      = "expired"       // not sent: out of date when its turn came
	MailDeadLettered = "dead_lettered" // given up, moved to AUTH_DLQ
	MailFailed       = "failed"        // one attempt failed (SMTP); retried unless given up
)

// NotifierMetrics are the notifier's (its lag is a Consumer of the page).
type NotifierMetrics struct {
	mails    *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// NewNotifierMetrics registers the notifier's metrics on reg.
func NewNotifierMetrics(reg prometheus.Registerer) *NotifierMetrics {
	m := &NotifierMetrics{
		mails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_notifier_mails_total",
			Help: "Mails done with, by template kind and outcome: sent, expired (out of date, not sent) or dead_lettered (given up).",
		}, []string{"kind", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_notifier_send_failures_total",
			Help: "Attempts to send a mail that failed (SMTP refused or unreachable), by template kind; each is retried until the mail is given up.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.mails, m.failures)
	return m
}

// Mail counts one outcome of a mail of kind (a mail template's name, or
// "unknown" for an event the notifier could not read).
func (m *NotifierMetrics) Mail(kind, outcome string) {
	if kind == "" {
		kind = "unknown"
	}
	if outcome == MailFailed {
		m.failures.WithLabelValues(kind).Inc()
		return
	}
	m.mails.WithLabelValues(kind, outcome).Inc()
}

// WebMetrics are the web front-end's: requests by route and status.
type WebMetrics struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewWebMetrics registers the web front-end's metrics on reg.
func NewWebMetrics(reg prometheus.Registerer) *WebMetrics {
	m := &WebMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_web_requests_total",
			Help: "Requests to the web front-end, by route (the pattern that served it, e.g. \"POST /connexion\") and HTTP status.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auth_web_request_duration_seconds",
			Help:    "Time to answer a request of the web front-end, by route.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	reg.MustRegister(m.total, m.duration)
	return m
}

// Middleware counts each request that next serves under the route that
// route names for it (a pattern of the front-end's mux, never the path:
// a path may hold a token); "" counts as "other".
func (m *WebMetrics) Middleware(route func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := route(r)
		if name == "" {
			name = "other"
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.total.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
