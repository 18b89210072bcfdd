package projector

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// bus is an embedded nats-server with the AUTH_EVENTS stream.
type bus struct {
	srv   *server.Server
	js    jetstream.JetStream
	store *eventstore.JetStream
}

func newBus(tb testing.TB) *bus {
	tb.Helper()
	srv := natsutil.RunTestServer(tb)
	js := newJS(tb, srv)
	store, err := eventstore.OpenJetStream(context.Background(), js, eventstore.JetStreamConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return &bus{srv: srv, js: js, store: store}
}

// newJS is a JetStream handle on its own connection, as each replica has.
func newJS(tb testing.TB, srv *server.Server) jetstream.JetStream {
	tb.Helper()
	js, err := jetstream.New(natsutil.Connect(tb, srv))
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

func (b *bus) lastSeq(tb testing.TB) uint64 {
	tb.Helper()
	st, err := b.js.Stream(context.Background(), DefaultStream)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.LastSeq
}

// produce appends n simulated events over the accounts, with the
// commands' optimistic concurrency.
func (b *bus) produce(tb testing.TB, s *sim, accs []*simAccount, n int) {
	tb.Helper()
	ctx := context.Background()
	for range n {
		a := accs[s.Rng.IntN(len(accs))]
		env := s.Next(a)
		res, err := b.store.Append(ctx, a.ID, a.Seq, env, "")
		if err != nil {
			tb.Errorf("append: %v", err)
			return
		}
		a.Seq = res.Seq
	}
}

// replica is a projector replica running in this process.
type replica struct {
	p       *Projector
	cancel  context.CancelFunc
	done    chan error
	crash   atomic.Bool   // makes the batch in flight fail before its commit
	crashed chan struct{} // closed when it did
	once    sync.Once
}

func testLogger() *slog.Logger {
	if testing.Verbose() && os.Getenv("PROJECTOR_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startReplica(tb testing.TB, js jetstream.JetStream, url, name string, tune func(*Config)) *replica {
	tb.Helper()
	r := &replica{done: make(chan error, 1), crashed: make(chan struct{})}
	var crashOnce sync.Once
	cfg := Config{DatabaseURL: url, JS: js, Name: name, BatchSize: 200, IdleWait: 200 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Logger: testLogger(),
		beforeCommit: func() error {
			if r.crash.Load() {
				crashOnce.Do(func() { close(r.crashed) })
				return errFault
			}
			return nil
		}}
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r.p = p
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- p.Run(ctx) }()
	tb.Cleanup(r.stop)
	return r
}

// stop is a clean stop: the batch in flight is committed and acked.
func (r *replica) stop() {
	r.once.Do(func() {
		r.cancel()
		<-r.done
	})
}

// kill is a crash in the middle of a batch: the next batch transaction is
// aborted before its commit, nothing is acked, the session ends, and the
// replica stops. If no batch comes within a second, it just stops.
func (r *replica) kill() {
	r.crash.Store(true)
	select {
	case <-r.crashed:
	case <-time.After(time.Second):
	}
	r.stop()
}

// checkpointOf reads the checkpoint in the database.
func checkpointOf(tb testing.TB, url string) uint64 {
	tb.Helper()
	conn := connect(tb, url)
	cp, _, err := newExecutor(Schema).readCheckpoint(context.Background(), conn)
	if err != nil {
		tb.Fatal(err)
	}
	return cp
}

func waitCaughtUp(tb testing.TB, url string, target uint64, timeout time.Duration) {
	tb.Helper()
	conn := connect(tb, url)
	x := newExecutor(Schema)
	waitFor(tb, "the read models to reach the end of the stream", timeout, func() bool {
		cp, _, err := x.readCheckpoint(context.Background(), conn)
		return err == nil && cp >= target
	})
}

// freshReplay projects the whole stream into a new database with one
// replica, and returns its dump: what every other way must end equal to.
// It equals the one-event-per-transaction ground truth (oneByOne), which
// TestProjectorFollowsTheStream and TestBatchesEqualOneByOne check; the
// tests with thousands of events compare with it because oneByOne takes
// 40 s for 6,000 events under -race.
func (b *bus) freshReplay(tb testing.TB) string {
	tb.Helper()
	url := newDB(tb)
	r := startReplica(tb, newJS(tb, b.srv), url, "fresh", func(c *Config) { c.Consumer = "fresh_replay"; c.BatchSize = 1000 })
	waitCaughtUp(tb, url, b.lastSeq(tb), 60*time.Second)
	r.stop()
	return dumpTables(tb, url)
}

// commitLog records the batches every replica committed.
type commitLog struct {
	mu      sync.Mutex
	batches []Committed
}

func (l *commitLog) add(c Committed) {
	l.mu.Lock()
	l.batches = append(l.batches, c)
	l.mu.Unlock()
}

// check says whether the batches, in commit order, applied every sequence
// from 1 to last exactly once and in order.
func (l *commitLog) check(last uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := uint64(1)
	for _, c := range l.batches {
		if c.First != next || c.Last < c.First || int(c.Last-c.First+1) != c.Events {
			return errors.New("batches do not follow each other: " + fmtBatches(l.batches))
		}
		next = c.Last + 1
	}
	if next != last+1 {
		return errors.New("batches stop before the end of the stream")
	}
	return nil
}

func fmtBatches(bs []Committed) string {
	s := ""
	for _, b := range bs {
		s += b.Replica + ":" + itoa(b.First) + "-" + itoa(b.Last) + " "
	}
	return s
}

func itoa(u uint64) string {
	const digits = "0123456789"
	if u == 0 {
		return "0"
	}
	var b []byte
	for u > 0 {
		b = append([]byte{digits[u%10]}, b...)
		u /= 10
	}
	return string(b)
}
