package notifier_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/notifier"
	"github.com/ameli-auth/authsvc/internal/pgtest"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

const from = "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>"

// t0 is Thursday 5 January 2023, 14:30 in Paris.
var t0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

// harness runs the notifier as in production: events appended to an
// embedded JetStream, records in a fresh Postgres database, mails over
// real SMTP to an in-process catcher.
type harness struct {
	t       testing.TB
	srv     *server.Server
	js      jetstream.JetStream
	events  eventstore.Store
	layout  contract.Layout // the events' partitions (one by default)
	keys    *secrets.Keys
	clock   clock.Clock
	store   *notifier.Store
	dbURL   string
	catcher *catcher.Catcher
	refuse  refusals
	logs    testwait.Log // what the notifiers of testConfig log

	mu        sync.Mutex
	notifiers []*notifier.Notifier
}

// refusals makes the catcher refuse mail to some recipients, or hold it.
type refusals struct {
	mu      sync.Mutex
	err     map[string]error
	entered chan<- struct{}
	hold    <-chan struct{}
}

// catcherHold makes the catcher tell entered when a mail arrives, and
// accept it only once hold is closed.
func (h *harness) catcherHold(entered chan<- struct{}, hold <-chan struct{}) {
	h.refuse.mu.Lock()
	defer h.refuse.mu.Unlock()
	h.refuse.entered, h.refuse.hold = entered, hold
}

func (r *refusals) set(to string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = map[string]error{}
	}
	if err == nil {
		delete(r.err, to)
	} else {
		r.err[to] = err
	}
}

func (r *refusals) check(m catcher.Message) error {
	r.mu.Lock()
	entered, hold := r.entered, r.hold
	r.mu.Unlock()
	if entered != nil {
		select {
		case entered <- struct{}{}:
		default:
		}
	}
	if hold != nil {
		<-hold
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, to := range m.RcptTo {
		if err := r.err[to]; err != nil {
			return err
		}
	}
	return nil
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("NOTIFIER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHarness(t testing.TB, clk clock.Clock) *harness {
	t.Helper()
	return newPartitionedHarness(t, clk, 1)
}

// newPartitionedHarness is newHarness with the events in n partitions.
func newPartitionedHarness(t testing.TB, clk clock.Clock, n int) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, clock: clk, layout: contract.Layout{Partitions: n}}
	h.srv = natsutil.RunTestServer(t)
	var err error
	if h.js, err = jetstream.New(natsutil.Connect(t, h.srv)); err != nil {
		t.Fatal(err)
	}
	if h.events, err = eventstore.OpenPartitioned(ctx, h.js, eventstore.JetStreamConfig{Partitions: n}); err != nil {
		t.Fatal(err)
	}
	// The commands service creates it in a deployment; the notifier only
	// checks it is there.
	if err := notifier.EnsureDLQStream(ctx, h.js, notifier.DLQStreamConfig{}); err != nil {
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
	return h
}

func (h *harness) startCatcher(addr string) *catcher.Catcher {
	h.t.Helper()
	c, err := catcher.Start(catcher.Options{Addr: addr, Refuse: h.refuse.check})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// testConfig retries fast, so failure tests take milliseconds.
func (h *harness) testConfig() notifier.Config {
	sender, err := mail.NewSMTPSender(mail.SMTPConfig{Addr: h.catcher.Addr(), TLS: mail.TLSNone, Timeout: 2 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sender.Close() })
	return notifier.Config{
		JS: h.js, Store: h.store, Keys: h.keys, Sender: sender, Clock: h.clock,
		Logger: slog.New(slog.NewMultiHandler(testLogger(h.t).Handler(), h.logs.Handler())),
		From:   from, PublicURL: "https://ameli.example",
		AckWait: 10 * time.Second, CloseTimeout: 5 * time.Second,
		InProcessRetries: 1, RetryInterval: 10 * time.Millisecond,
		Backoff:     []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		MaxAttempts: 100, PermanentAttempts: 2,
	}
}

// start runs a notifier (on its own subscriber connection) until the test
// ends or stop is called.
func (h *harness) start(cfg notifier.Config) *notifier.Notifier {
	h.t.Helper()
	cfg.SubscriberConn = natsutil.Connect(h.t, h.srv)
	n, err := notifier.New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func (h *harness) seal(value, accountID string) string { return h.keys.Seal(value, accountID) }

// append stores one event of the account, as the commands service does.
func (h *harness) append(accountID string, e events.Event, at time.Time, md events.Metadata) events.Envelope {
	h.t.Helper()
	ctx := context.Background()
	seq, err := h.events.LastSeq(ctx, accountID)
	if err != nil {
		h.t.Fatal(err)
	}
	env := events.Wrap(accountID, e, at, md)
	if _, err := h.events.Append(ctx, accountID, seq, env, env.ID); err != nil {
		h.t.Fatal(err)
	}
	return env
}

// otp appends a security code issued at `at` for the address.
func (h *harness) otp(accountID, to, code string, at time.Time) events.Envelope {
	h.t.Helper()
	return h.append(accountID, events.OTPIssued{
		LoginID: events.NewID(at), CodeHash: "h", CodeSealed: h.seal(code, accountID), ToSealed: h.seal(to, accountID),
		RequestsLastHour: 1, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute),
	}, at, events.Metadata{Channel: "web"})
}

func (h *harness) waitMail(match func(catcher.Message) bool) catcher.Message {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := h.catcher.Wait(ctx, match)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) waitCount(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.catcher.WaitCount(ctx, n); err != nil {
		h.t.Fatal(err)
	}
}

// record waits for the event's record to reach a status.
func (h *harness) record(eventID, status string) (r notifier.Record) {
	h.t.Helper()
	testwait.Until(h.t, 10*time.Second, func() error {
		var err error
		if r, err = h.store.Record(context.Background(), eventID); err != nil || r.Status != status {
			return fmt.Errorf("event %s: record %+v (%v), want status %s", eventID, r, err, status)
		}
		return nil
	})
	return r
}

// drained waits until the consumer has acknowledged everything: every
// mail its messages asked for went out (a message is acked after its mail).
func (h *harness) drained() {
	h.t.Helper()
	// 60 s: after an SMTP outage a few hundred mails are due at once, and
	// the ones naked during it come back on their backoff (up to 30 s);
	// under -race on a loaded 2-core machine 10 s was seen too short
	// (287 still pending). A stuck consumer still fails here.
	testwait.Until(h.t, 60*time.Second, func() error {
		for _, st := range h.layout.Streams() {
			c, err := h.js.Consumer(context.Background(), st, "notifier")
			if err != nil {
				return err
			}
			info, err := c.Info(context.Background())
			if err != nil {
				return err
			}
			if info.NumPending != 0 || info.NumAckPending != 0 {
				return fmt.Errorf("consumer on %s not drained: %d pending, %d unacked", st, info.NumPending, info.NumAckPending)
			}
		}
		return nil
	})
}

// deadLetters waits for n dead letters and returns them.
func (h *harness) deadLetters(n int) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	var st jetstream.Stream
	var info *jetstream.StreamInfo
	testwait.Until(h.t, 10*time.Second, func() error {
		var err error
		if st, err = h.js.Stream(ctx, contract.DLQStream); err != nil {
			return err
		}
		if info, err = st.Info(ctx); err != nil {
			return err
		}
		if info.State.Msgs < uint64(n) {
			return fmt.Errorf("%d dead letters, want %d", info.State.Msgs, n)
		}
		return nil
	})
	out := make([]*jetstream.RawStreamMsg, 0, n)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// publishRaw puts a message on an account's subject bypassing the store,
// as a buggy or foreign producer could.
func (h *harness) publishRaw(accountID string, body []byte, hdr nats.Header) {
	h.t.Helper()
	m := nats.NewMsg("auth.events." + accountID)
	m.Data, m.Header = body, hdr
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatal(err)
	}
}

// settled waits until the notifier has handled every message, then
// checks the catcher got n mails in all: none can come after.
func (h *harness) settled(n int) {
	h.t.Helper()
	h.drained()
	h.mails(n)
}

// mails checks the catcher got n mails. Call it once the notifier has
// shown it handled all it would mail (drained, or a log line): a mail
// counts before its SMTP transaction ends, and a message is acked after.
func (h *harness) mails(n int) {
	h.t.Helper()
	if got := h.catcher.Count(); got != n {
		var subjects []string
		for _, m := range h.catcher.Messages() {
			subjects = append(subjects, fmt.Sprintf("%s %v", m.Subject, m.RcptTo))
		}
		h.t.Fatalf("%d mails, want %d:\n%s", got, n, strings.Join(subjects, "\n"))
	}
}

// outcomes records what a notifier tells Config.Mails, by kind and
// outcome.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *outcomes) record(kind, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[kind+" "+outcome]++
}

func (o *outcomes) count(kind, outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[kind+" "+outcome]
}

func (o *outcomes) all() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.n)
}

// waitOutcome waits until the notifier told n outcomes of this kind.
func (o *outcomes) waitOutcome(t testing.TB, kind, outcome string, n int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("%d %q %s", n, kind, outcome), 10*time.Second, func() bool { return o.count(kind, outcome) >= n })
	if got := o.count(kind, outcome); got != n {
		t.Errorf("%d %q %s, want %d", got, kind, outcome, n)
	}
}

// lostReply tells whether the event's mail on the closed server is the
// SMTP window RFC 1047 describes, which no notifier can close: the server
// kept the mail, then went down before its "250" reached the notifier,
// which therefore sent it again. The evidence: the mail is the last the
// server received, as one worker sends one mail at a time, so only the
// last can have been in flight when it closed. (The failed attempt is not
// in the logs: the in-process retry that follows it fails to connect, and
// only the last error of a delivery is logged.)
func lostReply(closed *catcher.Catcher, eventID string) bool {
	msgs := closed.Messages()
	return len(msgs) > 0 && msgs[len(msgs)-1].ID == strconv.Itoa(closed.Count()) &&
		strings.HasPrefix(msgs[len(msgs)-1].MessageID, eventID+".")
}
