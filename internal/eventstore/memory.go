package eventstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Memory is an in-memory Store, Index and Snapshots with the same semantics
// as the JetStream one: one global sequence as a stream has, concurrency
// checked on the account's own last sequence, and message id deduplication
// (without the time window: tests run well within it).
type Memory struct {
	mu        sync.Mutex
	seq       uint64
	accounts  map[string][]memEvent
	msgIDs    map[string]memMsgID
	index     map[string]string
	snapshots map[string]memSnapshot
}

// Events are kept encoded so a Memory-backed test catches what the codec
// would lose, as the real store does.
type memEvent struct {
	seq   uint64
	msgID string
	data  []byte
}

type memMsgID struct {
	accountID string
	seq       uint64
}

type memSnapshot struct {
	seq   uint64
	state []byte
}

var (
	_ Store     = (*Memory)(nil)
	_ Index     = memIndex{}
	_ Snapshots = memSnapshots{}
)

// NewMemory returns an empty in-memory store; its Index and Snapshots
// methods give the two keyed stores beside it.
func NewMemory() *Memory {
	return &Memory{
		accounts:  map[string][]memEvent{},
		msgIDs:    map[string]memMsgID{},
		index:     map[string]string{},
		snapshots: map[string]memSnapshot{},
	}
}

// Load implements Store.
func (m *Memory) Load(ctx context.Context, accountID string, after uint64) ([]Record, error) {
	if err := ValidateAccountID(accountID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load %s: %w", accountID, err)
	}
	m.mu.Lock()
	evs := m.accounts[accountID]
	// Appends never modify stored elements, so the slice header taken under
	// the lock is a consistent snapshot.
	m.mu.Unlock()
	var out []Record
	for _, e := range evs {
		if e.seq <= after {
			continue
		}
		env, err := events.Unmarshal(e.data)
		if err != nil {
			return nil, fmt.Errorf("load %s seq %d: %w", accountID, e.seq, err)
		}
		out = append(out, Record{Seq: e.seq, Envelope: env, MsgID: e.msgID})
	}
	return out, nil
}

// LastSeq implements Store.
func (m *Memory) LastSeq(ctx context.Context, accountID string) (uint64, error) {
	if err := ValidateAccountID(accountID); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastSeqLocked(accountID), nil
}

func (m *Memory) lastSeqLocked(accountID string) uint64 {
	evs := m.accounts[accountID]
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].seq
}

// Append implements Store. The checks run in the JetStream store's order:
// a stale expected sequence is a conflict even for a known message id,
// unless that message id is among the account's events after expected (a
// retry of an append that did land), which is reported as a duplicate.
func (m *Memory) Append(ctx context.Context, accountID string, expected uint64, env events.Envelope, msgID string) (AppendResult, error) {
	if err := ValidateAccountID(accountID); err != nil {
		return AppendResult{}, err
	}
	if err := checkEnvelope(accountID, env); err != nil {
		return AppendResult{}, err
	}
	data, err := events.Marshal(env)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append %s: %w", accountID, err)
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, fmt.Errorf("append %s: %w", accountID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if last := m.lastSeqLocked(accountID); last != expected {
		if d, ok := m.msgIDs[msgID]; ok && msgID != "" && d.accountID == accountID && d.seq > expected {
			return AppendResult{Seq: d.seq, Duplicate: true}, nil
		}
		return AppendResult{}, fmt.Errorf("append %s: expected %d, last %d: %w", accountID, expected, last, ErrConflict)
	}
	if msgID != "" {
		if d, ok := m.msgIDs[msgID]; ok {
			return AppendResult{Seq: d.seq, Duplicate: true}, nil
		}
	}
	m.seq++
	m.accounts[accountID] = append(m.accounts[accountID], memEvent{seq: m.seq, msgID: msgID, data: data})
	if msgID != "" {
		m.msgIDs[msgID] = memMsgID{accountID: accountID, seq: m.seq}
	}
	return AppendResult{Seq: m.seq}, nil
}

// Index returns the in-memory Index. Memory cannot be an Index and a
// Snapshots itself: both interfaces name a method Get, with different
// signatures. This mirrors JetStream.Index.
func (m *Memory) Index() Index { return memIndex{m} }

// Snapshots returns the in-memory Snapshots (see Index for why it is a
// separate value).
func (m *Memory) Snapshots() Snapshots { return memSnapshots{m} }

type memIndex struct{ m *Memory }

// Create implements Index.
func (x memIndex) Create(ctx context.Context, key, accountID string) error {
	if key == "" {
		return fmt.Errorf("index create: empty key")
	}
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	if _, ok := x.m.index[key]; ok {
		return fmt.Errorf("index create: %w", ErrExists)
	}
	x.m.index[key] = accountID
	return nil
}

// Get implements Index.
func (x memIndex) Get(ctx context.Context, key string) (string, error) {
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	id, ok := x.m.index[key]
	if !ok {
		return "", fmt.Errorf("index get: %w", ErrNotFound)
	}
	return id, nil
}

type memSnapshots struct{ m *Memory }

// Get implements Snapshots.
func (x memSnapshots) Get(ctx context.Context, accountID string) (uint64, []byte, error) {
	if err := ValidateAccountID(accountID); err != nil {
		return 0, nil, err
	}
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	s, ok := x.m.snapshots[accountID]
	if !ok {
		return 0, nil, fmt.Errorf("snapshot get %s: %w", accountID, ErrNotFound)
	}
	// A copy, so the caller cannot change the stored snapshot.
	return s.seq, append([]byte(nil), s.state...), nil
}

// Put implements Snapshots; an older snapshot than the stored one is
// dropped.
func (x memSnapshots) Put(ctx context.Context, accountID string, seq uint64, state []byte) error {
	if err := ValidateAccountID(accountID); err != nil {
		return err
	}
	x.m.mu.Lock()
	defer x.m.mu.Unlock()
	if cur, ok := x.m.snapshots[accountID]; ok && cur.seq > seq {
		return nil // never back: see kvSnapshots.Put
	}
	x.m.snapshots[accountID] = memSnapshot{seq: seq, state: append([]byte(nil), state...)}
	return nil
}
