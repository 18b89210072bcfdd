package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// ShadowBucket is the KV bucket of the shadow states.
const ShadowBucket = contract.ShadowBucket

// ErrFull: the store is at its size bound and refuses new writes until
// entries expire.
var ErrFull = errors.New("eventstore: store full")

// Shadows keeps the login state of NIRs that have no account (issue 19): an
// unknown NIR goes through the same lockout rules as an account, so three
// wrong passwords on it answer `account_locked` as they would on a
// registered NIR. It is not the event stream: a flood of random NIRs must
// not grow the source of truth. Keys are NIR index keys (keyed hashes,
// never a NIR); each entry expires after the store's time to live since
// its last write, and the store is bounded in bytes.
type Shadows interface {
	// Get returns the key's state and its revision, or ErrNotFound.
	Get(ctx context.Context, key string) (state []byte, rev uint64, err error)
	// Put writes the key's state if its revision is still rev (0: the key
	// is absent), else ErrConflict; it returns the new revision.
	Put(ctx context.Context, key string, state []byte, rev uint64) (uint64, error)
}

// kvShadows is Shadows over the AUTH_SHADOWS bucket: its TTL is the
// entries' life since their last write, its MaxBytes the bound (a full
// bucket refuses writes: see the commands' shadow login).
// The same type keeps the source counters (AUTH_SOURCES, sources.go): what
// names the store in errors.
type kvShadows struct {
	kv   jetstream.KeyValue
	what string
}

func openShadows(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig) (kvShadows, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ShadowBucket,
		Description: "Login state of NIRs without an account (keyed NIR hash -> counters), so they lock like accounts.",
		History:     1,
		TTL:         cfg.ShadowTTL,
		MaxBytes:    cfg.ShadowMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Compression: !cfg.Uncompressed,
	})
	if err != nil {
		return kvShadows{}, fmt.Errorf("open kv bucket %s: %w", ShadowBucket, err)
	}
	return kvShadows{kv, "shadow"}, nil
}

// Get implements Shadows. The key is not put in errors: it is derived from
// a NIR.
func (x kvShadows) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := x.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, fmt.Errorf("%s get: %w", x.what, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%s get: %w", x.what, err)
	}
	return e.Value(), e.Revision(), nil
}

// Put implements Shadows with KV create (rev 0) or update (compare and set
// on the revision), atomic on the bucket's leader.
func (x kvShadows) Put(ctx context.Context, key string, state []byte, rev uint64) (uint64, error) {
	var n uint64
	var err error
	if rev == 0 {
		n, err = x.kv.Create(ctx, key, state)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("%s put: %w", x.what, ErrConflict)
		}
	} else {
		n, err = x.kv.Update(ctx, key, state, rev)
		if isWrongLastSeq(err) {
			return 0, fmt.Errorf("%s put: %w", x.what, ErrConflict)
		}
	}
	if isMaxBytes(err) {
		return 0, fmt.Errorf("%s put: %w: %w", x.what, ErrFull, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%s put: %w", x.what, err)
	}
	return n, nil
}

// Shadows returns the shadow states over the AUTH_SHADOWS bucket.
func (j *JetStream) Shadows() Shadows { return j.shadows }

// MemoryShadows is an in-memory Shadows, without expiry, for tests.
type MemoryShadows struct {
	mu  sync.Mutex
	rev uint64
	m   map[string]memShadow
}

type memShadow struct {
	state []byte
	rev   uint64
}

// NewMemoryShadows returns an empty in-memory Shadows.
func NewMemoryShadows() *MemoryShadows { return &MemoryShadows{m: map[string]memShadow{}} }

// Get implements Shadows.
func (s *MemoryShadows) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, 0, fmt.Errorf("shadow get: %w", ErrNotFound)
	}
	return append([]byte(nil), e.state...), e.rev, nil
}

// Put implements Shadows.
func (s *MemoryShadows) Put(ctx context.Context, key string, state []byte, rev uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[key].rev != rev {
		return 0, fmt.Errorf("shadow put: %w", ErrConflict)
	}
	s.rev++
	s.m[key] = memShadow{state: append([]byte(nil), state...), rev: s.rev}
	return s.rev, nil
}

// storeFailed is the server's error code for a write a stream refused to
// store (JSStreamStoreFailedF); with "maximum bytes exceeded" it is a
// stream, here the bucket, at its MaxBytes with the discard-new policy.
const storeFailed = 10077

func isMaxBytes(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == storeFailed &&
		strings.Contains(apiErr.Description, "maximum bytes")
}
