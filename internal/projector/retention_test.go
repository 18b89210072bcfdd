package projector

import (
	"context"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// Login attempts leave the stream after their retention (issue 16,
// docs/retention.md); what the read models recorded of them stays: every
// row of auth.login_attempts, and the accounts as they were. The
// projector then goes on over the holes the expired events leave.
func TestExpiredAttemptsKeepTheirRows(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js := newJS(t, srv)
	ctx := context.Background()
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{AttemptsTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	b := &bus{srv: srv, js: js, store: store}
	s := newSim(16)
	accs := s.Accounts(20)
	b.produce(t, s, accs, 400)
	url := newDB(t)
	r := startReplica(t, newJS(t, srv), url, "solo", nil)
	waitCaughtUp(t, url, b.lastSeq(t), 20*time.Second)
	before := dumpTables(t, url)
	conn := connect(t, url)
	rows := count(t, conn, "SELECT count(*) FROM auth.login_attempts")
	if rows == 0 {
		t.Fatal("no login attempt in the simulated history")
	}

	// Every attempt expires; what stays is what the accounts are.
	st, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for seq := uint64(1); seq <= b.lastSeq(t); seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // already expired
		}
		env, err := events.Unmarshal(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !events.IsAttempt(env.Data) {
			kept++
		}
	}
	waitFor(t, "the attempts to expire", 10*time.Second, func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == uint64(kept)
	})
	if after := dumpTables(t, url); after != before {
		t.Fatalf("the read models changed when the attempts expired: %s", diff(before, after))
	}

	// New events after the holes are projected as usual (appended after
	// each account's last kept event, as the commands service does).
	for _, a := range accs {
		if a.Seq, err = store.LastSeq(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
	}
	b.produce(t, s, accs, 100)
	waitCaughtUp(t, url, b.lastSeq(t), 20*time.Second)
	if got := count(t, conn, "SELECT count(*) FROM auth.login_attempts"); got < rows {
		t.Fatalf("%d attempt rows after more events, %d before", got, rows)
	}
	r.stop()

	// A rebuild replays what the stream still has: the rows of the
	// expired attempts move over to the new tables as they were.
	attempts := func() string {
		var s string
		if err := conn.QueryRow(ctx, "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n' ORDER BY seq), '') FROM auth.login_attempts t").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := attempts()
	// The fraud counters of the expired attempts are carried over too.
	wantFraud := dumpFraud(t, conn)
	if count(t, conn, "SELECT count(*) FROM auth.fraud_source_hourly") == 0 {
		t.Fatal("no fraud counter in the simulated history")
	}
	if _, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: js}); err != nil {
		t.Fatal(err)
	}
	conn = connect(t, url)
	if got := attempts(); got != want {
		t.Fatalf("auth.login_attempts after the rebuild: %s", diff(want, got))
	}
	if got := dumpFraud(t, conn); got != wantFraud {
		t.Fatalf("the fraud read model after the rebuild: %s", diff(wantFraud, got))
	}
}
