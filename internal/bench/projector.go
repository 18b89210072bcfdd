package bench

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/projector"
)

// readModelTables are the tables the projector fills (those COPY fills too).
var readModelTables = []string{"accounts", "login_attempts", "trusted_devices", "biometric_devices"}

// projector replays ProjectorEvents simulated events (the mix of
// internal/projector's BenchmarkReplay) from a stream of their own into
// empty read models with one projector replica, then copies the rows it
// produced with a raw COPY into empty copies of the same tables, on the same
// database, CopyRuns times; the median COPY is the bound.
func (r *runner) projector(ctx context.Context) error {
	dbURL, err := r.database(ctx)
	if err != nil {
		return err
	}
	if err := projector.Migrate(ctx, dbURL); err != nil {
		return err
	}
	cfg := r.phaseStream("proj")
	if _, err := r.openStore(ctx, cfg); err != nil {
		return err
	}
	t := time.Now()
	last, err := r.publishSim(ctx, cfg, r.sizes.ProjectorEvents, r.sizes.ProjectorAccounts)
	if err != nil {
		return err
	}
	r.progress("projector: %d events published in %s", r.sizes.ProjectorEvents, time.Since(t).Round(time.Millisecond))

	// The peak memory is the projector's, not the publisher's.
	r.mem.begin()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	r.pgCheckpoint(ctx, conn)
	// As cmd/projector does when GOGC is not set.
	if !r.opts.GOGCSet {
		defer debug.SetGCPercent(debug.SetGCPercent(projector.ProjectorGCPercent))
	}
	nc, err := r.connect("authbench-projector")
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	batch := r.opts.ProjectorBatch // as cmd/projector takes it
	var inTx time.Duration
	var phases projector.Timings
	var batches int
	p, err := projector.New(projector.Config{DatabaseURL: dbURL, JS: js, Stream: cfg.Stream, Prefix: cfg.Prefix,
		Consumer: "authbench_projector", BatchSize: batch, IdleWait: 50 * time.Millisecond, Name: "authbench", Logger: r.opts.Logger,
		// On the writer goroutine; read once Run has returned.
		AfterCommit: func(c projector.Committed) { inTx += c.Took; phases.Add(c.Timings); batches++ }})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(runCtx) }()
	err = waitProgress(ctx, time.Minute, p.Checkpoint, last)
	took := time.Since(start)
	cancel()
	<-done
	if err != nil {
		return fmt.Errorf("projector: checkpoint %d of %d: %w", p.Checkpoint(), last, err)
	}
	n := int(last)
	r.res.ProjectorEventsPerS = float64(n) / took.Seconds()
	d := &r.res.Details
	d.ProjectorEvents, d.ProjectorTook = n, took
	d.ProjectorBatches, d.ProjectorInTx, d.ProjectorPhases = batches, inTx, phases
	r.progress("projector: %d events in %s: %.0f events/s", n, took.Round(time.Millisecond), r.res.ProjectorEventsPerS)

	var rates []float64
	for range r.sizes.CopyRuns {
		r.pgCheckpoint(ctx, conn)
		rows, took, err := rawCopy(ctx, conn)
		if err != nil {
			return fmt.Errorf("raw copy: %w", err)
		}
		d.CopyRows = rows
		rates = append(rates, float64(rows)/took.Seconds())
	}
	d.CopyRates = slices.Clone(rates)
	slices.Sort(rates)
	r.res.CopyRowsPerS = rates[len(rates)/2]
	r.progress("projector: raw COPY of its %d rows: %.0f rows/s (median of %v)", d.CopyRows, r.res.CopyRowsPerS, roundAll(d.CopyRates))
	return nil
}

// waitProgress waits until at() reaches target, failing if it stops moving
// for stall.
func waitProgress(ctx context.Context, stall time.Duration, at func() uint64, target uint64) error {
	lastMove, seen := time.Now(), at()
	for {
		v := at()
		if v >= target {
			return nil
		}
		if v != seen {
			seen, lastMove = v, time.Now()
		} else if time.Since(lastMove) > stall {
			return fmt.Errorf("%w for %s", errNoProgress, stall)
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return err
		}
	}
}

// publishSim publishes n simulated events over the given number of
// accounts (every account registered first), as fast as JetStream takes
// them, and returns the stream's last sequence.
func (r *runner) publishSim(ctx context.Context, cfg eventstore.JetStreamConfig, n, accounts int) (uint64, error) {
	nc, err := r.connect("authbench-publisher")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		return 0, err
	}
	s := newSim(99)
	accs := s.Accounts(min(accounts, n))
	for i := range n {
		var a *simAccount
		if i < len(accs) {
			a = accs[i]
		} else {
			a = accs[s.Rng.IntN(len(accs))]
		}
		msg, err := eventstore.EventMsg(contract.Subjects(cfg.Prefix).Events(a.ID), s.Next(a))
		if err != nil {
			return 0, err
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("publish did not complete")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	st, err := r.js.Stream(ctx, cfg.Stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.State.Msgs != uint64(n) {
		return 0, fmt.Errorf("stream %s holds %d events, want %d", cfg.Stream, info.State.Msgs, n)
	}
	return info.State.LastSeq, nil
}

// pgCheckpoint flushes dirty pages, so a timed phase does not pay for the
// previous one's writes (needs a superuser; without, timings are noisier).
func (r *runner) pgCheckpoint(ctx context.Context, conn *pgx.Conn) {
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		r.progress("CHECKPOINT refused (%v): timings will be noisier", err)
	}
}

// rawCopy copies every read-model row out (text COPY, untimed) and into
// empty copies of the tables with the same indexes, in one transaction
// (timed): the fastest way Postgres takes those rows.
func rawCopy(ctx context.Context, conn *pgx.Conn) (rows int64, took time.Duration, err error) {
	data := map[string][]byte{}
	for _, tbl := range readModelTables {
		var buf bytes.Buffer
		if _, err := conn.PgConn().CopyTo(ctx, &buf, "COPY "+projector.Schema+"."+tbl+" TO STDOUT"); err != nil {
			return 0, 0, err
		}
		data[tbl] = buf.Bytes()
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.copy_%s (LIKE %s.%s INCLUDING ALL)",
			projector.Schema, tbl, projector.Schema, tbl)); err != nil {
			return 0, 0, err
		}
	}
	defer func() {
		for _, tbl := range readModelTables {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+projector.Schema+".copy_"+tbl)
		}
	}()
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	for _, tbl := range readModelTables {
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data[tbl]), "COPY "+projector.Schema+".copy_"+tbl+" FROM STDIN")
		if err != nil {
			return 0, 0, err
		}
		rows += tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, err
	}
	return rows, time.Since(start), nil
}
