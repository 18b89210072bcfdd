package ops_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/ops"
)

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
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

func TestHealthzAndReadyz(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, ns)
	s := ops.New(ops.Config{Component: "commands", NATS: []*nats.Conn{nc}, DevClock: true})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	if code, body := get(t, srv, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	code, body := get(t, srv, "/readyz")
	if code != http.StatusOK || !strings.HasPrefix(body, "ready\n") || !strings.Contains(body, "dev clock on") {
		t.Fatalf("/readyz while connected: %d %q", code, body)
	}

	nc.Close()
	code, body = get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "nats not connected") {
		t.Fatalf("/readyz with a closed connection: %d %q", code, body)
	}
	// Liveness does not depend on NATS.
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with a closed connection: %d", code)
	}
}

func TestReadyzPingsPostgres(t *testing.T) {
	ns := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, ns)
	var down atomic.Bool // set by the test, read by the handler
	s := ops.New(ops.Config{Component: "projector", NATS: []*nats.Conn{nc},
		Ping: func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("the ping has no deadline")
			}
			if down.Load() {
				return errors.New("connection refused by 10.0.0.7 for user secret")
			}
			return nil
		}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	down.Store(true)
	code, body := get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: postgres ping failed\n" {
		t.Fatalf("/readyz with Postgres down: %d %q", code, body)
	}
}

func TestMetricsCountCommandsWithoutPersonalData(t *testing.T) {
	s := ops.New(ops.Config{Component: "commands"})
	m := ops.NewCommandMetrics(s.Registry)
	h := commandstest.Start(t, commandstest.Options{Configure: func(c *commands.Config) { c.Observe = m.Observe }})
	const nir, email = "1840275123456", "jeanne.martin@exemple.fr"
	accountID := h.Register(nir, email, "cheval-agrafe-batterie")
	commandstest.WantError(t, h.Req(contract.CmdAccountRegister, commandstest.Obj{"nir": nir, "email": email,
		"password": "cheval-agrafe-batterie", "email_validated": true, "affiliation": "active", "channel": "backoffice"}), "account_exists")

	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	code, body := get(t, srv, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`auth_commands_total{outcome="` + contract.StatusRegistered + `",subject="account.register"} 1` + "\n",
		`auth_commands_total{outcome="account_exists",subject="account.register"} 1` + "\n",
		`auth_command_duration_seconds_count{subject="account.register"} 2` + "\n",
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, secret := range []string{nir, "1 84 02 75 123 456", email, accountID} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}
