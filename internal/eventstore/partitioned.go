package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
)

// Partitioned is the event store over the N partitions of a layout
// (docs/scale.md, "Partitions"): each account's events, and its snapshot,
// live in the partition contract.Partition(account id, N) names; each NIR
// index key in the partition of the key. It routes every call to one
// partition's JetStream store, so an account's append, its expected
// sequence and its load stay one stream's, as with one partition.
// Sequences are per partition stream.
type Partitioned struct {
	layout contract.Layout
	parts  []*JetStream
}

var (
	_ Store     = (*Partitioned)(nil)
	_ Index     = partitionedIndex{}
	_ Snapshots = partitionedSnapshots{}
)

// OpenPartitioned opens (creating or updating) the streams and buckets of
// every partition of cfg.Partitions, in order; cfg.Partition and
// cfg.Stream are ignored (the layout names them). One partition is exactly
// OpenJetStream's store. It fails with ErrLayout when a stream belongs to
// a layout with another number of partitions.
func OpenPartitioned(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig) (*Partitioned, error) {
	n := max(cfg.Partitions, 1)
	if cfg.Partitions > contract.MaxPartitions {
		return nil, fmt.Errorf("eventstore: %d partitions, at most %d", cfg.Partitions, contract.MaxPartitions)
	}
	p := &Partitioned{layout: contract.Layout{Prefix: cfg.Prefix, Partitions: cfg.Partitions}, parts: make([]*JetStream, n)}
	for i := range n {
		c := cfg
		c.Partition = i
		if n > 1 {
			c.Stream = ""
		}
		j, err := OpenJetStream(ctx, js, c)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", i, err)
		}
		p.parts[i] = j
	}
	return p, nil
}

// Moved lists the streams and buckets whose placement the open changed
// (JetStreamConfig.Placement), partition 0's first: the server is moving
// each to the nodes of its new tags.
func (p *Partitioned) Moved() []Move {
	var out []Move
	for _, j := range p.parts {
		out = append(out, j.Moved()...)
	}
	return out
}

// Layout is the store's layout.
func (p *Partitioned) Layout() contract.Layout { return p.layout }

// Partitions returns the partitions' stores, partition 0 first.
func (p *Partitioned) Partitions() []*JetStream { return p.parts }

// Of returns the store of the account's partition.
func (p *Partitioned) Of(accountID string) *JetStream {
	return p.parts[p.layout.PartitionOf(accountID)]
}

// Subject is the subject holding the account's events.
func (p *Partitioned) Subject(accountID string) string { return p.layout.Events(accountID) }

// Load implements Store on the account's partition.
func (p *Partitioned) Load(ctx context.Context, accountID string, after uint64) ([]Record, error) {
	return p.Of(accountID).Load(ctx, accountID, after)
}

// LastSeq implements Store on the account's partition.
func (p *Partitioned) LastSeq(ctx context.Context, accountID string) (uint64, error) {
	return p.Of(accountID).LastSeq(ctx, accountID)
}

// Append implements Store on the account's partition.
func (p *Partitioned) Append(ctx context.Context, accountID string, expected uint64, env events.Envelope, msgID string) (AppendResult, error) {
	return p.Of(accountID).Append(ctx, accountID, expected, env, msgID)
}

// Index returns the NIR index, each key in the partition of the key.
func (p *Partitioned) Index() Index { return partitionedIndex{p} }

// Snapshots returns the snapshots, each in its account's partition.
func (p *Partitioned) Snapshots() Snapshots { return partitionedSnapshots{p} }

// Shadows returns the shadow states: one bucket for every partition (it
// is bounded and expires its entries; see docs/scale.md).
func (p *Partitioned) Shadows() Shadows { return p.parts[0].Shadows() }

// Sources returns the source counters: one bucket for every partition, as
// the shadows'.
func (p *Partitioned) Sources() Sources { return p.parts[0].Sources() }

// Fraud returns the fraud log: one stream for every partition.
func (p *Partitioned) Fraud() FraudLog { return p.parts[0].Fraud() }

type partitionedIndex struct{ p *Partitioned }

func (x partitionedIndex) of(key string) Index {
	return x.p.parts[contract.Partition(key, len(x.p.parts))].Index()
}

// Create implements Index in the key's partition.
func (x partitionedIndex) Create(ctx context.Context, key, accountID string) error {
	return x.of(key).Create(ctx, key, accountID)
}

// Get implements Index in the key's partition.
func (x partitionedIndex) Get(ctx context.Context, key string) (string, error) {
	return x.of(key).Get(ctx, key)
}

type partitionedSnapshots struct{ p *Partitioned }

// Get implements Snapshots in the account's partition.
func (x partitionedSnapshots) Get(ctx context.Context, accountID string) (uint64, []byte, error) {
	if err := ValidateAccountID(accountID); err != nil {
		return 0, nil, err
	}
	return x.p.Of(accountID).Snapshots().Get(ctx, accountID)
}

// Put implements Snapshots in the account's partition.
func (x partitionedSnapshots) Put(ctx context.Context, accountID string, seq uint64, state []byte) error {
	if err := ValidateAccountID(accountID); err != nil {
		return err
	}
	return x.p.Of(accountID).Snapshots().Put(ctx, accountID, seq, state)
}

// FindLayout reads, from the streams on the server, the layout the
// commands service created: the stream AUTH_EVENTS is the one partition
// of the historical layout; else the metadata of AUTH_EVENTS_0 (every
// layout with several partitions names its first stream so) says how many
// there are. For the tools that read the events (authctl) without being
// told AUTH_PARTITIONS. It fails, wrapping jetstream.ErrStreamNotFound,
// when neither stream exists, and with ErrLayout when AUTH_EVENTS_0 does
// not say a number of partitions.
func FindLayout(ctx context.Context, js jetstream.JetStream, prefix string) (contract.Layout, error) {
	l := contract.Layout{Prefix: prefix, Partitions: 1}
	_, err := js.Stream(ctx, l.Stream(0))
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return l, fmt.Errorf("stream %s: %w", l.Stream(0), err)
	}
	first := contract.Layout{Prefix: prefix, Partitions: 2}.Stream(0)
	s, err := js.Stream(ctx, first)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return l, fmt.Errorf("no events stream (%s, or %s for several partitions): the commands service creates them at its start: %w",
			l.Stream(0), first, err)
	}
	if err != nil {
		return l, fmt.Errorf("stream %s: %w", first, err)
	}
	n, err := strconv.Atoi(s.CachedInfo().Config.Metadata[MetaPartitions])
	if err != nil || n < 2 || n > contract.MaxPartitions {
		return l, fmt.Errorf("%w: stream %s does not say its number of partitions (metadata %s=%q)",
			ErrLayout, first, MetaPartitions, s.CachedInfo().Config.Metadata[MetaPartitions])
	}
	l.Partitions = n
	return l, nil
}
