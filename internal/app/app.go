// Package app wires the components from their configuration, so that the
// cmd/* mains stay thin and end-to-end tests run the real wiring.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/notifier"
	"github.com/ameli-auth/authsvc/internal/ops"
)

// NewLogger is the structured logger every component uses, on standard
// error: level is AUTH_LOG_LEVEL (info when unreadable), format
// AUTH_LOG_FORMAT: config.LogJSON writes one JSON object per line (time,
// level, msg and the attributes as keys), anything else key=value text.
func NewLogger(level, format string) *slog.Logger { return newLogger(os.Stderr, level, format) }

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
	opts, err := NATSOptions(cfg.NATS, name, log)
	if err != nil {
		n.Close()
		return nil, err
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("connect to nats %s%s: %w", config.Redact(url), asUser(cfg.NATS), err)
	}
	n.Conn = nc
	if n.JS, err = jetstream.New(nc); err != nil {
		n.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return n, nil
}

// NATSOptions are the options of a component's connection: the shared
// ones (natsutil.ClientOptions: name, reconnects, the log of refusals),
// then who it is and how it checks the server (AUTH_NATS_USER and its
// password, or AUTH_NATS_CREDS; AUTH_NATS_TLS_*; its inbox prefix).
func NATSOptions(c config.NATSClient, name string, log *slog.Logger) ([]nats.Option, error) {
	auth, err := NATSAuth(c).Options()
	if err != nil {
		return nil, fmt.Errorf("%s: %w (AUTH_NATS_CREDS, AUTH_NATS_TLS_CA, AUTH_NATS_TLS_CERT, AUTH_NATS_TLS_KEY)", name, err)
	}
	return append(natsutil.ClientOptions(name, log), auth...), nil
}

// NATSAuth is the natsutil form of the NATS client settings.
func NATSAuth(c config.NATSClient) natsutil.Auth {
	return natsutil.Auth{User: c.User, Password: c.Password, CredsFile: c.Creds,
		TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey, InboxPrefix: c.Inbox()}
}

// asUser names the NATS user in a connection error: an authorization
// failure is most often the wrong user or password file.
func asUser(c config.NATSClient) string {
	switch {
	case c.User != "":
		return " as user " + c.User
	case c.Creds != "":
		return " with " + c.Creds
	}
	return ""
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
	Store   *eventstore.Partitioned
}

// StartCommands opens the event store (creating or updating the streams
// and buckets, the dead-letter stream included) and serves the commands on
// nc. metrics, if not nil, counts the commands, the facts recorded, the
// lost races and the hashing pool's queue (commands.Config.Observe and
// Metrics; docs/operations.md).
func StartCommands(ctx context.Context, cfg config.Config, n *NATS, devClock *clock.Dev,
	metrics *ops.CommandMetrics, log *slog.Logger) (*Commands, error) {
	keys, err := cfg.Keys()
	if err != nil {
		return nil, err
	}
	logKeyIDs(log, keys)
	// The commands service creates and updates every stream and bucket:
	// the events stream (deny delete, deny purge) and its buckets, and the
	// notifier's dead letters. The projector's and the notifier's NATS
	// users may not (deploy/nats/users.conf).
	// Every partition's stream and buckets (AUTH_PARTITIONS): the commands
	// route each account to its partition (docs/scale.md).
	// Each partition on the nodes of its tags (AUTH_PARTITION_PLACEMENT);
	// a changed value makes the server move the streams, which is said.
	store, err := eventstore.OpenPartitioned(ctx, n.JS, eventstore.JetStreamConfig{Prefix: cfg.Prefix, Replicas: cfg.StreamReplicas,
		Partitions: cfg.Partitions, AttemptsTTL: cfg.AttemptsRetention, Placement: cfg.Placement})
	if err != nil {
		return nil, err
	}
	for _, mv := range store.Moved() {
		log.Warn("placement changed: the server moves the stream's replicas to the nodes of its new tags (docs/scale.md, Placement)",
			"stream", mv.Stream, "from", strings.Join(mv.From, ","), "to", strings.Join(mv.To, ","))
	}
	if err := notifier.EnsureDLQStream(ctx, n.JS, notifier.DLQStreamConfig{Prefix: cfg.Prefix, Replicas: cfg.StreamReplicas}); err != nil {
		return nil, err
	}
	c := commands.Config{Prefix: cfg.Prefix, Policy: cfg.Policy, Keys: keys, Store: store, Index: store.Index(),
		Snapshots: store.Snapshots(), Shadows: store.Shadows(), Sources: store.Sources(), Fraud: store.Fraud(),
		SourceAllowlist: cfg.SourceAllowlist, CacheSize: cfg.CommandsCache, Logger: log, AttemptsRetention: cfg.AttemptsRetention}
	if metrics != nil {
		c.Observe, c.Metrics = metrics.Observe, metrics
	}
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
	log.Info("commands service started", "prefix", cfg.Prefix, "policy", cfg.Policy.Name, "dev_clock", cfg.DevClock, "partitions", cfg.Partitions)
	return &Commands{Service: svc, Store: store}, nil
}
