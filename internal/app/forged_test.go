package app

// A reader of the events stream (the projector's or the notifier's NATS
// user) can have the server store a JetStream API answer, or a header-less
// copy of another account's event, on an account's subject: NATS answers a
// request on whatever reply subject it names, and no permission governs
// that (found by the issue 15 review). These tests do it through the
// deployed users and check that the account survives: the readers skip
// what the commands service did not append (events.VerifyStored).

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// startBare is the deploy/nats configuration with the stream and buckets
// as the commands service creates them (eventstore.OpenJetStream, the
// dead-letter stream), no component running, and one account with one
// event.
func startBare(t *testing.T) (r *restricted, store *eventstore.JetStream, admin jetstream.JetStream, victim string) {
	t.Helper()
	for _, u := range []string{"commands", "projector", "notifier", "frontend", "backoffice", "admin"} {
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(u), natsPassword(u))
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TAG", "group:a")
	r = &restricted{t: t, logs: map[string]*testwait.Log{}}
	r.srv = natsutil.RunConfiguredTestServer(t, filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))
	ctx := context.Background()
	cmd := r.probe("commands")
	store, err := eventstore.OpenJetStream(ctx, cmd.js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.js.CreateStream(ctx, jetstream.StreamConfig{Name: "AUTH_DLQ", Subjects: []string{"auth.dlq.>"}}); err != nil {
		t.Fatal(err)
	}
	victim = events.NewID(time.Now())
	env := events.Wrap(victim, events.AccountRegistered{NIRHash: "h", EmailSealed: "s", MaskedEmail: "v***@y***.fr",
		EmailValidated: true, PasswordHash: "p", Affiliation: "active", At: time.Now()}, time.Now(), events.Metadata{})
	if _, err := store.Append(ctx, victim, 0, env, ""); err != nil {
		t.Fatal(err)
	}
	return r, store, r.probe("admin").js, victim
}

// settled publishes a marker into the stream that holds subject (as a user
// allowed to) and waits for its ack: whatever the server delivered to
// subject before is stored by then. It returns the stream's message count
// less the marker.
func settled(t *testing.T, r *restricted, admin jetstream.JetStream, subject string) (stream string, msgs uint64) {
	t.Helper()
	ctx := context.Background()
	var js jetstream.JetStream
	var marker string
	// Each marker on a subject of its own: the buckets keep one message
	// per subject.
	defer func() { markers++ }()
	switch {
	case strings.HasPrefix(subject, "auth.events."):
		stream, js, marker = "AUTH_EVENTS", r.probe("commands").js, "auth.events.01MARKER"+strconv.Itoa(markers)
	case strings.HasPrefix(subject, "$KV.AUTH_NIR_INDEX."):
		stream, js, marker = "KV_AUTH_NIR_INDEX", admin, "$KV.AUTH_NIR_INDEX.marker"+strconv.Itoa(markers)
	default:
		stream, js, marker = "AUTH_DLQ", admin, "auth.dlq.marker"+strconv.Itoa(markers)
	}
	if _, err := js.Publish(ctx, marker, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	st, err := admin.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return stream, st.CachedInfo().State.Msgs - 1
}

var markers int

func count(t *testing.T, admin jetstream.JetStream, stream string) uint64 {
	t.Helper()
	st, err := admin.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

// FINDING 1, consequence: the account can no longer be read by the
// commands service (every command on it answers unavailable), and the
// projector stops at the unreadable event ("deploy a projector that knows
// it"); deny_delete forbids the repair.
func TestAStreamInfoAnswerStoredOnAnAccountIsSkipped(t *testing.T) {
	r, store, _, victim := startBare(t)
	ctx := context.Background()
	p := r.probe("projector")
	if err := p.nc.PublishRequest("$JS.API.STREAM.INFO.AUTH_EVENTS", store.Subject(victim), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p.js.Stream(ctx, "AUTH_EVENTS"); err != nil {
		t.Fatal(err)
	}
	settled(t, r, r.probe("admin").js, store.Subject(victim))
	recs, err := store.Load(ctx, victim, 0)
	if err != nil {
		t.Fatalf("the victim's account after the projector's request: %v", err)
	}
	if len(recs) != 2 || recs[0].NotAppended || !recs[1].NotAppended {
		t.Fatalf("records %+v: want the registration, then the answer skipped", recs)
	}
	// The account goes on: the next append expects the answer's place.
	env := events.Wrap(victim, events.LoginSucceeded{At: time.Now()}, time.Now(), events.Metadata{})
	if _, err := store.Append(ctx, victim, recs[1].Seq, env, ""); err != nil {
		t.Errorf("append after the skipped answer: %v", err)
	}
}

// FINDING 1, consequence: the projector copies another account's
// account.deactivated onto the victim's subject (one DIRECT.GET); the
// commands service's Load returns it as the victim's (it does not compare
// the envelope's account_id with the subject) and the victim's account is
// closed.
func TestACopiedEventOfAnotherAccountIsSkipped(t *testing.T) {
	r, store, _, victim := startBare(t)
	ctx := context.Background()
	other := events.NewID(time.Now())
	now := time.Now()
	for i, e := range []events.Event{
		events.AccountRegistered{NIRHash: "h2", EmailSealed: "s", MaskedEmail: "a***@b***.fr", EmailValidated: true, PasswordHash: "p", Affiliation: "active", At: now},
		events.AccountDeactivated{At: now},
	} {
		if _, err := store.Append(ctx, other, map[int]uint64{0: 0, 1: 2}[i], events.Wrap(other, e, now, events.Metadata{}), ""); err != nil {
			t.Fatal(err)
		}
	}
	p := r.probe("projector")
	if err := p.nc.PublishRequest("$JS.API.DIRECT.GET.AUTH_EVENTS", store.Subject(victim), []byte(`{"seq":3,"no_hdr":true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.nc.Request("$JS.API.DIRECT.GET.AUTH_EVENTS", []byte(`{"seq":3}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	settled(t, r, r.probe("admin").js, store.Subject(victim))
	recs, err := store.Load(ctx, victim, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := domain.Account{ID: victim}
	skipped := 0
	for _, rec := range recs {
		if rec.NotAppended {
			skipped++
			continue
		}
		if rec.Envelope.AccountID != victim {
			t.Errorf("the victim's history holds an event of account %s (%s), loaded as its own", rec.Envelope.AccountID, rec.Envelope.Type)
		}
		a = domain.Evolve(a, rec.Envelope.Data)
	}
	if a.Status == domain.StatusDeactivated {
		t.Errorf("the victim's account is deactivated by the projector's copy")
	}
	if skipped != 1 || len(recs) != 2 {
		t.Errorf("%d records, %d skipped: want the registration and the copy, skipped", len(recs), skipped)
	}
}
