package notifier

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/ameli-auth/authsvc/internal/mail"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Schema is the Postgres schema the notifier owns; its migrations are
// versioned in Schema.goose_db_version, apart from other components'.
const Schema = "notifier"

// migrationLockID is the advisory lock that keeps two notifiers starting
// together from migrating at once ("notifier" in ASCII). It differs from
// goose's default so the projector's migrations do not wait on ours.
const migrationLockID int64 = 0x6e6f746966696572

// Store is the notifier's record of mails, in Postgres.
type Store struct {
	pool *pgxpool.Pool
}

// OpenStore connects to Postgres and brings the notifier schema up to date.
func OpenStore(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	if url == "" {
		return nil, errors.New("notifier: no database URL")
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("notifier: database: %w", err)
	}
	if err := Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// Migrate creates the notifier schema and runs the embedded migrations with
// goose's Provider (no global state: the projector runs its own).
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	// goose keeps its version table inside the schema, so the schema comes
	// first, under a lock: CREATE SCHEMA IF NOT EXISTS races with itself.
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+Schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("notifier: create schema %s: %w", Schema, err)
	}
	migrations, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 120))
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations,
		goose.WithTableName(Schema+".goose_db_version"),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker),
		goose.WithSlog(log.With("migrations", Schema)))
	if err != nil {
		return fmt.Errorf("notifier: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("notifier: migrate: %w", err)
	}
	return nil
}

// Status of a record.
const (
	StatusSending = "sending"
	StatusSent    = "sent"
	StatusExpired = "expired"
	StatusFailed  = "failed"
)

// claim is the outcome of Claim.
type claim int

const (
	claimed   claim = iota // this worker may send
	claimDone              // sent, expired or dead-lettered: nothing to do
	claimBusy              // another worker holds a live claim
)

// Claim takes the event for this worker before the mail goes out: a new
// row (status sending), or a row left sending whose claim ran out (its
// worker died) or was released after a failure. A row that says sent,
// expired or failed is left alone: that event is done.
func (s *Store) Claim(ctx context.Context, eventID, accountID string, kind mail.Kind, owner string, lease time.Duration) (claim, error) {
	var attempts int
	err := s.pool.QueryRow(ctx, `
INSERT INTO notifier.sent AS s (event_id, account_id, kind, status, attempts, claimed_by, claimed_until)
VALUES ($1, $2, $3, 'sending', 1, $4, now() + $5 * interval '1 millisecond')
ON CONFLICT (event_id) DO UPDATE
   SET attempts = s.attempts + 1, claimed_by = EXCLUDED.claimed_by,
       claimed_until = EXCLUDED.claimed_until, updated_at = now()
 WHERE s.status = 'sending' AND (s.claimed_until IS NULL OR s.claimed_until <= now())
RETURNING s.attempts`, eventID, accountID, string(kind), owner, lease.Milliseconds()).Scan(&attempts)
	if err == nil {
		return claimed, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("claim %s: %w", eventID, err)
	}
	var status string
	if err := s.pool.QueryRow(ctx, `SELECT status FROM notifier.sent WHERE event_id = $1`, eventID).Scan(&status); err != nil {
		return 0, fmt.Errorf("claim %s: %w", eventID, err)
	}
	if status == StatusSending {
		return claimBusy, nil
	}
	return claimDone, nil
}

// MarkSent records that the SMTP server accepted the mail.
func (s *Store) MarkSent(ctx context.Context, eventID, messageID string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `
UPDATE notifier.sent SET status = 'sent', sent_at = $2, message_id = $3, claimed_by = NULL,
       claimed_until = NULL, last_error = NULL, updated_at = now()
 WHERE event_id = $1`, eventID, at, messageID)
	if err != nil {
		return fmt.Errorf("mark %s sent: %w", eventID, err)
	}
	return nil
}

// Release gives a claim back after a failed attempt, so the next delivery
// can claim it at once; lastError must not carry an address or a code.
func (s *Store) Release(ctx context.Context, eventID, owner, lastError string) error {
	_, err := s.pool.Exec(ctx, `
UPDATE notifier.sent SET claimed_by = NULL, claimed_until = NULL, last_error = $3, updated_at = now()
 WHERE event_id = $1 AND claimed_by = $2 AND status = 'sending'`, eventID, owner, lastError)
	if err != nil {
		return fmt.Errorf("release %s: %w", eventID, err)
	}
	return nil
}

// MarkExpired records an event whose mail was out of date when its turn
// came, unless the event already has a record (recorded false).
func (s *Store) MarkExpired(ctx context.Context, eventID, accountID string, kind mail.Kind) (recorded bool, err error) {
	tag, err := s.pool.Exec(ctx, `
INSERT INTO notifier.sent (event_id, account_id, kind, status) VALUES ($1, $2, $3, 'expired')
ON CONFLICT (event_id) DO NOTHING`, eventID, accountID, string(kind))
	if err != nil {
		return false, fmt.Errorf("mark %s expired: %w", eventID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkFailed records an event handed to the dead-letter stream (unless its
// mail was sent meanwhile).
func (s *Store) MarkFailed(ctx context.Context, eventID, accountID string, kind mail.Kind, reason string) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO notifier.sent AS s (event_id, account_id, kind, status, last_error) VALUES ($1, $2, $3, 'failed', $4)
ON CONFLICT (event_id) DO UPDATE
   SET status = 'failed', last_error = EXCLUDED.last_error, claimed_by = NULL, claimed_until = NULL, updated_at = now()
 WHERE s.status <> 'sent'`, eventID, accountID, string(kind), reason)
	if err != nil {
		return fmt.Errorf("mark %s failed: %w", eventID, err)
	}
	return nil
}

// Record is one row of notifier.sent.
type Record struct {
	EventID   string
	AccountID string
	Kind      mail.Kind
	Status    string
	Attempts  int
	SentAt    time.Time // zero unless sent
	MessageID string
	LastError string
}

// ErrNoRecord: the event has no record.
var ErrNoRecord = errors.New("notifier: no record for this event")

// Record returns the record of an event (for support tools and tests).
func (s *Store) Record(ctx context.Context, eventID string) (Record, error) {
	var r Record
	var kind string
	var sentAt *time.Time
	var msgID, lastErr *string
	err := s.pool.QueryRow(ctx, `
SELECT event_id, account_id, kind, status, attempts, sent_at, message_id, last_error
  FROM notifier.sent WHERE event_id = $1`, eventID).
		Scan(&r.EventID, &r.AccountID, &kind, &r.Status, &r.Attempts, &sentAt, &msgID, &lastErr)
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, ErrNoRecord
	}
	if err != nil {
		return Record{}, fmt.Errorf("record %s: %w", eventID, err)
	}
	r.Kind = mail.Kind(kind)
	if sentAt != nil {
		r.SentAt = sentAt.UTC()
	}
	if msgID != nil {
		r.MessageID = *msgID
	}
	if lastErr != nil {
		r.LastError = *lastErr
	}
	return r, nil
}

// Ping checks the database answers (health).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }
