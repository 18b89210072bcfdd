package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/notifier"
	"github.com/ameli-auth/authsvc/internal/ops"
)

// Notifier is a running notifier and what it owns.
type Notifier struct {
	Notifier *notifier.Notifier
	Store    *notifier.Store
	// Catcher is the dev mail catcher StartNotifier started because
	// AUTH_SMTP_ADDR was unset in dev mode; nil when mail goes to a real
	// SMTP server. Read the mails with Catcher.Messages, Catcher.Wait, or
	// serve Catcher.Handler (NotifierOps serves it at /mails/).
	Catcher *catcher.Catcher

	sender *mail.SMTPSender
	conn   *nats.Conn // the subscriber's own connection
	log    *slog.Logger
}

// ErrNoDatabase: the notifier keeps its record of sent mails in Postgres.
var ErrNoDatabase = errors.New("AUTH_DATABASE_URL is not set: the notifier keeps its record of sent mails " +
	"(one send per event) in Postgres, schema notifier")

// StartNotifier starts the notifier: the dev mail catcher when
// AUTH_SMTP_ADDR is unset in dev mode, the SMTP client, the Postgres
// record (migrated), the durable consumer on its own NATS connection. clk
// is its clock (a *clock.Dev following the dev clock in dev mode).
// metrics, if not nil, counts the mails by kind and outcome.
func StartNotifier(ctx context.Context, cfg config.Config, n *NATS, clk clock.Clock, metrics *ops.NotifierMetrics, log *slog.Logger) (*Notifier, error) {
	if cfg.DatabaseURL == "" {
		if cfg.Dev() {
			return nil, fmt.Errorf("%w; in dev mode set it to any local Postgres, e.g. "+
				"AUTH_DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'", ErrNoDatabase)
		}
		return nil, ErrNoDatabase
	}
	keys, err := cfg.Keys()
	if err != nil {
		return nil, err
	}
	logKeyIDs(log, keys)
	x := &Notifier{log: log}
	ok := false
	defer func() {
		if !ok {
			x.close()
		}
	}()

	smtpAddr, smtpTLS := cfg.SMTPAddr, cfg.SMTPTLS
	if smtpAddr == "" {
		if !cfg.Dev() {
			return nil, errors.New("AUTH_SMTP_ADDR is required outside dev mode (host:port of the SMTP server)")
		}
		if x.Catcher, err = StartMailCatcher(os.Stdout, log); err != nil {
			return nil, err
		}
		smtpAddr, smtpTLS = x.Catcher.Addr(), mail.TLSNone
	}
	if x.sender, err = mail.NewSMTPSender(mail.SMTPConfig{Addr: smtpAddr, TLS: smtpTLS,
		User: cfg.SMTPUser, Password: cfg.SMTPPassword}); err != nil {
		return nil, err
	}
	if x.Store, err = notifier.OpenStore(ctx, cfg.DatabaseURL, log); err != nil {
		return nil, err
	}
	// The notifier creates no stream (its NATS user may not): the commands
	// service does, at its start, which may come after this one's.
	// Every partition's events stream (AUTH_PARTITIONS), and the dead letters'.
	if err := AwaitStreams(ctx, n.JS, streamPatience, log, append(cfg.Layout().Streams(), contract.DLQStream)...); err != nil {
		return nil, err
	}
	if x.conn, err = connectSubscriber(cfg, n, log); err != nil {
		return nil, err
	}
	nc := notifier.Config{
		Prefix: cfg.Prefix, Partitions: cfg.Partitions, JS: n.JS, SubscriberConn: x.conn, Store: x.Store, Keys: keys, Sender: x.sender,
		Clock: clk, Logger: log, From: cfg.SMTPFrom, PublicURL: cfg.PublicURL,
	}
	if metrics != nil {
		nc.Mails = metrics.Mail
	}
	nt, err := notifier.New(nc)
	if err != nil {
		return nil, err
	}
	if err := nt.Start(ctx); err != nil {
		return nil, err
	}
	x.Notifier = nt
	ok = true
	log.Info("notifier sending mail", "smtp", smtpAddr, "smtp_tls", tlsName(smtpTLS), "smtp_auth", cfg.SMTPUser != "",
		"dev_catcher", x.Catcher != nil)
	return x, nil
}

func tlsName(mode string) string {
	if mode == "" {
		return "starttls when offered"
	}
	return mode
}

// connectSubscriber opens the watermill subscriber's own connection: its
// Close drains the connection it is given.
func connectSubscriber(cfg config.Config, n *NATS, log *slog.Logger) (*nats.Conn, error) {
	url := cfg.NATSURL
	if n.Embedded != nil {
		url = n.Embedded.ClientURL()
	}
	opts, err := NATSOptions(cfg.NATS, "auth-notifier-subscriber", log)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect the notifier's subscriber to nats: %w", err)
	}
	return nc, nil
}

// Stop lets the mails in flight finish, then closes everything the
// notifier owns (not the NATS connection it was given).
func (x *Notifier) Stop(ctx context.Context) error {
	var err error
	if x.Notifier != nil {
		err = x.Notifier.Stop(ctx)
	}
	x.close()
	return err
}

func (x *Notifier) close() {
	if x.conn != nil && !x.conn.IsClosed() {
		x.conn.Close()
	}
	if x.sender != nil {
		_ = x.sender.Close()
	}
	if x.Store != nil {
		x.Store.Close()
	}
	if x.Catcher != nil {
		_ = x.Catcher.Close()
	}
}

// StartMailCatcher starts the dev mail catcher on a free port of 127.0.0.1,
// printing each mail's subject and code to console (the one place a code is
// ever printed: dev only). Point AUTH_SMTP_ADDR at its Addr.
func StartMailCatcher(console io.Writer, log *slog.Logger) (*catcher.Catcher, error) {
	c, err := catcher.Start(catcher.Options{Console: console})
	if err != nil {
		return nil, err
	}
	log.Info("dev mail catcher: mails are kept here, not delivered", "smtp", c.Addr())
	return c, nil
}
