package projector

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// replayBatches folds the whole stream with the given limits, as a
// replica does, applies each batch to a fresh database, and returns the
// batches' sizes (events, bytes, attempts payload) and the batcher's
// counters. The tables must equal a fresh replay.
func replayBatches(t *testing.T, b *bus, limits batchLimits) (sizes [][3]int, stats batchStats) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	last := b.lastSeq(t)
	cons, err := b.js.OrderedConsumer(ctx, DefaultStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := newDecoder(ctx, b.js, cons, 200*time.Millisecond, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	url := newDB(t)
	conn := connect(t, url)
	x := newExecutor(Schema)
	setup(t, x, conn)
	bt := newBatcher(x, src, noHoles, testLogger(), limits, 200*time.Millisecond, 0)
	done := make(chan struct{})
	go func() { bt.run(ctx); close(done) }()
	var cp uint64
	for cp < last {
		bat, ok := bt.take()
		if !ok {
			t.Fatalf("the batcher stopped at %d of %d", cp, last)
		}
		if bat.err != nil || bat.gap {
			t.Fatalf("batch after %d: err %v, gap %v", cp, bat.err, bat.gap)
		}
		if bat.events == 0 {
			bt.recycle(bat)
			continue
		}
		if bat.base != cp || bat.first != cp+1 || bat.last != cp+uint64(bat.events) {
			t.Fatalf("batch base %d, events %d-%d (%d) after checkpoint %d: not the next events", bat.base, bat.first, bat.last, bat.events, cp)
		}
		sizes = append(sizes, [3]int{bat.events, bat.bytes, len(bat.attempts.b)})
		res, err := x.applyFolded(ctx, conn, bat, true, nil)
		if err != nil || res.stale || res.applied != bat.events {
			t.Fatalf("apply batch %d-%d: %+v, %v", bat.first, bat.last, res, err)
		}
		cp = res.checkpoint
		bt.recycle(bat)
	}
	cancel()
	bt.drain()
	<-done
	if got, want := dumpTables(t, url), b.freshReplay(t); got != want {
		t.Fatalf("the streamed batches differ from a fresh replay: %s", diff(got, want))
	}
	return sizes, bt.stats
}

// A batch never holds more events or bytes than its limits, whichever
// comes first: the batcher's counters (the most one batch held) and each
// batch handed over say so, and the batches, applied, equal a fresh
// replay. The bytes are an estimate of the batch's memory, of which the
// login attempts' COPY payload is the exact part.
func TestBatchHoldsAtMostItsLimits(t *testing.T) {
	b := newBus(t)
	s := newSim(70)
	b.produce(t, s, s.Accounts(30), 900)

	for _, tc := range []struct {
		name   string
		limits batchLimits
	}{
		{"events", batchLimits{events: 70, bytes: 1 << 30}},
		{"bytes", batchLimits{events: 1 << 30, bytes: 6000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sizes, stats := replayBatches(t, b, tc.limits)
			if stats.maxEvents > tc.limits.events || stats.maxBytes > tc.limits.bytes {
				t.Fatalf("batcher counters: at most %d events and %d bytes in a batch, limits %d and %d",
					stats.maxEvents, stats.maxBytes, tc.limits.events, tc.limits.bytes)
			}
			total := 0
			for _, sz := range sizes {
				events, bytes, attempts := sz[0], sz[1], sz[2]
				total += events
				if events > tc.limits.events || bytes > tc.limits.bytes {
					t.Errorf("a batch of %d events holds %d bytes: limits %d events, %d bytes", events, bytes, tc.limits.events, tc.limits.bytes)
				}
				if attempts > bytes {
					t.Errorf("a batch counts %d bytes but its attempts' payload alone is %d", bytes, attempts)
				}
			}
			// The limit is what cut the batches: several, and at least one
			// as large as the limit allows.
			if len(sizes) < 3 || total != 900 {
				t.Fatalf("%d batches, %d events: %v", len(sizes), total, sizes)
			}
			switch tc.name {
			case "events":
				if stats.maxEvents != tc.limits.events {
					t.Errorf("largest batch %d events, want the limit %d (cut by events): %v", stats.maxEvents, tc.limits.events, sizes)
				}
			case "bytes":
				if stats.maxBytes < tc.limits.bytes*3/4 {
					t.Errorf("largest batch %d bytes, limit %d: not cut by bytes: %v", stats.maxBytes, tc.limits.bytes, sizes)
				}
			}
		})
	}
}

// A replica stopped while one batch is in its transaction and the next is
// being folded (the first rolled back, the second never sent), with
// batches cut by bytes so that an event is carried from one batch to the
// next: the next replica applies every event exactly once, in order.
func TestReplayInterruptedMidBatchResumesExactlyOnce(t *testing.T) {
	b := newBus(t)
	s := newSim(71)
	accs := s.Accounts(25)
	b.produce(t, s, accs, 1200)
	url := newDB(t)
	var log commitLog
	var batches atomic.Int32
	stopped, started := make(chan struct{}), make(chan struct{})
	var r *replica
	r = startReplica(t, b.js, url, "first", func(c *Config) {
		c.AfterCommit = log.add
		c.BatchSize, c.BatchBytes = 1000, 8000
		c.beforeCommit = func() error {
			if batches.Add(1) == 4 {
				// The fourth batch: stop the replica from inside its
				// transaction, then fail it.
				<-started
				r.cancel()
				close(stopped)
				return fmt.Errorf("%w: stopped mid-batch", errFault)
			}
			return nil
		}
	})
	close(started)
	<-stopped
	r.stop()
	cp := checkpointOf(t, url)
	if cp == 0 || cp >= 1200 {
		t.Fatalf("checkpoint %d after a stop in the fourth batch", cp)
	}
	b.produce(t, s, accs, 300)
	r2 := startReplica(t, b.js, url, "second", func(c *Config) {
		c.AfterCommit = log.add
		c.BatchSize, c.BatchBytes = 1000, 8000
	})
	waitCaughtUp(t, url, 1500, 30*time.Second)
	r2.stop()
	if err := log.check(1500); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpTables(t, url), b.freshReplay(t); got != want {
		t.Fatalf("differs from a fresh replay: %s", diff(got, want))
	}
}
