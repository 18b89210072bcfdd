// Package ops serves a component's operations page on AUTH_HTTP_ADDR:
// GET /healthz (liveness), GET /readyz (readiness: its NATS connections,
// its Postgres, the events stream, how far its consumer is behind) and
// GET /metrics (Prometheus text format). Each component has its own
// registry, so that tests, and several components in one process, do not
// share metrics. See docs/operations.md.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PingTimeout bounds each readiness check that asks another server
// (Postgres, the events stream, a consumer's lag), and each lag read of a
// scrape.
const PingTimeout = time.Second

// DefaultMaxLag is the readiness bound of a consumer (AUTH_READY_MAX_LAG's
// default): a projector or notifier whose oldest event not yet handled is
// older than this is not ready. 30 s is far above what either takes in
// normal running (the projector applies a batch in milliseconds, the
// notifier mails within a second), and far below a security code's
// lifetime, so "not ready" means stuck or far behind, not busy.
const DefaultMaxLag = 30 * time.Second

// Config is what a component's ops page checks and shows.
type Config struct {
	Component string // commands, projector, notifier, web, or dev (authctl dev)
	// Registry is where the component's metrics are (NewRegistry); nil:
	// a new one.
	Registry *prometheus.Registry
	// NATS are the connections that must be connected to be ready; each
	// is also counted in auth_nats_reconnects_total and auth_nats_connected
	// under its name (nats.Name).
	NATS []*nats.Conn
	// Ping, if set, must answer within PingTimeout for the component to be
	// ready (the projector's and the notifier's Postgres).
	Ping func(ctx context.Context) error
	// Stream, if set, must reach the events stream within PingTimeout
	// (a stream info request; StreamCheck).
	Stream func(ctx context.Context) error
	// Consumers are the stream's consumers the component runs: each one's
	// lag is a metric, and the component is ready only while the oldest
	// event it has not handled is at most MaxLag old.
	Consumers []Consumer
	MaxLag    time.Duration // 0: DefaultMaxLag
	DevClock  bool          // AUTH_DEV_CLOCK is on: /readyz says so
	// Health, if set, adds lines to /healthz (authctl dev: the dev clock).
	Health func() string
	// Extra handlers served beside the ops endpoints, by pattern (the dev
	// mail catcher's "/mails/").
	Extra map[string]http.Handler
}

// Consumer is one consumer of the events stream, for its lag metrics and
// the readiness bound.
type Consumer struct {
	Name string // projector or notifier: the label value of consumer
	Lag  func(ctx context.Context) (Lag, error)
}

// Lag is how far a consumer is behind the events stream.
type Lag struct {
	Events uint64 // events in the stream not handled yet
	// Seconds is the age of the oldest of them (by the stream's
	// timestamp): 0 when Events is 0.
	Seconds float64
}

// Server is a component's ops page and its metrics registry.
type Server struct {
	Registry *prometheus.Registry
	URL      string // set by Listen

	cfg  Config
	mux  *http.ServeMux
	http *http.Server

	mu       sync.Mutex
	starting string // why the component is not started yet, "" once it is

	// The checks that ask another server, each shared for CacheFor
	// (cache.go): Postgres, the events stream, each consumer's lag (read
	// by /readyz and /metrics both).
	clock  func() time.Time // time.Now; a test's clock
	ping   *shared[error]
	stream *shared[error]
	lags   []*shared[lagRead]
}

// lagRead is a consumer's lag as read, or why not.
type lagRead struct {
	lag      Lag
	err      error
	timedOut bool // not read within PingTimeout
}

// NewRegistry is a registry with the Go runtime's and the process's
// collectors, to which a component's metrics are added.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New builds the page and adds to its registry the NATS connections' and
// the consumers' metrics.
func New(cfg Config) *Server {
	if cfg.Registry == nil {
		cfg.Registry = NewRegistry()
	}
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = DefaultMaxLag
	}
	reg := cfg.Registry
	s := &Server{Registry: reg, cfg: cfg, mux: http.NewServeMux(), clock: time.Now}
	now := func() time.Time { return s.clock() }
	s.ping = newShared(now, func(ctx context.Context) error { return s.ask(ctx, "postgres", cfg.Ping) })
	s.stream = newShared(now, func(ctx context.Context) error { return s.ask(ctx, "events stream", cfg.Stream) })
	for _, c := range cfg.Consumers {
		s.lags = append(s.lags, newShared(now, func(ctx context.Context) lagRead {
			ctx, cancel := context.WithTimeout(ctx, PingTimeout)
			defer cancel()
			lag, err := c.Lag(ctx)
			return lagRead{lag: lag, err: err, timedOut: err != nil && ctx.Err() != nil}
		}))
	}
	if len(cfg.NATS) > 0 {
		reg.MustRegister(newNATSCollector(cfg.NATS))
	}
	if len(cfg.Consumers) > 0 {
		reg.MustRegister(&lagCollector{consumers: cfg.Consumers, lags: s.lags})
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
		if cfg.Health != nil {
			fmt.Fprint(w, cfg.Health())
		}
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	for pattern, h := range cfg.Extra {
		s.mux.Handle(pattern, h)
	}
	return s
}

// Handler serves the page.
func (s *Server) Handler() http.Handler { return s.mux }

// Starting makes the component not ready, saying "starting: <what>", until
// started is called: the projector's page is served while it migrates the
// read models (which waits up to a minute for Postgres), so that the
// liveness probe answers and the readiness probe says why not yet.
func (s *Server) Starting(what string) (started func()) {
	s.mu.Lock()
	s.starting = what
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.starting = ""
		s.mu.Unlock()
	}
}

// Ready says why the component is not ready, or nil. The checks run in
// order and the first failure is the answer: started, NATS connected,
// Postgres answers, the events stream answers, each consumer within
// MaxLag. The first two are the process's own state, read each time; the
// others ask another server, and their answers are shared for CacheFor
// (cache.go): concurrent calls wait for the one check in flight. A reason
// never holds a URL or an error's text (they may name hosts and users):
// the component's log says more.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	starting := s.starting
	s.mu.Unlock()
	if starting != "" {
		return fmt.Errorf("starting: %s", starting)
	}
	for _, nc := range s.cfg.NATS {
		if nc == nil || !nc.IsConnected() {
			status := "closed"
			if nc != nil {
				status = strings.ToLower(nc.Status().String())
			}
			return fmt.Errorf("nats not connected (%s)", status)
		}
	}
	if err := sharedCheck(ctx, "postgres", s.ping); err != nil {
		return err
	}
	if err := sharedCheck(ctx, "events stream", s.stream); err != nil {
		return err
	}
	for i, c := range s.cfg.Consumers {
		r, err := s.lags[i].get(ctx)
		switch {
		case err != nil:
			return fmt.Errorf("%s lag unknown: no answer", c.Name)
		case r.err != nil && r.timedOut:
			return fmt.Errorf("%s lag unknown: not read within %s", c.Name, PingTimeout)
		case r.err != nil:
			return fmt.Errorf("%s lag unknown: its position or the stream could not be read", c.Name)
		}
		if r.lag.Events > 0 && r.lag.Seconds > s.cfg.MaxLag.Seconds() {
			return fmt.Errorf("%s behind: %d events, the oldest %s old (bound %s, AUTH_READY_MAX_LAG)",
				c.Name, r.lag.Events, age(r.lag.Seconds), s.cfg.MaxLag)
		}
	}
	return nil
}

// sharedCheck is the shared answer of a check: its reason, or, when the
// caller stopped waiting or the check gave none, that there is none.
func sharedCheck(ctx context.Context, what string, check *shared[error]) error {
	reason, err := check.get(ctx)
	if err != nil {
		return fmt.Errorf("%s: no answer", what)
	}
	return reason
}

// age is seconds as a readable duration: to the second above one.
func age(seconds float64) time.Duration {
	d := time.Duration(seconds * float64(time.Second))
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// ask runs one check with PingTimeout; nil check: nothing to ask.
func (s *Server) ask(ctx context.Context, what string, check func(context.Context) error) error {
	if check == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	if err := check(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s did not answer within %s", what, PingTimeout)
		}
		if what == "postgres" {
			return errors.New("postgres ping failed")
		}
		return fmt.Errorf("%s unreachable", what)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	err := s.Ready(r.Context())
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", err)
	} else {
		fmt.Fprintln(w, "ready")
	}
	if s.cfg.DevClock {
		fmt.Fprintln(w, "dev clock on (AUTH_DEV_CLOCK=1)")
	}
}

// Listen serves the page on addr until Close. With near > 0, a taken
// address moves to one of the next near ports (dev mode).
func (s *Server) Listen(addr string, near int, log *slog.Logger) error {
	ln, err := listenNear(addr, near)
	if err != nil {
		return fmt.Errorf("ops page: listen on %s (AUTH_HTTP_ADDR): %w", addr, err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("ops page stopped", "err", err)
		}
	}()
	log.Info("ops page", "healthz", s.URL+"/healthz", "readyz", s.URL+"/readyz", "metrics", s.URL+"/metrics")
	return nil
}

// Close stops serving, letting the requests in flight finish until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}

func listenNear(addr string, n int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil || n <= 0 {
		return ln, err
	}
	host, portStr, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	var port int
	if _, serr := fmt.Sscan(portStr, &port); serr != nil || port == 0 {
		return nil, err
	}
	for i := 1; i <= n; i++ {
		if ln, e := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port+i))); e == nil {
			return ln, nil
		}
	}
	return nil, err
}
