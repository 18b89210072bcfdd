package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishWindow is the asyncPublisher's default bound on messages awaiting
// their acknowledgement: half of the 8,192 the bench's JetStream contexts
// allow (WithPublishAsyncMaxPending), so the client's own limit, which
// fails a publish after 200 ms of stall ("nats: stalled with too many
// outstanding async published messages"), is not the one met (our
// choice).
const publishWindow = 4096

// ackStall is how long the asyncPublisher waits for its oldest message's
// acknowledgement before giving up: a server that acknowledges nothing
// for a minute is stuck, not slow.
const ackStall = time.Minute

// asyncPublisher publishes to JetStream asynchronously with at most window
// messages awaiting their acknowledgement: past that, Publish waits for the
// oldest one's acknowledgement (as long as ackStall) instead of failing, so
// a loaded machine makes a publish slower, never fatal. A refusal
// (ErrTooManyStalledMsgs) by the client's own bound, shared with other
// publishers on the same context, is waited out the same way. Not safe for
// concurrent use.
type asyncPublisher struct {
	js      jetstream.JetStream
	window  int
	pending []jetstream.PubAckFuture // oldest first
	waits   int                      // Publish calls that waited for an acknowledgement
	resent  int                      // messages published again after no stream answered
}

// newAsyncPublisher bounds js's asynchronous publishes to window messages
// in flight (publishWindow when window <= 0).
func newAsyncPublisher(js jetstream.JetStream, window int) *asyncPublisher {
	if window <= 0 {
		window = publishWindow
	}
	return &asyncPublisher{js: js, window: window}
}

// Publish sends msg asynchronously, after waiting for acknowledgements
// while window messages await theirs. An error is a refused or
// unacknowledged earlier message, ctx's end, or msg's own refusal.
func (p *asyncPublisher) Publish(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) error {
	for len(p.pending) >= p.window {
		p.waits++
		if err := p.awaitOldest(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(ackStall)
	for {
		f, err := p.js.PublishMsgAsync(msg, opts...)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			if err != nil {
				return fmt.Errorf("publish %s: %w", msg.Subject, err)
			}
			p.pending = append(p.pending, f)
			return nil
		}
		p.waits++
		if len(p.pending) > 0 {
			if err := p.awaitOldest(ctx); err != nil {
				return err
			}
			continue
		}
		// Another publisher's messages fill the client's bound: they are
		// not ours to wait on, so try again shortly.
		if time.Now().After(deadline) {
			return fmt.Errorf("publish %s: %w for %s", msg.Subject, err, ackStall)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// Wait waits for every message's acknowledgement.
func (p *asyncPublisher) Wait(ctx context.Context) error {
	for len(p.pending) > 0 {
		if err := p.awaitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// awaitOldest waits for the oldest pending message's acknowledgement. A
// message no stream answered (nats.go already retried it twice) was not
// stored: it is published again, once, synchronously.
func (p *asyncPublisher) awaitOldest(ctx context.Context) error {
	f := p.pending[0]
	t := time.NewTimer(ackStall)
	defer t.Stop()
	select {
	case <-f.Ok():
	case err := <-f.Err():
		if !errors.Is(err, jetstream.ErrNoStreamResponse) {
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		}
		p.resent++
		if _, err := p.js.PublishMsg(ctx, f.Msg()); err != nil {
			return fmt.Errorf("publish %s again: %w", f.Msg().Subject, err)
		}
	case <-t.C:
		return fmt.Errorf("publish %s: no acknowledgement for %s (%d messages in flight)", f.Msg().Subject, ackStall, len(p.pending))
	case <-ctx.Done():
		return ctx.Err()
	}
	p.pending[0] = nil
	p.pending = p.pending[1:]
	return nil
}
