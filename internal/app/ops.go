package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/projector"
)

// Each component's metrics are made first on a registry (ops.NewRegistry)
// and given to its Start function; its page is then built over the same
// registry with what it checks. docs/operations.md lists both.

// CommandsOps is the commands service's ops page: ready while its NATS
// connection is connected and the events stream answers.
func CommandsOps(cfg config.Config, n *NATS, reg *prometheus.Registry) *ops.Server {
	return ops.New(ops.Config{Component: "commands", Registry: reg, NATS: []*nats.Conn{n.Conn},
		Stream: ops.StreamCheck(n.JS, cfg.Layout().Streams()...), DevClock: cfg.DevClock})
}

// ProjectorOps is the projector's ops page: ready while NATS is connected,
// Postgres and the events stream answer, and the read models are within
// AUTH_READY_MAX_LAG of the stream; and not before the projector has
// migrated them (call the page's Starting before StartProjector). The
// projector holds one connection of its own; the page pings and reads the
// checkpoint over another (a pool of one, opened on first use). Call close
// when done.
func ProjectorOps(cfg config.Config, n *NATS, reg *prometheus.Registry) (s *ops.Server, close func(), err error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("AUTH_DATABASE_URL: %w", err)
	}
	pc.MaxConns, pc.MinConns = 1, 0
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, nil, err
	}
	s = ops.New(ops.Config{Component: "projector", Registry: reg, NATS: []*nats.Conn{n.Conn}, Ping: pool.Ping,
		Stream: ops.StreamCheck(n.JS, cfg.Layout().Streams()...), Consumers: []ops.Consumer{projectorLag(pool, n, cfg)},
		MaxLag: cfg.ReadyMaxLag, DevClock: cfg.DevClock})
	return s, pool.Close, nil
}

// projectorLag reads the read models' lag over db: every partition's, the
// oldest event not applied in any of them deciding readiness.
func projectorLag(db projector.Querier, n *NATS, cfg config.Config) ops.Consumer {
	return ops.Consumer{Name: "projector", Lag: func(ctx context.Context) (ops.Lag, error) {
		l, err := projector.ReadLag(ctx, db, projector.StatusConfig{JS: n.JS, Prefix: cfg.Prefix, Partitions: cfg.Partitions})
		return ops.Lag{Events: l.Events, Seconds: l.Seconds}, err
	}}
}

// NotifierOps is the notifier's ops page: ready while both its NATS
// connections are connected, its Postgres and the events stream answer,
// and its consumer is within AUTH_READY_MAX_LAG of the stream. With the
// dev mail catcher, the page also lists the mails at /mails/.
func NotifierOps(cfg config.Config, n *NATS, x *Notifier, reg *prometheus.Registry) *ops.Server {
	c := ops.Config{Component: "notifier", Registry: reg, NATS: []*nats.Conn{n.Conn, x.conn}, Ping: x.Store.Ping,
		Stream: ops.StreamCheck(n.JS, cfg.Layout().Streams()...), Consumers: []ops.Consumer{notifierLag(x)},
		MaxLag: cfg.ReadyMaxLag, DevClock: cfg.DevClock}
	if x.Catcher != nil {
		c.Extra = map[string]http.Handler{"/mails/": http.StripPrefix("/mails", x.Catcher.Handler())}
	}
	return ops.New(c)
}

func notifierLag(x *Notifier) ops.Consumer {
	return ops.Consumer{Name: "notifier", Lag: func(ctx context.Context) (ops.Lag, error) {
		events, seconds, err := x.Notifier.Lag(ctx)
		return ops.Lag{Events: events, Seconds: seconds}, err
	}}
}

// WebOps is the web front-end's ops page: ready while its NATS connection
// is connected (its pages say the service is unavailable otherwise; it
// reads no stream).
func WebOps(cfg config.Config, w *Web, reg *prometheus.Registry) *ops.Server {
	return ops.New(ops.Config{Component: "web", Registry: reg, NATS: []*nats.Conn{w.conn}, DevClock: cfg.DevClock})
}

// ServeOps serves s on AUTH_HTTP_ADDR, or nowhere when it is empty. In dev
// mode a taken address moves to one of the next 20 ports, and if none is
// free the page is only missing (a warning); in production a taken address
// is an error: the probes would fail. stop shuts the page down.
func ServeOps(cfg config.Config, s *ops.Server, log *slog.Logger) (stop func(), err error) {
	if cfg.HTTPAddr == "" {
		log.Info("ops page off (AUTH_HTTP_ADDR is empty)")
		return func() {}, nil
	}
	near := 0
	if cfg.Dev() {
		near = 20
	}
	if err := s.Listen(cfg.HTTPAddr, near, log); err != nil {
		if cfg.Dev() {
			log.Warn("ops page not served", "err", err)
			return func() {}, nil
		}
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	}, nil
}
