package app

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/ops"
	"github.com/ameli-auth/authsvc/internal/ops/opstest"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// AUTH_LOG_FORMAT=json writes one JSON object per line, with the level,
// the message and the attributes as keys; the default stays key=value.
func TestLogsAreJSONWhenAskedFor(t *testing.T) {
	var buf bytes.Buffer
	newLogger(&buf, "info", config.LogJSON).With("component", "projector").Info("projector started", "prefix", "auth")
	newLogger(&buf, "info", config.LogJSON).Debug("not at info level")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, buf.Bytes())
	}
	if line["level"] != "INFO" || line["msg"] != "projector started" || line["component"] != "projector" || line["prefix"] != "auth" || line["time"] == nil {
		t.Errorf("JSON line %v", line)
	}
	buf.Reset()
	newLogger(&buf, "info", config.LogText).Info("projector started", "prefix", "auth")
	if !strings.HasPrefix(buf.String(), "time=") || !strings.Contains(buf.String(), `msg="projector started" prefix=auth`) {
		t.Errorf("text line %q", buf.String())
	}
}

// opsGet reads one page of an ops server.
func opsGet(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	res, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// waitReadyz waits until /readyz answers code with a body holding want.
func waitReadyz(t *testing.T, srv *httptest.Server, code int, want string) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() error {
		c, body := opsGet(t, srv, "/readyz")
		if c != code || !strings.Contains(body, want) {
			return fmt.Errorf("/readyz: %d %q, want %d and %q", c, body, code, want)
		}
		return nil
	})
}

// opsConfig is a production-like configuration on the test server and
// database, with a readiness bound a test can cross at once.
func opsConfig(natsURL, dbURL string) config.Config {
	return config.Config{NATSURL: natsURL, Prefix: "auth", Policy: commandstest.Policy(), DatabaseURL: dbURL,
		SecretKey: base64.StdEncoding.EncodeToString(commandstest.MasterKey), ReadyMaxLag: time.Millisecond, StreamReplicas: 1}
}

// registerN registers n accounts through the commands service: n events.
func registerN(t *testing.T, c *Commands, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		body, _ := json.Marshal(map[string]any{"nir": fmt.Sprintf("1840275%06d", i), "email": fmt.Sprintf("p%d@exemple.fr", i),
			"password": DemoPassword, "email_validated": true, "affiliation": "active", "channel": "backoffice"})
		var rep contract.AnyReply
		if err := json.Unmarshal(c.Service.Handle(context.Background(), contract.CmdAccountRegister, body), &rep); err != nil || !rep.OK {
			t.Fatalf("register %d: %+v %v", i, rep.Error, err)
		}
	}
}

// The projector's page: not ready while it migrates, then ready while it
// keeps up; stopped while events arrive, it says how far behind it is
// (and its lag metrics too); started again, it catches up and is ready.
// Its batches and leadership are metrics.
func TestProjectorReadinessFollowsItsLag(t *testing.T) {
	dbURL := pgtestDB(t)
	ns := natsutil.RunTestServer(t)
	log := slog.New(slog.DiscardHandler)
	cfg := opsConfig(ns.ClientURL(), dbURL)
	n, err := ConnectNATS(cfg, "auth-projector", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	c, err := StartCommands(context.Background(), cfg, n, &clock.Dev{}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Service.Stop() })

	reg := ops.NewRegistry()
	page, closePool, err := ProjectorOps(cfg, n, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closePool)
	srv := httptest.NewServer(page.Handler())
	t.Cleanup(srv.Close)
	started := page.Starting("migrating the read models")
	if code, body := opsGet(t, srv, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: starting: migrating the read models\n" {
		t.Fatalf("/readyz before the migration: %d %q", code, body)
	}
	m := ops.NewProjectorMetrics(reg)
	p, err := StartProjector(context.Background(), cfg, n, m, log)
	if err != nil {
		t.Fatal(err)
	}
	started()
	registerN(t, c, 0, 2)
	waitReadyz(t, srv, http.StatusOK, "ready")
	val := func(name string, labels ...string) float64 { return opstest.Value(t, reg, name, labels...) }
	testwait.For(t, "the two events applied", 10*time.Second, func() bool { return val("auth_projector_events_applied_total") == 2 })
	if val("auth_projector_batch_events") < 1 || val("auth_projector_batch_duration_seconds") < 1 || val("auth_projector_leader") != 1 ||
		val("auth_consumer_lag_events", "consumer", "projector") != 0 || val("auth_consumer_lag_seconds", "consumer", "projector") != 0 {
		t.Error("batches, leadership or a zero lag not shown")
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	registerN(t, c, 2, 3)
	waitReadyz(t, srv, http.StatusServiceUnavailable, "not ready: projector behind: 3 events, the oldest ")
	if val("auth_consumer_lag_events", "consumer", "projector") != 3 || val("auth_consumer_lag_seconds", "consumer", "projector") <= 0 ||
		val("auth_projector_leader") != 0 {
		t.Error("the lag of a stopped projector, or its standing down, not shown")
	}

	p, err = StartProjector(context.Background(), cfg, n, m, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	waitReadyz(t, srv, http.StatusOK, "ready")
	if val("auth_projector_events_applied_total") != 5 || val("auth_consumer_lag_events", "consumer", "projector") != 0 {
		t.Errorf("after catching up: %v applied, lag %v", val("auth_projector_events_applied_total"), val("auth_consumer_lag_events", "consumer", "projector"))
	}
}

// The notifier's page: ready while its consumer keeps up; a stopped
// notifier's consumer falls behind and says so; mails are counted by kind.
func TestNotifierReadinessAndMailMetrics(t *testing.T) {
	dbURL := pgtestDB(t)
	ns := natsutil.RunTestServer(t)
	mails, err := catcher.Start(catcher.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mails.Close() })
	log := slog.New(slog.DiscardHandler)
	cfg := opsConfig(ns.ClientURL(), dbURL)
	cfg.SMTPAddr, cfg.SMTPTLS, cfg.SMTPFrom, cfg.PublicURL = mails.Addr(), "none", "ne-pas-repondre@exemple.fr", "http://127.0.0.1:8080"
	n, err := ConnectNATS(cfg, "auth-notifier", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	c, err := StartCommands(context.Background(), cfg, n, &clock.Dev{}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Service.Stop() })

	start := func() (*Notifier, *ops.NotifierMetrics, *httptest.Server, *ops.Server) {
		reg := ops.NewRegistry()
		m := ops.NewNotifierMetrics(reg)
		x, err := StartNotifier(context.Background(), cfg, n, clock.System{}, m, log)
		if err != nil {
			t.Fatal(err)
		}
		page := NotifierOps(cfg, n, x, reg)
		srv := httptest.NewServer(page.Handler())
		t.Cleanup(srv.Close)
		return x, m, srv, page
	}
	x, _, srv, page := start()
	t.Cleanup(func() { _ = x.Stop(context.Background()) })
	waitReadyz(t, srv, http.StatusOK, "ready")

	// A reset link, mailed and counted by its kind.
	registerN(t, c, 0, 1)
	reset := func() {
		t.Helper()
		body := []byte(`{"nir":"1840275000000"}`)
		var rep contract.AnyReply
		if err := json.Unmarshal(c.Service.Handle(context.Background(), contract.CmdPasswordResetRequest, body), &rep); err != nil || !rep.OK {
			t.Fatalf("reset request: %+v %v", rep.Error, err)
		}
	}
	reset()
	testwait.For(t, "the reset mail counted", 10*time.Second, func() bool {
		return opstest.Value(t, page.Registry, "auth_notifier_mails_total", "kind", "password_reset", "outcome", "sent") == 1
	})
	if got := len(mails.Messages()); got != 1 {
		t.Fatalf("%d mails caught, want 1", got)
	}

	// Stopped, its consumer falls behind: the lag read of its page says so.
	if err := x.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	lagOnly := ops.New(ops.Config{Component: "notifier", MaxLag: time.Millisecond, Consumers: []ops.Consumer{notifierLag(x)}})
	lagSrv := httptest.NewServer(lagOnly.Handler())
	t.Cleanup(lagSrv.Close)
	reset()
	reset()
	waitReadyz(t, lagSrv, http.StatusServiceUnavailable, "not ready: notifier behind: 2 events, the oldest ")
	if opstest.Value(t, lagOnly.Registry, "auth_consumer_lag_events", "consumer", "notifier") != 2 {
		t.Error("the stopped notifier's lag is not a metric")
	}
	// Started again, it catches up and is ready.
	x2, _, srv2, page2 := start()
	t.Cleanup(func() { _ = x2.Stop(context.Background()) })
	waitReadyz(t, srv2, http.StatusOK, "ready")
	testwait.For(t, "the two reset mails counted", 10*time.Second, func() bool {
		return opstest.Value(t, page2.Registry, "auth_notifier_mails_total", "kind", "password_reset", "outcome", "sent") == 2
	})
	if opstest.Value(t, page2.Registry, "auth_nats_connected", "conn", "auth-notifier-subscriber") != 1 ||
		opstest.Value(t, page2.Registry, "auth_nats_connected", "conn", "auth-notifier") != 1 {
		t.Error("the notifier's two connections are not shown")
	}
}

// The web front-end counts requests by the route that served them and
// their status, never by path: a reset link's token or a typed address
// never becomes a label value.
func TestWebCountsRequestsByRoute(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	log := slog.New(slog.DiscardHandler)
	cfg := config.Config{Prefix: "auth", WebAddr: "127.0.0.1:0"}
	reg := ops.NewRegistry()
	w, err := StartWeb(cfg, ns.ClientURL(), ops.NewWebMetrics(reg), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(context.Background()) })
	const token, address = "JETON-SECRET-0123456789", "jeanne.martin@exemple.fr"
	for _, path := range []string{"/connexion", "/connexion", "/password/reset?token=" + token, "/" + address, "/rubrique/remboursements"} {
		res, err := http.Get(w.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /connexion", "200", 2},
		{"GET /password/reset", "200", 1},
		{"/", "404", 1},
	} {
		if got := opstest.Value(t, reg, "auth_web_requests_total", "route", c.route, "code", c.code); got != c.want {
			t.Errorf("auth_web_requests_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if got := opstest.Value(t, reg, "auth_web_request_duration_seconds", "route", "GET /rubrique/{tab}"); got != 1 {
		t.Errorf("GET /rubrique/{tab} timed %v times, want 1", got)
	}
	page := WebOps(cfg, w, reg)
	srv := httptest.NewServer(page.Handler())
	t.Cleanup(srv.Close)
	waitReadyz(t, srv, http.StatusOK, "ready")
	if opstest.Value(t, reg, "auth_nats_connected", "conn", "auth-web") != 1 {
		t.Error("the web's connection is not shown")
	}
	opstest.CheckLabels(t, reg, token, address)
}
