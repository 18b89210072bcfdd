package notifier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// Headers the notifier adds to what it receives (as watermill metadata)
// and to what it puts in the dead-letter stream.
const (
	HeaderSourceSubject    = "Auth-Source-Subject"    // the event's subject in AUTH_EVENTS
	HeaderSourceSeq        = "Auth-Source-Seq"        // its stream sequence
	HeaderSourceDeliveries = "Auth-Source-Deliveries" // deliveries to the notifier so far
	HeaderMailKind         = "Auth-Mail-Kind"         // the mail the event asked for, once known
	HeaderDLQReason        = "Auth-DLQ-Reason"        // why it could not be handled
	HeaderDLQConsumer      = "Auth-DLQ-Consumer"      // who gave up: AUTH_EVENTS/notifier
	HeaderDLQAt            = "Auth-DLQ-At"            // when (RFC 3339)
)

// ensureConsumer creates or updates the notifier's durable pull consumer.
// Its name is part of the contract: renaming it replays the whole stream
// (which the notifier survives, thanks to its records, but slowly).
func (n *Notifier) ensureConsumer(ctx context.Context, st eventStream) (jetstream.Consumer, error) {
	c := n.cfg
	// No BackOff on the consumer: the handler's failures are naked with
	// their own delay (Config.Backoff), and with a consumer BackOff
	// nats-server 2.15 counts a nak's delay from the backoff slot of the
	// delivery, so a nak of 50 ms at the second delivery came back after
	// a whole AckWait. AckWait alone paces the redeliveries of messages
	// whose worker died.
	cons, err := c.JS.CreateOrUpdateConsumer(ctx, st.name, jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		Description:   "cmd/notifier: mails the events that ask for one, once per event",
		FilterSubject: st.subjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		// A safety net behind the handler's own limit (MaxAttempts, then
		// the dead letters): a message that kills the process every time
		// stops being delivered instead of looping.
		MaxDeliver:    c.MaxAttempts + 3,
		MaxAckPending: c.MaxAckPending,
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: consumer %s on %s: %w", c.Consumer, st.name, err)
	}
	return cons, nil
}

// eventStream is one partition's events stream and its subjects.
type eventStream struct{ name, subjects string }

// streams are the events streams the notifier consumes: Config.Stream with
// one partition, every partition's stream with several.
func (n *Notifier) streams() []eventStream {
	l := contract.Layout{Prefix: n.cfg.Prefix, Partitions: n.cfg.Partitions}
	if !l.Split() {
		return []eventStream{{n.cfg.Stream, l.StreamSubjects(0)}}
	}
	out := make([]eventStream, l.N())
	for p := range out {
		out[p] = eventStream{l.Stream(p), l.StreamSubjects(p)}
	}
	return out
}

// DLQStreamConfig names the dead-letter stream EnsureDLQStream creates.
// Zero values take the defaults.
type DLQStreamConfig struct {
	Prefix   string // subject prefix, default contract.DefaultPrefix: subjects <prefix>.dlq.>
	Stream   string // default contract.DLQStream
	Replicas int    // default 1; as many as the events stream's, so a dead letter is kept while a node is down (docs/durability.md)
}

// EnsureDLQStream creates the dead-letter stream, subjects <prefix>.dlq.>,
// or adds that subject to an existing one, leaving the rest of its
// configuration alone (other consumers may put their own dead letters
// there). The commands service calls it at start, as it creates every
// stream: the notifier's NATS user may only read the stream's info and
// publish its own dead letters (deploy/nats/users.conf), so Start only
// checks that the stream is there.
func EnsureDLQStream(ctx context.Context, js jetstream.JetStream, cfg DLQStreamConfig) error {
	if cfg.Stream == "" {
		cfg.Stream = contract.DLQStream
	}
	all := contract.Subjects(cfg.Prefix).AllDeadLetters()
	st, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Stream,
			Description: "Dead letters: events a consumer could not handle, with the reason in Auth-DLQ-Reason.",
			Subjects:    []string{all},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      90 * 24 * time.Hour,
			Duplicates:  2 * time.Minute,
			Replicas:    max(1, cfg.Replicas),
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil // another instance created it meanwhile
		}
		if err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Stream, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Stream, err)
	}
	sc := st.CachedInfo().Config
	if slices.Contains(sc.Subjects, all) {
		return nil
	}
	sc.Subjects = append(sc.Subjects, all)
	if _, err := js.UpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("add %s to stream %s: %w", all, cfg.Stream, err)
	}
	return nil
}

// checkDLQ makes sure the dead-letter stream exists and takes the
// notifier's subject. It creates nothing: EnsureDLQStream does, in the
// commands service.
func (n *Notifier) checkDLQ(ctx context.Context) error {
	c := n.cfg
	st, err := c.JS.Stream(ctx, c.DLQStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("notifier: dead-letter stream %s not found: the commands service creates it at start (start it first): %w", c.DLQStream, err)
	}
	if err != nil {
		return fmt.Errorf("notifier: stream %s: %w", c.DLQStream, err)
	}
	for _, s := range st.CachedInfo().Config.Subjects {
		if s == n.dlqSubject || s == contract.Subjects(c.Prefix).AllDeadLetters() {
			return nil
		}
	}
	return fmt.Errorf("notifier: stream %s does not take %s (its subjects: %v): the commands service adds it at start",
		c.DLQStream, n.dlqSubject, st.CachedInfo().Config.Subjects)
}

// unmarshaler turns a JetStream message into a watermill one. It never
// fails: what cannot be read is the handler's to judge, and to
// dead-letter. The headers become metadata, with where the message comes
// from and how often it was delivered.
type unmarshaler struct{}

func (unmarshaler) Unmarshal(m jetstream.Msg) (*message.Message, error) {
	h := m.Headers()
	id := h.Get(eventstore.HeaderEventID)
	md, mdErr := m.Metadata()
	if id == "" && mdErr == nil {
		id = "seq-" + strconv.FormatUint(md.Sequence.Stream, 10)
	}
	wm := message.NewMessage(id, m.Data())
	for k, v := range h {
		if len(v) > 0 && !strings.HasPrefix(k, "Nats-") {
			wm.Metadata.Set(k, v[0])
		}
	}
	wm.Metadata.Set(HeaderSourceSubject, m.Subject())
	if mdErr == nil {
		wm.Metadata.Set(HeaderSourceSeq, strconv.FormatUint(md.Sequence.Stream, 10))
		wm.Metadata.Set(HeaderSourceDeliveries, strconv.FormatUint(md.NumDelivered, 10))
	}
	return wm, nil
}

// deliveries is how many times JetStream delivered this message (1 the
// first time).
func deliveries(msg *message.Message) int {
	n, err := strconv.Atoi(msg.Metadata.Get(HeaderSourceDeliveries))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// nakDelay is the wait before a failed message comes back: by delivery
// number along Backoff, then its last value.
type nakDelay []time.Duration

func (d nakDelay) WaitTime(delivered uint64) time.Duration {
	if len(d) == 0 {
		return time.Second
	}
	i := int(min(delivered, uint64(len(d)))) - 1
	return d[max(i, 0)]
}

// dlqPublisher puts dead letters in the DLQ stream with a confirmed
// publish (watermill-nats' publisher does not wait for the ack).
type dlqPublisher struct {
	js        jetstream.JetStream
	dlqStream string // where dead letters must land
	source    string // the stream they come from
	consumer  string
	timeout   time.Duration
}

var _ message.Publisher = dlqPublisher{}

func (p dlqPublisher) Publish(subject string, msgs ...*message.Message) error {
	for _, m := range msgs {
		nm := nats.NewMsg(subject)
		nm.Data = m.Payload
		for k, v := range m.Metadata {
			switch k {
			case middleware.ReasonForPoisonedKey:
				nm.Header.Set(HeaderDLQReason, v)
			case middleware.PoisonedTopicKey, middleware.PoisonedHandlerKey, middleware.PoisonedSubscriberKey:
			default:
				nm.Header.Set(k, v)
			}
		}
		// The stream the letter comes from: the handler's topic (a
		// partition's stream), else the configured one.
		source := p.source
		if topic := m.Metadata.Get(middleware.PoisonedTopicKey); topic != "" {
			source = topic
		}
		nm.Header.Set(HeaderDLQConsumer, source+"/"+p.consumer)
		nm.Header.Set(HeaderDLQAt, time.Now().UTC().Format(time.RFC3339))
		opts := []jetstream.PublishOpt{jetstream.WithExpectStream(p.dlqStream)}
		if seq := m.Metadata.Get(HeaderSourceSeq); seq != "" {
			// A retry of this dead letter (its ack to AUTH_EVENTS was
			// lost) is stored once.
			// Sequences are a partition stream's: with several, the
			// stream is part of the id.
			id := p.consumer + "-" + seq
			if source != p.source {
				id = p.consumer + "-" + source + "-" + seq
			}
			opts = append(opts, jetstream.WithMsgID(id))
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		_, err := p.js.PublishMsg(ctx, nm, opts...)
		cancel()
		if err != nil {
			return fmt.Errorf("publish dead letter to %s: %w", subject, err)
		}
	}
	return nil
}

func (dlqPublisher) Close() error { return nil }

// Lag is how far the notifier's consumer is behind the stream: the events
// not yet delivered to it (the consumer's num_pending) and the age of the
// first of them by the stream's timestamp (0 when none; ages by the system
// clock). Events delivered and waiting for their ack (a mail in flight, or
// naked for a retry) are not counted: a mail retried for an hour must not
// make the notifier look stuck while it keeps up with the rest.
func (n *Notifier) Lag(ctx context.Context) (pending uint64, seconds float64, err error) {
	// With several partitions: the events pending on all of them, and the
	// age of the oldest.
	for _, st := range n.streams() {
		p, s, err := n.lag(ctx, st)
		if err != nil {
			return pending + p, seconds, err
		}
		pending, seconds = pending+p, max(seconds, s)
	}
	return pending, seconds, nil
}

func (n *Notifier) lag(ctx context.Context, st eventStream) (pending uint64, seconds float64, err error) {
	cons, err := n.cfg.JS.Consumer(ctx, st.name, n.cfg.Consumer) // a consumer info request
	if err != nil {
		return 0, 0, fmt.Errorf("notifier: consumer %s: %w", n.cfg.Consumer, err)
	}
	info := cons.CachedInfo()
	if info.NumPending == 0 {
		return 0, 0, nil
	}
	stream, err := n.cfg.JS.Stream(ctx, st.name)
	if err != nil {
		return info.NumPending, 0, fmt.Errorf("notifier: stream %s: %w", st.name, err)
	}
	// The first event after the last one delivered (deleted ones skipped).
	m, err := stream.GetMsg(ctx, info.Delivered.Stream+1, jetstream.WithGetMsgSubject(st.subjects))
	switch {
	case err == nil:
		seconds = max(0, time.Since(m.Time).Seconds())
	case errors.Is(err, jetstream.ErrMsgNotFound):
	default:
		return info.NumPending, 0, fmt.Errorf("notifier: oldest undelivered event: %w", err)
	}
	return info.NumPending, seconds, nil
}
