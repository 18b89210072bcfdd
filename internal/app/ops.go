package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/ops"
)

// CommandsOps is the commands service's ops page and the metrics to give
// StartCommands (its Observe).
func CommandsOps(cfg config.Config, n *NATS) (*ops.Server, *ops.CommandMetrics) {
	s := ops.New(ops.Config{Component: "commands", NATS: []*nats.Conn{n.Conn}, DevClock: cfg.DevClock})
	return s, ops.NewCommandMetrics(s.Registry)
}

// ProjectorOps is the projector's ops page: ready while NATS is connected
// and Postgres answers. The projector holds one connection of its own;
// the page pings over another (a pool of one, opened on first use). Call
// close when done.
func ProjectorOps(cfg config.Config, n *NATS) (s *ops.Server, close func(), err error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("AUTH_DATABASE_URL: %w", err)
	}
	pc.MaxConns, pc.MinConns = 1, 0
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, nil, err
	}
	s = ops.New(ops.Config{Component: "projector", NATS: []*nats.Conn{n.Conn}, Ping: pool.Ping, DevClock: cfg.DevClock})
	return s, pool.Close, nil
}

// NotifierOps is the notifier's ops page: ready while both its NATS
// connections are connected and its Postgres answers. With the dev mail
// catcher, the page also lists the mails at /mails/.
func NotifierOps(cfg config.Config, n *NATS, x *Notifier) *ops.Server {
	c := ops.Config{Component: "notifier", NATS: []*nats.Conn{n.Conn, x.conn}, Ping: x.Store.Ping, DevClock: cfg.DevClock}
	if x.Catcher != nil {
		c.Extra = map[string]http.Handler{"/mails/": http.StripPrefix("/mails", x.Catcher.Handler())}
	}
	return ops.New(c)
}

// WebOps is the web front-end's ops page: ready while its NATS connection
// is connected (its pages say the service is unavailable otherwise).
func WebOps(cfg config.Config, w *Web) *ops.Server {
	return ops.New(ops.Config{Component: "web", NATS: []*nats.Conn{w.conn}, DevClock: cfg.DevClock})
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
