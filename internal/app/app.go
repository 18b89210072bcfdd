// Package app wires the components from their configuration, so that the
// cmd/* mains stay thin and end-to-end tests run the real wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// NewLogger is the structured logger every component uses.
func NewLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// NATS is a connection, and the embedded server behind it in dev mode.
type NATS struct {
	Conn     *nats.Conn
	JS       jetstream.JetStream
	Embedded *server.Server
}

// ConnectNATS connects to AUTH_NATS_URL, or in dev mode without it starts an
// embedded nats-server with JetStream under <var>/nats and says where it
// listens.
func ConnectNATS(cfg config.Config, name string, log *slog.Logger) (*NATS, error) {
	n := &NATS{}
	url := cfg.NATSURL
	if url == "" && !cfg.Dev() {
		return nil, errors.New("AUTH_NATS_URL is required outside dev mode (AUTH_MODE=dev)")
	}
	if url == "" {
		srv, err := natsutil.StartEmbedded(natsutil.EmbeddedConfig{Listen: cfg.NATSListen, StoreDir: filepath.Join(cfg.VarDir, "nats")})
		if err != nil {
			return nil, fmt.Errorf("start embedded nats-server: %w", err)
		}
		n.Embedded = srv
		url = srv.ClientURL()
		if !strings.HasSuffix(url, ":"+portOf(cfg.NATSListen)) {
			log.Warn("AUTH_NATS_LISTEN was taken: the embedded nats-server listens elsewhere", "wanted", cfg.NATSListen, "url", url)
		}
		log.Info("embedded nats-server with JetStream", "url", url, "store", filepath.Join(cfg.VarDir, "nats"))
	}
	nc, err := nats.Connect(url, natsutil.ClientOptions(name, log)...)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	n.Conn = nc
	if n.JS, err = jetstream.New(nc); err != nil {
		n.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return n, nil
}

// Close drains the connection and stops the embedded server.
func (n *NATS) Close() {
	if n.Conn != nil {
		_ = n.Conn.Drain()
	}
	if n.Embedded != nil {
		n.Embedded.Shutdown()
		n.Embedded.WaitForShutdown()
	}
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// Commands is a running commands service.
type Commands struct {
	Service *commands.Service
	Store   *eventstore.JetStream
}

// StartCommands opens the event store and serves the commands on nc.
// observe, if not nil, is told each command's subject, outcome and
// duration (commands.Config.Observe; CommandsOps gives one).
func StartCommands(ctx context.Context, cfg config.Config, n *NATS, devClock *clock.Dev,
	observe func(subject, outcome string, d time.Duration), log *slog.Logger) (*Commands, error) {
	keys, err := cfg.Keys()
	if err != nil {
		return nil, err
	}
	store, err := eventstore.OpenJetStream(ctx, n.JS, eventstore.JetStreamConfig{Prefix: cfg.Prefix, Replicas: cfg.StreamReplicas})
	if err != nil {
		return nil, err
	}
	c := commands.Config{Prefix: cfg.Prefix, Policy: cfg.Policy, Keys: keys, Store: store, Index: store.Index(),
		Snapshots: store.Snapshots(), Shadows: store.Shadows(), Logger: log, Observe: observe}
	if cfg.DevClock {
		// Before the service answers anything: its first decisions are at
		// the kept time.
		if err := KeepDevClock(ctx, n.JS, cfg.Prefix, cfg.StreamReplicas, devClock, log); err != nil {
			return nil, err
		}
		c.DevClock = devClock
		warnDevClock(cfg, log, "answers")
	}
	svc, err := commands.New(c)
	if err != nil {
		return nil, err
	}
	if err := svc.Start(n.Conn); err != nil {
		return nil, err
	}
	log.Info("commands service started", "prefix", cfg.Prefix, "policy", cfg.Policy.Name, "dev_clock", cfg.DevClock)
	return &Commands{Service: svc, Store: store}, nil
}
