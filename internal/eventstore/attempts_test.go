package eventstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// followed records the attempts a follower was handed, and what it
// reported.
type followed struct {
	mu      sync.Mutex
	seqs    map[uint64]bool
	reports atomic.Int64
}

func (f *followed) handle(_ context.Context, a eventstore.Attempt) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seqs[a.Seq] = true
	return nil
}

func (f *followed) has(seq uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seqs[seq]
}

// A follower whose durable consumer disappears (an operator's `nats
// consumer rm`, a stream recreated under a running instance) makes it again
// and goes on: otherwise every later attempt expires uncovered while the
// follower loops on fetches that cannot answer.
func TestFollowAttemptsRecreatesADeletedConsumer(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.OpenJetStream(ctxFor(t), js, eventstore.JetStreamConfig{AttemptsTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := &followed{seqs: map[uint64]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		store.FollowAttempts(ctx, "cover_test", f.handle, func(error) { f.reports.Add(1) })
	}()
	t.Cleanup(func() { cancel(); <-done })

	acc := events.NewID(time.Now())
	res, err := store.Append(ctxFor(t), acc, 0, failed(acc, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the first attempt to be followed", 20*time.Second, func() bool { return f.has(res.Seq) })

	if err := js.DeleteConsumer(ctxFor(t), store.StreamName(), "cover_test"); err != nil {
		t.Fatal(err)
	}
	res, err = store.Append(ctxFor(t), acc, res.Seq, failed(acc, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "an attempt appended after the consumer was deleted to be followed", 30*time.Second, func() bool { return f.has(res.Seq) })
	// Each failure is reported once per retry pause, not in a tight loop.
	if n := f.reports.Load(); n > 20 {
		t.Errorf("%d failures reported: the follower spins instead of pausing", n)
	}
}
