package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// RebuildConfig says where the stream and the database are.
type RebuildConfig struct {
	DatabaseURL string
	JS          jetstream.JetStream
	Stream      string // default AUTH_EVENTS
	Prefix      string // default auth
	BatchSize   int    // default 20000
	Logger      *slog.Logger
	// Progress, when set, is told after each batch how far the replay is
	// (the shadow checkpoint) and where it goes (the stream's last sequence).
	Progress func(checkpoint, target uint64)
}

// RebuildResult tells what a rebuild did.
type RebuildResult struct {
	Events     int           // events replayed into the new tables
	Checkpoint uint64        // the new tables' checkpoint at the swap
	Duration   time.Duration // replay and swap
}

// rebuildApplication is the application_name of a rebuild's session.
const rebuildApplication = "authsvc-projector rebuild"

// ErrRebuildRunning: another rebuild holds the rebuild lock.
var ErrRebuildRunning = errors.New("another rebuild is running")

// Rebuild replays the stream from its first event into fresh tables (schema
// auth_rebuild), then swaps them for the live ones in one transaction:
// readers see the old tables or the new ones, never a half-built model.
// The live projector keeps running: it is held only for the instant of the
// swap, then catches up from the new tables' checkpoint.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildResult, error) {
	start := time.Now()
	if cfg.DatabaseURL == "" {
		return RebuildResult{}, ErrNoDatabase
	}
	if cfg.JS == nil {
		return RebuildResult{}, errors.New("rebuild: no JetStream handle")
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

	// Fresh shadow tables, by the same migrations as the live ones.
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{shadowSchema}.Sanitize()+" CASCADE"); err != nil {
		return RebuildResult{}, fmt.Errorf("drop old shadow schema: %w", err)
	}
	if _, err := migrateSchema(ctx, cfg.DatabaseURL, shadowSchema); err != nil {
		return RebuildResult{}, err
	}
	stream, err := cfg.JS.Stream(ctx, cfg.Stream)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	cons, err := cfg.JS.OrderedConsumer(ctx, cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{contract.Subjects(cfg.Prefix).AllEvents()},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return RebuildResult{}, fmt.Errorf("rebuild consumer: %w", err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = cfg.JS.DeleteConsumer(dctx, cfg.Stream, info.Name)
			cancel()
		}
	}()
	x := newExecutor(shadowSchema)
	if err := x.setup(ctx, conn); err != nil {
		return RebuildResult{}, err
	}
	fctx, stopFetch := context.WithCancel(ctx)
	ch := make(chan prepared, 1)
	go prefetch(fctx, func(ctx context.Context) ([]jetstream.Msg, error) {
		return fetchBatch(ctx, cons, cfg.BatchSize, time.Second)
	}, x, log, ch)
	defer func() {
		stopFetch()
		for range ch {
		}
	}()
	r := &replayer{batches: ch, exec: x, progress: cfg.Progress,
		holes: func(ctx context.Context, from, to uint64) (bool, error) { return streamHoles(ctx, stream, from, to) }}

	// Replay up to the stream's end; while the stream grows, go on until
	// less than a batch is left, which the swap applies.
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return r.res, fmt.Errorf("stream info: %w", err)
		}
		target := info.State.LastSeq
		if r.res.Checkpoint >= target || r.res.Checkpoint > 0 && target-r.res.Checkpoint <= uint64(cfg.BatchSize) {
			break
		}
		log.Info("rebuild: replaying", "from", r.res.Checkpoint+1, "to", target)
		if err := r.replay(ctx, conn, target); err != nil {
			return r.res, err
		}
	}
	if err := swap(ctx, conn, r); err != nil {
		return r.res, err
	}
	r.res.Duration = time.Since(start)
	log.Info("rebuild: swapped in", "events", r.res.Events, "checkpoint", r.res.Checkpoint, "took", r.res.Duration.Round(time.Millisecond))
	return r.res, nil
}

// replayer applies the stream, in order, to the shadow tables, from
// batches read ahead.
type replayer struct {
	batches  <-chan prepared
	exec     *executor
	holes    holesFunc
	progress func(checkpoint, target uint64)
	res      RebuildResult
}

// replay applies batches until the shadow checkpoint reaches target.
func (r *replayer) replay(ctx context.Context, db beginner, target uint64) error {
	for r.res.Checkpoint < target {
		var b prepared
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b, ok = <-r.batches:
		}
		if !ok {
			return errors.New("rebuild: reading the stream stopped")
		}
		if b.msgs == nil && b.err == nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue // nothing yet
		}
		if len(b.recs) == 0 && b.err != nil {
			return fmt.Errorf("fetch: %w", b.err)
		}
		br, err := r.exec.applyBatch(ctx, db, b.recs, b.pre, r.holes, false, nil)
		if err != nil {
			return fmt.Errorf("apply batch: %w", err)
		}
		r.res.Events += br.applied
		r.res.Checkpoint = br.checkpoint
		if r.progress != nil {
			r.progress(r.res.Checkpoint, target)
		}
		if br.gap {
			return fmt.Errorf("rebuild: ordered delivery skipped events after %d", br.checkpoint)
		}
		if b.err != nil {
			return b.err
		}
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
// in flight and holds the next one until the commit. Under it, the shadow
// catches up with the live checkpoint, so readers never step back in time;
// dropping the old tables in the same transaction invalidates every
// session's cached plans on them, so the projector's next batch resolves
// "auth" to the new tables and goes on from the same checkpoint.
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
		liveCP, _, err := newExecutor(Schema).readCheckpoint(ctx, tx)
		if err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		if err := r.replay(ctx, tx, liveCP); err != nil {
			return fmt.Errorf("swap: catch up with the live checkpoint %d: %w", liveCP, err)
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
