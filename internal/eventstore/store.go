// Package eventstore keeps each account's events, appended with optimistic
// concurrency, plus the two small keyed stores the commands need beside the
// stream: the NIR uniqueness index and state snapshots.
//
// Two implementations share one contract test suite (storetest): Memory, for
// domain-level tests, and JetStream, the real one.
package eventstore

import (
	"context"
	"errors"

	"github.com/ameli-auth/authsvc/internal/events"
)

var (
	// ErrConflict: the account has events after the expected sequence; the
	// caller reloads, decides again and retries.
	ErrConflict = errors.New("eventstore: concurrent append (expected sequence is stale)")
	// ErrExists: the index key is already taken.
	ErrExists = errors.New("eventstore: key exists")
	// ErrNotFound: no such key or snapshot.
	ErrNotFound = errors.New("eventstore: not found")
)

// Record is an event as stored: its stream sequence, its envelope, and the
// message id it was appended with ("" for none): the idempotency key of the
// request that caused it.
//
// NotAppended marks a message on the account's subject that the commands
// service did not append (events.ErrNotAppended): a JetStream API answer
// or a copy that a reader of the stream had the server store there. Its
// Envelope is empty; only its Seq counts, as the account's position (the
// next append expects it). Readers skip it.
type Record struct {
	Seq         uint64
	Envelope    events.Envelope
	MsgID       string
	NotAppended bool
}

// AppendResult tells where the event landed. Duplicate is true when an event
// with the same message id was already stored (a retried request): nothing
// was appended and Seq is that earlier event's sequence.
type AppendResult struct {
	Seq       uint64
	Duplicate bool
}

// Store is the event store of accounts.
type Store interface {
	// Load returns the account's events whose stream sequence is greater than
	// after, in order. An account without events has none.
	Load(ctx context.Context, accountID string, after uint64) ([]Record, error)
	// LastSeq returns the stream sequence of the account's last event, 0 if
	// it has none.
	LastSeq(ctx context.Context, accountID string) (uint64, error)
	// Append stores one event of the account if the account's last sequence
	// is still expected (0: the account has no events yet), else ErrConflict.
	// msgID deduplicates retries: a second append with the same msgID within
	// the deduplication window stores nothing and reports Duplicate.
	Append(ctx context.Context, accountID string, expected uint64, env events.Envelope, msgID string) (AppendResult, error)
}

// Index is an atomic key -> account id map (the NIR uniqueness index).
type Index interface {
	// Create sets key to accountID if key is absent, else ErrExists.
	Create(ctx context.Context, key, accountID string) error
	// Get returns the account id for key, or ErrNotFound.
	Get(ctx context.Context, key string) (string, error)
}

// Snapshots keeps the latest serialized state of an account with the stream
// sequence it reflects, so loading an account with a long history reads only
// the events after it.
type Snapshots interface {
	Get(ctx context.Context, accountID string) (seq uint64, state []byte, err error) // ErrNotFound when none
	// Put stores the state at seq, unless the stored snapshot is of a
	// later sequence: a snapshot never goes back.
	Put(ctx context.Context, accountID string, seq uint64, state []byte) error
}
