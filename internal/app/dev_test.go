package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/pgtest"
)

func devConfig(t *testing.T, varDir, dbURL string) config.Config {
	t.Helper()
	t.Setenv("AUTH_NATS_URL", "")
	cfg, err := config.Load("test", []string{"-var-dir", varDir, "-nats-listen", "127.0.0.1:-1",
		"-database-url", dbURL, "-http-addr", "127.0.0.1:0", "-log-level", "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy.Argon2.Memory, cfg.Policy.Argon2.Time = 256, 1 // fast tests; the rules don't depend on it
	return cfg
}

// startDev starts the dev stack on varDir and dbURL and registers the demo
// account unless it exists; created says whether it was created now.
func startDev(t *testing.T, varDir, dbURL string) (d *Dev, created bool) {
	t.Helper()
	ctx := context.Background()
	d, err := StartDev(ctx, devConfig(t, varDir, dbURL), io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if created, err = d.EnsureDemoAccount(ctx); err != nil {
		d.Stop(ctx)
		t.Fatal(err)
	}
	return d, created
}

// The dev stack in one process: a newcomer's whole login, reading the code
// from the mail catcher, lands in the read models; a second start keeps the data.
func TestDevStackServesALogin(t *testing.T) {
	varDir, dbURL := t.TempDir(), pgtestDB(t)
	ctx := context.Background()
	d, created := startDev(t, varDir, dbURL)
	if !created {
		t.Fatal("the demo account was not created at the first start")
	}
	// The health page says the dev clock is on.
	if d.HTTPURL != "" {
		res, err := http.Get(d.HTTPURL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "ok\n") || !strings.Contains(string(body), "dev clock: on") {
			t.Fatalf("healthz %d: %s", res.StatusCode, body)
		}
	}
	nc, err := nats.Connect(d.NATS.Conn.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	req := func(subject string, body map[string]any) map[string]any {
		b, _ := json.Marshal(body)
		m, err := nc.Request(contract.Default.Command(subject), b, 10*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		var rep map[string]any
		_ = json.Unmarshal(m.Data, &rep)
		if rep["ok"] != true {
			t.Fatalf("%s: %s", subject, m.Data)
		}
		return rep
	}
	login := req("login.password", map[string]any{"nir": DemoNIR, "password": DemoPassword})
	req("login.otp.send", map[string]any{"login_id": login["login_id"]})
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	mail, err := d.Catcher.Wait(wctx, catcher.To(DemoEmail))
	if err != nil {
		t.Fatalf("no mail in the catcher: %v", err)
	}
	ok := req("login.otp.verify", map[string]any{"login_id": login["login_id"], "code": mail.Code})
	if ok["status"] != "authenticated" {
		t.Fatalf("verify: %v", ok)
	}
	// The projector follows: the read model shows the login.
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	deadline := time.Now().Add(15 * time.Second)
	for {
		var seen bool
		err := db.QueryRow(ctx, "SELECT last_login_at IS NOT NULL FROM auth.accounts WHERE account_id = $1", ok["account_id"]).Scan(&seen)
		if err == nil && seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the read model never showed the login (last err %v)", err)
		}
		time.Sleep(50 * time.Millisecond) // polling, until the deadline above
	}
	// The dev clock moves two hours; the next start goes on from there.
	if m, err := nc.Request("auth.dev.clock.advance", []byte(`{"seconds":7200}`), 10*time.Second); err != nil || !strings.Contains(string(m.Data), `"ok":true`) {
		t.Fatalf("advance: %v", err)
	}
	nc.Close()
	d.Stop(ctx)

	again, created := startDev(t, varDir, dbURL)
	defer again.Stop(ctx)
	if got := again.Clock.Offset(); got != 2*time.Hour {
		t.Fatalf("the dev clock restarted %v ahead, want 2h: a restart took it back", got)
	}
	if created {
		t.Fatal("second start must keep the demo account")
	}
}

func pgtestDB(t *testing.T) string { return pgtest.NewDatabase(t) }
