package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/eventstore/storetest"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// openClusterStore deletes the stream and the buckets if they exist and
// opens them again with 3 replicas, through a connection to node `via`,
// then waits until the stream has a leader and every replica is current.
// Clearing is cheaper than a cluster per test (the contract suite has a
// dozen), and leaves each test an empty, isolated store.
func openClusterStore(t *testing.T, c *natsutil.TestCluster, via int) *eventstore.JetStream {
	t.Helper()
	js, err := jetstream.New(c.Connect(t, via))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, contract.EventsStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	for _, b := range []string{eventstore.IndexBucket, eventstore.SnapshotBucket, eventstore.ShadowBucket} {
		if err := js.DeleteKeyValue(ctx, b); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
			t.Fatal(err)
		}
	}
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(contract.EventsStream)
	return store
}

// appliedEverywhere is the store with each append waiting, once acked,
// until every replica holds it. On R3 a read right after an acked append
// may not see it: LastSeq is a direct get, answered by any replica, and a
// Load's ordered consumer may be placed on a follower that has not applied
// it yet (seen with nats-server 2.15.2: Load returning no event, or
// waiting for seconds, right after the append). Writes stay safe, the
// expected-sequence check runs on the leader and refuses an append decided
// on a stale read; the contract's read-your-writes steps hold once the
// replicas have caught up, which is what this wrapper waits for.
type appliedEverywhere struct {
	*eventstore.JetStream
	c *natsutil.TestCluster
}

func (s appliedEverywhere) Append(ctx context.Context, acc string, expected uint64, env events.Envelope, msgID string) (eventstore.AppendResult, error) {
	res, err := s.JetStream.Append(ctx, acc, expected, env, msgID)
	if err == nil {
		s.c.WaitApplied(contract.EventsStream, res.Seq)
	}
	return res, err
}

// The contract holds on a replicated stream too: the expected-sequence
// check runs on the stream leader, whichever node the client is on. Each
// test goes through another node, a follower most of the time.
func TestJetStreamClusterContract(t *testing.T) {
	c := natsutil.StartTestCluster(t, 3)
	via := 0
	storetest.Run(t, func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots) {
		via = (via + 1) % c.Size()
		store := openClusterStore(t, c, via)
		return appliedEverywhere{store, c}, store.Index(), store.Snapshots()
	})
}

// onFollower opens the R3 store through a node that does not lead the
// stream: the leader answers, through the routes, for the whole group.
func onFollower(t *testing.T) (*natsutil.TestCluster, *eventstore.JetStream, jetstream.JetStream) {
	t.Helper()
	c := natsutil.StartTestCluster(t, 3)
	store := openClusterStore(t, c, 0)
	if c.StreamLeader(contract.EventsStream) == 0 {
		if err := c.Server(0).JetStreamStepdownStream("$G", contract.EventsStream); err != nil {
			t.Fatal(err)
		}
		c.WaitStream(contract.EventsStream)
	}
	js, err := jetstream.New(c.Connect(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	return c, store, js
}

func apiCode(err error) jetstream.ErrorCode {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode
	}
	return 0
}

// TestJetStreamClusterConflictCode pins what nats-server 2.15.2 answers
// on an R3 stream, and that both answers map to ErrConflict:
//   - a stale Nats-Expected-Last-Subject-Sequence (other accounts' events
//     interleaved, the client on a follower) gets 10071 with the subject's
//     last sequence, as on R1;
//   - an expected-sequence append on a subject whose previous message is
//     still being applied by the leader gets 10164 (no sequence compared).
func TestJetStreamClusterConflictCode(t *testing.T) {
	_, store, js := onFollower(t)
	ctx := ctxFor(t)
	acc, other := events.NewID(time.Now()), events.NewID(time.Now())
	first, err := store.Append(ctx, acc, 0, failed(acc, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	var otherLast uint64
	for i := 1; i <= 3; i++ {
		res, err := store.Append(ctx, other, otherLast, failed(other, i), "")
		if err != nil {
			t.Fatal(err)
		}
		otherLast = res.Seq
	}
	second, err := store.Append(ctx, acc, first.Seq, failed(acc, 2), "")
	if err != nil {
		t.Fatalf("append on the right sequence with others interleaved: %v", err)
	}
	for _, stale := range []uint64{0, first.Seq} {
		_, err = store.Append(ctx, acc, stale, failed(acc, 3), fmt.Sprintf("stale-%d", stale))
		if !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("stale expected %d: err = %v, want ErrConflict", stale, err)
		}
		if code := apiCode(err); code != jetstream.JSErrCodeStreamWrongLastSequence {
			t.Fatalf("stale expected %d: API error %d behind %v, want 10071", stale, code, err)
		}
		t.Logf("R3, stale expected sequence: %v", err)
	}
	if last, err := store.LastSeq(ctx, acc); err != nil || last != second.Seq {
		t.Fatalf("LastSeq = %d, %v; want %d: a refused append left something", last, err, second.Seq)
	}

	// 10164, straight from the server: a burst of appends to one subject,
	// each expecting the sequence before the burst, sent without waiting.
	// The first is stored; the others are refused, with 10071 once it is
	// applied or 10164 while it is in process.
	codes := map[jetstream.ErrorCode]int{}
	burst := events.NewID(time.Now())
	for round := 0; codes[jetstream.JSErrCodeStreamWrongLastSequenceConstant] == 0; round++ {
		if round == 20 {
			t.Fatalf("no 10164 in %d bursts: %v", round, codes)
		}
		last, err := store.LastSeq(ctx, burst)
		if err != nil {
			t.Fatal(err)
		}
		var futures []jetstream.PubAckFuture
		for i := range 8 {
			data, err := events.Marshal(failed(burst, round*8+i+1))
			if err != nil {
				t.Fatal(err)
			}
			f, err := js.PublishMsgAsync(&nats.Msg{Subject: store.Subject(burst), Data: data, Header: nats.Header{}},
				jetstream.WithExpectLastSequencePerSubject(last))
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		stored := 0
		for _, f := range futures {
			select {
			case <-f.Ok():
				stored++
			case err := <-f.Err():
				codes[apiCode(err)]++
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
		if stored != 1 {
			t.Fatalf("burst %d: %d appends stored with one expected sequence, want 1 (codes %v)", round, stored, codes)
		}
	}
	for code := range codes {
		if code != jetstream.JSErrCodeStreamWrongLastSequence && code != jetstream.JSErrCodeStreamWrongLastSequenceConstant {
			t.Fatalf("refusals of a burst: %v, want only 10071 and 10164", codes)
		}
	}
	t.Logf("R3 burst refusals by API error code: %v", codes)

	// Through Append, parallel appends with one expected sequence: one is
	// stored, every other one is an ErrConflict.
	acc2 := events.NewID(time.Now())
	base, err := store.Append(ctx, acc2, 0, failed(acc2, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wins int
	refused := map[jetstream.ErrorCode]int{}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := store.Append(ctx, acc2, base.Seq, failed(acc2, 2), fmt.Sprintf("p-%d", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventstore.ErrConflict):
				refused[apiCode(err)]++
			default:
				t.Errorf("append %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d parallel appends with one expected sequence stored, want 1 (conflicts %v)", wins, refused)
	}
	t.Logf("R3 parallel Append conflicts by API error code: %v", refused)
}
