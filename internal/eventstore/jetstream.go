package eventstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// Names of the KV buckets beside the stream.
const (
	IndexBucket    = contract.NIRIndexBucket
	SnapshotBucket = contract.SnapshotBucket
)

// Headers set on every event message, so consumers (projector, notifier,
// audit) can route and trace without decoding the body.
const (
	HeaderEventType    = "Auth-Event-Type"
	HeaderEventVersion = "Auth-Event-Version"
	HeaderEventID      = "Auth-Event-Id"
	HeaderTraceparent  = "traceparent"
)

// loadBatch is how many messages one pull asks for: large histories are read
// in a few round trips, and a short one costs no more than its size.
const loadBatch = 1000

// loadPullExpiry and loadPullHeartbeat shape a Load's pulls (see scan).
const (
	loadPullExpiry    = 2 * time.Second
	loadPullHeartbeat = 500 * time.Millisecond
)

// consumerInactive makes the server drop a Load's consumer by itself if the
// explicit delete is lost (connection dropped mid-Load).
const consumerInactive = 30 * time.Second

// JetStreamConfig names the stream and its subjects. Zero values take the
// defaults.
type JetStreamConfig struct {
	Prefix string // subject prefix, default contract.DefaultPrefix: subjects <prefix>.events.<account id>
	// Partitions is the number of partitions of the layout (AUTH_PARTITIONS,
	// 0 or 1: one, with the historical names) and Partition the one this
	// store holds, in [0, Partitions): contract.Layout names its stream,
	// subjects and buckets. OpenPartitioned opens them all.
	Partitions, Partition int
	Stream                string        // default contract.Layout's Stream(Partition); only with one partition
	Replicas              int           // default 1; also used for the KV buckets
	DuplicateWindow       time.Duration // Nats-Msg-Id deduplication window, default 2m
	// ShadowTTL is how long a NIR without an account keeps its login state
	// after its last attempt (default 31 days: longer than the policy's
	// failure memory, see domain.Policy.PasswordFailureMemory), and
	// ShadowMaxBytes bounds the bucket (default 1 GiB, about 5 million
	// NIRs).
	ShadowTTL      time.Duration
	ShadowMaxBytes int64
	// SourceTTL and SourceMaxBytes shape the AUTH_SOURCES bucket (issue
	// 20): DefaultSourceTTL and DefaultSourceMaxBytes unless set.
	SourceTTL      time.Duration
	SourceMaxBytes int64
	// Uncompressed keeps the file blocks of the stream and of the buckets
	// as they are. By default they are compressed with S2 (issue 16: the
	// events' JSON, header names and repeated values shrink to about half
	// on disk; docs/retention.md has the figures). The server compresses a
	// block once it is full (8 MiB for the stream), so the block being
	// written is never compressed; readers see no difference.
	Uncompressed bool
	// AttemptsTTL is how long a login attempt (events.IsAttempt) stays in
	// the stream: its message is published with that per-message TTL
	// (Nats-TTL), after which the server removes it, deny delete and
	// deny purge notwithstanding. 0 keeps every event for good. The
	// caller keeps a snapshot of the account covering each attempt before
	// it expires (the commands service does: docs/retention.md).
	AttemptsTTL time.Duration
	// Placement is AUTH_PARTITION_PLACEMENT: partition p's stream and its
	// two buckets get placement tags Placement.Tags(p), so their replicas
	// live on the nodes whose server_tags hold them (docs/scale.md,
	// "Placement"). Empty places nothing, and keeps the placement an
	// existing stream has. A stream or bucket whose tags differ is updated
	// with the new ones: on a cluster the server then moves its replicas
	// (a stream move: new peers catch up, then the old ones leave); see
	// JetStream.Moved. The shadow bucket is not placed: it is shared by
	// every partition.
	Placement contract.Placement
}

// placement is the JetStream placement of the configured partition, nil
// for none.
func (c JetStreamConfig) placement() *jetstream.Placement {
	tags := c.Placement.Tags(c.Partition)
	if len(tags) == 0 {
		return nil
	}
	return &jetstream.Placement{Tags: slices.Clone(tags)}
}

// compression is the store compression the configuration asks for.
func (c JetStreamConfig) compression() jetstream.StoreCompression {
	if c.Uncompressed {
		return jetstream.NoCompression
	}
	return jetstream.S2Compression
}

func (c *JetStreamConfig) setDefaults() error {
	if c.Prefix == "" {
		c.Prefix = contract.DefaultPrefix
	}
	if c.Partitions < 0 || c.Partitions > contract.MaxPartitions || c.Partition < 0 || c.Partition >= max(c.Partitions, 1) {
		return fmt.Errorf("eventstore: partition %d of %d: want 0 <= partition < partitions <= %d", c.Partition, c.Partitions, contract.MaxPartitions)
	}
	if c.Stream == "" || c.layout().Split() {
		c.Stream = c.layout().Stream(c.Partition)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.ShadowTTL == 0 {
		c.ShadowTTL = 31 * 24 * time.Hour
	}
	if c.ShadowMaxBytes == 0 {
		c.ShadowMaxBytes = 1 << 30
	}
	if c.SourceTTL == 0 {
		c.SourceTTL = DefaultSourceTTL
	}
	if c.SourceMaxBytes == 0 {
		c.SourceMaxBytes = DefaultSourceMaxBytes
	}
	for _, tok := range strings.Split(c.Prefix, ".") {
		if tok == "" || strings.ContainsAny(tok, "*>") || strings.IndexFunc(tok, unicode.IsSpace) >= 0 {
			return fmt.Errorf("eventstore: bad subject prefix %q", c.Prefix)
		}
	}
	if c.Replicas < 0 || c.DuplicateWindow < 0 || c.ShadowTTL < 0 || c.ShadowMaxBytes < 0 || c.SourceTTL < 0 || c.SourceMaxBytes < 0 || c.AttemptsTTL < 0 {
		return fmt.Errorf("eventstore: negative replicas, duplicate window, TTL or size")
	}
	if c.AttemptsTTL > 0 && c.AttemptsTTL < time.Second {
		// Nats-TTL is in whole seconds.
		return fmt.Errorf("eventstore: attempts TTL %s, want at least 1s", c.AttemptsTTL)
	}
	return nil
}

func (c *JetStreamConfig) layout() contract.Layout {
	return contract.Layout{Prefix: c.Prefix, Partitions: c.Partitions}
}

// Stream metadata keys that record the layout a stream belongs to: a
// component configured with another number of partitions refuses the
// stream (CheckLayout) rather than route an account to a second stream.
// A stream without them is the historical single partition.
const (
	MetaPartitions = "authsvc.partitions"
	MetaPartition  = "authsvc.partition"
)

// CheckLayout tells whether a stream's configuration belongs to partition
// p of the layout l; the error says which layout it belongs to.
func CheckLayout(have jetstream.StreamConfig, l contract.Layout, p int) error {
	n, q := have.Metadata[MetaPartitions], have.Metadata[MetaPartition]
	if n == "" {
		n, q = "1", "0"
	}
	if n != strconv.Itoa(l.N()) || q != strconv.Itoa(p) {
		return fmt.Errorf("%w: stream %s is partition %s of %s, this component has AUTH_PARTITIONS=%d (changing it is a migration: docs/scale.md)",
			ErrLayout, have.Name, q, n, l.N())
	}
	return nil
}

// ErrLayout: a stream belongs to a layout with another number of partitions.
var ErrLayout = errors.New("eventstore: partition layout mismatch")

// JetStream is the event store of one partition on a JetStream stream, one
// subject per account, with the NIR index and the snapshots in two KV
// buckets.
type JetStream struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	cfg     JetStreamConfig
	index   kvIndex
	snaps   kvSnapshots
	shadows kvShadows
	sources kvShadows // the source counters (sources.go)
	fraud   jsFraud
	moved   []Move
}

// Move is a stream (or a bucket's stream, KV_<bucket>) whose placement an
// open changed: on a cluster, the server moves its replicas to nodes with
// the new tags, in the background.
type Move struct {
	Stream   string
	From, To []string // placement tags; From nil: none
}

var (
	_ Store     = (*JetStream)(nil)
	_ Index     = kvIndex{}
	_ Snapshots = kvSnapshots{}
)

// OpenJetStream creates or updates the stream and the KV buckets, so a
// fresh server and an upgraded configuration both just work at start-up.
// The stream denies message deletes and purges (the audit trail). Only the
// commands service calls it in a deployment: its NATS user is the one
// allowed to create and update streams (deploy/nats/users.conf).
func OpenJetStream(ctx context.Context, js jetstream.JetStream, cfg JetStreamConfig) (*JetStream, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	layout := cfg.layout()
	var moved []Move
	stream, mv, err := ensureStream(ctx, js, layout, cfg.Partition, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Authentication events, one subject per account: the source of truth.",
		Subjects:    []string{layout.StreamSubjects(cfg.Partition)},
		Metadata: map[string]string{
			MetaPartitions: strconv.Itoa(layout.N()),
			MetaPartition:  strconv.Itoa(cfg.Partition),
		},
		Storage:   jetstream.FileStorage,
		Replicas:  cfg.Replicas,
		Retention: jetstream.LimitsPolicy,
		// No age, count or size limit: deleting events would lose state.
		MaxAge:            0,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		Discard:           jetstream.DiscardOld,
		Duplicates:        cfg.DuplicateWindow,
		// LastSeq runs before every command; direct get answers it from
		// any replica without a consumer.
		AllowDirect: true,
		// The audit trail cannot be rewritten: no API deletes or purges
		// its messages, whoever asks. Once on, the server refuses to turn
		// them off again (nats-server 2.15 stream.go, "can not cancel
		// deny ..."); an update turns them on for a stream made before.
		// Deleting the whole stream stays possible for a user allowed to
		// (none in deploy/nats/users.conf).
		DenyDelete: true,
		DenyPurge:  true,
		// An update that turns compression on for a stream made before is
		// accepted (nats-server 2.15 has no rule against it); the server's
		// file store takes it from its next start (it reads its
		// compression when it loads the stream), and from then on each
		// block compressed once full. Blocks written before stay as they
		// are, readable either way.
		Compression: cfg.compression(),
		// Per-message TTLs, for the login attempts (AttemptsTTL). Always
		// on: the server refuses to turn it off again, so a service
		// started once with a retention and then without must still open
		// its stream. Messages without a TTL never expire.
		AllowMsgTTL: true,
		Placement:   cfg.placement(),
	})
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", cfg.Stream, err)
	}
	moved = append(moved, mv...)
	idx, mv, err := openBucket(ctx, js, layout.IndexBucket(cfg.Partition), "NIR uniqueness index: keyed NIR hash -> account id.", cfg)
	if err != nil {
		return nil, err
	}
	moved = append(moved, mv...)
	snaps, mv, err := openBucket(ctx, js, layout.SnapshotBucket(cfg.Partition), "Account state snapshots: 8-byte big-endian stream sequence, then the state.", cfg)
	if err != nil {
		return nil, err
	}
	moved = append(moved, mv...)
	shadows, err := openShadows(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	sources, err := openSources(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	fraud, err := openFraud(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	return &JetStream{js: js, stream: stream, cfg: cfg, index: kvIndex{idx}, snaps: kvSnapshots{snaps}, shadows: shadows,
		sources: sources, fraud: fraud, moved: moved}, nil
}

// Moved lists the streams and buckets whose placement this open changed
// (JetStreamConfig.Placement), for the caller to log: each is being moved
// by the server.
func (j *JetStream) Moved() []Move { return j.moved }

// keepPlacement settles the placement an open asks for, given the one the
// server has (nil for a new stream): none configured keeps the server's;
// tags configured keep its cluster (a cluster left out would read as a
// change, hence a move). The Move is set when the tags change on an
// existing stream.
func keepPlacement(stream string, have *jetstream.StreamConfig, want *jetstream.Placement) (*jetstream.Placement, []Move) {
	if have == nil {
		return want, nil
	}
	if want == nil {
		return have.Placement, nil
	}
	var from []string
	if have.Placement != nil {
		from = have.Placement.Tags
		if want.Cluster == "" {
			want.Cluster = have.Placement.Cluster
		}
	}
	if slices.Equal(from, want.Tags) {
		return want, nil
	}
	return want, []Move{{Stream: stream, From: from, To: want.Tags}}
}

// ensureStream creates the stream, or updates it only where its
// configuration differs from want: every component opens the store at
// start, and an update that changes nothing still rewrites the stream's
// store configuration on the server, racing there (nats-server 2.15.2,
// seen under -race) with the consumers other components create meanwhile.
//
// A stream of another layout (metadata, see CheckLayout) is refused, not
// updated.
func ensureStream(ctx context.Context, js jetstream.JetStream, l contract.Layout, p int, want jetstream.StreamConfig) (jetstream.Stream, []Move, error) {
	st, err := js.Stream(ctx, want.Name)
	var moved []Move
	if err == nil {
		have := st.CachedInfo().Config
		if err := CheckLayout(have, l, p); err != nil {
			return nil, nil, err
		}
		want.Placement, moved = keepPlacement(want.Name, &have, want.Placement)
		if sameStreamConfig(have, want) {
			return st, nil, nil
		}
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, err
	}
	st, err = js.CreateOrUpdateStream(ctx, want)
	if err != nil {
		return nil, nil, err
	}
	return st, moved, nil
}

// sameStreamConfig compares the fields OpenJetStream sets.
func sameStreamConfig(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description && slices.Equal(have.Subjects, want.Subjects) &&
		have.Storage == want.Storage && have.Replicas == want.Replicas && have.Retention == want.Retention &&
		have.MaxAge == want.MaxAge && have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.Discard == want.Discard &&
		have.Duplicates == want.Duplicates && have.AllowDirect == want.AllowDirect &&
		have.DenyDelete == want.DenyDelete && have.DenyPurge == want.DenyPurge && have.Compression == want.Compression &&
		have.AllowMsgTTL == want.AllowMsgTTL && sameMetadata(have.Metadata, want.Metadata) &&
		samePlacement(have.Placement, want.Placement)
}

func samePlacement(a, b *jetstream.Placement) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Cluster == b.Cluster && slices.Equal(a.Tags, b.Tags)
}

// sameMetadata tells whether have holds every key of want with its value
// (the server adds keys of its own, _nats.*).
func sameMetadata(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// openBucket creates or updates one of the partition's buckets, placed
// as its stream (JetStreamConfig.Placement), and says whether that moved
// it.
func openBucket(ctx context.Context, js jetstream.JetStream, name, desc string, cfg JetStreamConfig) (jetstream.KeyValue, []Move, error) {
	// The bucket's stream, to keep its placement when none is configured
	// and to tell a move.
	var have *jetstream.StreamConfig
	st, err := js.Stream(ctx, kvStream(name))
	switch {
	case err == nil:
		have = &st.CachedInfo().Config
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil, fmt.Errorf("open kv bucket %s: %w", name, err)
	}
	placement, moved := keepPlacement(kvStream(name), have, cfg.placement())
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Compression: !cfg.Uncompressed,
		Placement:   placement,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open kv bucket %s: %w", name, err)
	}
	return kv, moved, nil
}

// kvStream is the name of a KV bucket's stream.
func kvStream(bucket string) string { return "KV_" + bucket }

// Index returns the NIR index over the partition's AUTH_NIR_INDEX bucket.
func (j *JetStream) Index() Index { return j.index }

// Snapshots returns the snapshots over the partition's AUTH_SNAPSHOTS bucket.
func (j *JetStream) Snapshots() Snapshots { return j.snaps }

// Subject is the subject holding the account's events. It does not check
// the account id; the Store methods do.
func (j *JetStream) Subject(accountID string) string {
	return j.cfg.layout().Events(accountID)
}

// validateAccount checks the account id and that the account is in this
// store's partition (Partitioned routes it there; a direct caller could
// otherwise publish into another partition's stream).
func (j *JetStream) validateAccount(accountID string) error {
	if err := ValidateAccountID(accountID); err != nil {
		return err
	}
	if p := j.cfg.layout().PartitionOf(accountID); p != j.cfg.Partition {
		return fmt.Errorf("eventstore: account %s is in partition %d, not in %d", accountID, p, j.cfg.Partition)
	}
	return nil
}

// Partition is the partition this store holds.
func (j *JetStream) Partition() int { return j.cfg.Partition }

// StreamName is the name of the events stream.
func (j *JetStream) StreamName() string { return j.cfg.Stream }

// LastSeq implements Store with a direct get of the subject's last message.
func (j *JetStream) LastSeq(ctx context.Context, accountID string) (uint64, error) {
	if err := j.validateAccount(accountID); err != nil {
		return 0, err
	}
	return j.lastSeq(ctx, j.Subject(accountID))
}

func (j *JetStream) lastSeq(ctx context.Context, subject string) (uint64, error) {
	// The stream handle carries AllowDirect from its creation, so nats.go
	// uses $JS.API.DIRECT.GET here, not the leader-only MSG.GET.
	m, err := j.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("last seq %s: %w", subject, err)
	}
	return m.Sequence, nil
}

// Load implements Store. It reads up to the last sequence seen when it
// starts (and any event that lands on the subject meanwhile, in order).
func (j *JetStream) Load(ctx context.Context, accountID string, after uint64) ([]Record, error) {
	if err := j.validateAccount(accountID); err != nil {
		return nil, err
	}
	subject := j.Subject(accountID)
	last, err := j.lastSeq(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", subject, err)
	}
	if last <= after {
		// The common case with a snapshot at the head: no consumer at all.
		return nil, nil
	}
	var out []Record
	err = j.scan(ctx, subject, after, last, false, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		if out == nil {
			out = make([]Record, 0, md.NumPending+1)
		}
		id := msg.Headers().Get(HeaderEventID)
		if id == "" {
			// Not an event (a JetStream API answer sent to this subject):
			// its place, not its content (events.ErrNotAppended).
			out = append(out, Record{Seq: md.Sequence.Stream, NotAppended: true})
			return false, nil
		}
		env, err := events.Unmarshal(msg.Data())
		if err != nil {
			return true, fmt.Errorf("seq %d: %w", md.Sequence.Stream, err)
		}
		if events.VerifyStored(msg.Subject(), id, env) != nil {
			out = append(out, Record{Seq: md.Sequence.Stream, NotAppended: true})
			return false, nil
		}
		out = append(out, Record{Seq: md.Sequence.Stream, Envelope: env, MsgID: msg.Headers().Get(jetstream.MsgIDHeader)})
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", subject, err)
	}
	return out, nil
}

// scan delivers the subject's messages with a stream sequence above after,
// in order, until it has passed last, the subject has nothing more pending,
// or fn says stop. The ordered consumer it uses is deleted before it
// returns, so Loads leave nothing behind on the server.
func (j *JetStream) scan(ctx context.Context, subject string, after, last uint64, headersOnly bool,
	fn func(jetstream.Msg, *jetstream.MsgMetadata) (stop bool, err error)) error {
	cons, err := j.js.OrderedConsumer(ctx, j.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       after + 1,
		HeadersOnly:       headersOnly,
		InactiveThreshold: consumerInactive,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer: %w", err)
	}
	defer func() {
		// The ordered consumer deletes the consumers it replaces, never its
		// current one; a cancelled ctx must not skip this clean-up.
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = j.js.DeleteConsumer(dctx, j.cfg.Stream, info.Name)
			cancel()
		}
	}()
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		// Events after `after` were removed since LastSeq: nothing to wait for.
		return nil
	}
	// Short pulls with the shortest heartbeat nats.go allows: on a
	// replicated stream the consumer lives on one of the replicas, and the
	// first pull, sent as soon as the consumer exists, can be lost before
	// the routes know the consumer's interest (nats-server 2.15.2). The
	// ordered consumer recreates itself after two missed heartbeats: with
	// the default 30 s pull, that was a Load stuck for 10 s.
	it, err := cons.Messages(jetstream.PullMaxMessages(loadBatch), jetstream.PullExpiry(loadPullExpiry), jetstream.PullHeartbeat(loadPullHeartbeat))
	if err != nil {
		return fmt.Errorf("messages: %w", err)
	}
	defer it.Stop()
	for {
		// Next prefers neither a buffered message nor ctx.Done, so a
		// cancelled Load could otherwise run on through its buffer.
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("next message: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		stop, err := fn(msg, md)
		if err != nil || stop {
			return err
		}
		if md.Sequence.Stream >= last || md.NumPending == 0 {
			return nil
		}
	}
}

// Append implements Store. A login attempt (events.IsAttempt) is published
// with the configured AttemptsTTL, if any. The event's message carries its
// type, version and id in headers, and ctx's span's W3C traceparent when
// that span records (tracing on and sampled; never a tracestate: its
// consumers continue the trace); else none (issue 16: a random
// traceparent was 70 bytes of every event that no trace backend knew, and
// random bytes do not compress). The publish asserts the subject's last sequence
// (Nats-Expected-Last-Subject-Sequence, sent for 0 too, where it means "no
// message on this subject yet"), so the check and the write are one atomic
// step on the stream leader.
func (j *JetStream) Append(ctx context.Context, accountID string, expected uint64, env events.Envelope, msgID string) (AppendResult, error) {
	if err := j.validateAccount(accountID); err != nil {
		return AppendResult{}, err
	}
	if err := checkEnvelope(accountID, env); err != nil {
		return AppendResult{}, err
	}
	subject := j.Subject(accountID)
	data, err := events.Marshal(env)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append %s: %w", subject, err)
	}
	msg := eventMsg(subject, env, data)
	if trace.SpanFromContext(ctx).IsRecording() {
		// The caller's trace (the command's append span, sampled): the
		// event's consumers continue it (internal/tracing). A span that
		// does not record (no exporter) may still hold the requester's
		// traceparent: the event does not keep what a caller chose.
		tracing.Inject(ctx, msg.Header)
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(expected)}
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if j.cfg.AttemptsTTL > 0 && events.IsAttempt(env.Data) {
		opts = append(opts, jetstream.WithMsgTTL(j.cfg.AttemptsTTL))
	}
	ack, err := j.publishExpecting(ctx, msg, opts)
	if err != nil {
		if !isWrongLastSeq(err) {
			return AppendResult{}, fmt.Errorf("append %s: %w", subject, err)
		}
		if msgID != "" {
			// The server checks the expected sequence before the message id
			// (nats-server 2.15 processJetStreamMsg), so the retry of an
			// append that did land, sent with the same expected sequence,
			// comes back as a conflict. Report it as the duplicate it is.
			if seq, found, serr := j.findMsgID(ctx, subject, expected, msgID); serr == nil && found {
				return AppendResult{Seq: seq, Duplicate: true}, nil
			} else if serr != nil {
				// Unsure: a conflict is the safe answer, the caller reloads
				// and its retry meets the server's own deduplication.
				return AppendResult{}, fmt.Errorf("append %s: %w: %w (message id check failed: %v)", subject, ErrConflict, err, serr)
			}
		}
		// Both errors are kept: ErrConflict for callers, the API error
		// (10071 / 10164) for diagnosis.
		return AppendResult{}, fmt.Errorf("append %s: %w: %w", subject, ErrConflict, err)
	}
	return AppendResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// inProcessRetries bounds the re-sends of an append that a replicated
// stream's leader refused with 10164; the waits between them double from
// 1 ms (31 ms in all).
const inProcessRetries = 5

// publishExpecting publishes an expected-sequence append and re-sends it
// while the leader of a replicated stream answers 10164 (wrong last
// sequence, without a number). nats-server 2.15.2 gives that answer, without
// comparing sequences, while an earlier message on the subject is proposed
// but not yet applied on the leader, and it clears that state only after it
// has acked the earlier message: an append sent as soon as the previous
// one's ack arrives, with the right expected sequence, can meet it. The
// refusal stores nothing, so re-sending the same message (same expected
// sequence, same message id) is safe and gets the real answer: stored, or
// 10071 if the expected sequence is stale. Without this every such append
// costs the command a reload and a decision more, and a contract test sees
// a conflict on an append with the right sequence.
func (j *JetStream) publishExpecting(ctx context.Context, msg *nats.Msg, opts []jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := j.js.PublishMsg(ctx, msg, opts...)
	for try := 0; try < inProcessRetries && isSubjectInProcess(err); try++ {
		wait := time.NewTimer(time.Millisecond << try)
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil, err
		case <-wait.C: // backoff before a re-send, not a wait for a condition
		}
		ack, err = j.js.PublishMsg(ctx, msg, opts...)
	}
	return ack, err
}

// isSubjectInProcess recognises 10164, the refusal of a replicated stream
// that does not say the expected sequence is stale.
func isSubjectInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// findMsgID looks among the subject's messages after expected for one
// published with msgID. Only headers are read; the number read is the
// number of events the caller's expected sequence is behind.
func (j *JetStream) findMsgID(ctx context.Context, subject string, expected uint64, msgID string) (uint64, bool, error) {
	last, err := j.lastSeq(ctx, subject)
	if err != nil || last <= expected {
		return 0, false, err
	}
	var seq uint64
	err = j.scan(ctx, subject, expected, last, true, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		if msg.Headers().Get(jetstream.MsgIDHeader) == msgID {
			seq = md.Sequence.Stream
			return true, nil
		}
		return false, nil
	})
	return seq, seq != 0, err
}

// isWrongLastSeq recognises the server's "wrong last sequence" refusal:
// 10071, or 10164 from replicated streams.
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// kvIndex is the NIR index: KV create is atomic on the stream leader, so
// two registrations of one NIR cannot both win.
type kvIndex struct{ kv jetstream.KeyValue }

// Create implements Index. The key is not put in errors: it is derived from
// a NIR.
func (x kvIndex) Create(ctx context.Context, key, accountID string) error {
	_, err := x.kv.Create(ctx, key, []byte(accountID))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("index create: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("index create: %w", err)
	}
	return nil
}

// Get implements Index.
func (x kvIndex) Get(ctx context.Context, key string) (string, error) {
	e, err := x.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", fmt.Errorf("index get: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("index get: %w", err)
	}
	return string(e.Value()), nil
}

// kvSnapshots keeps one snapshot per account, keyed by account id. The
// value is the 8-byte big-endian sequence the state reflects, then the state.
type kvSnapshots struct{ kv jetstream.KeyValue }

// Get implements Snapshots.
func (x kvSnapshots) Get(ctx context.Context, accountID string) (uint64, []byte, error) {
	if err := ValidateAccountID(accountID); err != nil {
		return 0, nil, err
	}
	e, err := x.kv.Get(ctx, accountID)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, nil, fmt.Errorf("snapshot get %s: %w", accountID, ErrNotFound)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("snapshot get %s: %w", accountID, err)
	}
	v := e.Value()
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("snapshot get %s: value of %d bytes, want at least 8", accountID, len(v))
	}
	return binary.BigEndian.Uint64(v[:8]), v[8:], nil
}

// Put implements Snapshots. It never moves an account's snapshot back: a
// Put older than the stored one (another instance's, written late) is
// dropped, so a snapshot that covers a login attempt keeps covering it
// until the attempt expires (docs/retention.md). The check and the write
// are one compare-and-set on the key's revision, retried on a race.
func (x kvSnapshots) Put(ctx context.Context, accountID string, seq uint64, state []byte) error {
	if err := ValidateAccountID(accountID); err != nil {
		return err
	}
	v := make([]byte, 8+len(state))
	binary.BigEndian.PutUint64(v, seq)
	copy(v[8:], state)
	for range snapshotPutTries {
		e, err := x.kv.Get(ctx, accountID)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			_, err = x.kv.Create(ctx, accountID, v)
		case err != nil:
			return fmt.Errorf("snapshot put %s: %w", accountID, err)
		case len(e.Value()) >= 8 && binary.BigEndian.Uint64(e.Value()[:8]) > seq:
			return nil // a newer one is there
		default:
			_, err = x.kv.Update(ctx, accountID, v, e.Revision())
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongLastSeq(err) {
			return fmt.Errorf("snapshot put %s: %w", accountID, err)
		}
	}
	return fmt.Errorf("snapshot put %s: %w after %d tries", accountID, ErrConflict, snapshotPutTries)
}

// EventMsg is the message of env on subject as Append writes it, less the
// trace context and the append's expectations: the JSON envelope, and its
// type, version and id in headers. For tools that fill a stream without
// the commands service (benchmarks, tests); a message without the id
// header is skipped by every reader (events.ErrNotAppended).
func EventMsg(subject string, env events.Envelope) (*nats.Msg, error) {
	data, err := events.Marshal(env)
	if err != nil {
		return nil, err
	}
	return eventMsg(subject, env, data), nil
}

func eventMsg(subject string, env events.Envelope, data []byte) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(HeaderEventType, env.Type)
	msg.Header.Set(HeaderEventVersion, strconv.Itoa(env.Version))
	msg.Header.Set(HeaderEventID, env.ID)
	return msg
}

// snapshotPutTries bounds the compare-and-set rounds of one snapshot Put.
const snapshotPutTries = 5
