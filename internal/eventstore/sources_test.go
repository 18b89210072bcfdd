package eventstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/eventstore/storetest"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// The source counters keep the shadows' contract (compare-and-set on the
// revision), in their own bucket.
func TestJetStreamSourcesContract(t *testing.T) {
	storetest.RunShadows(t, func(t *testing.T) eventstore.Shadows { return newJetStream(t).store.Sources() })
}

// The source bucket expires entries and is bounded: a flood of random
// addresses is refused with ErrFull once it is full, never grows it.
func TestJetStreamSourcesBoundedAndExpiring(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.OpenJetStream(ctxFor(t), js, eventstore.JetStreamConfig{SourceMaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctxFor(t), eventstore.SourceBucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	if status.TTL() != eventstore.DefaultSourceTTL || status.History() != 1 {
		t.Errorf("bucket TTL %s, history %d", status.TTL(), status.History())
	}
	value := make([]byte, 200)
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("4 KiB bucket took 100 writes of 200 bytes")
		}
		_, err := store.Sources().Put(ctxFor(t), fmt.Sprintf("k%d", i), value, 0)
		if errors.Is(err, eventstore.ErrFull) {
			break
		}
		if err != nil {
			t.Fatalf("write %d: %v, want nil or ErrFull", i, err)
		}
	}
}

// The fraud events go to AUTH_FRAUD on <prefix>.<type>, once per id; the
// stream refuses deletes and purges, as the account events'.
func TestJetStreamFraudLog(t *testing.T) {
	e := newJetStream(t)
	ctx := ctxFor(t)
	t0 := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	ev := events.FraudEvent{ID: events.NewID(t0), Type: events.TypeSourceThrottled, Version: 1, OccurredAt: t0,
		Data: events.SourceFacts{Source: "203.0.113.7/32", Kind: events.SourceKindIP, Failures: 100, Budget: 100, WindowStart: t0, WindowSeconds: 86400, Until: t0.Add(24 * time.Hour)}}
	for range 2 {
		if err := e.store.Fraud().Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st, err := e.js.Stream(ctx, contract.FraudStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	if info.State.Msgs != 1 || !cfg.DenyDelete || !cfg.DenyPurge || len(cfg.Subjects) != 1 || cfg.Subjects[0] != "auth.fraud.>" {
		t.Fatalf("stream %+v, %d messages", cfg, info.State.Msgs)
	}
	m, err := st.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	back, err := events.UnmarshalFraud(m.Data)
	if m.Subject != "auth.fraud.source_throttled" || m.Header.Get(eventstore.HeaderEventID) != ev.ID || err != nil || back.Data != ev.Data {
		t.Fatalf("message on %s, %v: %+v", m.Subject, err, back)
	}
	if err := st.Purge(ctx); err == nil {
		t.Error("AUTH_FRAUD was purged")
	}
}
