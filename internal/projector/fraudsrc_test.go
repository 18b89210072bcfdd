package projector

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// fraudT0 is when the fraud events of these tests happen.
var fraudT0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// sourceEvent is a fraud event as the commands service records it: a
// throttle at the 100th failure of a day's window opened at fraudT0, or
// its release when the window has passed.
func sourceEvent(typ, source, kind string, windowStart time.Time) events.FraudEvent {
	budget, window := 100, 24*time.Hour
	if kind == events.SourceKindPrefix {
		budget = 1000
	}
	at := windowStart.Add(time.Hour)
	d := events.SourceFacts{Source: source, Kind: kind, Failures: budget, Budget: budget, WindowStart: windowStart,
		WindowSeconds: int64(window / time.Second), Until: windowStart.Add(window)}
	if typ == events.TypeSourceReleased {
		at = windowStart.Add(window + time.Minute)
		d.Reason = events.ReleaseWindowPassed
	}
	return events.FraudEvent{ID: events.NewID(at), Type: typ, Version: 1, OccurredAt: at, Data: d}
}

// throttledRow is a row of auth.fraud_sources_throttled.
type throttledRow struct {
	source, kind     string
	failures, budget int
	until            time.Time
	released         *time.Time
	reason           *string
	throttleEventID  string
}

func (r throttledRow) String() string {
	s := fmt.Sprintf("%s %s %d/%d until %s", r.source, r.kind, r.failures, r.budget, r.until.UTC().Format(time.RFC3339))
	if r.released != nil {
		s += " released " + r.released.UTC().Format(time.RFC3339) + " (" + *r.reason + ")"
	}
	return s
}

// sourcesThrottled reads the view, in the throttles' order.
func sourcesThrottled(tb testing.TB, url string) []throttledRow {
	tb.Helper()
	conn := connect(tb, url)
	rows, err := conn.Query(context.Background(), `SELECT source::text, kind, failures, budget, until, released_at, release_reason, throttle_event_id
		FROM auth.fraud_sources_throttled ORDER BY throttle_seq`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []throttledRow
	for rows.Next() {
		var r throttledRow
		if err := rows.Scan(&r.source, &r.kind, &r.failures, &r.budget, &r.until, &r.released, &r.reason, &r.throttleEventID); err != nil {
			tb.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func recordFraud(tb testing.TB, store *eventstore.JetStream, es ...events.FraudEvent) {
	tb.Helper()
	for _, e := range es {
		if err := store.Fraud().Record(context.Background(), e); err != nil {
			tb.Fatal(err)
		}
	}
}

// The projector started before the commands service waits for AUTH_FRAUD,
// then shows a throttled source in auth.fraud_sources_throttled, in force
// (no release), then released once its release is recorded; messages on
// the stream that the commands service did not write or that the table
// cannot hold (garbage, no event id header, a source with host bits) are
// skipped, logged, and do not stop it.
func TestSourcesThrottledFollowAUTHFRAUD(t *testing.T) {
	ctx := context.Background()
	srv := natsutil.RunTestServer(t)
	url := newDB(t)
	var logs testwait.Log
	startReplica(t, newJS(t, srv), url, "fraud", recordLogs(&logs))
	waitFor(t, "the follower to wait for AUTH_FRAUD", 10*time.Second, func() bool {
		return logs.Count("waiting for a stream the commands service creates", "stream="+contract.FraudStream) > 0
	})
	js := newJS(t, srv)
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}

	throttle := sourceEvent(events.TypeSourceThrottled, "203.0.113.0/24", events.SourceKindPrefix, fraudT0)
	recordFraud(t, store, throttle)
	want := "203.0.113.0/24 prefix 1000/1000 until 2026-03-03T08:00:00Z"
	waitFor(t, "the throttle in the view", 10*time.Second, func() bool {
		rows := sourcesThrottled(t, url)
		return len(rows) == 1 && rows[0].String() == want
	})

	// Three messages to skip, then the release.
	subject := contract.Default.Fraud(events.TypeSourceThrottled)
	noHeader := nats.NewMsg(subject)
	noHeader.Data, _ = events.MarshalFraud(sourceEvent(events.TypeSourceThrottled, "198.51.100.7/32", events.SourceKindIP, fraudT0))
	for _, m := range []*nats.Msg{{Subject: subject, Data: []byte("not json")}, noHeader} {
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	recordFraud(t, store, sourceEvent(events.TypeSourceThrottled, "198.51.100.7/24", events.SourceKindPrefix, fraudT0),
		sourceEvent(events.TypeSourceReleased, "203.0.113.0/24", events.SourceKindPrefix, fraudT0))
	want += " released 2026-03-03T08:01:00Z (window_passed)"
	waitFor(t, "the release in the view", 10*time.Second, func() bool {
		rows := sourcesThrottled(t, url)
		return len(rows) == 1 && rows[0].String() == want
	})
	if rows := sourcesThrottled(t, url); rows[0].throttleEventID != throttle.ID {
		t.Errorf("throttle event id %s, want %s", rows[0].throttleEventID, throttle.ID)
	}
	if n := count(t, connect(t, url), "SELECT count(*) FROM auth.fraud_source_events"); n != 2 {
		t.Errorf("%d rows, want the throttle and its release", n)
	}
	if n := logs.Count("skipped a message it cannot read"); n != 3 {
		t.Errorf("%d messages skipped, want 3:\n%s", n, strings.Join(logs.Lines("fraud events"), ""))
	}
	// The skipped messages are not redelivered: everything is acked or
	// terminated.
	waitFor(t, "the consumer to have nothing pending", 10*time.Second, func() bool {
		info, err := js.Consumer(ctx, contract.FraudStream, DefaultConsumer+fraudConsumerSuffix)
		if err != nil {
			return false
		}
		ci, err := info.Info(ctx)
		return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0 && ci.AckFloor.Stream == 5
	})
}

// Two replicas share the durable consumer and write each event once; when
// every message is delivered again (the consumer deleted and made again
// from the stream's start), the redelivered events insert nothing.
func TestFraudEventsRedeliveredInsertNothingTwice(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	url := newDB(t)
	var es []events.FraudEvent
	for i := range 10 {
		src := fmt.Sprintf("192.0.2.%d/32", i)
		es = append(es, sourceEvent(events.TypeSourceThrottled, src, events.SourceKindIP, fraudT0),
			sourceEvent(events.TypeSourceReleased, src, events.SourceKindIP, fraudT0))
	}
	recordFraud(t, b.store, es[:10]...)
	r1 := startReplica(t, newJS(t, b.srv), url, "a", nil)
	r2 := startReplica(t, newJS(t, b.srv), url, "b", nil)
	recordFraud(t, b.store, es[10:]...)
	conn := connect(t, url)
	waitFor(t, "the 20 events in the table", 10*time.Second, func() bool {
		return count(t, conn, "SELECT count(*) FROM auth.fraud_source_events") == 20
	})
	r1.stop()
	r2.stop()

	consumer := DefaultConsumer + fraudConsumerSuffix
	if err := b.js.DeleteConsumer(ctx, contract.FraudStream, consumer); err != nil {
		t.Fatal(err)
	}
	extra := sourceEvent(events.TypeSourceThrottled, "2001:db8::/64", events.SourceKindPrefix, fraudT0)
	recordFraud(t, b.store, extra)
	var logs testwait.Log
	startReplica(t, newJS(t, b.srv), url, "c", recordLogs(&logs))
	waitFor(t, "all 21 messages delivered again and acked", 10*time.Second, func() bool {
		c, err := b.js.Consumer(ctx, contract.FraudStream, consumer)
		if err != nil {
			return false
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.AckFloor.Stream == 21 && ci.NumAckPending == 0
	})
	if n := count(t, conn, "SELECT count(*) FROM auth.fraud_source_events"); n != 21 {
		t.Fatalf("%d rows after the redelivery, want 21", n)
	}
	if n := count(t, conn, "SELECT count(DISTINCT event_id) FROM auth.fraud_source_events"); n != 21 {
		t.Fatalf("%d distinct events, want 21", n)
	}
	if n := logs.Count("skipped"); n != 0 {
		t.Errorf("a redelivery is not an error, but %d events were skipped:\n%s", n, strings.Join(logs.Lines("skipped"), ""))
	}
	rows := sourcesThrottled(t, url)
	if len(rows) != 11 || rows[10].source != "2001:db8::/64" || rows[10].released != nil {
		t.Fatalf("view after the redelivery: %v", rows)
	}
	for _, r := range rows[:10] {
		if r.released == nil {
			t.Errorf("%s: no release", r)
		}
	}

	// The same messages applied again by hand: nothing new.
	f := newFraudFollower(mustNew(t, Config{DatabaseURL: url, JS: b.js, Consumer: "again"}))
	cons, err := b.js.OrderedConsumer(ctx, contract.FraudStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := drain(cons.Fetch(21, jetstream.FetchMaxWait(5*time.Second)))
	if err != nil || len(msgs) != 21 {
		t.Fatalf("%d messages, %v", len(msgs), err)
	}
	pg := connect(t, url)
	if n, err := f.apply(ctx, pg, msgs); err != nil || n != 0 {
		t.Fatalf("applying the stream again inserted %d rows, %v", n, err)
	}
}

// A rebuild replays the account streams into new tables and swaps them
// in: the sources throttled, which come from AUTH_FRAUD, are carried over,
// and the follower goes on writing into the new table.
func TestRebuildKeepsTheSourcesThrottled(t *testing.T) {
	ctx := context.Background()
	b := newBus(t)
	s := newSim(71)
	b.produce(t, s, s.Accounts(5), 100)
	url := newDB(t)
	startReplica(t, b.js, url, "live", nil)
	recordFraud(t, b.store,
		sourceEvent(events.TypeSourceThrottled, "203.0.113.9/32", events.SourceKindIP, fraudT0),
		sourceEvent(events.TypeSourceThrottled, "203.0.113.0/24", events.SourceKindPrefix, fraudT0),
		sourceEvent(events.TypeSourceReleased, "203.0.113.9/32", events.SourceKindIP, fraudT0))
	conn := connect(t, url)
	waitFor(t, "the 3 events in the table", 10*time.Second, func() bool {
		return count(t, conn, "SELECT count(*) FROM auth.fraud_source_events") == 3
	})
	waitCaughtUp(t, url, 100, 20*time.Second)
	before := fmt.Sprint(sourcesThrottled(t, url))

	if _, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: newJS(t, b.srv)}); err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprint(sourcesThrottled(t, url)); after != before {
		t.Fatalf("after the rebuild:\n%s\nwant\n%s", after, before)
	}
	if n := count(t, conn, "SELECT count(*) FROM auth.fraud_source_events"); n != 3 {
		t.Fatalf("%d rows after the rebuild, want 3", n)
	}
	recordFraud(t, b.store, sourceEvent(events.TypeSourceReleased, "203.0.113.0/24", events.SourceKindPrefix, fraudT0))
	waitFor(t, "the follower writing into the new table", 10*time.Second, func() bool {
		rows := sourcesThrottled(t, url)
		return len(rows) == 2 && rows[0].released != nil && rows[1].released != nil
	})
}

// Values the table would refuse are caught when decoding, not at every
// retry of the insert.
func TestDecodeFraudRefusesWhatTheTableWould(t *testing.T) {
	ok := sourceEvent(events.TypeSourceThrottled, "2001:db8::/64", events.SourceKindPrefix, fraudT0)
	for name, c := range map[string]struct {
		mutate func(*events.FraudEvent)
		header string
	}{
		"host bits":   {func(e *events.FraudEvent) { e.Data.Source = "203.0.113.7/24" }, ""},
		"no prefix":   {func(e *events.FraudEvent) { e.Data.Source = "203.0.113.7" }, ""},
		"kind":        {func(e *events.FraudEvent) { e.Data.Kind = "asn" }, ""},
		"nul":         {func(e *events.FraudEvent) { e.Data.Reason = "a\x00b" }, ""},
		"other id":    {func(*events.FraudEvent) {}, "01HOTHER"},
		"type":        {func(e *events.FraudEvent) { e.Type = "fraud.other" }, ""},
		"valid event": {func(*events.FraudEvent) {}, ""},
	} {
		e := ok
		c.mutate(&e)
		b, _ := (func() ([]byte, error) { // MarshalFraud refuses an unknown type
			if e.Type != ok.Type {
				return []byte(`{"id":"` + e.ID + `","type":"` + e.Type + `"}`), nil
			}
			return events.MarshalFraud(e)
		})()
		header := e.ID
		if c.header != "" {
			header = c.header
		}
		_, err := decodeFraud(1, header, b)
		if (err == nil) != (name == "valid event") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func mustNew(tb testing.TB, cfg Config) *Projector {
	tb.Helper()
	p, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// `authctl projections status` tells the fraud follower's lag: not started
// before any replica ran, nothing behind once it has caught up, and the
// events recorded while every replica was stopped, with the age of the
// oldest, until one comes back.
func TestStatusTellsTheFraudFollowersLag(t *testing.T) {
	ctx := context.Background()
	srv := natsutil.RunTestServer(t)
	url := newDB(t)
	js := newJS(t, srv)
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(90 * time.Second)
	cfg := StatusConfig{DatabaseURL: url, JS: js, Clock: clock.NewFixed(later)}
	status := func() FraudStatus {
		t.Helper()
		st, err := ReadStatus(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st.Fraud
	}
	if fs := status(); fs.Found || fs.Consumer != "projector_fraud" {
		t.Fatalf("before any replica: %+v, want not found", fs)
	}
	r := startReplica(t, js, url, "fraud", nil)
	recordFraud(t, store, sourceEvent(events.TypeSourceThrottled, "203.0.113.0/24", events.SourceKindPrefix, fraudT0))
	waitFor(t, "the follower to catch up", 10*time.Second, func() bool {
		fs := status()
		return fs.Found && fs.LagEvents == 0 && fs.LagSeconds == 0
	})
	r.stop()
	recordFraud(t, store, sourceEvent(events.TypeSourceThrottled, "198.51.100.0/24", events.SourceKindPrefix, fraudT0),
		sourceEvent(events.TypeSourceReleased, "203.0.113.0/24", events.SourceKindPrefix, fraudT0))
	if fs := status(); !fs.Found || fs.LagEvents != 2 || fs.LagSeconds < 89 || fs.LagSeconds > 120 {
		t.Fatalf("with every replica stopped: %+v, want 2 events about 90 s behind", fs)
	}
	startReplica(t, js, url, "fraud2", nil)
	waitFor(t, "the follower to catch up again", 10*time.Second, func() bool { return status().LagEvents == 0 })
}
