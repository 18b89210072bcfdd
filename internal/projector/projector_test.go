package projector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// history reads the whole stream back, in order.
func (b *bus) history(tb testing.TB) []record {
	tb.Helper()
	ctx := context.Background()
	// On a cluster whose stream leader was just restarted the JetStream API
	// may answer "no responders" for a moment: retried, not a failure.
	var cons jetstream.Consumer
	testwait.Until(tb, 30*time.Second, func() (err error) {
		cons, err = b.js.OrderedConsumer(ctx, DefaultStream, jetstream.OrderedConsumerConfig{})
		return err
	})
	last := b.lastSeq(tb)
	var out []record
	for uint64(len(out)) < last {
		msgs, err := drain(cons.Fetch(1000, jetstream.FetchMaxWait(time.Second)))
		if err != nil {
			tb.Fatal(err)
		}
		recs, err := decodeMsgs(msgs, slog.New(slog.DiscardHandler))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, recs...)
	}
	return out
}

// oneByOne applies the stream one event per transaction, with no NATS
// consumer in the way: the ground truth.
func (b *bus) oneByOne(tb testing.TB) string {
	tb.Helper()
	url := newDB(tb)
	conn := connect(tb, url)
	// The reference is about content, not durability: without a flush per
	// event, 6,000 one-event transactions take a few seconds, not 40.
	if _, err := conn.Exec(context.Background(), "SET synchronous_commit = off"); err != nil {
		tb.Fatal(err)
	}
	x := newExecutor(Schema)
	setup(tb, x, conn)
	for _, r := range b.history(tb) {
		if _, err := x.applyBatch(context.Background(), conn, []record{r}, noHoles, true, nil); err != nil {
			tb.Fatal(err)
		}
	}
	return dumpTables(tb, url)
}

func TestProjectorFollowsTheStream(t *testing.T) {
	b := newBus(t)
	s := newSim(10)
	accs := s.Accounts(40)
	b.produce(t, s, accs, 600)
	url := newDB(t)
	r := startReplica(t, b.js, url, "solo", nil)
	waitCaughtUp(t, url, 600, 20*time.Second)
	b.produce(t, s, accs, 400) // while it runs
	waitCaughtUp(t, url, 1000, 20*time.Second)
	if !r.p.Leader() || r.p.Applied() != 1000 {
		t.Errorf("leader %v, applied %d", r.p.Leader(), r.p.Applied())
	}
	if _, err := b.js.Consumer(context.Background(), DefaultStream, DefaultConsumer); err != nil {
		t.Errorf("durable consumer %q: %v", DefaultConsumer, err)
	}
	r.stop()
	if got, want := dumpTables(t, url), b.oneByOne(t); got != want {
		t.Fatalf("projected tables differ from the stream applied one event at a time: %s", diff(got, want))
	}
}

// Three replicas on one stream and one database, the stream busy, the
// leader crashing in the middle of its batch now and then: every sequence
// is applied once, in order, and the tables end equal to a fresh replay.
func TestThreeReplicasOnABusyStream(t *testing.T) {
	b := newBus(t)
	url := newDB(t)
	var log commitLog
	var nextName atomic.Int32
	start := func() *replica {
		name := "r" + itoa(uint64(nextName.Add(1)))
		return startReplica(t, newJS(t, b.srv), url, name, func(c *Config) { c.AfterCommit = log.add; c.BatchSize = 100 })
	}
	var mu sync.Mutex
	replicas := []*replica{start(), start(), start()}

	// Producers: four writers, each on its own accounts, as commands
	// instances would be.
	const perProducer = 2000
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSim(uint64(100 + i))
			accs := s.Accounts(30)
			for range perProducer / 100 {
				b.produce(t, s, accs, 100)
				// Pacing, not synchronisation: the stream stays busy
				// for the whole test, while the leaders crash.
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	// Meanwhile, crash whichever replica leads, three times, as soon as it
	// has committed a batch of its own, and start a new one each time so
	// three keep running.
	kills := 0
	for kills < 3 {
		var leader int
		waitFor(t, "a leader that applied a batch", 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			for i, r := range replicas {
				if r.p.Leader() && r.p.Applied() > 0 {
					leader = i
					return true
				}
			}
			return false
		})
		mu.Lock()
		replicas[leader].kill()
		replicas[leader] = start()
		kills++
		mu.Unlock()
	}
	wg.Wait()
	// More events after the last crash: the replicas started as
	// replacements must take over and apply them.
	s := newSim(199)
	b.produce(t, s, s.Accounts(20), 500)
	last := b.lastSeq(t)
	if last != 4*perProducer+500 {
		t.Fatalf("stream has %d events, want %d", last, 4*perProducer+500)
	}
	waitCaughtUp(t, url, last, 30*time.Second)
	waitFor(t, "one leader among the running replicas", 5*time.Second, func() bool {
		leaders := 0
		for _, r := range replicas {
			if r.p.Leader() {
				leaders++
			}
		}
		return leaders == 1
	})
	if err := log.check(last); err != nil {
		t.Fatal(err)
	}
	who := map[string]bool{}
	for _, c := range log.batches {
		who[c.Replica] = true
	}
	if len(who) < 3 {
		t.Errorf("only %v applied batches: takeovers were not exercised", who)
	}
	t.Logf("%d events in %d batches by %d replicas, %d leaders crashed mid-batch", last, len(log.batches), len(who), kills)
	for _, r := range replicas {
		r.stop()
	}
	got := dumpTables(t, url)
	if want := b.freshReplay(t); got != want {
		t.Fatalf("three replicas differ from a fresh replay: %s", diff(got, want))
	}
	// version = stream sequence of the account's last event.
	conn := connect(t, url)
	rows, err := conn.Query(context.Background(), "SELECT account_id, version FROM auth.accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		seq, err := b.store.LastSeq(context.Background(), id)
		if err != nil || seq != uint64(v) {
			t.Errorf("%s: version %d, last subject sequence %d (%v)", id, v, seq, err)
		}
	}
}

// A crash inside a batch transaction: it is rolled back, not acked, and
// the next leader applies it once.
func TestCrashMidBatchLosesAndDoublesNothing(t *testing.T) {
	b := newBus(t)
	s := newSim(20)
	accs := s.Accounts(20)
	b.produce(t, s, accs, 1000)
	url := newDB(t)
	var log commitLog
	var batches atomic.Int32
	r := startReplica(t, b.js, url, "first", func(c *Config) {
		c.AfterCommit = log.add
		inner := c.beforeCommit
		c.beforeCommit = func() error {
			if batches.Add(1) == 3 {
				return errFault // the third batch dies before its commit
			}
			return inner()
		}
	})
	waitCaughtUp(t, url, 1000, 20*time.Second)
	r.kill()
	b.produce(t, s, accs, 500)
	r2 := startReplica(t, b.js, url, "second", func(c *Config) { c.AfterCommit = log.add })
	waitCaughtUp(t, url, 1500, 20*time.Second)
	r2.stop()
	if err := log.check(1500); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpTables(t, url), b.freshReplay(t); got != want {
		t.Fatalf("differs from a fresh replay: %s", diff(got, want))
	}
}

// SIGTERM: the batch in flight is committed and acked, then Run returns.
func TestStopFinishesTheBatchInFlight(t *testing.T) {
	b := newBus(t)
	s := newSim(30)
	b.produce(t, s, s.Accounts(10), 300)
	url := newDB(t)
	inBatch, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r := startReplica(t, b.js, url, "stopping", func(c *Config) {
		c.BatchSize = 100
		c.beforeCommit = func() error {
			// The first batch holds its transaction open until the stop
			// has been asked.
			once.Do(func() { close(inBatch); <-release })
			return nil
		}
	})
	<-inBatch
	r.cancel() // the stop, asked while the first batch is inside its transaction
	close(release)
	r.stop()
	cp := checkpointOf(t, url)
	if cp != 100 {
		t.Fatalf("checkpoint %d after a stop during the first batch, want 100", cp)
	}
	cons, err := b.js.Consumer(context.Background(), DefaultStream, DefaultConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != cp {
		t.Errorf("ack floor %d, checkpoint %d: the committed batch was not acked", info.AckFloor.Stream, cp)
	}
}

// Postgres goes away (connections cut, new ones refused) and comes back:
// the projector retries with backoff and catches up.
func TestPostgresOutage(t *testing.T) {
	b := newBus(t)
	s := newSim(40)
	accs := s.Accounts(30)
	b.produce(t, s, accs, 800)
	url := newDB(t)
	px := newProxy(t, url)
	var logs testwait.Log
	r := startReplica(t, b.js, px.url, "behind-proxy", recordLogs(&logs))
	waitFor(t, "a first batch", 10*time.Second, func() bool { return r.p.Applied() > 0 })
	px.cut()
	b.produce(t, s, accs, 400)
	// Its session fails at the next batch; it must not lead again before
	// it has one: wait until a new session was tried and refused.
	waitFor(t, "a failed reconnection", 10*time.Second, func() bool {
		return logs.Count("projector: retrying", "connect to postgres") > 0
	})
	if r.p.Leader() {
		t.Error("still leading without a database session")
	}
	px.restore()
	waitCaughtUp(t, url, 1200, 20*time.Second)
	r.stop()
	if got, want := dumpTables(t, url), b.freshReplay(t); got != want {
		t.Fatalf("differs from a fresh replay after the outage: %s", diff(got, want))
	}
}

// proxy stands between a projector and Postgres and can cut it off.
type proxy struct {
	url    string
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func newProxy(t *testing.T, dbURL string) *proxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &proxy{target: u.Host}
	u.Host = ln.Addr().String()
	p.url = u.String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func TestNewNeedsADatabase(t *testing.T) {
	if _, err := New(Config{JS: nil}); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("no database: %v", err)
	}
}

// A message the commands service did not append (a JetStream API answer a
// reader had the server store on an account's subject) changes nothing
// and does not stop the projection: the checkpoint passes it
// (events.ErrNotAppended).
func TestSkipsAMessageNotAppendedByTheCommandsService(t *testing.T) {
	b := newBus(t)
	s := newSim(81)
	accs := s.Accounts(5)
	b.produce(t, s, accs, 50)
	if _, err := b.js.Publish(context.Background(), "auth.events.01FORGED", []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response"}`)); err != nil {
		t.Fatal(err)
	}
	b.produce(t, s, accs, 50)
	url := newDB(t)
	var logs testwait.Log
	r := startReplica(t, b.js, url, "r1", recordLogs(&logs))
	waitFor(t, "the projector past the message", 10*time.Second, func() bool { return checkpointOf(t, url) == 101 })
	if logs.Count("projector: skipped a message the commands service did not append", "seq=51") != 1 {
		t.Errorf("the skip is not logged once")
	}
	r.stop()
}

// An event this build cannot read stops the projection right before it
// (nothing after it is applied out of order); the status shows the lag.
func TestStopsAtAnEventItCannotRead(t *testing.T) {
	b := newBus(t)
	s := newSim(80)
	accs := s.Accounts(5)
	b.produce(t, s, accs, 50)
	// As a newer commands service would append it: with its id header.
	future := nats.NewMsg("auth.events.01FUTURE")
	future.Header.Set(eventstore.HeaderEventID, "x")
	future.Data = []byte(`{"id":"x","type":"account.from_the_future","version":1,"account_id":"01FUTURE","data":{}}`)
	if _, err := b.js.PublishMsg(context.Background(), future); err != nil {
		t.Fatal(err)
	}
	b.produce(t, s, accs, 50)
	url := newDB(t)
	var logs testwait.Log
	r := startReplica(t, b.js, url, "old-build", recordLogs(&logs))
	// Until it has read the event and stopped there (or went past it).
	conn := connect(t, url)
	x := newExecutor(Schema)
	waitFor(t, "the projector to stop at the event it cannot read", 10*time.Second, func() bool {
		cp, _, err := x.readCheckpoint(context.Background(), conn)
		return logs.Count("projector: stopped at an event it cannot read", "sequence 51") > 0 || err == nil && cp > 50
	})
	if cp := checkpointOf(t, url); cp != 50 {
		t.Fatalf("checkpoint %d, want 50: the projection went past an event it cannot read", cp)
	}
	st, err := ReadStatus(context.Background(), StatusConfig{DatabaseURL: url, JS: b.js})
	if err != nil || st.LagEvents != 51 {
		t.Fatalf("status %+v %v", st, err)
	}
	r.stop()
}
