package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// record is one event of a batch, decoded and reduced before the
// transaction opens, so the transaction only writes.
type record struct {
	seq     uint64
	at      time.Time
	stmts   []projections.Statement
	attempt bool // a login attempt, which leaves the stream after its retention (events.IsAttempt)
}

// decode reads one stream message into a record: its sequence, subject,
// Auth-Event-Id header and data. An error wrapping events.ErrNotAppended
// says the message is not an event the commands service appended.
func decode(seq uint64, subject, eventID string, data []byte) (record, error) {
	if eventID == "" {
		return record{}, events.VerifyStored(subject, eventID, events.Envelope{})
	}
	env, err := events.Unmarshal(data)
	if err != nil {
		return record{}, fmt.Errorf("event at stream sequence %d cannot be read by this build (deploy a projector that knows it): %w", seq, err)
	}
	if err := events.VerifyStored(subject, eventID, env); err != nil {
		return record{}, err
	}
	return record{seq: seq, at: env.OccurredAt, stmts: projections.Reduce(seq, env), attempt: events.IsAttempt(env.Data)}, nil
}

// holesFunc tells whether the stream holds no event at any sequence of
// [from, to] (deleted or purged). The projector applies sequence c+1 after
// checkpoint c and nothing else: a hole the stream does not explain means a
// delivery went astray (a redelivery, a stale consumer), never "skip it".
type holesFunc func(ctx context.Context, from, to uint64) (empty bool, err error)

// batchResult says what a batch transaction did.
type batchResult struct {
	checkpoint  uint64    // the checkpoint after the transaction
	lastEventAt time.Time // time of the event at checkpoint (when applied here)
	applied     int       // events applied
	first, last uint64    // their sequences
	gap         bool      // stopped before an event still missing: restart delivery at checkpoint+1
	// stale: the checkpoint was not the one the batch follows (another
	// writer moved it, a rebuild swapped the tables): nothing was applied,
	// restart delivery at checkpoint+1.
	stale   bool
	took    time.Duration
	timings Timings
}

// beginner is a connection, or a transaction (the batch is then a
// savepoint: the rebuild's last catch-up runs inside the swap).
type beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// errFault is returned by a test hook to abort a batch before its commit.
var errFault = errors.New("injected fault")

// applyFolded applies a streamed batch in one transaction, if the
// checkpoint is still the one it follows (b.base), and moves the
// checkpoint to b.last; otherwise it applies nothing and says stale. So a
// batch is applied exactly once, at its place in the stream. beforeCommit,
// if set, runs last inside the transaction (tests abort there).
func (x *executor) applyFolded(ctx context.Context, db beginner, b *batch, swapLock bool, beforeCommit func() error) (res batchResult, err error) {
	start := time.Now()
	tx, cp, err := x.beginBatch(ctx, db, swapLock)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	res.checkpoint = cp
	if cp != b.base || b.events == 0 {
		res.stale = cp != b.base
		return res, tx.Commit(ctx)
	}
	res.timings.Begin = time.Since(start)
	if err = x.writeBatch(ctx, tx, b, &res, beforeCommit); err != nil {
		return res, err
	}
	res.took = time.Since(start)
	return res, nil
}

// applyBatch applies, in one transaction, the records that follow the
// checkpoint without a hole, and moves the checkpoint to the last of them.
// Records at or below the checkpoint are skipped: applied before, by this
// replica or another. beforeCommit, if set, runs last inside the
// transaction (tests abort there). The replicas stream their batches
// (applyFolded); this is the same transaction for records at hand.
func (x *executor) applyBatch(ctx context.Context, db beginner, recs []record, holes holesFunc,
	swapLock bool, beforeCommit func() error) (res batchResult, err error) {
	start := time.Now()
	tx, cp, err := x.beginBatch(ctx, db, swapLock)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	res.checkpoint = cp

	b := &batch{base: cp, last: cp}
	var scratch copyData
	next := cp + 1
	for i := range recs {
		r := &recs[i]
		if r.seq < next {
			continue
		}
		if r.seq > next {
			empty, herr := holes(ctx, next, r.seq-1)
			if herr != nil {
				return res, fmt.Errorf("check stream sequences %d-%d: %w", next, r.seq-1, herr)
			}
			if !empty {
				res.gap = true
				break
			}
		}
		b.cost(x, r, &scratch)
		b.add(r, &scratch)
		next = r.seq + 1
	}
	if b.events == 0 {
		return res, tx.Commit(ctx)
	}
	b.finish(x)
	res.timings.Begin = time.Since(start)
	if err = x.writeBatch(ctx, tx, b, &res, beforeCommit); err != nil {
		return res, err
	}
	res.took = time.Since(start)
	return res, nil
}

// beginBatch opens a batch's transaction, takes the swap lock (shared)
// when asked, and locks and reads the checkpoint.
func (x *executor) beginBatch(ctx context.Context, db beginner, swapLock bool) (pgx.Tx, uint64, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("begin: %w", err)
	}
	if swapLock {
		// Shared with every batch, exclusive for a rebuild's swap: a batch
		// never straddles the swap, and resolves the table names after it.
		if _, err = tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", lockKey("swap", Schema)); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return nil, 0, fmt.Errorf("swap lock: %w", err)
		}
	}
	var last int64
	if err = tx.QueryRow(ctx, x.sql.lockCheckpoint, projections.Name, x.partition).Scan(&last); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, 0, fmt.Errorf("read checkpoint: %w", err)
	}
	return tx, uint64(last), nil
}

// writeBatch writes b's rows and moves the checkpoint to b.last, then
// commits: rows and checkpoint in one transaction.
func (x *executor) writeBatch(ctx context.Context, tx pgx.Tx, b *batch, res *batchResult, beforeCommit func() error) error {
	if err := x.exec(ctx, tx, b.ready, &res.timings); err != nil {
		return err
	}
	commitStart := time.Now()
	if _, err := tx.Exec(ctx, x.sql.updateCheckpoint, projections.Name, x.partition, int64(b.last), nullTime(b.lastAt)); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	res.checkpoint, res.lastEventAt = b.last, b.lastAt
	res.applied, res.first, res.last = b.events, b.first, b.last
	res.timings.Commit = time.Since(commitStart)
	return nil
}

// readCheckpoint returns the projection's checkpoint in schema's tables.
func (x *executor) readCheckpoint(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (uint64, time.Time, error) {
	var seq int64
	var at *time.Time
	if err := q.QueryRow(ctx, x.sql.readCheckpointNoLck, projections.Name, x.partition).Scan(&seq, &at); err != nil {
		return 0, time.Time{}, fmt.Errorf("read checkpoint in %s: %w", x.schema, err)
	}
	if at == nil {
		return uint64(seq), time.Time{}, nil
	}
	return uint64(seq), *at, nil
}
