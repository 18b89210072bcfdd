package projector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// partBus is a nats-server with the events in four partitions.
type partBus struct {
	bus
	parts *eventstore.Partitioned
}

const testPartitions = 4

func newPartBus(tb testing.TB) *partBus {
	tb.Helper()
	srv := natsutil.RunTestServer(tb)
	js := newJS(tb, srv)
	parts, err := eventstore.OpenPartitioned(context.Background(), js, eventstore.JetStreamConfig{Partitions: testPartitions})
	if err != nil {
		tb.Fatal(err)
	}
	return &partBus{bus: bus{srv: srv, js: js}, parts: parts}
}

// produce appends n simulated events over accs, each account in its own
// partition.
func (b *partBus) produce(tb testing.TB, s *sim, accs []*simAccount, n int) {
	tb.Helper()
	for range n {
		a := accs[s.Rng.IntN(len(accs))]
		env := s.Next(a)
		res, err := b.parts.Append(context.Background(), a.ID, a.Seq, env, "")
		if err != nil {
			tb.Errorf("append: %v", err)
			return
		}
		a.Seq = res.Seq
	}
}

// lastSeqs is each partition stream's last sequence.
func (b *partBus) lastSeqs(tb testing.TB) []uint64 {
	tb.Helper()
	out := make([]uint64, testPartitions)
	for i, j := range b.parts.Partitions() {
		st, err := b.js.Stream(context.Background(), j.StreamName())
		if err != nil {
			tb.Fatal(err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = info.State.LastSeq
	}
	return out
}

// waitPartitionsCaughtUp waits until every partition's checkpoint is its
// stream's last sequence.
func waitPartitionsCaughtUp(tb testing.TB, url string, last []uint64, timeout time.Duration) {
	tb.Helper()
	conn := connect(tb, url)
	waitFor(tb, "every partition's read models at the end of its stream", timeout, func() bool {
		for p, l := range last {
			cp, _, err := newExecutor(Schema).forPartition(p).readCheckpoint(context.Background(), conn)
			if err != nil || cp < l {
				return false
			}
		}
		return true
	})
}

// checkPartitions says whether, partition by partition, the batches in
// commit order applied every sequence from 1 to the partition's last
// exactly once and in order.
func (l *commitLog) checkPartitions(last []uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := make([]uint64, len(last))
	for i := range next {
		next[i] = 1
	}
	for _, c := range l.batches {
		if c.First != next[c.Partition] || c.Last < c.First || int(c.Last-c.First+1) != c.Events {
			return fmt.Errorf("partition %d: batch %s:%d-%d after %d", c.Partition, c.Replica, c.First, c.Last, next[c.Partition]-1)
		}
		next[c.Partition] = c.Last + 1
	}
	for p := range last {
		if next[p] != last[p]+1 {
			return fmt.Errorf("partition %d: batches stop at %d, the stream at %d", p, next[p]-1, last[p])
		}
	}
	return nil
}

// Three replicas share four partitions (each leads one or two), one is
// killed in the middle of a batch while four writers append, and the two
// left take its partitions over: every partition's events are applied
// exactly once and in order (so each account's, all in one partition),
// `version` is each account's last sequence, and the tables equal a
// single replica's replay.
func TestThreeReplicasShareFourPartitionsAndTakeOver(t *testing.T) {
	b := newPartBus(t)
	url := newDB(t)
	var log commitLog
	tune := func(c *Config) { c.AfterCommit = log.add; c.BatchSize = 100; c.Partitions = testPartitions }
	replicas := []*replica{
		startReplica(t, newJS(t, b.srv), url, "r1", tune),
		startReplica(t, newJS(t, b.srv), url, "r2", tune),
		startReplica(t, newJS(t, b.srv), url, "r3", tune),
	}
	leading := func(rs []*replica) (total, least int) {
		least = testPartitions
		for _, r := range rs {
			total += r.p.Leading()
			least = min(least, r.p.Leading())
		}
		return total, least
	}
	// 60 s: the share settles within a few idle waits, which a loaded
	// 2-core machine under -race was seen to stretch past 20 s.
	waitFor(t, "the three replicas to share the four partitions", 60*time.Second, func() bool {
		total, least := leading(replicas)
		return total == testPartitions && least >= 1
	})

	const perProducer = 1500
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSim(uint64(300 + i))
			accs := s.Accounts(30)
			for range perProducer / 100 {
				b.produce(t, s, accs, 100)
				time.Sleep(10 * time.Millisecond) // pacing, not synchronisation: a busy stream during the kill
			}
		}()
	}
	// Kill a replica once it has committed a batch, mid-batch.
	var victim *replica
	waitFor(t, "a replica that applied a batch", 20*time.Second, func() bool {
		for _, r := range replicas {
			if r.p.Applied() > 0 && r.p.Leader() {
				victim = r
				return true
			}
		}
		return false
	})
	victim.kill()
	var left []*replica
	for _, r := range replicas {
		if r != victim {
			left = append(left, r)
		}
	}
	waitFor(t, "the two replicas left to lead the four partitions, two each", 20*time.Second, func() bool {
		total, least := leading(left)
		return total == testPartitions && least == 2
	})
	wg.Wait()
	s := newSim(399)
	b.produce(t, s, s.Accounts(20), 400)
	last := b.lastSeqs(t)
	var sum uint64
	for _, l := range last {
		sum += l
		if l == 0 {
			t.Fatalf("a partition got no event: %v", last)
		}
	}
	if sum != 4*perProducer+400 {
		t.Fatalf("the partitions hold %d events, want %d", sum, 4*perProducer+400)
	}
	waitPartitionsCaughtUp(t, url, last, 60*time.Second)
	// The last batch's AfterCommit runs just after its commit, which the
	// wait above may see first: a poll, and a batch never reported fails.
	testwait.Until(t, 10*time.Second, func() error { return log.checkPartitions(last) })
	who := map[string]map[int]bool{}
	for _, c := range log.batches {
		if who[c.Replica] == nil {
			who[c.Replica] = map[int]bool{}
		}
		who[c.Replica][c.Partition] = true
	}
	if len(who) != 3 {
		t.Errorf("replicas that applied batches: %v, want the three", who)
	}
	t.Logf("%d events over partitions %v; partitions applied per replica: %v", sum, last, who)
	for _, r := range left {
		r.stop()
	}

	got := dumpTables(t, url)
	fresh := newDB(t)
	r := startReplica(t, newJS(t, b.srv), fresh, "fresh", func(c *Config) {
		c.Consumer = "fresh_replay"
		c.BatchSize = 1000
		c.Partitions = testPartitions
	})
	waitPartitionsCaughtUp(t, fresh, last, 60*time.Second)
	r.stop()
	if want := dumpTables(t, fresh); got != want {
		t.Fatalf("three replicas differ from a fresh replay: %s", diff(got, want))
	}
	conn := connect(t, url)
	rows, err := conn.Query(context.Background(), "SELECT account_id, version FROM auth.accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		seq, err := b.parts.LastSeq(context.Background(), id)
		if err != nil || seq != uint64(v) {
			t.Errorf("%s: version %d, last subject sequence %d (%v)", id, v, seq, err)
		}
		n++
	}
	if n == 0 || rows.Err() != nil {
		t.Fatalf("%d accounts, %v", n, errors.Join(rows.Err()))
	}
}

// Two replicas lead two partitions each, within their share of 2 when a
// third joins (ceil(4/3) = 2): the third must still get one, from a
// replica that leads two more than it (before, 2, 2, 0 stayed for good).
func TestALateReplicaGetsAPartition(t *testing.T) {
	b := newPartBus(t)
	url := newDB(t)
	tune := func(c *Config) { c.BatchSize = 100; c.Partitions = testPartitions }
	r1 := startReplica(t, newJS(t, b.srv), url, "r1", tune)
	r2 := startReplica(t, newJS(t, b.srv), url, "r2", tune)
	waitFor(t, "two replicas leading two partitions each", 30*time.Second, func() bool {
		return r1.p.Leading() == 2 && r2.p.Leading() == 2
	})
	r3 := startReplica(t, newJS(t, b.srv), url, "r3", tune)
	waitFor(t, "the third replica leading one", 60*time.Second, func() bool {
		return r3.p.Leading() >= 1 && r1.p.Leading()+r2.p.Leading()+r3.p.Leading() == testPartitions
	})
}

// A rebuild over four partitions replaces damaged read models while a
// replica leads every partition and events keep coming: each partition is
// replayed into its own checkpoint, the swap catches each up with its live
// checkpoint, and the result is exactly a fresh replay's. The rebuild's
// session is no replica: the live one keeps its four partitions.
func TestRebuildOverFourPartitions(t *testing.T) {
	ctx := context.Background()
	b := newPartBus(t)
	s := newSim(400)
	accs := s.Accounts(40)
	b.produce(t, s, accs, 1200)
	url := newDB(t)
	live := startReplica(t, newJS(t, b.srv), url, "live", func(c *Config) { c.Partitions = testPartitions; c.BatchSize = 100 })
	waitPartitionsCaughtUp(t, url, b.lastSeqs(t), 30*time.Second)

	// Damage the live model in every partition.
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, `INSERT INTO auth.login_attempts (partition, event_id, seq, account_id, at, step, outcome)
		VALUES (3, 'tampered', -1, 'x', now(), 'x', 'x'); DELETE FROM auth.login_attempts WHERE seq % 5 = 0;
		UPDATE auth.accounts SET status = 'tampered' WHERE account_id IN (SELECT account_id FROM auth.accounts LIMIT 5)`); err != nil {
		t.Fatal(err)
	}
	// The rebuild's session does not count as a replica.
	rb := connect(t, url)
	if _, err := rb.Exec(ctx, "SET application_name = '"+rebuildApplication+"'"); err != nil {
		t.Fatal(err)
	}
	if b, err := live.p.parts[0].balance(ctx, rb); err != nil || b.replicas != 1 || b.most() != testPartitions {
		t.Fatalf("one replica and a rebuild's session: %+v (%v), want one replica leading all %d", b, err, testPartitions)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			b.produce(t, s, accs, 30)
			time.Sleep(10 * time.Millisecond) // pacing, not synchronisation: appends during the rebuild
		}
	}()
	var reported []uint64
	res, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: newJS(t, b.srv), Partitions: testPartitions, BatchSize: 100,
		Logger: testLogger(), Progress: func(cp, target uint64) { reported = append(reported, cp) }})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	last := b.lastSeqs(t)
	waitPartitionsCaughtUp(t, url, last, 30*time.Second)
	if live.p.Leading() != testPartitions {
		t.Errorf("the live replica leads %d partitions after the rebuild, want %d", live.p.Leading(), testPartitions)
	}
	live.stop()

	if len(res.Checkpoints) != testPartitions || res.Events < 1200 {
		t.Fatalf("rebuild: %+v", res)
	}
	var sum uint64
	for p, cp := range res.Checkpoints {
		if cp == 0 || cp > last[p] {
			t.Errorf("partition %d: rebuilt to %d, its stream ends at %d", p, cp, last[p])
		}
		sum += cp
	}
	if res.Checkpoint != sum || len(reported) == 0 || reported[len(reported)-1] != sum {
		t.Errorf("checkpoint %d, progress %v, want the sum %d", res.Checkpoint, reported, sum)
	}
	got := dumpTables(t, url)
	if strings.Contains(got, "tampered") {
		t.Fatal("the damage survived the rebuild")
	}
	fresh := newDB(t)
	r := startReplica(t, newJS(t, b.srv), fresh, "fresh", func(c *Config) {
		c.Consumer = "fresh_replay"
		c.BatchSize = 1000
		c.Partitions = testPartitions
	})
	waitPartitionsCaughtUp(t, fresh, last, 60*time.Second)
	r.stop()
	if want := dumpTables(t, fresh); got != want {
		t.Fatalf("rebuilt read models differ from a fresh replay: %s", diff(got, want))
	}
	for _, schema := range []string{shadowSchema, retiredSchema} {
		if count(t, conn, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) != 0 {
			t.Errorf("schema %s left behind", schema)
		}
	}
}

// A rebuild told another number of partitions than the streams' refuses
// before it drops anything.
func TestRebuildRefusesAnotherLayout(t *testing.T) {
	ctx := context.Background()
	b := newPartBus(t)
	s := newSim(410)
	b.produce(t, s, s.Accounts(5), 50)
	url := newDB(t)
	r := startReplica(t, newJS(t, b.srv), url, "live", func(c *Config) { c.Partitions = testPartitions })
	waitPartitionsCaughtUp(t, url, b.lastSeqs(t), 30*time.Second)
	r.stop()
	before := dumpTables(t, url)
	_, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: b.js, Partitions: 2})
	if !errors.Is(err, eventstore.ErrLayout) {
		t.Fatalf("rebuild with 2 partitions over 4: %v, want %v", err, eventstore.ErrLayout)
	}
	if _, err := Rebuild(ctx, RebuildConfig{DatabaseURL: url, JS: b.js}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("rebuild with one partition (AUTH_EVENTS) over 4: %v, want stream not found", err)
	}
	if after := dumpTables(t, url); after != before {
		t.Fatalf("a refused rebuild changed the read models: %s", diff(after, before))
	}
}

// Status and lag over four partitions: each partition's checkpoint, stream
// end and lag, their sums, and the age of the oldest event not applied in
// any of them, which decides readiness.
func TestStatusAndLagOverFourPartitions(t *testing.T) {
	ctx := context.Background()
	b := newPartBus(t)
	s := newSim(420)
	accs := s.Accounts(20)
	b.produce(t, s, accs, 400)
	url := newDB(t)
	r := startReplica(t, newJS(t, b.srv), url, "status", func(c *Config) { c.Partitions = testPartitions })
	before := b.lastSeqs(t)
	waitPartitionsCaughtUp(t, url, before, 30*time.Second)
	cfg := StatusConfig{DatabaseURL: url, JS: b.js, Partitions: testPartitions}
	st, err := ReadStatus(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Checkpoint != 400 || st.StreamLastSeq != 400 || st.LagEvents != 0 || st.LagSeconds != 0 || len(st.Partitions) != testPartitions ||
		st.Leader != "authsvc-projector status" || st.SchemaVersion != st.LatestMigration || st.LastEventAt.IsZero() {
		t.Fatalf("caught up: %+v", st)
	}
	for p, ps := range st.Partitions {
		if ps.Partition != p || ps.Stream != fmt.Sprintf("AUTH_EVENTS_%d", p) || ps.Checkpoint != before[p] || ps.StreamLastSeq != before[p] ||
			ps.LagEvents != 0 || !strings.HasPrefix(ps.Leader, "authsvc-projector status (pid ") {
			t.Errorf("partition %d caught up: %+v", p, ps)
		}
	}
	r.stop()

	b.produce(t, s, accs, 60)
	after := b.lastSeqs(t)
	// The oldest event not applied, over every partition that has one.
	var oldest time.Time
	for p := range after {
		if after[p] == before[p] {
			continue
		}
		stream, err := b.js.Stream(ctx, fmt.Sprintf("AUTH_EVENTS_%d", p))
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(ctx, before[p]+1)
		if err != nil {
			t.Fatal(err)
		}
		if oldest.IsZero() || m.Time.Before(oldest) {
			oldest = m.Time
		}
	}
	cfg.Clock = clock.NewFixed(oldest.Add(90 * time.Second))
	st, err = ReadStatus(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.LagEvents != 60 || st.LagSeconds != 90 || st.Leader != "" || st.Checkpoint != 400 || st.StreamLastSeq != 460 {
		t.Fatalf("behind: %+v", st)
	}
	for p, ps := range st.Partitions {
		if ps.LagEvents != after[p]-before[p] || ps.Leader != "" || ps.LagSeconds > 90 {
			t.Errorf("partition %d behind by %d: %+v", p, after[p]-before[p], ps)
		}
	}
	lag, err := ReadLag(ctx, connect(t, url), cfg)
	if err != nil || lag.Events != 60 || lag.Seconds != 90 || lag.Checkpoint != 400 {
		t.Fatalf("lag %+v, %v", lag, err)
	}

	// A partition no replica has led yet counts from 0.
	if _, err := connect(t, url).Exec(ctx, "DELETE FROM auth.projector_checkpoint WHERE partition = 2"); err != nil {
		t.Fatal(err)
	}
	if lag, err = ReadLag(ctx, connect(t, url), cfg); err != nil || lag.Events != 60+before[2] || lag.Checkpoint != 400-before[2] {
		t.Fatalf("without partition 2's checkpoint: %+v, %v", lag, err)
	}
	// Told one partition, the status looks for AUTH_EVENTS.
	if _, err := ReadStatus(ctx, StatusConfig{DatabaseURL: url, JS: b.js}); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("status of one partition over four: %v", err)
	}
}
