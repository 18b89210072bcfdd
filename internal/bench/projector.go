package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/projector"
)

// readModelTables are the tables the projector fills (those COPY fills too).
var readModelTables = []string{"accounts", "login_attempts", "trusted_devices", "biometric_devices"}

// ProjectorFigures are the projector phase's figures besides
// projector_events_per_s, copy_rows_per_s and projector_vs_copy (Result
// embeds them: their keys are the JSON object's).
type ProjectorFigures struct {
	// ProjectorPeakRSSMB is the peak resident memory (VmHWM, MiB) of the
	// replica process that replayed the stream: the projector alone, without
	// the bench's nats-server, publisher and COPY bound (docs/bench.md).
	ProjectorPeakRSSMB float64 `json:"projector_peak_rss_mb"`
}

// projector replays ProjectorEvents simulated events (the mix of
// internal/projector's BenchmarkReplay) from a stream of their own into
// empty read models with one projector replica, run as a process of its
// own (ReplicaMain: this executable again), so that its peak memory is the
// projector's alone; then copies the rows it produced with a raw COPY into
// empty copies of the same tables, on the same database, CopyRuns times;
// the median COPY is the bound.
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

	// This process's peak from here on is the nats-server serving the
	// replay (rss_mb.projector); the replica's is its own.
	r.mem.begin()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	r.pgCheckpoint(ctx, conn)
	spec := replicaSpec{DatabaseURL: dbURL, NATSURL: r.natsURL, Stream: cfg.Stream, Prefix: cfg.Prefix,
		Batch: r.opts.ProjectorBatch, GOGCSet: r.opts.GOGCSet, GOMemLimitSet: r.opts.GOMemLimitSet, Last: last,
		CPUProfile: r.opts.ReplicaCPUProfile, HeapProfile: r.opts.ReplicaHeapProfile}
	if r.external {
		spec.NATSAuth = r.opts.NATSAuth
	}
	walStart := walLSN(ctx, conn)
	statsStart := pgWriteStats(ctx, conn)
	rep, err := r.runReplica(ctx, spec)
	if err != nil {
		return fmt.Errorf("projector replica: %w", err)
	}
	replayWAL := walSince(ctx, conn, walStart)
	r.progress("projector: replay's Postgres writes: %s", pgWriteStats(ctx, conn).since(statsStart))
	n, took := rep.Events, time.Duration(rep.TookNs)
	r.res.ProjectorEventsPerS = float64(n) / took.Seconds()
	r.res.ProjectorPeakRSSMB = rep.PeakRSSMB
	d := &r.res.Details
	d.ProjectorEvents, d.ProjectorTook = n, took
	d.ProjectorBatches, d.ProjectorInTx, d.ProjectorPhases = rep.Batches, time.Duration(rep.InTxNs), rep.Phases
	d.ProjectorMaxBatch, d.ProjectorHeapMB = rep.MaxBatch, rep.HeapMB
	r.progress("projector: %d events in %s: %.0f events/s; replica peak RSS %.0f MiB; %.0f MB of WAL; batches %v", n, took.Round(time.Millisecond), r.res.ProjectorEventsPerS, rep.PeakRSSMB, replayWAL/1e6, rep.Sizes)

	var rates []float64
	for range r.sizes.CopyRuns {
		r.pgCheckpoint(ctx, conn)
		walStart := walLSN(ctx, conn)
		statsStart := pgWriteStats(ctx, conn)
		rows, took, tables, err := rawCopy(ctx, conn)
		if err != nil {
			return fmt.Errorf("raw copy: %w", err)
		}
		d.CopyRows = rows
		rates = append(rates, float64(rows)/took.Seconds())
		r.progress("projector: raw COPY of %d rows in %s (%s); %.0f MB of WAL; %s", rows, took.Round(time.Millisecond), tables, walSince(ctx, conn, walStart)/1e6, pgWriteStats(ctx, conn).since(statsStart))
	}
	d.CopyRates = slices.Clone(rates)
	slices.Sort(rates)
	r.res.CopyRowsPerS = rates[len(rates)/2]
	r.progress("projector: raw COPY of its %d rows: %.0f rows/s (median of %v)", d.CopyRows, r.res.CopyRowsPerS, roundAll(d.CopyRates))
	return nil
}

// replicaArg, as the only argument, makes this executable the projector
// phase's replica (IsReplica, ReplicaMain).
const replicaArg = "authbench-projector-replica"

// replicaSpec is what the replica is told, as JSON on its standard input.
type replicaSpec struct {
	DatabaseURL    string
	NATSURL        string
	NATSAuth       natsutil.Auth
	Stream, Prefix string
	Batch          int    // AUTH_PROJECTOR_BATCH; 0: the projector's default
	GOGCSet        bool   // GOGC is set: keep it, as cmd/projector does
	GOMemLimitSet  bool   // GOMEMLIMIT is set: keep it, as cmd/projector does
	Last           uint64 // the stream's last sequence: the replay ends there
	// CPUProfile and HeapProfile are files for the replica's CPU profile
	// of the replay and its heap profile half-way through (after a GC).
	CPUProfile, HeapProfile string
}

// replicaResult is what the replica answers, as JSON on its standard
// output.
type replicaResult struct {
	Events    int
	TookNs    int64 // from Run to the checkpoint at Last
	Batches   int
	InTxNs    int64 // in batch transactions
	Phases    projector.Timings
	MaxBatch  int     // events of the largest batch
	Sizes     []int   // events of each batch
	PeakRSSMB float64 // VmHWM at the end, MiB
	HeapMB    float64 // live heap half-way through (after a GC), MiB
}

// IsReplica tells whether this process was started as the projector
// phase's replica: its main calls ReplicaMain instead of its command.
func IsReplica() bool { return len(os.Args) == 2 && os.Args[1] == replicaArg }

// ReplicaMain runs the projector phase's replica: one projector.New
// replica, configured as cmd/projector is (GOGC=400 unless set, the
// projector's runtime defaults), replays the stream named on its standard
// input to its last sequence and writes its figures, JSON, on its standard
// output. It returns the exit code.
func ReplicaMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var spec replicaSpec
	if err := json.NewDecoder(os.Stdin).Decode(&spec); err != nil {
		log.Error("projector replica: read its spec", "err", err)
		return 2
	}
	res, err := replica(context.Background(), spec, log)
	if err != nil {
		log.Error("projector replica", "err", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func replica(ctx context.Context, spec replicaSpec, log *slog.Logger) (res replicaResult, err error) {
	projector.TuneRuntime(spec.GOGCSet, spec.GOMemLimitSet)
	opts := natsutil.ClientOptions("authbench-projector", log)
	auth, err := spec.NATSAuth.Options()
	if err != nil {
		return res, err
	}
	nc, err := nats.Connect(spec.NATSURL, append(opts, auth...)...)
	if err != nil {
		return res, fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	var inTx time.Duration
	var phases projector.Timings
	var batches, maxBatch int
	p, err := projector.New(projector.Config{DatabaseURL: spec.DatabaseURL, JS: js, Stream: spec.Stream, Prefix: spec.Prefix,
		Consumer: "authbench_projector", BatchSize: spec.Batch, IdleWait: 50 * time.Millisecond, Name: "authbench", Logger: log,
		// On the writer goroutine; read once Run has returned.
		AfterCommit: func(c projector.Committed) {
			inTx += c.Took
			phases.Add(c.Timings)
			batches++
			maxBatch = max(maxBatch, c.Events)
			res.Sizes = append(res.Sizes, c.Events)
		}})
	if err != nil {
		return res, err
	}
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(runCtx) }()
	var heapErr error
	err = waitProgress(ctx, time.Minute, func() uint64 {
		cp := p.Checkpoint()
		if cp >= spec.Last/2 && res.HeapMB == 0 {
			// Half-way: what the replay keeps live.
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			res.HeapMB = float64(m.HeapAlloc) / (1 << 20)
			if spec.HeapProfile != "" {
				heapErr = writeHeapProfile(spec.HeapProfile)
			}
		}
		return cp
	}, spec.Last)
	took := time.Since(start)
	cancel()
	<-done
	if err != nil {
		return res, fmt.Errorf("checkpoint %d of %d: %w", p.Checkpoint(), spec.Last, err)
	}
	if heapErr != nil {
		return res, heapErr
	}
	res.Events, res.TookNs = int(spec.Last), int64(took)
	res.Batches, res.InTxNs, res.Phases, res.MaxBatch = batches, int64(inTx), phases, maxBatch
	res.PeakRSSMB = highWaterMB()
	return res, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runReplica runs the replica as a process of its own (this executable,
// with replicaArg) and returns its figures.
func (r *runner) runReplica(ctx context.Context, spec replicaSpec) (replicaResult, error) {
	var res replicaResult
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	in, err := json.Marshal(spec)
	if err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, exe, replicaArg)
	cmd.Stdin = bytes.NewReader(in)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errOut, r.opts.Progress)
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("%s: %w: %s", exe, err, strings.TrimSpace(errOut.String()))
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return res, fmt.Errorf("its answer %q: %w", out.String(), err)
	}
	return res, nil
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
		for {
			_, err := js.PublishMsgAsync(msg)
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				if err != nil {
					return 0, err
				}
				break
			}
			// The server is slower than the publisher (a loaded
			// machine): wait for the acknowledgements in flight, then
			// publish again.
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				return 0, fmt.Errorf("publish: no acknowledgement for a minute: %w", err)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
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

// writeStats are the server's counters of WAL and checkpoints.
type writeStats struct{ records, fpi, checkpoints, backendBuffers int64 }

func pgWriteStats(ctx context.Context, conn *pgx.Conn) writeStats {
	var w writeStats
	_ = conn.QueryRow(ctx, "SELECT wal_records, wal_fpi FROM pg_stat_wal").Scan(&w.records, &w.fpi)
	_ = conn.QueryRow(ctx, "SELECT checkpoints_timed + checkpoints_req, buffers_backend FROM pg_stat_bgwriter").Scan(&w.checkpoints, &w.backendBuffers)
	return w
}

func (w writeStats) since(o writeStats) string {
	return fmt.Sprintf("%d WAL records, %d full-page images, %d checkpoints, %d buffers written by backends",
		w.records-o.records, w.fpi-o.fpi, w.checkpoints-o.checkpoints, w.backendBuffers-o.backendBuffers)
}

// walLSN is the server's current WAL position ("" if it cannot tell).
func walLSN(ctx context.Context, conn *pgx.Conn) string {
	var lsn string
	_ = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	return lsn
}

// walSince is the WAL written since start, in bytes (0 if unknown).
func walSince(ctx context.Context, conn *pgx.Conn, start string) float64 {
	var n float64
	if start != "" {
		_ = conn.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8", start).Scan(&n)
	}
	return n
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
func rawCopy(ctx context.Context, conn *pgx.Conn) (rows int64, took time.Duration, tables string, err error) {
	data := map[string][]byte{}
	for _, tbl := range readModelTables {
		var buf bytes.Buffer
		if _, err := conn.PgConn().CopyTo(ctx, &buf, "COPY "+projector.Schema+"."+tbl+" TO STDOUT"); err != nil {
			return 0, 0, "", err
		}
		data[tbl] = buf.Bytes()
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.copy_%s (LIKE %s.%s INCLUDING ALL)",
			projector.Schema, tbl, projector.Schema, tbl)); err != nil {
			return 0, 0, "", err
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
		return 0, 0, "", err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var each []string
	for _, tbl := range readModelTables {
		t := time.Now()
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data[tbl]), "COPY "+projector.Schema+".copy_"+tbl+" FROM STDIN")
		if err != nil {
			return 0, 0, "", err
		}
		rows += tag.RowsAffected()
		each = append(each, fmt.Sprintf("%s %d in %s", tbl, tag.RowsAffected(), time.Since(t).Round(time.Millisecond)))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, "", err
	}
	return rows, time.Since(start), strings.Join(each, ", "), nil
}
