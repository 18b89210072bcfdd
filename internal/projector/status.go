package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
)

// StatusConfig says where the stream and the database are.
type StatusConfig struct {
	DatabaseURL string
	JS          jetstream.JetStream
	Stream      string      // default AUTH_EVENTS
	Prefix      string      // default auth
	Clock       clock.Clock // what LagSeconds is measured by; default the system clock
}

// Status is how far the read models are behind the stream.
type Status struct {
	Checkpoint    uint64    // stream sequence of the last applied event
	LastEventAt   time.Time // when that event happened
	UpdatedAt     time.Time // when the checkpoint last moved
	StreamLastSeq uint64
	LagEvents     uint64 // events in the stream after the checkpoint
	// LagSeconds is the age of the oldest event not applied yet: 0 when the
	// read models are up to date.
	LagSeconds      float64
	Leader          string // the active replica (its application_name), "" if none
	Rebuilding      bool   // a rebuild holds its lock
	SchemaVersion   int64
	LatestMigration int64
}

// ReadStatus reads the checkpoint and the stream's end.
func ReadStatus(ctx context.Context, cfg StatusConfig) (Status, error) {
	var st Status
	if cfg.DatabaseURL == "" {
		return st, ErrNoDatabase
	}
	if cfg.JS == nil {
		return st, errors.New("status: no JetStream handle")
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return st, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var last int64
	var lastAt *time.Time
	err = conn.QueryRow(ctx, "SELECT last_seq, last_event_at, updated_at FROM "+pgx.Identifier{Schema, "projector_checkpoint"}.Sanitize()+
		" WHERE projection = $1", Schema).Scan(&last, &lastAt, &st.UpdatedAt)
	if err != nil {
		return st, fmt.Errorf("read checkpoint (run `authctl migrate` first?): %w", err)
	}
	st.Checkpoint = uint64(last)
	if lastAt != nil {
		st.LastEventAt = *lastAt
	}
	st.Leader, err = lockHolder(ctx, conn, lockKey("leader", Schema))
	if err != nil {
		return st, err
	}
	rb, err := lockHolder(ctx, conn, lockKey("rebuild", Schema))
	if err != nil {
		return st, err
	}
	st.Rebuilding = rb != ""
	if st.SchemaVersion, st.LatestMigration, err = MigrationVersion(ctx, cfg.DatabaseURL); err != nil {
		return st, err
	}

	st.StreamLastSeq, st.LagEvents, st.LagSeconds, err = streamLag(ctx, cfg.JS, cfg.Stream, cfg.Prefix, st.Checkpoint, cfg.Clock.Now())
	return st, err
}

// streamLag reads the stream's last sequence, the events after checkpoint
// and the age at now of the first of them (0 when there are none).
func streamLag(ctx context.Context, js jetstream.JetStream, streamName, prefix string, checkpoint uint64, now time.Time) (last, events uint64, seconds float64, err error) {
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
	m, err := stream.GetMsg(ctx, checkpoint+1, jetstream.WithGetMsgSubject(contract.Subjects(prefix).AllEvents()))
	switch {
	case err == nil:
		seconds = max(0, now.Sub(m.Time).Seconds())
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return last, events, 0, fmt.Errorf("oldest unapplied event: %w", err)
	}
	return last, events, seconds, nil
}

// Querier is what ReadLag reads the checkpoint with: a *pgx.Conn or a
// *pgxpool.Pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Lag is how far the read models are behind the stream.
type Lag struct {
	Checkpoint uint64  // the last applied event's stream sequence
	Events     uint64  // events in the stream after it
	Seconds    float64 // age of the first of them by the stream's timestamp; 0 when Events is 0
}

// ReadLag reads the read models' lag: the checkpoint over db (one query)
// and the stream's end (a stream info and a message get), as
// `authctl projections status` does, but on a connection the caller keeps
// (the ops page's, for /readyz and /metrics); of cfg it uses JS, Stream,
// Prefix and Clock. It measures the read models,
// whichever replica leads; it fails before the first migration (no
// checkpoint table yet). Ages are by the system clock.
func ReadLag(ctx context.Context, db Querier, cfg StatusConfig) (Lag, error) {
	if cfg.JS == nil {
		return Lag{}, errors.New("lag: no JetStream handle")
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	var cp int64
	err := db.QueryRow(ctx, "SELECT last_seq FROM "+pgx.Identifier{Schema, "projector_checkpoint"}.Sanitize()+
		" WHERE projection = $1", Schema).Scan(&cp)
	if err != nil {
		return Lag{}, fmt.Errorf("read checkpoint: %w", err)
	}
	lag := Lag{Checkpoint: uint64(cp)}
	_, lag.Events, lag.Seconds, err = streamLag(ctx, cfg.JS, cfg.Stream, cfg.Prefix, lag.Checkpoint, cfg.Clock.Now())
	return lag, err
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
