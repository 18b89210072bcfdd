package repartition_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/repartition"
)

const password = "Motdepasse-2023"

// attemptsTTL is the old layout's retention of the login attempts.
const attemptsTTL = 8760 * time.Hour

type account struct{ id, nir string }

func nirOf(i int) string { return fmt.Sprintf("1850175%06d", 100000+i) }

// ids is the account's events' ids, in order.
func ids(envs []events.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.ID
	}
	return out
}

// Accounts registered and logged in by the commands service on From
// partitions are migrated to To; a first run stopped halfway (its context
// cancelled, as Ctrl-C does) and a second run finish it. Then the commands
// service on To partitions finds every account: each history has the same
// events in the same order, an old account logs in, and its NIR cannot be
// registered again (the index was copied). The new streams hold each
// event once.
func TestMigrateAndResume(t *testing.T) {
	const accounts = 200
	for _, c := range []struct{ from, to int }{{1, 2}, {2, 3}} {
		t.Run(fmt.Sprintf("%d_to_%d", c.from, c.to), func(t *testing.T) {
			srv := natsutil.RunTestServer(t)
			var accs []account
			before := map[string][]string{}
			t.Run("old layout", func(t *testing.T) {
				// Login attempts with a retention (Nats-TTL), as in production.
				h := commandstest.Start(t, commandstest.Options{Server: srv, Partitions: c.from, AttemptsTTL: attemptsTTL})
				for i := range accounts {
					nir := nirOf(i)
					accs = append(accs, account{h.Register(nir, fmt.Sprintf("u%d@example.fr", i), password), nir})
				}
				for i, a := range accs {
					if i%2 == 0 {
						h.StartLogin(a.nir, password)
					}
				}
				for _, a := range accs {
					before[a.id] = ids(h.History(a.id))
				}
			})
			nc := natsutil.Connect(t, srv)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()

			// Stopped halfway.
			first, stop := context.WithCancel(ctx)
			o := repartition.Options{From: c.from, To: c.to, CheckpointEvery: 25, Window: 16}
			o.Progress = func(done, total int) {
				if done >= total/2 {
					stop()
				}
			}
			if _, err := repartition.Run(first, nc, o); !errors.Is(err, context.Canceled) {
				t.Fatalf("first run: %v, want it cancelled", err)
			}
			o.Progress = nil
			rep, err := repartition.Run(ctx, nc, o)
			if err != nil {
				t.Fatalf("second run: %v (%+v)", err, rep)
			}
			t.Logf("second run: %+v", rep)
			if !rep.Resumed || rep.Present == 0 || rep.IndexKeys != accounts {
				t.Errorf("second run %+v: want it resumed, finding some events already copied, and %d index keys", rep, accounts)
			}

			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			old, l := contract.Layout{Partitions: c.from}, contract.Layout{Partitions: c.to}
			for p := range old.N() {
				if name := old.Stream(p); !slices.Contains(l.Streams(), name) {
					if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
						t.Errorf("old stream %s: %v, want it deleted", name, err)
					}
				}
			}
			for _, name := range []string{repartition.StateBucket, "AUTH_MIGRATE_EVENTS_0", "AUTH_MIGRATE_NIR_INDEX_0"} {
				if _, err := js.Stream(ctx, name); err == nil {
					t.Errorf("%s left behind", name)
				}
			}

			h := commandstest.Start(t, commandstest.Options{Server: srv, Partitions: c.to})
			var stored, want uint64
			for _, a := range accs {
				got := ids(h.History(a.id))
				if !slices.Equal(got, before[a.id]) {
					t.Fatalf("account %s: events %v after, %v before", a.id, got, before[a.id])
				}
				want += uint64(len(got))
			}
			for _, name := range l.Streams() {
				st, err := js.Stream(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				stored += st.CachedInfo().State.Msgs
			}
			// Each login attempt keeps what is left of its retention; the
			// other events have none.
			attempts := 0
			for _, a := range accs[:10] {
				cons, err := js.OrderedConsumer(ctx, l.Stream(l.PartitionOf(a.id)), jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.Events(a.id)}})
				if err != nil {
					t.Fatal(err)
				}
				batch, err := cons.Fetch(len(before[a.id]), jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for msg := range batch.Messages() {
					n++
					env, err := events.Unmarshal(msg.Data())
					if err != nil {
						t.Fatal(err)
					}
					raw := msg.Headers().Get(jetstream.MsgTTLHeader)
					if !events.IsAttempt(env.Data) {
						if raw != "" {
							t.Errorf("account %s: %s has Nats-TTL %q", a.id, env.Type, raw)
						}
						continue
					}
					attempts++
					if ttl, err := time.ParseDuration(raw); err != nil || ttl > attemptsTTL || ttl < attemptsTTL-time.Hour {
						t.Errorf("account %s: attempt %s with Nats-TTL %q, want a little under %s", a.id, env.Type, raw, attemptsTTL)
					}
				}
				if n != len(before[a.id]) {
					t.Errorf("account %s: %d messages read, want %d", a.id, n, len(before[a.id]))
				}
			}
			if attempts == 0 {
				t.Error("no login attempt among the first accounts")
			}
			if stored != want || rep.Total != int(want) {
				t.Errorf("the new streams hold %d messages (report: %d), the histories %d events", stored, rep.Total, want)
			}
			a := accs[len(accs)/2]
			if tok := h.Login(a.id, a.nir, password); tok == "" {
				t.Error("no session for an old account")
			}
			rep2 := h.Req(contract.CmdAccountRegister, commandstest.Obj{"nir": accs[0].nir, "email": "x@example.fr", "password": password,
				"email_validated": true, "affiliation": "active", "channel": "backoffice"})
			if rep2.OK || rep2.Error == nil || rep2.Error.Code != domain.CodeAccountExists {
				t.Errorf("registering an old account's NIR again: %+v %+v", rep2, rep2.Error)
			}
		})
	}
}

// A migration does not start while a commands service answers, nor when
// a stream of the new layout already holds messages; neither refusal
// changes anything.
func TestMigrateRefuses(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	h := commandstest.Start(t, commandstest.Options{Server: srv, Partitions: 2})
	h.Register(nirOf(1), "a@example.fr", password)
	nc := natsutil.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := repartition.Options{From: 2, To: 3}
	if _, err := repartition.Run(ctx, nc, o); !errors.Is(err, repartition.ErrRefused) {
		t.Fatalf("with the service running: %v, want refused", err)
	}
	for _, svc := range h.Svcs {
		if err := svc.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l := contract.Layout{Partitions: 3}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: l.Stream(2), Subjects: []string{l.StreamSubjects(2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, l.Subjects().Prefix()+".events.2.foreign", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := repartition.Run(ctx, nc, o); !errors.Is(err, repartition.ErrRefused) {
		t.Fatalf("with a foreign message in %s: %v, want refused", l.Stream(2), err)
	}
	for p := range 2 {
		if _, err := js.Stream(ctx, contract.Layout{Partitions: 2}.Stream(p)); err != nil {
			t.Errorf("after the refusals, the old stream %d: %v", p, err)
		}
	}
	if _, err := js.Stream(ctx, "AUTH_MIGRATE_EVENTS_0"); err == nil {
		t.Error("a refused run made a mirror")
	}
	// The state bucket holds no plan after a refusal.
	kv, err := js.KeyValue(ctx, repartition.StateBucket)
	if err == nil {
		if _, err := kv.Get(ctx, "plan"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("a refused run left a plan: %v", err)
		}
	}
}

// An event appended to an old stream while the mirrors are made (a
// commands service that the ping did not reach) stops the migration before
// anything is deleted; once the appends have stopped, a new run starts
// over from the check and completes.
func TestMigrateRefusesOldStreamsThatMove(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	var acc string
	var env events.Envelope
	t.Run("old layout", func(t *testing.T) {
		h := commandstest.Start(t, commandstest.Options{Server: srv})
		acc = h.Register(nirOf(1), "a@example.fr", password)
		env = h.History(acc)[0]
	})
	nc := natsutil.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The events store itself: no service answers the ping.
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	repartition.SetMirroredHook(func() {
		env.ID = events.NewID(commandstest.T0)
		if _, err := store.Append(ctx, acc, 1, env, ""); err != nil {
			t.Errorf("append during the copy: %v", err)
		}
	})
	t.Cleanup(func() { repartition.SetMirroredHook(nil) })
	o := repartition.Options{From: 1, To: 2}
	if _, err := repartition.Run(ctx, nc, o); !errors.Is(err, repartition.ErrRefused) {
		t.Fatalf("old stream moved during the copy: %v, want refused", err)
	}
	if _, err := js.Stream(ctx, contract.EventsStream); err != nil {
		t.Fatalf("after the refusal, %s: %v", contract.EventsStream, err)
	}
	repartition.SetMirroredHook(nil)
	rep, err := repartition.Run(ctx, nc, o)
	if err != nil || rep.Resumed || rep.Total != 2 {
		t.Fatalf("run again: %+v %v, want a fresh run copying the 2 events", rep, err)
	}
}
