package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/web"
)

// Web is a running web front-end: its own NATS connection (it is a client
// of the commands service like any other) and its HTTP server.
type Web struct {
	URL  string
	conn *nats.Conn
	http *http.Server
	log  *slog.Logger
}

// StartWeb serves the web front-end on cfg.WebAddr (in dev mode, on the next
// free port when it is taken) as a client of the commands service at
// natsURL. It starts even while NATS is down: the pages say the service is
// unavailable until nats.go has reconnected. metrics, if not nil, counts
// the requests by route and status.
func StartWeb(cfg config.Config, natsURL string, metrics *ops.WebMetrics, log *slog.Logger) (*Web, error) {
	if natsURL == "" {
		return nil, errors.New("web: AUTH_NATS_URL is required: the web front-end is a client of the commands service (`make run` starts it with the whole service)")
	}
	// Retrying a failed first connect too: the web front-end starts even
	// while NATS is down.
	opts, err := NATSOptions(cfg.NATS, "auth-web", log)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	nc, err := nats.Connect(natsURL, append(opts, nats.RetryOnFailedConnect(true))...)
	if err != nil {
		return nil, fmt.Errorf("web: connect to nats: %w", err)
	}
	var ln net.Listener
	if cfg.Dev() {
		ln, err = listenNear(cfg.WebAddr, 20)
	} else {
		ln, err = net.Listen("tcp", cfg.WebAddr)
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("web: listen on %s (AUTH_WEB_ADDR): %w", cfg.WebAddr, err)
	}
	url := "http://" + ln.Addr().String()
	issuer := cfg.OIDCIssuer
	if issuer == "" && cfg.Dev() {
		issuer = url + "/oidc"
	}
	wcfg := web.Config{Conn: nc, Prefix: cfg.Prefix, Logger: log, TrustedProxies: cfg.WebTrustedProxies}
	if issuer != "" {
		wcfg.ReturnPrefix = oidcReturnPrefix(issuer)
	}
	srv, err := web.New(wcfg)
	if err != nil {
		_ = ln.Close()
		nc.Close()
		return nil, err
	}
	var h http.Handler = srv
	if metrics != nil {
		h = metrics.Middleware(srv.Route, srv)
	}
	if issuer != "" {
		if h, err = withOIDC(cfg, issuer, url, nc, srv, h, metrics, log); err != nil {
			_ = ln.Close()
			nc.Close()
			return nil, err
		}
	}
	w := &Web{URL: url, conn: nc, log: log,
		http: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}}
	go func() {
		if err := w.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web front-end stopped", "err", err)
		}
	}()
	log.Info("web front-end started", "url", w.URL)
	return w, nil
}

// Stop finishes the requests in flight, then closes the NATS connection.
func (w *Web) Stop(ctx context.Context) error {
	err := w.http.Shutdown(ctx)
	w.conn.Close()
	return err
}
