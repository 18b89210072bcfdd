package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// RebuildConfig says where the streams and the database are.
type RebuildConfig struct {
	DatabaseURL string
	JS          jetstream.JetStream
	Stream      string // default AUTH_EVENTS; only with one partition (the layout names the streams of several)
	Prefix      string // default auth
	// Partitions is AUTH_PARTITIONS (0 or 1: one, the stream AUTH_EVENTS):
	// every partition's stream is replayed (docs/scale.md).
	Partitions int
	BatchSize  int // events per batch, default DefaultBatchSize
	BatchBytes int // memory per batch, default DefaultBatchBytes (Config.BatchBytes)
	Logger     *slog.Logger
	// Progress, when set, is told after each batch how far the replay is
	// and where it goes: the shadow checkpoints and the streams' last
	// sequences, each summed over the partitions.
	Progress func(checkpoint, target uint64)
}

// RebuildResult tells what a rebuild did.
type RebuildResult struct {
	Events int // events replayed into the new tables
	// Checkpoint is the new tables' checkpoint at the swap; with several
	// partitions, the sum of theirs (Checkpoints).
	Checkpoint  uint64
	Checkpoints []uint64      // each partition's, partition 0 first
	Duration    time.Duration // replay and swap
}

// rebuildApplication is the application_name of a rebuild's session.
const rebuildApplication = "authsvc-projector rebuild"

// ErrRebuildRunning: another rebuild holds the rebuild lock.
var ErrRebuildRunning = errors.New("another rebuild is running")

// Rebuild replays every partition's stream from its first event into fresh
// tables (schema auth_rebuild), then swaps them for the live ones in one
// transaction: readers see the old tables or the new ones, never a
// half-built model. The live projector keeps running: it is held only for
// the instant of the swap, then catches up from the new tables'
// checkpoints.
//
// Partitions are replayed one after the other, each in its stream's order
// into its own checkpoint row: their accounts are disjoint and their login
// attempts keyed by (partition, seq), so their order between them does not
// matter. Only one partition's reads are in flight at a time (a batch
// applied, one read ahead), whatever the number of partitions.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildResult, error) {
	start := time.Now()
	if cfg.DatabaseURL == "" {
		return RebuildResult{}, ErrNoDatabase
	}
	if cfg.JS == nil {
		return RebuildResult{}, errors.New("rebuild: no JetStream handle")
	}
	if cfg.Partitions < 0 || cfg.Partitions > contract.MaxPartitions {
		return RebuildResult{}, fmt.Errorf("rebuild: %d partitions, want 1 to %d", cfg.Partitions, contract.MaxPartitions)
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = DefaultBatchBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pgcfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("AUTH_DATABASE_URL: %w", err)
	}
	pgcfg.RuntimeParams["application_name"] = rebuildApplication
	sessionSettings(pgcfg)
	conn, err := pgx.ConnectConfig(ctx, pgcfg)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", lockKey("rebuild", Schema)).Scan(&got); err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild lock: %w", err)
	}
	if !got {
		return RebuildResult{}, ErrRebuildRunning
	}
	// Released before the session closes: the server ends a closed
	// session's backend, and frees its locks, a moment after the close,
	// which a rebuild run right after this one would find still held.
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey("rebuild", Schema))
	}()

	// The streams first: a layout that is not the servers' fails before
	// anything is dropped.
	layout := contract.Layout{Prefix: cfg.Prefix, Partitions: cfg.Partitions}
	r := &replayer{js: cfg.JS, batch: cfg.BatchSize, batchBytes: cfg.BatchBytes, log: log, progress: cfg.Progress}
	shadow := newExecutor(shadowSchema)
	for p := range layout.N() {
		name := layout.Stream(p)
		if !layout.Split() {
			name = cfg.Stream
		}
		stream, err := cfg.JS.Stream(ctx, name)
		if err != nil {
			return RebuildResult{}, fmt.Errorf("stream %s: %w", name, err)
		}
		if err := eventstore.CheckLayout(stream.CachedInfo().Config, layout, p); err != nil {
			return RebuildResult{}, err
		}
		r.parts = append(r.parts, &partReplay{partition: p, name: name, subjects: layout.StreamSubjects(p),
			stream: stream, exec: shadow.forPartition(p), target: stream.CachedInfo().State.LastSeq})
	}

	// Fresh shadow tables, by the same migrations as the live ones, with
	// a checkpoint row per partition (the migrations make partition 0's).
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{shadowSchema}.Sanitize()+" CASCADE"); err != nil {
		return RebuildResult{}, fmt.Errorf("drop old shadow schema: %w", err)
	}
	if _, err := migrateSchema(ctx, cfg.DatabaseURL, shadowSchema); err != nil {
		return RebuildResult{}, err
	}
	if err := shadow.setup(ctx, conn); err != nil {
		return RebuildResult{}, err
	}
	for _, pr := range r.parts {
		if _, err := conn.Exec(ctx, shadow.sql.ensureCheckpoint, projections.Name, pr.partition); err != nil {
			return RebuildResult{}, fmt.Errorf("shadow checkpoint of partition %d: %w", pr.partition, err)
		}
	}

	// Replay each partition up to its stream's end; while the stream
	// grows, go on until less than a batch is left, which the swap applies.
	for _, pr := range r.parts {
		for {
			info, err := pr.stream.Info(ctx)
			if err != nil {
				return r.result(), fmt.Errorf("stream %s info: %w", pr.name, err)
			}
			pr.target = info.State.LastSeq
			if pr.checkpoint >= pr.target || pr.checkpoint > 0 && pr.target-pr.checkpoint <= uint64(cfg.BatchSize) {
				break
			}
			log.Info("rebuild: replaying", "stream", pr.name, "from", pr.checkpoint+1, "to", pr.target)
			if err := r.replay(ctx, conn, pr, pr.target); err != nil {
				return r.result(), err
			}
		}
	}
	if err := swap(ctx, conn, r); err != nil {
		return r.result(), err
	}
	res := r.result()
	res.Duration = time.Since(start)
	log.Info("rebuild: swapped in", "events", res.Events, "checkpoints", res.Checkpoints, "took", res.Duration.Round(time.Millisecond))
	return res, nil
}

// replayer applies the partitions' streams, each in order, to the shadow
// tables, from batches read ahead.
type replayer struct {
	js    jetstream.JetStream
	batch int
	// batchBytes bounds a batch's memory, as Config.BatchBytes.
	batchBytes int
	log        *slog.Logger
	progress   func(checkpoint, target uint64)
	parts      []*partReplay
	events     int
}

// partReplay is one partition's replay: its stream and how far the shadow
// tables are.
type partReplay struct {
	partition  int
	name       string // the stream
	subjects   string // its subjects, the consumer's filter
	stream     jetstream.Stream
	exec       *executor // the shadow tables, for this partition
	checkpoint uint64    // the shadow checkpoint
	target     uint64    // the stream's last sequence when last read
	// oldestAttempt is the sequence of the oldest login attempt the
	// stream still had (0: none seen): the attempts before it expired.
	oldestAttempt uint64
}

func (r *replayer) result() RebuildResult {
	res := RebuildResult{Events: r.events, Checkpoints: make([]uint64, len(r.parts))}
	for i, pr := range r.parts {
		res.Checkpoints[i] = pr.checkpoint
		res.Checkpoint += pr.checkpoint
	}
	return res
}

func (r *replayer) report() {
	if r.progress == nil {
		return
	}
	var cp, target uint64
	for _, pr := range r.parts {
		cp += pr.checkpoint
		target += max(pr.target, pr.checkpoint)
	}
	r.progress(cp, target)
}

// replay applies partition pr's stream, from the event after its shadow
// checkpoint, until the checkpoint reaches target: an ordered consumer
// delivers it, one batch read ahead, and is deleted at the end.
func (r *replayer) replay(ctx context.Context, db beginner, pr *partReplay, target uint64) error {
	if pr.checkpoint >= target {
		return nil
	}
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{pr.subjects},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if pr.checkpoint > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, pr.checkpoint+1
	}
	cons, err := r.js.OrderedConsumer(ctx, pr.name, occ)
	if err != nil {
		return fmt.Errorf("rebuild consumer on %s: %w", pr.name, err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = r.js.DeleteConsumer(dctx, pr.name, info.Name)
			cancel()
		}
	}()
	holes := func(ctx context.Context, from, to uint64) (bool, error) { return streamHoles(ctx, pr.stream, from, to) }
	bctx, stopFold := context.WithCancel(ctx)
	src, err := newDecoder(bctx, r.js, cons, time.Second, r.log)
	if err != nil {
		stopFold()
		return fmt.Errorf("rebuild consumer on %s: %w", pr.name, err)
	}
	bt := newBatcher(pr.exec, src, holes, r.log, batchLimits{events: r.batch, bytes: r.batchBytes}, time.Second, pr.checkpoint)
	go bt.run(bctx)
	defer func() {
		stopFold()
		bt.drain()
	}()
	for pr.checkpoint < target {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, ok := bt.take()
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("rebuild: reading the stream %s stopped", pr.name)
		}
		if b.events == 0 && b.err == nil && !b.gap {
			bt.recycle(b)
			continue // nothing yet
		}
		if b.oldestAttempt != 0 && (pr.oldestAttempt == 0 || b.oldestAttempt < pr.oldestAttempt) {
			pr.oldestAttempt = b.oldestAttempt
		}
		br := batchResult{checkpoint: b.base}
		if b.events > 0 {
			br, err = pr.exec.applyFolded(ctx, db, b, false, nil)
			if err != nil {
				return fmt.Errorf("apply batch of %s: %w", pr.name, err)
			}
			if br.stale {
				return fmt.Errorf("rebuild: the shadow checkpoint of %s moved to %d under the replay", pr.name, br.checkpoint)
			}
		}
		r.events += br.applied
		pr.checkpoint = br.checkpoint
		r.report()
		if b.gap {
			return fmt.Errorf("rebuild: ordered delivery of %s skipped events after %d", pr.name, br.checkpoint)
		}
		if b.err != nil {
			return fmt.Errorf("fetch from %s: %w", pr.name, b.err)
		}
		bt.recycle(b)
	}
	return nil
}

// maxSwapLockTries bounds the retries of a swap's locking after a deadlock.
const maxSwapLockTries = 5

// beginSwap opens the swap's transaction and takes its locks: the
// exclusive swap lock, then every live table, in one LOCK statement. It
// tells whether a live schema exists. On error the transaction is rolled
// back.
func beginSwap(ctx context.Context, conn *pgx.Conn) (pgx.Tx, bool, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("swap: %w", err)
	}
	fail := func(err error) (pgx.Tx, bool, error) {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, false, err
	}
	// Readers of the old tables hold the drop back; do not queue forever.
	// The swap is reported done only once it is durable (the session
	// commits batches asynchronously, see sessionSettings).
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '60s'; SET LOCAL synchronous_commit = on"); err != nil {
		return fail(fmt.Errorf("swap: %w", err))
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey("swap", Schema)); err != nil {
		return fail(fmt.Errorf("swap lock: %w", err))
	}
	var live bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", Schema).Scan(&live); err != nil {
		return fail(fmt.Errorf("swap: %w", err))
	}
	if !live {
		return tx, false, nil
	}
	rows, err := tx.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", Schema)
	if err != nil {
		return fail(fmt.Errorf("swap: list the live tables: %w", err))
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail(fmt.Errorf("swap: list the live tables: %w", err))
	}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = pgx.Identifier{Schema, t}.Sanitize()
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return fail(fmt.Errorf("swap: lock the live tables: %w", err))
		}
	}
	return tx, true, nil
}

// swap puts the shadow tables in place of the live ones in one
// transaction. The exclusive swap lock waits for the live projector's batch
// in flight and holds the next one until the commit. Under it, each
// partition of the shadow catches up with its live checkpoint, so readers
// never step back in time; dropping the old tables in the same transaction
// invalidates every session's cached plans on them, so the projector's next
// batch resolves "auth" to the new tables and goes on from the same
// checkpoints.
//
// Every live table is locked before anything else is done: a reader's
// transaction that reads two of them could otherwise deadlock with the
// drop (Postgres then aborts one side). A deadlock while locking, before
// the replay has consumed anything, is retried (maxSwapLockTries).
func swap(ctx context.Context, conn *pgx.Conn, r *replayer) error {
	var tx pgx.Tx
	var live bool
	for try := 1; ; try++ {
		var err error
		tx, live, err = beginSwap(ctx, conn)
		if err == nil {
			break
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "40P01" || try == maxSwapLockTries {
			return err
		}
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	id := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	if live {
		liveX := newExecutor(Schema)
		for _, pr := range r.parts {
			liveCP, _, err := liveX.forPartition(pr.partition).readCheckpoint(ctx, tx)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // a partition the live projector never led
			}
			if err != nil {
				return fmt.Errorf("swap: %w", err)
			}
			if err := r.replay(ctx, tx, pr, liveCP); err != nil {
				return fmt.Errorf("swap: catch up with the live checkpoint %d of %s: %w", liveCP, pr.name, err)
			}
		}
		// Login attempts that left the stream (past their retention,
		// docs/retention.md) cannot be replayed: their rows move over as
		// they were. Attempts share one TTL, so they expired oldest
		// first: the rows of stream sequences (above 0) before the
		// oldest attempt the replay saw, that the replay did not make.
		// Per partition: each stream numbers its events from 1.
		for _, pr := range r.parts {
			before := uint64(math.MaxInt64)
			if pr.oldestAttempt != 0 {
				before = pr.oldestAttempt
			}
			// The fraud counters are a function of these rows: what
			// the carried rows add is counted as the projector counts
			// the rows it writes.
			rows, err := tx.Query(ctx, "INSERT INTO "+id(shadowSchema)+".login_attempts SELECT * FROM "+id(Schema)+
				".login_attempts l WHERE l.partition = $2 AND l.seq > 0 AND l.seq < $1 AND NOT EXISTS (SELECT 1 FROM "+id(shadowSchema)+
				".login_attempts s WHERE s.partition = l.partition AND s.seq = l.seq)"+
				" RETURNING at, coalesce(channel, ''), coalesce(client_ip, ''), coalesce(user_agent, ''), step, outcome",
				int64(before), pr.partition)
			if err != nil {
				return fmt.Errorf("swap: keep the rows of expired attempts of %s: %w", pr.name, err)
			}
			var carried projections.FraudCounts
			var a projections.Attempt
			_, err = pgx.ForEachRow(rows, []any{&a.At, &a.Channel, &a.ClientIP, &a.UserAgent, &a.Step, &a.Outcome}, func() error {
				carried.Add(a)
				return nil
			})
			if err != nil {
				return fmt.Errorf("swap: keep the rows of expired attempts of %s: %w", pr.name, err)
			}
			if b := pr.exec.fraudBatch(carried, nil); b.Len() > 0 {
				if err := tx.SendBatch(ctx, b).Close(); err != nil {
					return fmt.Errorf("swap: count the expired attempts of %s in the fraud read model: %w", pr.name, err)
				}
			}
		}
		if err := carryFraudSources(ctx, tx); err != nil {
			return err
		}
	}
	if live {
		if _, err := tx.Exec(ctx, "ALTER SCHEMA "+id(Schema)+" RENAME TO "+id(retiredSchema)); err != nil {
			return fmt.Errorf("swap: retire the live schema: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, "ALTER SCHEMA "+id(shadowSchema)+" RENAME TO "+id(Schema)); err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	if live {
		if _, err := tx.Exec(ctx, "DROP SCHEMA "+id(retiredSchema)+" CASCADE"); err != nil {
			return fmt.Errorf("swap: drop the old tables: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("swap: commit: %w", err)
	}
	return nil
}
