package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/pgtest"
	"github.com/ameli-auth/authsvc/internal/projections"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// newDB is a fresh database with the read models migrated.
func newDB(tb testing.TB) string {
	tb.Helper()
	url := pgtest.NewDatabase(tb)
	if err := Migrate(context.Background(), url); err != nil {
		tb.Fatal(err)
	}
	return url
}

func connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dumpTables renders every read-model row, sorted, as JSON lines: two
// databases hold the same read models iff their dumps are equal.
func dumpTables(tb testing.TB, url string) string {
	tb.Helper()
	conn := connect(tb, url)
	var b strings.Builder
	for _, q := range []struct{ table, order, cols string }{
		{"accounts", "account_id", "t.*"},
		{"login_attempts", "partition, seq", "t.*"},
		{"trusted_devices", "account_id, seq", "t.*"},
		{"biometric_devices", "account_id, device_id", "t.*"},
		{"oidc_authorizations", "partition, seq", "t.*"},
		{"projector_checkpoint", "projection, partition", "t.projection, t.partition, t.last_seq, t.last_event_at"},
	} {
		if q.table == "projector_checkpoint" {
			b.WriteString(dumpFraud(tb, conn))
		}
		var s string
		err := conn.QueryRow(context.Background(), fmt.Sprintf(
			"SELECT coalesce(string_agg(row_to_json(r)::text, E'\\n' ORDER BY %s), '') FROM (SELECT %s FROM auth.%s t) r",
			q.order, q.cols, q.table)).Scan(&s)
		if err != nil {
			tb.Fatalf("dump %s: %v", q.table, err)
		}
		b.WriteString("== " + q.table + "\n" + s + "\n")
	}
	return b.String()
}

// fraudTables are the fraud read model's tables and their order.
var fraudTables = []struct{ table, order string }{
	{"fraud_source_hourly", "source_prefix, hour, step, outcome"},
	{"fraud_device_hourly", "ua_hash, hour, step, outcome"},
	{"fraud_user_agents", "ua_hash"},
	{"fraud_hourly", "hour, channel, step, outcome"},
	{"credential_changes", "partition, seq"},
	{"fraud_takeover_pattern", "account_id, email_changed_at, reset_at"},
}

// dumpFraud renders the fraud read model's rows, sorted.
func dumpFraud(tb testing.TB, conn *pgx.Conn) string {
	tb.Helper()
	var b strings.Builder
	for _, q := range fraudTables {
		var s string
		err := conn.QueryRow(context.Background(), fmt.Sprintf(
			"SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n' ORDER BY %s), '') FROM auth.%s t", q.order, q.table)).Scan(&s)
		if err != nil {
			tb.Fatalf("dump %s: %v", q.table, err)
		}
		b.WriteString("== " + q.table + "\n" + s + "\n")
	}
	return b.String()
}

// diff reports the first differing line of two dumps.
func diff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  got  %s\n  want %s", i+1, x, y)
		}
	}
	return ""
}

func count(tb testing.TB, conn *pgx.Conn, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// records reduces envelopes numbered from seq 1 on, as the stream would.
func records(envs []events.Envelope) []record {
	out := make([]record, len(envs))
	for i, e := range envs {
		seq := uint64(i + 1)
		out[i] = record{seq: seq, at: e.OccurredAt, stmts: projections.Reduce(seq, e)}
	}
	return out
}

func noHoles(context.Context, uint64, uint64) (bool, error) { return true, nil }

// simHistory interleaves n events over a few accounts.
func simHistory(seed uint64, accounts, n int) []events.Envelope {
	s := newSim(seed)
	accs := s.Accounts(accounts)
	out := make([]events.Envelope, 0, n)
	for len(out) < n {
		out = append(out, s.Next(accs[s.Rng.IntN(len(accs))]))
	}
	return out
}

// waitFor polls ok until it holds, or fails the test after timeout.
func waitFor(tb testing.TB, what string, timeout time.Duration, ok func() bool) {
	tb.Helper()
	testwait.For(tb, what, timeout, ok)
}

// recordLogs makes the replica log to l too, so a test can wait until it
// says it reached a point.
func recordLogs(l *testwait.Log) func(*Config) {
	return func(c *Config) { c.Logger = slog.New(slog.NewMultiHandler(testLogger().Handler(), l.Handler())) }
}

func pgtestNewDatabase(tb testing.TB) string { return pgtest.NewDatabase(tb) }

func setup(tb testing.TB, x *executor, conn *pgx.Conn) {
	tb.Helper()
	if err := x.setup(context.Background(), conn); err != nil {
		tb.Fatal(err)
	}
}

// decodeMsgs decodes fetched messages as the batcher does, up to the first
// it cannot read.
func decodeMsgs(msgs []jetstream.Msg, log *slog.Logger) ([]record, error) {
	recs := make([]record, 0, len(msgs))
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return recs, err
		}
		r, err := decode(md.Sequence.Stream, m.Subject(), m.Headers().Get(eventstore.HeaderEventID), m.Data())
		if errors.Is(err, events.ErrNotAppended) {
			log.Error("projector: skipped a message the commands service did not append", "seq", md.Sequence.Stream, "err", err)
			r, err = record{seq: md.Sequence.Stream, at: md.Timestamp}, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}
