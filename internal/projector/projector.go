// Package projector keeps the Postgres read models of the AUTH_EVENTS stream
// (schema auth, see docs/projector.md) with exactly-once effect.
//
//   - One transaction per fetched batch applies the rows and moves the
//     checkpoint (auth.projector_checkpoint); messages at or below the
//     checkpoint are skipped; the ack goes after the commit. A crash
//     anywhere loses nothing and doubles nothing.
//   - Several replicas may run: the one holding a Postgres advisory lock
//     (on the very session that writes) is the leader and the only one
//     fetching; the others wait on the lock and take over when its session
//     dies. Each account's events are applied in stream order because the
//     whole stream is applied in order: the checkpoint only moves from c to
//     the next event that exists.
//   - A rebuild replays the stream into a shadow schema and swaps it in, in
//     one transaction (Rebuild).
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// Defaults of Config.
const (
	DefaultStream    = contract.EventsStream
	DefaultPrefix    = contract.DefaultPrefix
	DefaultConsumer  = "projector"
	DefaultBatchSize = 100_000

	// ProjectorGCPercent is the GOGC cmd/projector runs with unless GOGC
	// is set: a batch processor whose heap is a few batches trades a little
	// memory for a third less garbage collection work.
	ProjectorGCPercent = 400

	// ProjectorMemoryLimit is the soft memory limit (GOMEMLIMIT) of
	// cmd/projector unless GOMEMLIMIT is set: GOGC=400 lets the heap grow to
	// five times what is live, and the limit makes the collector run sooner
	// when that would pass it. What is live is two batches at most
	// (2 x DefaultBatchBytes) and a few MiB of buffers, well under it, so
	// the collector does not run more than GOGC=100 would; the process stays
	// under 512 MB whatever the length of the stream (docs/projector.md#memory).
	ProjectorMemoryLimit = 320 << 20
)

// Config configures a projector replica.
type Config struct {
	DatabaseURL string
	JS          jetstream.JetStream
	Stream      string // default AUTH_EVENTS; only with one partition (the layout names the streams of several)
	Prefix      string // subject prefix, default auth: the consumer filters <prefix>.events.>
	// Partitions is AUTH_PARTITIONS (0 or 1: one, the stream AUTH_EVENTS):
	// the replica leads the partitions whose advisory lock it holds, one
	// Postgres session and one durable consumer each (docs/scale.md).
	Partitions int
	Consumer   string // durable consumer name, default projector
	BatchSize  int    // events per transaction, at most; default DefaultBatchSize
	// BatchBytes bounds the memory a batch holds (an estimate: its login
	// attempts' COPY bytes and its accounts' and device statements' share);
	// default DefaultBatchBytes. A batch is cut at whichever limit comes
	// first (docs/projector.md#memory).
	BatchBytes int
	// IdleWait is how long a fetch waits for the next event when the
	// stream is quiet (it bounds the delay of a stop, too). Default 1s.
	IdleWait time.Duration
	// MinBackoff and MaxBackoff bound the waits between retries after a
	// failure (Postgres or NATS down). Defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Name tells replicas apart in logs and in pg_stat_activity.
	Name   string
	Logger *slog.Logger
	// AfterCommit, if set, is called after each committed batch, before
	// the ack (metrics, tests).
	AfterCommit func(Committed)

	// beforeCommit is a test hook run inside each batch transaction.
	beforeCommit func() error
}

// Committed describes one committed batch.
type Committed struct {
	Replica     string
	Partition   int    // the partition of the events (0 with one)
	First, Last uint64 // stream sequences applied
	Events      int
	Took        time.Duration // the transaction, from begin to commit
	Timings     Timings       // Took by phase
}

func (c *Config) setDefaults() error {
	if c.DatabaseURL == "" {
		return ErrNoDatabase
	}
	if c.JS == nil {
		return errors.New("projector: no JetStream handle")
	}
	if c.Partitions < 0 || c.Partitions > contract.MaxPartitions {
		return fmt.Errorf("projector: %d partitions, want 1 to %d", c.Partitions, contract.MaxPartitions)
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.IdleWait <= 0 {
		c.IdleWait = time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(10*time.Second, c.MinBackoff)
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Projector is one replica.
type Projector struct {
	cfg   Config
	pgcfg *pgx.ConnConfig
	exec  *executor
	log   *slog.Logger

	parts      []*part
	leaderKeys []int64      // every partition's leadership lock
	claim      sync.Mutex   // orders the partitions' checks of their share and their claims
	leading    atomic.Int32 // partitions this replica leads
	applied    atomic.Uint64
}

// part is the replica's work on one partition: its own session, lock,
// checkpoint row and durable consumer. It embeds the replica for the
// configuration and the counters.
type part struct {
	*Projector
	partition  int
	n          int    // partitions in all
	stream     string // the partition's stream
	subjects   string // its subjects, the consumer's filter
	lock       int64  // the partition's leadership lock
	exec       *executor
	log        *slog.Logger
	leader     atomic.Bool
	checkpoint atomic.Uint64
}

// New checks the configuration; Run starts the work.
func New(cfg Config) (*Projector, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	pgcfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("AUTH_DATABASE_URL: %w", err)
	}
	pgcfg.RuntimeParams["application_name"] = "authsvc-projector " + cfg.Name
	sessionSettings(pgcfg)
	p := &Projector{cfg: cfg, pgcfg: pgcfg, exec: newExecutor(Schema),
		log: cfg.Logger.With("replica", cfg.Name)}
	layout := contract.Layout{Prefix: cfg.Prefix, Partitions: cfg.Partitions}
	for i := range layout.N() {
		pt := &part{Projector: p, partition: i, n: layout.N(), stream: layout.Stream(i), subjects: layout.StreamSubjects(i),
			lock: leaderLock(i, layout.N()), exec: p.exec.forPartition(i), log: p.log}
		if !layout.Split() {
			pt.stream = cfg.Stream
		} else {
			pt.log = p.log.With("partition", i)
		}
		p.parts = append(p.parts, pt)
		p.leaderKeys = append(p.leaderKeys, pt.lock)
	}
	return p, nil
}

// leaderLock is the advisory lock key of partition p's leadership: with
// one partition, the key the projector always had (status and older
// replicas agree on it).
func leaderLock(p, n int) int64 {
	if n <= 1 {
		return lockKey("leader", Schema)
	}
	return lockKey("leader."+strconv.Itoa(p), Schema)
}

// Leader tells whether this replica leads at least one partition.
func (p *Projector) Leader() bool { return p.leading.Load() > 0 }

// Leading is the number of partitions this replica leads.
func (p *Projector) Leading() int { return int(p.leading.Load()) }

// Checkpoint is the last stream sequence this replica committed or read on
// partition 0 (the whole stream with one partition).
func (p *Projector) Checkpoint() uint64 { return p.parts[0].checkpoint.Load() }

// Applied is the number of events this replica applied.
func (p *Projector) Applied() uint64 { return p.applied.Load() }

// Run works until ctx is cancelled, then finishes the batch in flight
// (commit and ack) and returns. Failures are retried with backoff forever:
// a projector outlives Postgres and NATS restarts. Beside the partitions,
// the replica follows AUTH_FRAUD (fraudsrc.go).
func (p *Projector) Run(ctx context.Context) error {
	defer p.startFraud(ctx)()
	if len(p.parts) == 1 {
		return p.parts[0].run(ctx)
	}
	done := make(chan struct{}, len(p.parts))
	for _, pt := range p.parts {
		go func() {
			_ = pt.run(ctx) // returns nil, at ctx's end
			done <- struct{}{}
		}()
	}
	for range p.parts {
		<-done
	}
	return nil
}

// run works on the partition until ctx is cancelled.
func (p *part) run(ctx context.Context) error {
	delay := p.cfg.MinBackoff
	for {
		progressed, err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errYield) {
			// Stand back long enough for a replica under its share, which
			// tries every IdleWait, to take the partition.
			p.log.Info("projector: handing the partition over to a replica with fewer")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(3 * p.cfg.IdleWait):
			}
			delay = p.cfg.MinBackoff
			continue
		}
		if progressed {
			delay = p.cfg.MinBackoff
		}
		// Full jitter keeps replicas from retrying in step.
		wait := delay/2 + rand.N(delay/2+1)
		p.log.Warn("projector: retrying", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		delay = min(delay*2, p.cfg.MaxBackoff)
	}
}

// session connects, waits to lead, and leads until something fails. The
// leadership lock and the writes share one Postgres session: a replica that
// lost its session lost the lock and cannot write any more, so two
// replicas never apply a batch at once (and if they did, the checkpoint
// row lock and the skip would still make it harmless).
func (p *part) session(ctx context.Context) (progressed bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, p.pgcfg)
	if err != nil {
		return false, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := p.exec.setup(ctx, conn); err != nil {
		return false, err
	}

	if err := p.waitToLead(ctx, conn); err != nil {
		return false, err
	}
	p.leader.Store(true)
	defer p.stopLeading()
	p.log.Info("projector: leading")
	if _, err := conn.Exec(ctx, p.exec.sql.ensureCheckpoint, projections.Name, p.partition); err != nil {
		return false, fmt.Errorf("checkpoint row: %w", err)
	}

	// The projector creates no stream (its NATS user may not): until the
	// commands service has, this fails and Run retries.
	stream, err := p.cfg.JS.Stream(ctx, p.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("stream %s not found: the commands service creates it at its start: %w", p.stream, err)
	}
	if err != nil {
		return false, fmt.Errorf("stream %s: %w", p.stream, err)
	}
	cp, _, err := p.exec.readCheckpoint(ctx, conn)
	if err != nil {
		return false, err
	}
	p.checkpoint.Store(cp)
	cons, err := p.resetConsumer(ctx, cp)
	if err != nil {
		return false, err
	}
	holes := func(ctx context.Context, from, to uint64) (bool, error) { return streamHoles(ctx, stream, from, to) }
	w := &writer{p: p, conn: conn, lastPG: time.Now(), lastShare: time.Now()}
	for {
		// One batch is read, decoded and folded while the previous one is
		// written.
		bctx, stopFold := context.WithCancel(ctx)
		src, err := newDecoder(bctx, p.cfg.JS, cons, p.cfg.IdleWait, p.log)
		if err != nil {
			stopFold()
			return w.progressed, err
		}
		bt := newBatcher(p.exec, src, holes, p.log, p.limits(), p.cfg.IdleWait, p.checkpoint.Load())
		go bt.run(bctx)
		restart, err := w.write(ctx, bt)
		stopFold()
		bt.drain()
		if err != nil || ctx.Err() != nil {
			return w.progressed, err
		}
		if restart {
			// Delivery does not continue the checkpoint: start it again
			// right after it.
			cp := p.checkpoint.Load()
			p.log.Info("projector: delivery does not follow the checkpoint; restarting it", "checkpoint", cp)
			if cons, err = p.resetConsumer(ctx, cp); err != nil {
				return w.progressed, err
			}
		}
	}
}

// limits are the batches' bounds.
func (p *Projector) limits() batchLimits {
	return batchLimits{events: p.cfg.BatchSize, bytes: p.cfg.BatchBytes}
}

// errYield ends a session that hands its partition over (Partitions > 1).
var errYield = errors.New("projector: more partitions than this replica's share")

// shareCheckEvery is how often a leading partition checks that its replica
// does not lead more than its share.
const shareCheckEvery = 5 * time.Second

// waitToLead returns once the session holds the partition's leadership
// lock. With one partition it waits on the lock: the first standby gets it
// when the leader's session ends. With several, each replica leads at most
// ceil(partitions / replicas), replicas being the projector sessions'
// distinct application names on the database (balance): a replica under
// that tries the lock every IdleWait, so a dead replica's partitions
// (their sessions end, and their locks with them) go to the others, and
// the count of live replicas shrinks with it; a leading replica hands a
// partition over when it leads too many (overShare, every shareCheckEvery).
func (p *part) waitToLead(ctx context.Context, conn *pgx.Conn) error {
	if p.n == 1 {
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", p.lock); err != nil {
			return fmt.Errorf("wait for leadership: %w", err)
		}
		p.leading.Add(1)
		return nil
	}
	for {
		got, err := p.tryLead(ctx, conn)
		if err != nil || got {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.cfg.IdleWait): // a poll of the lock, not a wait for time
		}
	}
}

func (p *part) tryLead(ctx context.Context, conn *pgx.Conn) (bool, error) {
	p.claim.Lock()
	defer p.claim.Unlock()
	b, err := p.balance(ctx, conn)
	if err != nil || int(p.leading.Load()) >= b.most() {
		return false, err
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", p.lock).Scan(&got); err != nil {
		return false, fmt.Errorf("try leadership: %w", err)
	}
	if got {
		p.leading.Add(1)
	}
	return got, nil
}

// overShare tells whether the replica should hand this partition over:
// it leads more than the most a replica may, or more than the least while
// another replica leads less than the least (2, 2 and 0 of four
// partitions: the last waits for a lock no one frees). If so it counts
// this one as handed over (the caller ends its session, which releases
// the lock).
func (p *part) overShare(ctx context.Context, conn *pgx.Conn) (bool, error) {
	p.claim.Lock()
	defer p.claim.Unlock()
	b, err := p.balance(ctx, conn)
	if err != nil {
		return false, err
	}
	leading := int(p.leading.Load())
	if leading <= b.most() && (leading <= b.least() || b.fewest >= b.least()) {
		return false, nil
	}
	p.leader.Store(false)
	p.leading.Add(-1)
	return true, nil
}

// stopLeading counts the end of the partition's leadership, unless
// overShare already did.
func (p *part) stopLeading() {
	p.claim.Lock()
	defer p.claim.Unlock()
	if p.leader.Load() {
		p.leader.Store(false)
		p.leading.Add(-1)
	}
}

// balance is how the partitions are shared: the live replicas and the
// fewest partitions one of them leads.
type balance struct {
	partitions, replicas, fewest int
}

// most is ceil(partitions / replicas): no replica leads more.
func (b balance) most() int { return (b.partitions + b.replicas - 1) / b.replicas }

// least is floor(partitions / replicas): every replica leads at least as
// many once the partitions are shared.
func (b balance) least() int { return b.partitions / b.replicas }

// balance reads the live replicas, each a distinct application_name of
// the projector's sessions on this database (each replica's sessions carry
// its Name; a replica leading nothing still waits on every partition), and
// the leadership locks each holds. A rebuild's session
// (rebuildApplication) is not a replica: it leads no partition, and
// counted, it would make the replicas hand partitions over to nobody for
// the length of the rebuild.
func (p *part) balance(ctx context.Context, conn *pgx.Conn) (balance, error) {
	b := balance{partitions: p.n}
	err := conn.QueryRow(ctx, `SELECT count(*), coalesce(min(held), 0) FROM (
		SELECT a.application_name, count(l.pid) AS held
		FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.objsubid = 1
		  AND l.classid::bigint * 4294967296 + l.objid::bigint = ANY($2::bigint[])
		WHERE a.datname = current_database() AND a.application_name LIKE 'authsvc-projector %' AND a.application_name <> $1
		GROUP BY a.application_name) r`, rebuildApplication, p.leaderKeys).Scan(&b.replicas, &b.fewest)
	if err != nil {
		return b, fmt.Errorf("count replicas: %w", err)
	}
	b.replicas = max(b.replicas, 1)
	return b, nil
}

// writer applies the batcher's batches on the leader's session.
type writer struct {
	p          *part
	conn       *pgx.Conn
	lastPG     time.Time
	lastShare  time.Time
	progressed bool
}

// write applies batches until the batcher stops, an error, or a batch that
// does not follow the checkpoint (restart).
func (w *writer) write(ctx context.Context, bt *batcher) (restart bool, err error) {
	p := w.p
	for {
		b, ok := bt.take()
		if !ok {
			return false, nil
		}
		if ctx.Err() != nil {
			return false, nil // a stop: the batch read ahead is left unacked
		}
		if p.n > 1 && time.Since(w.lastShare) > shareCheckEvery {
			// More replicas than when it took its partitions: hand one over.
			w.lastShare = time.Now()
			if yield, err := p.overShare(ctx, w.conn); err != nil {
				return false, err
			} else if yield {
				return false, errYield // the batch read ahead is left unacked
			}
		}
		if b.msgs == 0 && b.err == nil {
			// Quiet stream: make sure the session (and so the lock) is
			// still there, so a dead Postgres is noticed before the next
			// event rather than at it.
			if time.Since(w.lastPG) > 5*time.Second {
				if err := w.conn.Ping(ctx); err != nil && ctx.Err() == nil {
					return false, fmt.Errorf("postgres: %w", err)
				}
				w.lastPG = time.Now()
			}
			bt.recycle(b)
			continue
		}
		res := batchResult{checkpoint: b.base}
		if b.events > 0 {
			// The batch finishes even if a stop is asked meanwhile.
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			res, err = p.exec.applyFolded(wctx, w.conn, b, true, p.cfg.beforeCommit)
			cancel()
			w.lastPG = time.Now()
			if err != nil {
				return false, fmt.Errorf("apply batch: %w", err)
			}
		}
		p.checkpoint.Store(res.checkpoint)
		if res.stale {
			return true, nil
		}
		if res.applied > 0 {
			w.progressed = true
			p.applied.Add(uint64(res.applied))
			if p.cfg.AfterCommit != nil {
				p.cfg.AfterCommit(Committed{Replica: p.cfg.Name, Partition: p.partition, First: res.first, Last: res.last, Events: res.applied, Took: res.took, Timings: res.timings})
			}
		}
		if b.ack != nil {
			// Every message consumed is at or below the checkpoint now.
			// A lost ack only means a redelivery, which the fold skips.
			_ = b.ack.Ack()
		}
		switch {
		case b.unreadable:
			p.log.Error("projector: stopped at an event it cannot read", "err", b.err)
			return false, b.err
		case b.err != nil:
			return false, b.err
		case b.gap:
			return true, nil
		}
		bt.recycle(b)
	}
}

// resetConsumer (re)creates the durable consumer to deliver from the event
// after the checkpoint. The consumer's own position is only a cache of the
// checkpoint in Postgres: it is set from it whenever this replica starts
// leading and whenever delivery strays from it.
func (p *part) resetConsumer(ctx context.Context, checkpoint uint64) (jetstream.Consumer, error) {
	if err := p.cfg.JS.DeleteConsumer(ctx, p.stream, p.cfg.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reset consumer %s: %w", p.cfg.Consumer, err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       p.cfg.Consumer,
		Description:   "Postgres read models (cmd/projector); its position follows auth.projector_checkpoint.",
		FilterSubject: p.subjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       2 * time.Minute,
		MaxAckPending: 4 * p.cfg.BatchSize,
		MaxDeliver:    -1,
	}
	if checkpoint > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, checkpoint+1
	}
	cons, err := p.cfg.JS.CreateConsumer(ctx, p.stream, cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", p.cfg.Consumer, err)
	}
	return cons, nil
}

// streamHoles tells whether the stream has no message at any sequence of
// [from, to]: they were deleted or purged, so the checkpoint may pass them.
func streamHoles(ctx context.Context, stream jetstream.Stream, from, to uint64) (bool, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return false, err
	}
	from = max(from, info.State.FirstSeq)
	if from > to {
		return true, nil
	}
	if to-from < 64 {
		for s := from; s <= to; s++ {
			_, err := stream.GetMsg(ctx, s)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return false, err
			}
			return false, nil
		}
		return true, nil
	}
	info, err = stream.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return false, err
	}
	deleted := make(map[uint64]bool, len(info.State.Deleted))
	for _, s := range info.State.Deleted {
		deleted[s] = true
	}
	for s := from; s <= to; s++ {
		if !deleted[s] {
			return false, nil
		}
	}
	return true, nil
}

// TuneRuntime gives a projector process its Go runtime settings:
// GOGC=ProjectorGCPercent unless GOGC is set (gogcSet), and a soft memory
// limit of ProjectorMemoryLimit unless GOMEMLIMIT is set (memLimitSet).
// cmd/projector and the bench's replica call it first.
func TuneRuntime(gogcSet, memLimitSet bool) {
	if !gogcSet {
		debug.SetGCPercent(ProjectorGCPercent)
	}
	if !memLimitSet {
		debug.SetMemoryLimit(ProjectorMemoryLimit)
	}
}
