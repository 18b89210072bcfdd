package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// subscriber is a watermill message.Subscriber over an existing durable
// pull consumer, on its own NATS connection. It is written here rather
// than taken from watermill-nats v2.1.3 (its jetstream package, beta)
// because that one, at shutdown, closes the channel it may be sending on
// (a data race and a possible panic, which -race reports), drops the ack
// of a message whose handler finished during shutdown, and crashes on an
// unmarshal error. This one:
//
//   - hands the router one message at a time per Subscribe and waits for
//     its ack or nack (the router runs one Subscribe per worker);
//   - acks with a confirmed double ack, naks with the Backoff delay of the
//     delivery number;
//   - at shutdown stops pulling, still delivers the ack of the message in
//     flight once its handler is done, and naks at once (hands back) the
//     messages pulled ahead but not handled.
type subscriber struct {
	cons       jetstream.Consumer
	nc         *nats.Conn
	prefetch   int
	ackTimeout time.Duration // how long to wait for the handler's verdict
	delay      nakDelay
	log        *slog.Logger

	closing   chan struct{}
	closeOnce sync.Once
	loops     sync.WaitGroup
}

var _ message.Subscriber = (*subscriber)(nil)

// Subscribe starts one consuming loop; topic is ignored (the consumer
// knows its stream and filter).
func (s *subscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, errors.New("notifier: subscriber closed")
	default:
	}
	it, err := s.cons.Messages(jetstream.PullMaxMessages(s.prefetch))
	if err != nil {
		return nil, fmt.Errorf("notifier: pull from consumer: %w", err)
	}
	out := make(chan *message.Message)
	s.loops.Add(1)
	go s.loop(ctx, it, out)
	return out, nil
}

func (s *subscriber) loop(ctx context.Context, it jetstream.MessagesContext, out chan<- *message.Message) {
	defer s.loops.Done()
	defer close(out) // the only sender: closing here cannot race a send
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopping := func() {
		stopOnce.Do(func() {
			close(stop)
			it.Drain() // no more pulls; Next returns what is buffered, then ErrMsgIteratorClosed
		})
	}
	defer context.AfterFunc(ctx, stopping)()
	go func() {
		select {
		case <-s.closing:
			stopping()
		case <-stop:
		}
	}()
	defer stopping()

	for {
		jm, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			s.log.Warn("pulling messages", "err", err)
			select {
			case <-stop:
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case <-stop:
			s.handBack(jm)
			continue
		default:
		}
		wm, _ := unmarshaler{}.Unmarshal(jm)
		wm.SetContext(ctx)
		select {
		case out <- wm:
		case <-stop:
			s.handBack(jm)
			continue
		}
		s.settle(jm, wm)
	}
}

// settle waits for the handler's verdict and tells JetStream. It does not
// give up at shutdown: the router lets handlers finish, and the ack of a
// mail just sent must reach the server, or the event comes back after
// AckWait (harmlessly, its record says sent, but late).
func (s *subscriber) settle(jm jetstream.Msg, wm *message.Message) {
	timer := time.NewTimer(s.ackTimeout)
	defer timer.Stop()
	select {
	case <-wm.Acked():
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := jm.DoubleAck(ctx); err != nil {
			// The server redelivers after AckWait; the record says sent.
			s.log.Warn("ack not confirmed", "event_id", wm.UUID, "err", err)
		}
	case <-wm.Nacked():
		delivered := 1
		if md, err := jm.Metadata(); err == nil {
			delivered = int(md.NumDelivered)
		}
		if err := jm.NakWithDelay(s.delay.WaitTime(uint64(delivered))); err != nil {
			s.log.Warn("nak failed", "event_id", wm.UUID, "err", err)
		}
	case <-timer.C:
		s.log.Warn("no verdict within the ack wait: JetStream will deliver it again", "event_id", wm.UUID)
	}
}

// handBack returns a message pulled but not handled, for immediate
// redelivery (to another notifier, or this one's successor).
func (s *subscriber) handBack(jm jetstream.Msg) {
	if err := jm.Nak(); err != nil {
		s.log.Debug("hand back failed: JetStream redelivers after the ack wait", "err", err)
	}
}

// Close stops the loops (the router has normally stopped them already),
// waits for them, and drains the subscriber's connection.
func (s *subscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() { s.loops.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.ackTimeout + 5*time.Second):
		return errors.New("notifier: subscriber loops did not stop")
	}
	if s.nc.IsClosed() {
		return nil
	}
	return s.nc.Drain()
}
