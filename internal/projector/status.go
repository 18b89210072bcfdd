package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
)

// StatusConfig says where the streams and the database are.
type StatusConfig struct {
	DatabaseURL string
	JS          jetstream.JetStream
	Stream      string // default AUTH_EVENTS; only with one partition (the layout names the streams of several)
	Prefix      string // default auth
	// Partitions is AUTH_PARTITIONS (0 or 1: one, the stream AUTH_EVENTS).
	Partitions int
	Clock      clock.Clock // what LagSeconds is measured by; default the system clock
	// Consumer is the projector's durable consumer name (AUTH_PROJECTOR's
	// Config.Consumer), default projector: the fraud follower's is
	// Consumer + "_fraud".
	Consumer string
}

func (c *StatusConfig) setDefaults() error {
	if c.JS == nil {
		return errors.New("status: no JetStream handle")
	}
	if c.Partitions < 0 || c.Partitions > contract.MaxPartitions {
		return fmt.Errorf("status: %d partitions, want 1 to %d", c.Partitions, contract.MaxPartitions)
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	return nil
}

// streams are the partitions' streams and their subject filters.
func (c *StatusConfig) streams() (names, subjects []string) {
	l := contract.Layout{Prefix: c.Prefix, Partitions: c.Partitions}
	for p := range l.N() {
		names, subjects = append(names, l.Stream(p)), append(subjects, l.StreamSubjects(p))
	}
	if !l.Split() {
		names[0] = c.Stream
	}
	return names, subjects
}

// Status is how far the read models are behind the streams. With one
// partition its totals are the stream's; with several, sums over the
// partitions (checkpoints, last sequences, events behind) and the worst
// of them (the oldest event not applied), and Partitions has each one.
type Status struct {
	Checkpoint    uint64    // stream sequence of the last applied event (summed)
	LastEventAt   time.Time // when that event happened (the latest of the partitions')
	UpdatedAt     time.Time // when a checkpoint last moved
	StreamLastSeq uint64    // (summed)
	LagEvents     uint64    // events in the streams after the checkpoints
	// LagSeconds is the age of the oldest event not applied yet, in any
	// partition: 0 when the read models are up to date.
	LagSeconds float64
	// Leader is the active replica (its application_name and the pid of
	// its session), "" if none; with several partitions, the replicas
	// leading at least one, by application name, comma-separated.
	Leader          string
	Rebuilding      bool // a rebuild holds its lock
	SchemaVersion   int64
	LatestMigration int64
	Partitions      []PartitionStatus // partition 0 first
	// Fraud is the fraud follower's progress on AUTH_FRAUD (the sources
	// throttled read model, issue 20).
	Fraud FraudStatus
}

// FraudStatus is how far auth.fraud_source_events is behind AUTH_FRAUD:
// its durable consumer's events not yet acknowledged (delivered or not)
// and the age of the oldest of them. Found is false when the consumer
// does not exist (no projector has run since the fraud read model came).
type FraudStatus struct {
	Consumer   string  // durable consumer name, projector_fraud by default
	Found      bool    // the consumer exists
	LagEvents  uint64  // events not acknowledged yet
	LagSeconds float64 // age of the oldest of them; 0 when LagEvents is 0
}

// PartitionStatus is one partition's checkpoint and lag.
type PartitionStatus struct {
	Partition     int
	Stream        string // its events stream
	Checkpoint    uint64 // 0 for a partition no replica has led yet
	LastEventAt   time.Time
	UpdatedAt     time.Time
	StreamLastSeq uint64
	LagEvents     uint64
	LagSeconds    float64
	Leader        string // the session leading it (application_name and pid), "" if none
}

// checkpointRow is a partition's row of auth.projector_checkpoint.
type checkpointRow struct {
	seq       uint64
	eventAt   time.Time
	updatedAt time.Time
}

// readCheckpoints reads every partition's checkpoint row, by partition;
// it fails when the table has none (not migrated).
func readCheckpoints(ctx context.Context, db Querier) (map[int]checkpointRow, error) {
	rows, err := db.Query(ctx, "SELECT partition, last_seq, last_event_at, updated_at FROM "+
		pgx.Identifier{Schema, "projector_checkpoint"}.Sanitize()+" WHERE projection = $1", Schema)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints (run `authctl migrate` first?): %w", err)
	}
	defer rows.Close()
	out := map[int]checkpointRow{}
	for rows.Next() {
		var p int
		var seq int64
		var at *time.Time
		var r checkpointRow
		if err := rows.Scan(&p, &seq, &at, &r.updatedAt); err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		r.seq = uint64(seq)
		if at != nil {
			r.eventAt = *at
		}
		out[p] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints (run `authctl migrate` first?): %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("read checkpoints: no checkpoint row (run `authctl migrate` first?)")
	}
	return out, nil
}

// ReadStatus reads the checkpoints and the streams' ends.
func ReadStatus(ctx context.Context, cfg StatusConfig) (Status, error) {
	var st Status
	if cfg.DatabaseURL == "" {
		return st, ErrNoDatabase
	}
	if err := cfg.setDefaults(); err != nil {
		return st, err
	}
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return st, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	cps, err := readCheckpoints(ctx, conn)
	if err != nil {
		return st, err
	}
	names, subjects := cfg.streams()
	now := cfg.Clock.Now()
	var leaders []string
	for p, name := range names {
		cp := cps[p]
		ps := PartitionStatus{Partition: p, Stream: name, Checkpoint: cp.seq, LastEventAt: cp.eventAt, UpdatedAt: cp.updatedAt}
		if ps.Leader, err = lockHolder(ctx, conn, leaderLock(p, len(names))); err != nil {
			return st, err
		}
		ps.StreamLastSeq, ps.LagEvents, ps.LagSeconds, err = streamLag(ctx, cfg.JS, name, subjects[p], ps.Checkpoint, now)
		if err != nil {
			return st, err
		}
		st.Partitions = append(st.Partitions, ps)
		st.Checkpoint += ps.Checkpoint
		st.StreamLastSeq += ps.StreamLastSeq
		st.LagEvents += ps.LagEvents
		st.LagSeconds = max(st.LagSeconds, ps.LagSeconds)
		if ps.LastEventAt.After(st.LastEventAt) {
			st.LastEventAt = ps.LastEventAt
		}
		if ps.UpdatedAt.After(st.UpdatedAt) {
			st.UpdatedAt = ps.UpdatedAt
		}
		if app, _, _ := strings.Cut(ps.Leader, " (pid "); app != "" && !slices.Contains(leaders, app) {
			leaders = append(leaders, app)
		}
	}
	st.Leader = strings.Join(leaders, ", ")
	if len(names) == 1 {
		st.Leader = st.Partitions[0].Leader
	}
	rb, err := lockHolder(ctx, conn, lockKey("rebuild", Schema))
	if err != nil {
		return st, err
	}
	st.Rebuilding = rb != ""
	if st.Fraud, err = fraudLag(ctx, cfg.JS, cfg.Consumer+fraudConsumerSuffix, now); err != nil {
		return st, err
	}
	st.SchemaVersion, st.LatestMigration, err = MigrationVersion(ctx, cfg.DatabaseURL)
	return st, err
}

// fraudLag reads the fraud follower's consumer on AUTH_FRAUD: the events
// after its ack floor and the age of the first of them. A missing stream
// or consumer is not an error (Found false).
func fraudLag(ctx context.Context, js jetstream.JetStream, consumer string, now time.Time) (FraudStatus, error) {
	fs := FraudStatus{Consumer: consumer}
	c, err := js.Consumer(ctx, contract.FraudStream, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return fs, nil
	}
	if err != nil {
		return fs, fmt.Errorf("fraud follower's consumer %s: %w", consumer, err)
	}
	info := c.CachedInfo()
	fs.Found = true
	fs.LagEvents = info.NumPending + uint64(info.NumAckPending)
	if fs.LagEvents == 0 {
		return fs, nil
	}
	st, err := js.Stream(ctx, contract.FraudStream)
	if err != nil {
		return fs, fmt.Errorf("stream %s: %w", contract.FraudStream, err)
	}
	m, err := st.GetMsg(ctx, info.AckFloor.Stream+1, jetstream.WithGetMsgSubject(">"))
	switch {
	case err == nil:
		fs.LagSeconds = max(0, now.Sub(m.Time).Seconds())
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return fs, fmt.Errorf("oldest unacknowledged event of %s: %w", contract.FraudStream, err)
	}
	return fs, nil
}

// streamLag reads the stream's last sequence, the events after checkpoint
// and the age at now of the first of them (0 when there are none).
func streamLag(ctx context.Context, js jetstream.JetStream, streamName, subjects string, checkpoint uint64, now time.Time) (last, events uint64, seconds float64, err error) {
	stream, err := js.Stream(ctx, streamName) // a stream info request
	if err != nil {
		return 0, 0, 0, fmt.Errorf("stream %s: %w", streamName, err)
	}
	last = stream.CachedInfo().State.LastSeq
	if last <= checkpoint {
		return last, 0, 0, nil
	}
	events = last - checkpoint
	// The first event after the checkpoint (deleted sequences skipped).
	m, err := stream.GetMsg(ctx, checkpoint+1, jetstream.WithGetMsgSubject(subjects))
	switch {
	case err == nil:
		seconds = max(0, now.Sub(m.Time).Seconds())
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return last, events, 0, fmt.Errorf("oldest unapplied event of %s: %w", streamName, err)
	}
	return last, events, seconds, nil
}

// Querier is what ReadLag reads the checkpoints with: a *pgx.Conn or a
// *pgxpool.Pool.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Lag is how far the read models are behind the streams: with several
// partitions, the events summed and the age of the oldest of all, so that
// the partition furthest behind decides readiness.
type Lag struct {
	Checkpoint uint64  // the last applied event's stream sequence (summed over the partitions)
	Events     uint64  // events in the streams after the checkpoints
	Seconds    float64 // age of the oldest of them by the stream's timestamp; 0 when Events is 0
}

// ReadLag reads the read models' lag: the checkpoints over db (one query)
// and each partition's stream end (a stream info and a message get), as
// `authctl projections status` does, but on a connection the caller keeps
// (the ops page's, for /readyz and /metrics); of cfg it uses JS, Stream,
// Prefix, Partitions and Clock. It measures the read models, whichever
// replicas lead; a partition no replica has led yet counts from 0; it
// fails before the first migration (no checkpoint table yet). Ages are by
// cfg.Clock.
func ReadLag(ctx context.Context, db Querier, cfg StatusConfig) (Lag, error) {
	if err := cfg.setDefaults(); err != nil {
		return Lag{}, err
	}
	cps, err := readCheckpoints(ctx, db)
	if err != nil {
		return Lag{}, err
	}
	names, subjects := cfg.streams()
	now := cfg.Clock.Now()
	var lag Lag
	for p, name := range names {
		cp := cps[p].seq
		_, events, seconds, err := streamLag(ctx, cfg.JS, name, subjects[p], cp, now)
		if err != nil {
			return lag, err
		}
		lag.Checkpoint += cp
		lag.Events += events
		lag.Seconds = max(lag.Seconds, seconds)
	}
	return lag, nil
}

// lockHolder names the session holding an advisory lock, "" if none.
func lockHolder(ctx context.Context, conn *pgx.Conn, key int64) (string, error) {
	var name string
	err := conn.QueryRow(ctx, `SELECT coalesce(a.application_name, '') || ' (pid ' || l.pid || ')'
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid AND l.objsubid = 1
		LIMIT 1`, uint64(key)>>32, uint64(key)&0xffffffff).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lock holder: %w", err)
	}
	return name, nil
}
