package bench

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// TestAsyncPublisherWaitsInsteadOfFailing: with a client bound of 4
// messages and no stall allowed (the busy machine's case: acknowledgements
// later than the stall wait), a plain async publish loop fails with
// ErrTooManyStalledMsgs, and the asyncPublisher, whose window is larger
// than that bound, stores every message by waiting for acknowledgements.
func TestAsyncPublisherWaitsInsteadOfFailing(t *testing.T) {
	srv, err := natsutil.StartEmbedded(natsutil.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PUB", Subjects: []string{"pub.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	noStall := jetstream.WithStallWait(time.Nanosecond)

	// Without the window: the client's bound refuses.
	var plainErr error
	for i := range 1000 {
		if _, plainErr = js.PublishMsgAsync(&nats.Msg{Subject: fmt.Sprintf("pub.plain.%d", i), Data: []byte("x")}, noStall); plainErr != nil {
			break
		}
	}
	if !errors.Is(plainErr, jetstream.ErrTooManyStalledMsgs) {
		t.Fatalf("plain async publishes: err = %v, want ErrTooManyStalledMsgs (else this test shows nothing)", plainErr)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("plain publishes never acknowledged")
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	const n = 2000
	p := newAsyncPublisher(js, 64)
	for i := range n {
		if err := p.Publish(ctx, &nats.Msg{Subject: fmt.Sprintf("pub.a.%d", i%50), Data: []byte("x")}, noStall); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(p.pending) > p.window {
			t.Fatalf("%d messages awaiting acknowledgement, window %d", len(p.pending), p.window)
		}
	}
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Errorf("stream holds %d messages, want %d", info.State.Msgs, n)
	}
	if p.waits == 0 {
		t.Errorf("the publisher never waited: the client's bound was not met")
	}
	t.Logf("%d publishes waited for an acknowledgement", p.waits)
}

// TestAsyncPublisherFailsWithoutStream: messages no stream takes (nats.go
// retries them, then the publisher sends one again synchronously, which
// fails too) end in an error naming why, not in a hang.
func TestAsyncPublisherFailsWithoutStream(t *testing.T) {
	srv, err := natsutil.StartEmbedded(natsutil.EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newAsyncPublisher(js, 2)
	var perr error
	for i := 0; i < 10 && perr == nil; i++ {
		perr = p.Publish(ctx, &nats.Msg{Subject: "nostream.x", Data: []byte("x")})
	}
	if perr == nil {
		perr = p.Wait(ctx)
	}
	if !errors.Is(perr, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err = %v, want ErrNoStreamResponse", perr)
	}
	if p.resent == 0 {
		t.Errorf("no message was published again")
	}
}
