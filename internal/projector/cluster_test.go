package projector

// Postgres outage under load on a 3-node cluster (issue 14, item 6): the
// single-server TestPostgresOutage again, with the events stream on three
// replicas, two projector replicas on two different nodes, and the stream
// leader killed and restarted while Postgres is cut.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/projections"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// clusterBus is a bus on a 3-node test cluster, the stream on 3 replicas.
func clusterBus(t *testing.T) (*bus, *natsutil.TestCluster) {
	t.Helper()
	c := natsutil.StartTestCluster(t, 3)
	js := clusterJS(t, c, 0)
	store, err := eventstore.OpenJetStream(context.Background(), js, eventstore.JetStreamConfig{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitStream(DefaultStream)
	return &bus{js: js, store: store}, c
}

// clusterJS is a JetStream handle on its own connection to node i,
// failing over to the others.
func clusterJS(t *testing.T, c *natsutil.TestCluster, i int) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(c.Connect(t, i))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// produceRetrying appends n simulated events like produce, but rides over
// the cluster's faults: an append that fails is sent again, the same event
// with the same expected sequence and message id, until it is stored
// (once: a retry of an append that did land is answered as a duplicate).
func (b *bus) produceRetrying(tb testing.TB, s *sim, accs []*simAccount, n int, stop <-chan struct{}) (retries int) {
	ctx := context.Background()
	for range n {
		a := accs[s.Rng.IntN(len(accs))]
		env := s.Next(a)
		for {
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res, err := b.store.Append(actx, a.ID, a.Seq, env, env.ID)
			cancel()
			if err == nil {
				a.Seq = res.Seq
				break
			}
			if errors.Is(err, eventstore.ErrConflict) {
				tb.Errorf("append of %s: %v (a single writer per account cannot conflict)", env.ID, err)
				return retries
			}
			retries++
			select {
			case <-stop:
				tb.Errorf("stopped with event %s unsure", env.ID)
				return retries
			case <-time.After(20 * time.Millisecond): // retry backoff
			}
		}
	}
	return retries
}

func TestClusterPostgresOutageWithStreamLeaderKilled(t *testing.T) {
	t.Parallel() // a cluster of its own; most of the time is spent waiting for an election
	b, c := clusterBus(t)
	s := newSim(60)
	accs := s.Accounts(30)
	b.produceRetrying(t, s, accs, 300, nil)

	url := newDB(t)
	px := newProxy(t, url)
	var logs testwait.Log
	var commits commitLog
	tune := func(cfg *Config) {
		recordLogs(&logs)(cfg)
		cfg.AfterCommit = commits.add
		cfg.BatchSize = 100
	}
	replicas := []*replica{
		startReplica(t, clusterJS(t, c, 1), px.url, "on-n1", tune),
		startReplica(t, clusterJS(t, c, 2), px.url, "on-n2", tune),
	}
	waitFor(t, "a first batch", 15*time.Second, func() bool { return replicas[0].p.Applied()+replicas[1].p.Applied() > 0 })

	// Events keep coming, from a producer on node 0, for the whole fault.
	var produced atomic.Int64
	var retries atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			retries.Add(int64(b.produceRetrying(t, s, accs, 10, stop)))
			produced.Add(10)
			time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
		}
	})
	stopProducer := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopProducer()
	progress := func(what string) {
		t.Helper()
		target := produced.Load() + 50
		waitFor(t, what, 30*time.Second, func() bool { return produced.Load() >= target })
	}

	px.cut()
	waitFor(t, "a refused reconnection to Postgres", 10*time.Second, func() bool {
		return logs.Count("projector: retrying", "connect to postgres") > 0
	})
	leader := c.StreamLeader(DefaultStream)
	if leader < 0 {
		t.Fatal("no stream leader")
	}
	start := time.Now()
	c.Shutdown(leader)
	progress("appends on the new stream leader")
	t.Logf("stream leader n%d killed with Postgres cut; appends going on after %s (new leader n%d)",
		leader, time.Since(start).Round(time.Millisecond), c.StreamLeader(DefaultStream))
	c.Start(leader)
	c.WaitReady()
	progress("appends with the old leader back")
	px.restore()
	progress("appends with Postgres back")
	stopProducer()

	last := b.lastSeq(t)
	c.WaitApplied(DefaultStream, last)
	waitCaughtUp(t, url, last, 30*time.Second)
	waitFor(t, "one leader among the replicas", 10*time.Second, func() bool {
		return replicas[0].p.Leader() != replicas[1].p.Leader()
	})
	for _, r := range replicas {
		r.stop()
	}
	if cp := checkpointOf(t, url); cp != last {
		t.Errorf("checkpoint %d, last sequence %d", cp, last)
	}

	// No sequence in two committed batches. A batch whose commit reply was
	// lost with its connection may leave a gap in what AfterCommit saw, but
	// never an overlap.
	applied := map[uint64]string{}
	commits.mu.Lock()
	for _, cb := range commits.batches {
		for seq := cb.First; seq <= cb.Last; seq++ {
			if prev, dup := applied[seq]; dup {
				t.Errorf("sequence %d applied by %s and again by %s", seq, prev, cb.Replica)
			}
			applied[seq] = cb.Replica
		}
	}
	nbatches := len(commits.batches)
	commits.mu.Unlock()

	// One login_attempts row per attempt event; each account's version is
	// the sequence of its last event.
	hist := b.history(t)
	attempts := 0
	for _, r := range hist {
		for _, st := range r.stmts {
			if _, ok := st.(projections.InsertAttempt); ok {
				attempts++
			}
		}
	}
	conn := connect(t, url)
	if got := count(t, conn, "SELECT count(*) FROM auth.login_attempts"); got != attempts {
		t.Errorf("%d login_attempts rows, %d attempt events", got, attempts)
	}
	rows, err := conn.Query(context.Background(), "SELECT account_id, version FROM auth.accounts")
	if err != nil {
		t.Fatal(err)
	}
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
	rows.Close()

	// And the tables equal a fresh replay of the stream into a new database.
	fresh := newDB(t)
	fr := startReplica(t, clusterJS(t, c, 0), fresh, "fresh", func(cfg *Config) { cfg.Consumer = "fresh_replay"; cfg.BatchSize = 1000 })
	waitCaughtUp(t, fresh, last, 30*time.Second)
	fr.stop()
	if got, want := dumpTables(t, url), dumpTables(t, fresh); got != want {
		t.Fatalf("differs from a fresh replay after the faults: %s", diff(got, want))
	}
	t.Logf("%d events (%d appends retried), %d attempt rows, %d batches committed, %d sequences seen committed",
		last, retries.Load(), attempts, nbatches, len(applied))
}
