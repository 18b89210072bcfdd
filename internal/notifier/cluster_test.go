package notifier_test

// SMTP outage under load on a 3-node cluster (issue 14, item 6): the
// single-server SMTP failure tests again, with the events stream on three
// replicas and its leader killed and restarted while the SMTP server is
// down. Every mail goes out exactly once, and only the permanent refusal
// is a dead letter.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/notifier"
	"github.com/ameli-auth/authsvc/internal/pgtest"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// newClusterHarness is the harness on a 3-node cluster: the events stream
// on 3 replicas, appended to through node 1; h.js (the notifier's, and the
// test's reads) on node 0. Both fail over to the other nodes.
func newClusterHarness(t *testing.T, clk clock.Clock) (*harness, *natsutil.TestCluster) {
	t.Helper()
	ctx := context.Background()
	c := natsutil.StartTestCluster(t, 3)
	h := &harness{t: t, clock: clk}
	var err error
	if h.js, err = jetstream.New(c.Connect(t, 0)); err != nil {
		t.Fatal(err)
	}
	producer, err := jetstream.New(c.Connect(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if h.events, err = eventstore.OpenJetStream(ctx, producer, eventstore.JetStreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	c.WaitStream(contract.EventsStream)
	// As the events stream, so a dead letter is kept while a node is down;
	// the commands service creates it in a deployment.
	if err := notifier.EnsureDLQStream(ctx, producer, notifier.DLQStreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	if h.keys, err = secrets.NewKeys([]byte("0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	h.dbURL = pgtest.NewDatabase(t)
	if h.store, err = notifier.OpenStore(ctx, h.dbURL, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.store.Close)
	h.catcher = h.startCatcher("")
	return h, c
}

// otpRetrying appends a code mail on an account of its own, sending it
// again until it is stored: the retry of an append that did land is
// answered as a duplicate (same message id), so the event is stored once.
func (h *harness) otpRetrying(to, code string, at time.Time, stop <-chan struct{}) (env events.Envelope, retries int, err error) {
	acct := events.NewID(at)
	env = events.Wrap(acct, events.OTPIssued{
		LoginID: events.NewID(at), CodeHash: "h", CodeSealed: h.seal(code, acct), ToSealed: h.seal(to, acct),
		RequestsLastHour: 1, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute),
	}, at, events.Metadata{Channel: "web"})
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := h.events.Append(ctx, acct, 0, env, env.ID)
		cancel()
		if err == nil {
			return env, retries, nil
		}
		if errors.Is(err, eventstore.ErrConflict) {
			return env, retries, err
		}
		retries++
		select {
		case <-stop:
			return env, retries, fmt.Errorf("stopped with %s unsure: %w", env.ID, err)
		case <-time.After(20 * time.Millisecond): // retry backoff
		}
	}
}

func TestClusterSMTPOutageWithStreamLeaderKilled(t *testing.T) {
	t.Parallel() // a cluster of its own; most of the time is spent waiting for an election
	h, c := newClusterHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	cfg := h.testConfig()
	// Redeliveries of messages whose ack was lost with the leader come
	// after AckWait; the SMTP outage lasts seconds, so the retries must
	// not run out during it.
	cfg.AckWait = 3 * time.Second
	cfg.Backoff = []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}
	cfg.MaxAttempts = 1000
	cfg.SubscriberConn = c.Connect(t, 0)
	n, err := notifier.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	h.refuse.set("gone@example.fr", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@example.fr>: no such user"})

	// Code mails keep coming, through node 1, for the whole test.
	var (
		mu      sync.Mutex
		sent    []events.Envelope // appended, each to be mailed once
		retries atomic.Int64
		refused events.Envelope
	)
	appended := func() int { mu.Lock(); defer mu.Unlock(); return len(sent) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			to, code := fmt.Sprintf("u%d@example.fr", i), fmt.Sprintf("%06d", 100000+i)
			if i == 25 {
				to = "gone@example.fr" // refused for good: a dead letter
			}
			env, r, err := h.otpRetrying(to, code, t0, stop)
			retries.Add(int64(r))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if i == 25 {
				refused = env
			} else {
				sent = append(sent, env)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
		}
	})
	stopProducer := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopProducer()
	progress := func(what string) {
		t.Helper()
		target := appended() + 15
		testwait.For(t, what, 30*time.Second, func() bool { return appended() >= target })
	}

	progress("code mails before the faults")
	h.waitCount(1)
	addr := h.catcher.Addr()
	before := h.catcher
	_ = before.Close() // the SMTP server is down
	testwait.For(t, "sending failing with SMTP down", 10*time.Second, func() bool {
		return h.logs.Count("mail not sent, will retry", "connect") > 0
	})
	leader := c.StreamLeader(contract.EventsStream)
	if leader < 0 {
		t.Fatal("no stream leader")
	}
	start := time.Now()
	c.Shutdown(leader)
	progress("appends on the new stream leader")
	t.Logf("stream leader n%d killed with SMTP down; appends going on after %s (new leader n%d)",
		leader, time.Since(start).Round(time.Millisecond), c.StreamLeader(contract.EventsStream))
	c.Start(leader)
	c.WaitReady()
	progress("appends with the old leader back")
	h.catcher = h.startCatcher(addr) // back up
	progress("appends with SMTP back")
	stopProducer()

	mu.Lock()
	want := len(sent)
	mu.Unlock()
	c.WaitStream(contract.EventsStream)
	h.drained()
	// Every mail once: across the catcher before the outage and the one
	// after, one message per event, none missing, none twice, but for the
	// SMTP window of a server closing after taking a mail and before
	// replying (lostReply, TestServerDownBeforeItsReplySendsTheMailAgain).
	byID := map[string]int{}
	for _, cat := range []*catcher.Catcher{before, h.catcher} {
		for _, m := range cat.Messages() {
			byID[m.MessageID]++
		}
	}
	lost, lostReplies := 0, 0
	for _, env := range sent {
		id := env.ID + ".login-code@app.assurance-maladie.fr"
		switch n := byID[id]; {
		case n == 2 && lostReplies == 0 && lostReply(before, env.ID):
			// SMTP's own window (RFC 1047), not the notifier's: the server
			// closed after keeping this mail and before its 250 was read,
			// so the mail went again to the next server. At most one.
			lostReplies++
			t.Logf("event %s mailed twice: the first server's last mail, its reply lost as it closed", env.ID)
		case n > 1:
			t.Errorf("event %s mailed %d times", env.ID, n)
		case n == 0:
			if lost++; lost <= 10 {
				t.Errorf("event %s not mailed", env.ID)
			}
		}
		if r, err := h.store.Record(context.Background(), env.ID); err != nil || r.Status != notifier.StatusSent {
			t.Errorf("event %s: record %+v (%v), want sent", env.ID, r, err)
		}
		delete(byID, id)
	}
	for id, n := range byID {
		t.Errorf("mail %s (%d times) for no event that asked for it", id, n)
	}
	if got := before.Count() + h.catcher.Count(); got != want+lostReplies {
		t.Errorf("%d mails, %d events to mail (%d replies lost)", got, want, lostReplies)
	}

	// The permanent refusal, and only it, is a dead letter, as on one
	// server: at a delivery from PermanentAttempts on (the deliveries the
	// SMTP outage failed count too, so it may be later than the 2nd).
	dead := h.deadLetters(1)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	if dlq, err := h.js.Stream(context.Background(), contract.DLQStream); err != nil || dlq.CachedInfo().Config.Replicas != 3 {
		t.Errorf("dead-letter stream: %v; want it on 3 replicas like the events stream", err)
	}
	reason := dead[0].Header.Get(notifier.HeaderDLQReason)
	var delivery int
	if i := strings.LastIndex(reason, "(delivery "); i >= 0 {
		_, _ = fmt.Sscanf(reason[i:], "(delivery %d)", &delivery)
	}
	if !strings.Contains(reason, "550") || delivery < cfg.PermanentAttempts || strings.Contains(reason, "gone@") {
		t.Errorf("dead letter reason %q: want the 550, at delivery %d or later, without the address", reason, cfg.PermanentAttempts)
	}
	if r := h.record(refused.ID, notifier.StatusFailed); !strings.Contains(r.LastError, "550") {
		t.Errorf("record of the refused mail: %+v", r)
	}
	t.Logf("%d code mails sent once each (%d before the outage), 1 dead letter (at delivery %d), %d appends retried",
		want, before.Count(), delivery, retries.Load())
}
