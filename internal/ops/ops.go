// Package ops serves a component's operations page on AUTH_HTTP_ADDR:
// GET /healthz (liveness), GET /readyz (readiness: its NATS connections,
// its Postgres) and GET /metrics (Prometheus text format). Each server has
// its own registry, so that tests, and several components in one process,
// do not share metrics. See docs/operations.md.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// PingTimeout bounds a readiness check of Postgres.
const PingTimeout = time.Second

// Config is what a component's ops page checks and shows.
type Config struct {
	Component string       // commands, projector, notifier or web
	NATS      []*nats.Conn // connections that must be connected to be ready
	// Ping, if set, must answer within PingTimeout for the component to be
	// ready (the projector's and the notifier's Postgres).
	Ping     func(ctx context.Context) error
	DevClock bool // AUTH_DEV_CLOCK is on: /readyz says so
	// Extra handlers served beside the ops endpoints, by pattern (the dev
	// mail catcher's "/mails/").
	Extra map[string]http.Handler
}

// Server is a component's ops page and its metrics registry.
type Server struct {
	Registry *prometheus.Registry
	URL      string // set by Listen

	cfg  Config
	mux  *http.ServeMux
	http *http.Server
}

// New builds the page; its registry starts with the Go runtime's and the
// process's collectors.
func New(cfg Config) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Registry: reg, cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
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

// Ready says why the component is not ready, or nil.
func (s *Server) Ready(ctx context.Context) error {
	for _, nc := range s.cfg.NATS {
		if nc == nil || !nc.IsConnected() {
			status := "closed"
			if nc != nil {
				status = strings.ToLower(nc.Status().String())
			}
			return fmt.Errorf("nats not connected (%s)", status)
		}
	}
	if s.cfg.Ping != nil {
		ctx, cancel := context.WithTimeout(ctx, PingTimeout)
		defer cancel()
		if err := s.cfg.Ping(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("postgres did not answer within %s", PingTimeout)
			}
			return errors.New("postgres ping failed")
		}
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
