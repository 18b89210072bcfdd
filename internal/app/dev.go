package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/devpg"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/ops"
)

// The demo account created at the first start of dev mode. Its NIR is the
// INSEE's textbook example; its password passes the password rule. Dev
// mode keeps both in <var>/demo.json, and shows the password only while it
// opens the account (DemoPasswordTruth).
const (
	DemoNIR      = "2 69 05 49 588 157 80"
	DemoEmail    = "valerie.demo@exemple.fr"
	DemoPassword = "cheval-agrafe-batterie"
)

// DemoIdentity is the demo account's civil identity (issue 18), so the
// dev stack's OpenID Connect provider has claims to show: what the demo
// NIR encodes (a woman born in May 1969, département 49, commune 588),
// with names of our choice.
var DemoIdentity = map[string]string{"given_name": "Valérie", "family_name": "Démo", "birthdate": "1969-05-12",
	"gender": "female", "birthplace": "49588", "birthcountry": "99100"}

// Dev is the whole service in one process, for a newcomer's machine: an
// embedded nats-server, a Postgres found or started by devpg, the commands
// service, the projector, the notifier with the dev mail catcher, the dev
// clock, and a small HTTP page.
type Dev struct {
	Config    config.Config
	NATS      *NATS
	DB        *devpg.Database
	Catcher   *catcher.Catcher
	Commands  *Commands
	Projector *Projector
	Notifier  *Notifier
	Clock     *clock.Dev
	Web       *Web   // the web front-end
	HTTPURL   string // where the page is served ("" if no port was free)
	// Metrics holds every component's metrics (their names do not
	// overlap), served at the page's /metrics.
	Metrics *prometheus.Registry
	// Page is the ops page on AUTH_HTTP_ADDR: /healthz, /readyz and
	// /metrics for the whole stack, the mails, an index.
	Page *ops.Server

	closePool    func() // the page's Postgres pool
	log          *slog.Logger
	stateWritten bool
}

// StartDev starts everything; console receives the mail catcher's lines.
// On error, what was started is stopped.
func StartDev(ctx context.Context, cfg config.Config, console io.Writer, log *slog.Logger) (d *Dev, err error) {
	if cfg.NATSURL != "" {
		return nil, errors.New("dev mode runs its own nats-server: unset AUTH_NATS_URL")
	}
	// This is the dev entry point: dev mode is asked for by calling it.
	cfg.Mode, cfg.DevClock = config.ModeDev, true
	d = &Dev{Clock: &clock.Dev{}, log: log, Metrics: ops.NewRegistry()}
	defer func() {
		if err != nil {
			d.Stop(context.Background())
			d = nil
		}
	}()
	if d.NATS, err = ConnectNATS(cfg, "auth-dev", log); err != nil {
		return d, err
	}
	if d.DB, err = devpg.Ensure(ctx, cfg.DatabaseURL, cfg.VarDir, log); err != nil {
		return d, err
	}
	cfg.DatabaseURL = d.DB.URL
	if cfg.SMTPAddr == "" {
		if d.Catcher, err = StartMailCatcher(console, log); err != nil {
			return d, err
		}
		cfg.SMTPAddr, cfg.SMTPTLS = d.Catcher.Addr(), "none"
	}
	// The web front-end is a client like any other, on its own connection;
	// the links in emails open it unless AUTH_PUBLIC_URL says otherwise.
	if d.Web, err = StartWeb(cfg, d.NATS.Conn.ConnectedUrl(), ops.NewWebMetrics(d.Metrics), log.With("component", "web")); err != nil {
		return d, err
	}
	if !config.Explicit("AUTH_PUBLIC_URL") {
		cfg.PublicURL = d.Web.URL
	}
	d.Config = cfg
	cfg.Log(log, config.Dev)
	if d.Commands, err = StartCommands(ctx, cfg, d.NATS, d.Clock, ops.NewCommandMetrics(d.Metrics), log.With("component", "commands")); err != nil {
		return d, err
	}
	if d.Projector, err = StartProjector(ctx, cfg, d.NATS, ops.NewProjectorMetrics(d.Metrics), log.With("component", "projector")); err != nil {
		return d, err
	}
	if d.Notifier, err = StartNotifier(ctx, cfg, d.NATS, d.Clock, ops.NewNotifierMetrics(d.Metrics), log.With("component", "notifier")); err != nil {
		return d, err
	}
	if err := d.serveHTTP(cfg); err != nil {
		return d, err
	}
	// The other authctl commands find this dev mode (its NATS may listen
	// elsewhere than 4222, its Postgres may be a private one) here.
	if err := writeDevState(cfg.VarDir, d.State()); err != nil {
		return d, fmt.Errorf("write %s: %w", DevStatePath(cfg.VarDir), err)
	}
	d.stateWritten = true
	return d, nil
}

// State is what this dev mode tells the other authctl commands.
func (d *Dev) State() DevState {
	return DevState{PID: os.Getpid(), NATSURL: d.NATS.Conn.ConnectedUrl(), DatabaseURL: d.DB.URL,
		HTTPURL: d.HTTPURL, Prefix: d.Config.Prefix}
}

// EnsureDemoAccount registers the demo account unless it exists, and says
// whether it was created now.
func (d *Dev) EnsureDemoAccount(ctx context.Context) (created bool, err error) {
	return registerDemo(ctx, d.Config.VarDir, func(ctx context.Context, subject string, body []byte) ([]byte, error) {
		return d.Commands.Service.Handle(ctx, subject, body), nil
	})
}

// registerDemo registers the demo account unless it exists, by the
// back-office's account.register sent through send (which returns the
// commands service's reply), and keeps it in <demoDir>/demo.json when it
// is created now.
func registerDemo(ctx context.Context, demoDir string, send func(ctx context.Context, subject string, body []byte) ([]byte, error)) (created bool, err error) {
	// A request id makes a resent registration the same request
	// (docs/idempotency.md).
	var rid [12]byte
	_, _ = rand.Read(rid[:])
	body, _ := json.Marshal(map[string]any{"nir": DemoNIR, "email": DemoEmail, "password": DemoPassword,
		"email_validated": true, "affiliation": "active", "identity": DemoIdentity, "channel": "backoffice",
		"request_id": "authctl-dev-" + hex.EncodeToString(rid[:])})
	var rep struct {
		OK        bool   `json:"ok"`
		AccountID string `json:"account_id"`
		Error     *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, err := send(ctx, "account.register", body)
	if err != nil {
		return false, fmt.Errorf("register the demo account: %w", err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return false, fmt.Errorf("register the demo account: %w", err)
	}
	switch {
	case rep.OK:
		return true, writeDemo(demoDir, DemoAccount{NIR: DemoNIR, AccountID: rep.AccountID, Password: DemoPassword})
	case rep.Error != nil && rep.Error.Code == "account_exists":
		return false, nil
	case rep.Error != nil:
		return false, fmt.Errorf("register the demo account: %s: %s", rep.Error.Code, rep.Error.Message)
	}
	return false, errors.New("register the demo account: empty reply")
}

// serveHTTP builds the ops page of the whole stack and serves it on
// AUTH_HTTP_ADDR, or on one of the next 20 ports; if none is free, the
// page is only missing (a warning). Ready as each component would be: its
// three NATS connections, Postgres, the events stream, the projector and
// the notifier within AUTH_READY_MAX_LAG. /healthz tells the dev clock.
func (d *Dev) serveHTTP(cfg config.Config) error {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("AUTH_DATABASE_URL: %w", err)
	}
	pc.MaxConns, pc.MinConns = 1, 0
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return err
	}
	d.closePool = pool.Close
	extra := map[string]http.Handler{"/{$}": http.HandlerFunc(d.index)}
	if d.Catcher != nil {
		extra["/mails/"] = http.StripPrefix("/mails", d.Catcher.Handler())
	}
	d.Page = ops.New(ops.Config{Component: "dev", Registry: d.Metrics,
		NATS: []*nats.Conn{d.NATS.Conn, d.Web.conn, d.Notifier.conn}, Ping: pool.Ping,
		Stream:    ops.StreamCheck(d.NATS.JS, cfg.Layout().Streams()...),
		Consumers: []ops.Consumer{projectorLag(pool, d.NATS, cfg), notifierLag(d.Notifier)},
		MaxLag:    cfg.ReadyMaxLag, DevClock: true, Extra: extra,
		// Say it where a probe or a person looks, not only in the log.
		Health: func() string {
			return fmt.Sprintf("dev clock: on (AUTH_DEV_CLOCK=1), now %s, ahead of the system clock by %s\n",
				d.Clock.Now().Format(time.RFC3339), d.Clock.Offset())
		}})
	if err := d.Page.Listen(cfg.HTTPAddr, 20, d.log); err != nil {
		d.log.Warn("dev page not served", "addr", cfg.HTTPAddr, "err", err)
		return nil
	}
	d.HTTPURL = d.Page.URL
	return nil
}

func (d *Dev) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>ameli-auth (dev)</title>
<h1>ameli-auth — mode développement</h1>
<ul><li><a href="/mails/">Mails reçus par le catcher</a></li><li><a href="/healthz">État</a></li>
<li><a href="/readyz">Prêt ?</a></li><li><a href="/metrics">Métriques (Prometheus)</a></li></ul>
<p>NATS : <code>%s</code></p>`, html.EscapeString(d.NATS.Conn.ConnectedUrlRedacted()))
}

// listenNear listens on addr, or on one of the next n ports when it is taken.
func listenNear(addr string, n int) (net.Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	var last error
	for i := 0; i <= n; i++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port+i)))
		if err == nil {
			return ln, nil
		}
		last = err
	}
	return nil, last
}

// Stop stops everything, consumers first, then the service, then NATS and
// the private Postgres.
func (d *Dev) Stop(ctx context.Context) {
	if d.stateWritten {
		_ = os.Remove(DevStatePath(d.Config.VarDir))
	}
	if d.Page != nil {
		_ = d.Page.Close(ctx)
	}
	if d.closePool != nil {
		d.closePool()
	}
	if d.Web != nil {
		_ = d.Web.Stop(ctx)
	}
	if d.Notifier != nil {
		if err := d.Notifier.Stop(ctx); err != nil {
			d.log.Warn("stop notifier", "err", err)
		}
	}
	if d.Projector != nil {
		if err := d.Projector.Stop(); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("stop projector", "err", err)
		}
	}
	if d.Commands != nil {
		if err := d.Commands.Service.Stop(); err != nil {
			d.log.Warn("stop commands", "err", err)
		}
	}
	if d.Catcher != nil {
		_ = d.Catcher.Close()
	}
	if d.NATS != nil {
		d.NATS.Close()
	}
	if d.DB != nil && d.DB.Private != nil {
		if err := d.DB.Private.Stop(); err != nil {
			d.log.Warn("stop private Postgres", "err", err)
		}
	}
}
