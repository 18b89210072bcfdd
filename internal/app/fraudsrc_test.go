package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// A spray stopped by the commands service shows in the fraud read model,
// end to end on the dev stack (commands, AUTH_FRAUD, projector, Postgres),
// with a budget of 5 failures an hour per address (small for the test;
// the seed's is 100 a day): the 5th wrong password from one address
// throttles it, the 6th is refused, and auth.fraud_sources_throttled shows
// the address in force; an hour later its first attempt records the
// release, which the view shows too.
func TestSprayReachesTheSourcesThrottledView(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtestDB(t)
	cfg := devConfig(t, t.TempDir(), dbURL)
	cfg.Policy.SourceIP = domain.SourceBudget{Failures: 5, Window: time.Hour}
	d, err := StartDev(ctx, cfg, io.Discard, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	nc, err := nats.Connect(d.NATS.Conn.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	const attacker = "203.0.113.7"
	try := func(nir string) string {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"nir": nir, "password": "Azerty123!", "client_ip": attacker, "channel": "web"})
		m, err := nc.Request(contract.Default.Command(contract.CmdLoginPassword), b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep contract.AnyReply
		if err := json.Unmarshal(m.Data, &rep); err != nil || rep.OK {
			t.Fatalf("login.password: %s", m.Data)
		}
		return rep.Error.Code
	}
	nirs := []string{"2 55 08 14 168 025 38", "1 84 12 76 451 089 46", DemoNIR}
	for i := range 5 {
		if code := try(nirs[i%len(nirs)]); code != domain.CodeInvalidCredentials && code != domain.CodeAccountLocked {
			t.Fatalf("wrong password %d: %s", i+1, code)
		}
	}
	if code := try(nirs[0]); code != domain.CodeTooManyAttempts {
		t.Fatalf("the 6th attempt: %s, want %s", code, domain.CodeTooManyAttempts)
	}

	pg, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close(context.Background()) })
	view := func(released bool) bool {
		var n int
		err := pg.QueryRow(ctx, `SELECT count(*) FROM auth.fraud_sources_throttled
			WHERE source = $1::cidr AND kind = 'ip' AND failures = 5 AND budget = 5 AND (released_at IS NOT NULL) = $2`,
			attacker+"/32", released).Scan(&n)
		return err == nil && n == 1
	}
	testwait.For(t, "the throttled address in the view, in force", 20*time.Second, func() bool { return view(false) })

	if _, err := d.Clock.Advance(time.Hour); err != nil {
		t.Fatal(err)
	}
	if code := try(nirs[0]); code == domain.CodeTooManyAttempts {
		t.Fatalf("an hour later: still %s", code)
	}
	testwait.For(t, "the release in the view", 20*time.Second, func() bool { return view(true) })
}
