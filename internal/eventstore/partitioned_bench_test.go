package eventstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// BenchmarkPartitionedAppendOnCluster measures appends per second as the
// commands service appends (the expected last subject sequence of the
// account), on the 3-node in-process cluster with 3 replicas, for one
// partition and for four: 64 writers, each with an account of its own
// (authctl bench's append phase), spread over connections to the three
// nodes. Each partition is a stream with its own Raft group and leader, so
// with four the leaders' work is shared by the nodes. docs/scale.md has
// the figures; all three nodes share this process's cores, so the ratio is
// a floor of what three machines would see.
//
//	go test -run '^$' -bench PartitionedAppendOnCluster -benchtime 20000x -count 3 ./internal/eventstore
func BenchmarkPartitionedAppendOnCluster(b *testing.B) {
	c := natsutil.StartTestCluster(b, 3)
	ctx := context.Background()
	for _, n := range []int{1, 4} {
		var stores []*eventstore.Partitioned
		for node := range c.Size() {
			js, err := jetstream.New(c.Connect(b, node))
			if err != nil {
				b.Fatal(err)
			}
			// A prefix per layout: the two layouts' subjects never overlap.
			p, err := eventstore.OpenPartitioned(ctx, js, eventstore.JetStreamConfig{Prefix: fmt.Sprintf("bench%d", n), Replicas: 3, Partitions: n})
			if err != nil {
				b.Fatal(err)
			}
			stores = append(stores, p)
		}
		for _, s := range stores[0].Layout().Streams() {
			c.WaitStream(s)
		}
		// Warm up: the streams' first blocks, the accounts' first appends.
		appendAll(b, stores, 5000)
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			start := time.Now()
			appendAll(b, stores, b.N)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
}

// appendAll appends total events from 64 writers, each on an account of its
// own, through the stores in turn.
func appendAll(b *testing.B, stores []*eventstore.Partitioned, total int) {
	const writers = 64
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(total))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			st := stores[w%len(stores)]
			acc := events.NewID(time.Now())
			var seq uint64
			for left.Add(-1) >= 0 {
				res, err := st.Append(ctx, acc, seq, failed(acc, 1), "")
				if err != nil {
					b.Error(err)
					return
				}
				seq = res.Seq
			}
		})
	}
	wg.Wait()
}
