package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// The fraud follower (issue 20): the fraud.source_throttled and
// fraud.source_released events of AUTH_FRAUD into auth.fraud_source_events
// (migration 00004; docs/projector.md, "Sources throttled").
//
// Unlike the account streams, these rows need no order and no checkpoint:
// each event is one row keyed by its stream sequence (and its event id
// unique), inserted with ON CONFLICT DO NOTHING, so a redelivery or a
// second replica inserting the same event changes nothing (exactly-once
// effect). The ack goes after the commit, and the commit is synchronous:
// an acked event is on disk. Every replica runs a follower on the one
// durable consumer (the server shares its messages among them); a replica
// whose follower fails retries with backoff, as its partitions do.

// fraudConsumerSuffix names the follower's durable consumer after the
// replica's: Config.Consumer + "_fraud", projector_fraud by default (the
// name the projector's NATS user may use; our choice). Replicas writing to
// another database take another Consumer, and so another fraud consumer,
// rather than sharing the events with this one.
const fraudConsumerSuffix = "_fraud"

// fraudBatch is the most events the follower fetches and inserts in one
// transaction (our choice: throttles are rare, a batch only matters for a
// backlog).
const fraudBatch = 500

// fraudAckWait is how long the server waits for the follower's ack before
// redelivering (to this replica or another): a batch's transaction takes
// milliseconds; a redelivery only costs an insert that does nothing.
const fraudAckWait = 30 * time.Second

// fraudTable is the table the follower writes, qualified.
var fraudTable = pgx.Identifier{Schema, "fraud_source_events"}.Sanitize()

// fraudColumns are the columns of fraud_source_events (migration 00004),
// in the order of fraudRow.args.
const fraudColumns = "seq, event_id, type, source, kind, failures, budget, window_start, window_seconds, until, reason, request_id, occurred_at"

// fraudRow is one event as its row.
type fraudRow struct {
	seq    uint64
	e      events.FraudEvent
	source netip.Prefix
}

func (r fraudRow) args() []any {
	typ := "throttled"
	if r.e.Type == events.TypeSourceReleased {
		typ = "released"
	}
	d := r.e.Data
	return []any{int64(r.seq), r.e.ID, typ, r.source, d.Kind, int64(d.Failures), int64(d.Budget),
		d.WindowStart, d.WindowSeconds, d.Until, nullText(d.Reason), nullText(d.RequestID), r.e.OccurredAt}
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// decodeFraud reads one AUTH_FRAUD message. An error means the message is
// skipped for good (logged, not retried): a body that is not a fraud event
// of a known type, no Auth-Event-Id header or one that is not the body's
// id (not written by the commands service), or values the table would
// refuse (a source that is not a network prefix, an unknown kind, a NUL
// byte), which would otherwise stop the follower at every retry.
func decodeFraud(seq uint64, headerID string, data []byte) (fraudRow, error) {
	e, err := events.UnmarshalFraud(data)
	if err != nil {
		return fraudRow{}, err
	}
	if headerID == "" || headerID != e.ID {
		return fraudRow{}, fmt.Errorf("fraud event: %s header %q, body id %q: %w", eventstore.HeaderEventID, headerID, e.ID, events.ErrNotAppended)
	}
	d := e.Data
	src, err := netip.ParsePrefix(d.Source)
	if err != nil || src != src.Masked() {
		return fraudRow{}, fmt.Errorf("fraud event %s: source %q is not a network prefix", e.ID, d.Source)
	}
	if d.Kind != events.SourceKindIP && d.Kind != events.SourceKindPrefix {
		return fraudRow{}, fmt.Errorf("fraud event %s: unknown source kind %q", e.ID, d.Kind)
	}
	for _, s := range []string{e.ID, d.Reason, d.RequestID} {
		if strings.ContainsRune(s, 0) {
			return fraudRow{}, fmt.Errorf("fraud event %s: a NUL byte in a text field", e.ID)
		}
	}
	return fraudRow{seq: seq, e: e, source: src}, nil
}

// startFraud starts the replica's fraud follower; the function it returns
// waits for the follower's end, which comes with ctx's.
func (p *Projector) startFraud(ctx context.Context) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		newFraudFollower(p).run(ctx)
	}()
	return func() { <-done }
}

// fraudFollower is one replica's follower of AUTH_FRAUD.
type fraudFollower struct {
	js       jetstream.JetStream
	pgcfg    *pgx.ConnConfig
	consumer string
	subjects string
	batch    int
	idle     time.Duration
	min, max time.Duration
	log      *slog.Logger
}

func newFraudFollower(p *Projector) *fraudFollower {
	pgcfg := p.pgcfg.Copy()
	// Acked means stored: there is no checkpoint to replay from.
	pgcfg.RuntimeParams["synchronous_commit"] = "on"
	return &fraudFollower{js: p.cfg.JS, pgcfg: pgcfg, consumer: p.cfg.Consumer + fraudConsumerSuffix,
		subjects: contract.Subjects(p.cfg.Prefix).AllFraud(), batch: fraudBatch, idle: p.cfg.IdleWait,
		min: p.cfg.MinBackoff, max: p.cfg.MaxBackoff, log: p.log.With("stream", contract.FraudStream)}
}

// run follows the stream until ctx ends, retrying failures with backoff
// (full jitter, MinBackoff to MaxBackoff): a missing AUTH_FRAUD (the
// commands service has not started yet), NATS or Postgres down.
func (f *fraudFollower) run(ctx context.Context) {
	delay := f.min
	for {
		progressed, err := f.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			delay = f.min
		}
		wait := delay/2 + rand.N(delay/2+1)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			f.log.Info("projector: fraud events: waiting for a stream the commands service creates", "in", wait.Round(time.Millisecond))
		} else {
			f.log.Warn("projector: fraud events: retrying", "err", err, "in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(delay*2, f.max)
	}
}

// session creates (or finds) the durable consumer, connects to Postgres,
// and inserts what it fetches until something fails or ctx ends.
func (f *fraudFollower) session(ctx context.Context) (progressed bool, err error) {
	cons, err := f.js.CreateOrUpdateConsumer(ctx, contract.FraudStream, jetstream.ConsumerConfig{
		Durable:       f.consumer,
		Description:   "Sources throttled and released into Postgres (cmd/projector, auth.fraud_source_events); shared by the replicas.",
		FilterSubject: f.subjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       fraudAckWait,
		MaxAckPending: 4 * f.batch,
		MaxDeliver:    -1,
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("stream %s not found: the commands service creates it at its start: %w", contract.FraudStream, err)
	}
	if err != nil {
		return false, fmt.Errorf("consumer %s on %s: %w", f.consumer, contract.FraudStream, err)
	}
	conn, err := pgx.ConnectConfig(ctx, f.pgcfg)
	if err != nil {
		return false, fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	lastPG := time.Now()
	for ctx.Err() == nil {
		msgs, err := f.fetch(ctx, cons)
		if err != nil {
			return progressed, fmt.Errorf("fetch from %s: %w", contract.FraudStream, err)
		}
		if len(msgs) == 0 {
			// Quiet: notice a dead Postgres before the next event.
			if time.Since(lastPG) > 5*time.Second {
				if err := conn.Ping(ctx); err != nil && ctx.Err() == nil {
					return progressed, fmt.Errorf("postgres: %w", err)
				}
				lastPG = time.Now()
			}
			continue
		}
		// The batch finishes even if a stop is asked meanwhile.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		n, err := f.apply(wctx, conn, msgs)
		cancel()
		lastPG = time.Now()
		if err != nil {
			return progressed, err // nothing acked: redelivered
		}
		if n > 0 {
			progressed = true
		}
	}
	return progressed, nil
}

// apply inserts the batch's events in one transaction, then acks each
// message (a skipped one is terminated: never redelivered). It returns the
// rows inserted (a redelivered event inserts none).
func (f *fraudFollower) apply(ctx context.Context, conn *pgx.Conn, msgs []jetstream.Msg) (int, error) {
	rows := make([]fraudRow, 0, len(msgs))
	var skip []jetstream.Msg
	var keep []jetstream.Msg
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return 0, fmt.Errorf("message metadata: %w", err)
		}
		r, err := decodeFraud(md.Sequence.Stream, m.Headers().Get(eventstore.HeaderEventID), m.Data())
		if err != nil {
			f.log.Error("projector: fraud events: skipped a message it cannot read", "seq", md.Sequence.Stream, "err", err)
			skip = append(skip, m)
			continue
		}
		rows = append(rows, r)
		keep = append(keep, m)
	}
	n, err := f.insert(ctx, conn, rows)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && refusedValue(pgErr) {
		// A value the table refuses that decodeFraud let through: find
		// it, one row at a time, and skip it rather than stop here.
		n = 0
		msgOf := keep
		keep = nil
		for i, r := range rows {
			k, err := f.insert(ctx, conn, rows[i:i+1])
			if errors.As(err, &pgErr) && refusedValue(pgErr) {
				f.log.Error("projector: fraud events: skipped an event the table refuses", "seq", r.seq, "err", err)
				skip = append(skip, msgOf[i])
				continue
			}
			if err != nil {
				return 0, err
			}
			n += k
			keep = append(keep, msgOf[i])
		}
	} else if err != nil {
		return 0, err
	}
	// After the commit: a lost ack is a redelivery that inserts nothing.
	for _, m := range keep {
		_ = m.Ack()
	}
	for _, m := range skip {
		_ = m.TermWithReason("unreadable fraud event")
	}
	if n > 0 {
		f.log.Debug("projector: fraud events stored", "events", n)
	}
	return n, nil
}

// refusedValue tells a Postgres error about the data (class 22, data
// exception, or 23, integrity constraint) from one about the session.
func refusedValue(e *pgconn.PgError) bool {
	return strings.HasPrefix(e.Code, "22") || strings.HasPrefix(e.Code, "23")
}

// insert writes rows in one committed transaction and returns how many
// were new.
func (f *fraudFollower) insert(ctx context.Context, conn *pgx.Conn, rows []fraudRow) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("fraud events: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	b := &pgx.Batch{}
	q := "INSERT INTO " + fraudTable + " (" + fraudColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING"
	for _, r := range rows {
		b.Queue(q, r.args()...)
	}
	br := tx.SendBatch(ctx, b)
	n := 0
	for range rows {
		tag, err := br.Exec()
		if err != nil {
			_ = br.Close()
			return 0, fmt.Errorf("fraud events: insert: %w", err)
		}
		n += int(tag.RowsAffected())
	}
	if err := br.Close(); err != nil {
		return 0, fmt.Errorf("fraud events: insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("fraud events: commit: %w", err)
	}
	return n, nil
}

// fetch returns what is there at once, else the first event to come
// within the idle wait and what follows it; nothing when the stream is
// quiet.
func (f *fraudFollower) fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, error) {
	msgs, err := drain(cons.FetchNoWait(f.batch))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	wctx, cancel := context.WithTimeout(ctx, f.idle)
	defer cancel()
	msgs, err = drain(cons.Fetch(1, jetstream.FetchContext(wctx)))
	if len(msgs) == 0 {
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, nil
	}
	more, err := drain(cons.FetchNoWait(f.batch - 1))
	if err != nil {
		return msgs, nil // what arrived is good; the next fetch will tell
	}
	return append(msgs, more...), nil
}

// drain reads a whole fetch: its messages and the error that ended it.
func drain(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	return msgs, b.Error()
}

// carryFraudSources copies the live fraud_source_events rows into the
// shadow schema, inside the swap's transaction (after the live tables are
// locked, so the follower's inserts wait and then go to the new table):
// they come from AUTH_FRAUD, not from the account streams a rebuild
// replays. A live schema from before migration 00004 has none.
func carryFraudSources(ctx context.Context, tx pgx.Tx) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", fraudTable).Scan(&exists); err != nil {
		return fmt.Errorf("swap: find the sources throttled: %w", err)
	}
	if !exists {
		return nil
	}
	shadow := pgx.Identifier{shadowSchema, "fraud_source_events"}.Sanitize()
	if _, err := tx.Exec(ctx, "INSERT INTO "+shadow+" ("+fraudColumns+") SELECT "+fraudColumns+" FROM "+fraudTable+" ON CONFLICT DO NOTHING"); err != nil {
		return fmt.Errorf("swap: keep the sources throttled: %w", err)
	}
	return nil
}
