package projector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// The fraud read model on Postgres: a spray of wrong passwords from one
// /24 over many accounts shows as one source with every failure, while the
// same failures from spread addresses do not; every counter is the
// GROUP BY of login_attempts it stands for; and the takeover pattern finds
// the account whose lockout, reset and email change fall within 48 hours,
// and not the one whose email change came later.
func TestFraudReadModelOnPostgres(t *testing.T) {
	ctx := context.Background()
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	reg := func(acc string, m int) events.Envelope {
		return events.Wrap(acc, events.AccountRegistered{NIRHash: "n", EmailSealed: "s", MaskedEmail: "v***@y***.fr",
			EmailValidated: true, PasswordHash: "h", Affiliation: "active", At: at(m)}, at(m), events.Metadata{Channel: "backoffice"})
	}
	var envs []events.Envelope
	// 60 accounts, each tried twice from 203.0.113.x and twice from
	// spread addresses, all with one user agent.
	for i := range 60 {
		acc := fmt.Sprintf("01HSPRAY%018d", i)
		envs = append(envs, reg(acc, 0))
		for j := range 2 {
			spray := events.Metadata{Channel: "web", ClientIP: fmt.Sprintf("203.0.113.%d", (2*i+j)%256), UserAgent: "python-requests/2.32"}
			envs = append(envs, events.Wrap(acc, events.PasswordFailed{Failures: 2*j + 1, At: at(1)}, at(1), spray))
			spread := events.Metadata{Channel: "web", ClientIP: fmt.Sprintf("2001:db8:%x::1", 2*i+j), UserAgent: "python-requests/2.32"}
			envs = append(envs, events.Wrap(acc, events.PasswordFailed{Failures: 2*j + 2, At: at(2)}, at(2), spread))
		}
	}
	// The takeover: locked by three wrong passwords, reset 20 hours
	// later, email changed 47 hours after the lockout. The other account
	// has the same steps, its email change 49 hours after its lockout.
	for i, emailAfter := range []int{47, 49} {
		acc := fmt.Sprintf("01HTAKEOVER%015d", i)
		md := events.Metadata{Channel: "web", ClientIP: "198.51.100.4", UserAgent: "Mozilla/5.0"}
		envs = append(envs, reg(acc, 0),
			events.Wrap(acc, events.PasswordFailed{Failures: 1, At: at(10)}, at(10), md),
			events.Wrap(acc, events.PasswordFailed{Failures: 2, At: at(11)}, at(11), md),
			events.Wrap(acc, events.PasswordFailed{Failures: 3, BlockedUntil: at(27), At: at(12)}, at(12), md),
			events.Wrap(acc, events.PasswordChanged{Method: "reset", PasswordHash: "h2", At: at(12 + 20*60)}, at(12+20*60), md),
			events.Wrap(acc, events.EmailChanged{EmailSealed: "s2", MaskedEmail: "p***@z***.fr", At: at(12 + emailAfter*60)}, at(12+emailAfter*60), md),
		)
	}
	recs := records(envs)
	for i := 0; i < len(recs); i += 37 {
		if _, err := x.applyBatch(ctx, conn, recs[i:min(i+37, len(recs))], noHoles, true, nil); err != nil {
			t.Fatal(err)
		}
	}

	if n := count(t, conn, "SELECT attempts FROM auth.fraud_source_hourly WHERE source_prefix = '203.0.113.0/24' AND hour = $1 AND step = 'password' AND outcome = 'failed'", t0); n != 120 {
		t.Errorf("the spraying /24 shows %d failures, want 120", n)
	}
	if n := count(t, conn, "SELECT max(attempts) FROM auth.fraud_source_hourly WHERE family(source_prefix) = 6"); n != 1 {
		t.Errorf("a spread /64 shows %d failures, want 1", n)
	}
	if n := count(t, conn, `SELECT sum(d.attempts) FROM auth.fraud_device_hourly d JOIN auth.fraud_user_agents u USING (ua_hash)
		WHERE u.user_agent = 'python-requests/2.32'`); n != 240 {
		t.Errorf("the spraying user agent shows %d attempts, want 240", n)
	}
	if n := count(t, conn, "SELECT count(*) FROM auth.fraud_user_agents"); n != 2 {
		t.Errorf("%d user agents stored, want each of the 2 once", n)
	}

	// Each counter is its GROUP BY over login_attempts (all addresses here
	// parse, so Postgres' own inet functions give the prefixes).
	for _, q := range []string{
		`SELECT count(*) FROM (SELECT network(set_masklen(client_ip::inet, CASE WHEN family(client_ip::inet) = 4 THEN 24 ELSE 64 END))::cidr AS p,
			date_trunc('hour', at, 'UTC') AS h, step, outcome, count(*) AS n FROM auth.login_attempts WHERE client_ip IS NOT NULL GROUP BY 1, 2, 3, 4) g
			FULL JOIN auth.fraud_source_hourly f ON f.source_prefix = g.p AND f.hour = g.h AND f.step = g.step AND f.outcome = g.outcome
			WHERE f.attempts IS DISTINCT FROM g.n`,
		`SELECT count(*) FROM (SELECT date_trunc('hour', at, 'UTC') AS h, coalesce(channel, '') AS c, step, outcome, count(*) AS n
			FROM auth.login_attempts GROUP BY 1, 2, 3, 4) g
			FULL JOIN auth.fraud_hourly f ON f.hour = g.h AND f.channel = g.c AND f.step = g.step AND f.outcome = g.outcome
			WHERE f.attempts IS DISTINCT FROM g.n`,
		`SELECT count(*) FROM (SELECT u.ua_hash, date_trunc('hour', at, 'UTC') AS h, step, outcome, count(*) AS n
			FROM auth.login_attempts a JOIN auth.fraud_user_agents u ON u.user_agent = a.user_agent GROUP BY 1, 2, 3, 4) g
			FULL JOIN auth.fraud_device_hourly f ON f.ua_hash = g.ua_hash AND f.hour = g.h AND f.step = g.step AND f.outcome = g.outcome
			WHERE f.attempts IS DISTINCT FROM g.n`,
	} {
		if n := count(t, conn, q); n != 0 {
			t.Errorf("%d counter rows differ from login_attempts:\n%s", n, q)
		}
	}

	rows, err := conn.Query(ctx, "SELECT account_id, locked_at, lock_reason, reset_at, email_changed_at FROM auth.fraud_takeover_pattern")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var acc, reason string
		var locked, reset, changed time.Time
		if err := rows.Scan(&acc, &locked, &reason, &reset, &changed); err != nil {
			t.Fatal(err)
		}
		found = append(found, acc)
		if !locked.Equal(at(12)) || reason != "password_failures" || !reset.Equal(at(12+20*60)) || !changed.Equal(at(12+47*60)) {
			t.Errorf("takeover row %s: locked %v (%s), reset %v, email changed %v", acc, locked, reason, reset, changed)
		}
	}
	if fmt.Sprint(found) != fmt.Sprintf("[01HTAKEOVER%015d]", 0) {
		t.Errorf("takeover pattern found %v, want the account within 48 hours only", found)
	}
	if n := count(t, conn, "SELECT count(*) FROM auth.credential_changes"); n != 4 {
		t.Errorf("%d credential changes, want 4", n)
	}
}
