package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/pgtest"
)

const from = "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>"

// The real wiring in dev mode: commands and notifier in one process, the
// code read from the built-in catcher and typed back to log in.
func TestDevModeLoginWithTheMailedCode(t *testing.T) {
	policy := domain.SeedPolicy()
	policy.Argon2 = domain.Argon2Params{Memory: 256, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	cfg := config.Config{
		Mode: config.ModeDev, NATSListen: "127.0.0.1:-1", Prefix: contract.DefaultPrefix, VarDir: t.TempDir(),
		DatabaseURL: pgtest.NewDatabase(t), SMTPFrom: from, PublicURL: "http://127.0.0.1:8025",
		SecretKey: base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		Policy:    policy, PolicyName: policy.Name,
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	n, err := app.ConnectNATS(cfg, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := app.StartCommands(ctx, cfg, n, &clock.Dev{}, nil, log); err != nil {
		t.Fatal(err)
	}
	x, err := app.StartNotifier(ctx, cfg, n, clock.System{}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = x.Stop(context.Background()) }()
	if x.Catcher == nil {
		t.Fatal("dev mode without AUTH_SMTP_ADDR started no catcher")
	}

	req := func(subject string, body map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		msg, err := n.Conn.Request(contract.Default.Command(subject), b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep map[string]any
		if err := json.Unmarshal(msg.Data, &rep); err != nil || rep["ok"] != true {
			t.Fatalf("%s: %s", subject, msg.Data)
		}
		return rep
	}
	req("account.register", map[string]any{"nir": "2690549588157", "email": "valerie@example.fr", "password": "Motdepasse-2023",
		"email_validated": true, "affiliation": "active", "channel": "backoffice"})
	login := req("login.password", map[string]any{"nir": "2690549588157", "password": "Motdepasse-2023"})
	req("login.otp.send", map[string]any{"login_id": login["login_id"]})

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := x.Catcher.Wait(wctx, catcher.To("valerie@example.fr"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Code) != 6 {
		t.Fatalf("no code in the mail:\n%s", m.Text)
	}
	if rep := req("login.otp.verify", map[string]any{"login_id": login["login_id"], "code": m.Code}); rep["status"] != "authenticated" {
		t.Fatalf("verify: %v", rep)
	}

	if _, err := app.StartNotifier(ctx, config.Config{Mode: config.ModeDev, NATSListen: cfg.NATSListen}, n, clock.System{}, nil, log); err == nil {
		t.Error("a notifier without AUTH_DATABASE_URL started")
	}
}
