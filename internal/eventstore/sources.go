package eventstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
)

// SourceBucket is the KV bucket of the source counters.
const SourceBucket = contract.SourceBucket

// FraudStream is the stream of the fraud events.
const FraudStream = contract.FraudStream

// Defaults of the source bucket: entries live DefaultSourceTTL after their
// last write (it must be longer than the policy's longest source window,
// domain.MaxSourceWindow, 48 hours: a test keeps it so), and the bucket
// holds at most DefaultSourceMaxBytes (about a million sources: an entry
// is a 64-character key and a value under 100 bytes, a message of about
// 250 bytes with its headers), so that a flood of random addresses cannot
// grow it without limit; a full bucket refuses new entries until old ones
// expire (the commands service then answers without counting, and logs).
const (
	DefaultSourceTTL      = 49 * time.Hour
	DefaultSourceMaxBytes = 256 << 20
)

// Sources keeps the failed password attempts counted per client source
// (an address or a network prefix; issue 20), shared by every commands
// instance: keys are keyed hashes of the source (never an address), values
// the counts, updated with compare-and-set on the revision as Shadows. It
// has Shadows' contract (storetest.RunShadows runs on it).
type Sources = Shadows

func openSources(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig) (kvShadows, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      SourceBucket,
		Description: "Failed password attempts per client source (keyed source hash -> count and window), against password spraying.",
		History:     1,
		TTL:         cfg.SourceTTL,
		MaxBytes:    cfg.SourceMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Compression: !cfg.Uncompressed,
	})
	if err != nil {
		return kvShadows{}, fmt.Errorf("open kv bucket %s: %w", SourceBucket, err)
	}
	return kvShadows{kv, "source"}, nil
}

// Sources returns the source counters over the AUTH_SOURCES bucket.
func (j *JetStream) Sources() Sources { return j.sources }

// NewMemorySources returns an empty in-memory Sources, for tests.
func NewMemorySources() *MemoryShadows { return NewMemoryShadows() }

// FraudLog records the fraud events (events.FraudEvent) for the fraud
// teams, apart from the account events: never on an account's subject.
type FraudLog interface {
	// Record writes e on <prefix>.<e.Type>; e.ID is its Nats-Msg-Id, so a
	// fact written again within the duplicate window is stored once.
	Record(ctx context.Context, e events.FraudEvent) error
}

// jsFraud is FraudLog on the AUTH_FRAUD stream.
type jsFraud struct {
	js       jetstream.JetStream
	subjects contract.Subjects
}

func openFraud(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig) (jsFraud, error) {
	s := contract.Subjects(cfg.Prefix)
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        FraudStream,
		Description: "Facts about client sources for the fraud teams: throttled and released (issue 20).",
		Subjects:    []string{s.AllFraud()},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardOld,
		Duplicates:  cfg.DuplicateWindow,
		// An audit trail as AUTH_EVENTS: no API deletes or purges it.
		DenyDelete:  true,
		DenyPurge:   true,
		Compression: cfg.compression(),
	})
	if err != nil {
		return jsFraud{}, fmt.Errorf("open stream %s: %w", FraudStream, err)
	}
	return jsFraud{js: js, subjects: s}, nil
}

// Record implements FraudLog.
func (f jsFraud) Record(ctx context.Context, e events.FraudEvent) error {
	msg, err := FraudMsg(f.subjects, e)
	if err != nil {
		return err
	}
	if _, err := f.js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(FraudStream)); err != nil {
		return fmt.Errorf("record %s: %w", e.Type, err)
	}
	return nil
}

// FraudMsg is the message of a fraud event: its JSON on <prefix>.<type>,
// with the type, version and id in the same headers as an account event.
func FraudMsg(s contract.Subjects, e events.FraudEvent) (*nats.Msg, error) {
	data, err := events.MarshalFraud(e)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(s.Fraud(e.Type))
	msg.Data = data
	msg.Header.Set(HeaderEventType, e.Type)
	msg.Header.Set(HeaderEventVersion, strconv.Itoa(e.Version))
	msg.Header.Set(HeaderEventID, e.ID)
	return msg, nil
}

// Fraud returns the fraud log over the AUTH_FRAUD stream.
func (j *JetStream) Fraud() FraudLog { return j.fraud }

// MemoryFraud is an in-memory FraudLog, for tests: it keeps every event,
// one per id.
type MemoryFraud struct {
	mu     sync.Mutex
	events []events.FraudEvent
	seen   map[string]bool
}

// Record implements FraudLog.
func (m *MemoryFraud) Record(ctx context.Context, e events.FraudEvent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if !m.seen[e.ID] {
		m.seen[e.ID] = true
		m.events = append(m.events, e)
	}
	return nil
}

// Events returns the events recorded, in order.
func (m *MemoryFraud) Events() []events.FraudEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]events.FraudEvent(nil), m.events...)
}
