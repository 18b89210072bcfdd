package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Attempt is a login attempt as the stream holds it (a message with a
// per-message TTL: events.IsAttempt, JetStreamConfig.AttemptsTTL), seen
// by a follower of the attempts (FollowAttempts).
type Attempt struct {
	AccountID string
	Seq       uint64        // its sequence in its partition's stream
	Stored    time.Time     // when the server stored it (its clock: TTLs run on it)
	TTL       time.Duration // how long after Stored the server removes it
}

// AttemptsFollower is a store whose login attempts expire: FollowAttempts
// hands every attempt, in each stream's order, to handle through a durable
// consumer named durable on each events stream, shared by every process
// that follows with the same name (each attempt goes to one of them, and
// again after a crash until handle returns nil: at least once). A handle
// error, or a failure to create or read the consumer, is given to report
// and retried after a pause. It returns when ctx ends.
type AttemptsFollower interface {
	FollowAttempts(ctx context.Context, durable string, handle func(context.Context, Attempt) error, report func(error))
}

var (
	_ AttemptsFollower = (*JetStream)(nil)
	_ AttemptsFollower = (*Partitioned)(nil)
)

// Follower settings. The consumer delivers headers only: a follower needs
// the account (the subject), the sequence, the time and the TTL header,
// never the event's body. The ack wait is longer than handle may hold an
// attempt (commands: at most a minute, coverDelay) plus its work.
const (
	followBatch       = 256
	followAckWait     = 3 * time.Minute
	followMaxPending  = 8 * followBatch
	followRetryPause  = 5 * time.Second
	followFetchExpiry = 5 * time.Second
)

// FollowAttempts implements AttemptsFollower on the partition's stream.
// Messages without a TTL (the events that never expire) and messages the
// commands service did not append are acknowledged without a call.
func (j *JetStream) FollowAttempts(ctx context.Context, durable string, handle func(context.Context, Attempt) error, report func(error)) {
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		if cons == nil {
			var err error
			if cons, err = j.followConsumer(ctx, durable); err != nil {
				report(err)
				_ = pause(ctx, followRetryPause)
				continue
			}
		}
		batch, err := cons.Fetch(followBatch, jetstream.FetchMaxWait(followFetchExpiry))
		if err != nil {
			report(fmt.Errorf("follow attempts of %s: fetch: %w", j.cfg.Stream, err))
			cons = nil // the consumer may be gone (a stream recreated): make it again
			_ = pause(ctx, followRetryPause)
			continue
		}
		for msg := range batch.Messages() {
			if ctx.Err() != nil {
				// Stopping: hand what this follower holds back to the
				// others now rather than after the ack wait.
				_ = msg.Nak()
				continue
			}
			if err := j.followOne(ctx, msg, handle); err != nil {
				if ctx.Err() != nil {
					_ = msg.Nak()
					continue
				}
				report(err)
				_ = msg.NakWithDelay(followRetryPause)
				continue
			}
			_ = msg.Ack()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			// A fetch's own failures come here, not from Fetch: the
			// consumer deleted (an operator, a stream recreated) answers
			// no responders or consumer deleted at once, every time. Make
			// it again after a pause, as for a failed Fetch, rather than
			// spin on it while the attempts expire uncovered.
			report(fmt.Errorf("follow attempts of %s: %w", j.cfg.Stream, err))
			cons = nil
			_ = pause(ctx, followRetryPause)
		}
	}
}

func (j *JetStream) followConsumer(ctx context.Context, durable string) (jetstream.Consumer, error) {
	cons, err := j.js.CreateOrUpdateConsumer(ctx, j.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "commands: a snapshot covers each login attempt before its TTL (docs/retention.md)",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       followAckWait,
		MaxAckPending: followMaxPending,
		MaxDeliver:    -1,
		HeadersOnly:   true,
		FilterSubject: j.cfg.layout().StreamSubjects(j.cfg.Partition),
	})
	if err != nil {
		return nil, fmt.Errorf("follow attempts of %s: consumer %s: %w", j.cfg.Stream, durable, err)
	}
	return cons, nil
}

func (j *JetStream) followOne(ctx context.Context, msg jetstream.Msg, handle func(context.Context, Attempt) error) error {
	ttl, ok := parseTTL(msg.Headers().Get(jetstream.MsgTTLHeader))
	if !ok || msg.Headers().Get(HeaderEventID) == "" {
		return nil
	}
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("attempt metadata: %w", err)
	}
	subject := msg.Subject()
	account := subject[strings.LastIndexByte(subject, '.')+1:]
	if ValidateAccountID(account) != nil {
		return nil
	}
	return handle(ctx, Attempt{AccountID: account, Seq: md.Sequence.Stream, Stored: md.Timestamp, TTL: ttl})
}

// parseTTL reads a Nats-TTL header: a Go duration (what nats.go's
// WithMsgTTL writes) or a number of seconds (what the server accepts
// too). "never", empty and non-positive values are no TTL.
func parseTTL(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		d = time.Duration(s) * time.Second
	}
	return d, d > 0
}

// FollowAttempts implements AttemptsFollower: one follower per partition,
// each on its own stream's durable consumer.
func (p *Partitioned) FollowAttempts(ctx context.Context, durable string, handle func(context.Context, Attempt) error, report func(error)) {
	var wg sync.WaitGroup
	for _, part := range p.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part.FollowAttempts(ctx, durable, handle, report)
		}()
	}
	wg.Wait()
}

// pause waits d or until ctx ends (then its error).
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
