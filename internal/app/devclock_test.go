package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// The commands service answers <prefix>.dev.clock.advance and keeps the
// offset; a follower (the projector's and the notifier's FollowDevClock)
// follows the kept offset: it moves with every accepted request and with no
// refused one, so their clocks stay equal, and a refusal is the commands'
// invalid_request reply naming the field.
func TestDevClockResponderAndFollowerAgree(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.OpenJetStream(context.Background(), js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	answers, follows := &clock.Dev{}, &clock.Dev{}
	if err := KeepDevClock(context.Background(), js, "auth", 1, answers, log); err != nil {
		t.Fatal(err)
	}
	svc, err := commands.New(commands.Config{Keys: keys, Store: store, Index: store.Index(), Snapshots: store.Snapshots(), Shadows: store.Shadows(),
		Sources: store.Sources(), Fraud: store.Fraud(),
		DevClock: answers, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(natsutil.Connect(t, srv)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	stopFollowing, err := FollowDevClock(context.Background(), js, "auth", 1, follows, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopFollowing)

	tenYears := strconv.FormatInt(int64(clock.MaxAdvance/time.Second), 10)
	for _, c := range []struct {
		name, body string
		field      string // "" when accepted
	}{
		{"fifteen_minutes", `{"seconds":900}`, ""},
		{"missing_seconds", `{}`, "seconds"},
		{"zero", `{"seconds":0}`, "seconds"},
		{"negative", `{"seconds":-1}`, "seconds"},
		{"fraction", `{"seconds":1.5}`, "seconds"},
		{"string", `{"seconds":"60"}`, "seconds"},
		{"more_than_ten_years", `{"seconds":` + tenYears + `1}`, "seconds"},
		{"unknown_field", `{"seconds":60,"x":1}`, "body"},
		{"ten_years", `{"seconds":` + tenYears + `}`, ""},
		{"the_overflowing_request_after_earlier_advances", `{"seconds":9223372036}`, "seconds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := answers.Offset()
			m, err := nc.Request("auth.dev.clock.advance", []byte(c.body), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var rep contract.AnyReply
			if err := json.Unmarshal(m.Data, &rep); err != nil {
				t.Fatalf("reply %s: %v", m.Data, err)
			}
			if c.field == "" {
				if !rep.OK || rep.Status != contract.StatusClockAdvanced || rep.Now == nil || answers.Offset() <= before {
					t.Fatalf("reply %s, offset %v (was %v)", m.Data, answers.Offset(), before)
				}
				return
			}
			if rep.OK || rep.Error == nil || rep.Error.Code != "invalid_request" || rep.Error.Field != c.field ||
				!strings.Contains(rep.Error.Message, "« "+c.field+" »") || answers.Offset() != before {
				t.Fatalf("reply %s, offset %v (was %v)", m.Data, answers.Offset(), before)
			}
		})
	}
	// One more step: the kept offset only grows, so once the follower has
	// caught up with this one it has seen every request above.
	if m, err := nc.Request("auth.dev.clock.advance", []byte(`{"seconds":1}`), 5*time.Second); err != nil || !strings.Contains(string(m.Data), `"ok":true`) {
		t.Fatalf("last step: %v", err)
	}
	want := answers.Offset()
	if want > clock.MaxOffset || answers.Now().Year() > time.Now().Year()+11 {
		t.Fatalf("responder's clock at %v (offset %v)", answers.Now(), want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for follows.Offset() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling, until the deadline above
	}
	if got := follows.Offset(); got != want {
		t.Fatalf("follower offset %v, responder %v", got, want)
	}
}

// Without AUTH_DEV_CLOCK=1 a following component runs on the system clock
// and listens to nothing.
func TestFollowClockIsTheSystemClockUnlessAskedFor(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := &NATS{Conn: nc, JS: js}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := js.KeyValue(context.Background(), DevClockBucket); err == nil {
		t.Fatal("the system clock created the dev clock's bucket")
	}
	clk, stop, err := FollowClock(config.Config{Prefix: "auth"}, n, log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, ok := clk.(clock.System); !ok {
		t.Fatalf("clock %T, want clock.System", clk)
	}
	clk, stop, err = FollowClock(config.Config{Prefix: "auth", DevClock: true}, n, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	dev, ok := clk.(*clock.Dev)
	if !ok {
		t.Fatalf("clock %T, want *clock.Dev", clk)
	}
	// The commands service's clock, kept: one step of 60 s.
	answers := &clock.Dev{}
	if err := KeepDevClock(context.Background(), js, "auth", 1, answers, log); err != nil {
		t.Fatal(err)
	}
	if _, err := answers.Advance(time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dev.Offset() != time.Minute && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling, until the deadline above
	}
	if dev.Offset() != time.Minute {
		t.Fatalf("offset %v after one step of 60 s", dev.Offset())
	}
}

// A restart never takes the dev clock back: the commands service's clock
// and a follower started after an advance start at the kept offset, before
// they serve anything; another prefix has its own.
func TestDevClockKeptAcrossRestarts(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if off, err := KeptDevClockOffset(ctx, js, "auth"); err != nil || off != 0 {
		t.Fatalf("before any dev clock: offset %v, err %v", off, err)
	}
	first := &clock.Dev{}
	if err := KeepDevClock(ctx, js, "auth", 1, first, log); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Advance(48 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Advance(-time.Second); err == nil {
		t.Fatal("a refused step was accepted")
	}
	if off, err := KeptDevClockOffset(ctx, js, "auth"); err != nil || off != 48*time.Hour {
		t.Fatalf("kept offset %v (err %v), want 48h", off, err)
	}

	restarted, follower := &clock.Dev{}, &clock.Dev{}
	if err := KeepDevClock(ctx, js, "auth", 1, restarted, log); err != nil {
		t.Fatal(err)
	}
	stop, err := FollowDevClock(ctx, js, "auth", 1, follower, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if restarted.Offset() != 48*time.Hour || follower.Offset() != 48*time.Hour {
		t.Fatalf("after a restart: commands %v, follower %v; want 48h both", restarted.Offset(), follower.Offset())
	}
	// A stale instance never takes the kept offset back.
	if err := raiseKept(ctx, mustBucket(t, js), devClockKey("auth"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if off, _ := KeptDevClockOffset(ctx, js, "auth"); off != 48*time.Hour {
		t.Fatalf("kept offset went back to %v", off)
	}
	if off, _ := KeptDevClockOffset(ctx, js, "other"); off != 0 {
		t.Fatalf("prefix other has offset %v", off)
	}
}

func mustBucket(t *testing.T, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), DevClockBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Two commands instances on a 3-node cluster each keep every advance (both
// receive it) in the bucket, replicated three times, and neither gives up
// nor leaves the kept offset short. (A read right after the other's write
// may come from a replica behind it: seen once by hand on `make cluster`
// right after a node's restart, "too many concurrent writers"; this
// cluster's replicas keep up too fast to show it, so the pauses of
// raiseKept are not what this test can catch.)
func TestDevClockKeptByTwoCommandsOnACluster(t *testing.T) {
	cl := natsutil.StartTestCluster(t, 3)
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	var clocks []*clock.Dev
	var js0 jetstream.JetStream
	for i := range 2 {
		js, err := jetstream.New(cl.Connect(t, i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			js0 = js
		}
		c := &clock.Dev{}
		if err := KeepDevClock(context.Background(), js, "auth", 3, c, log); err != nil {
			t.Fatal(err)
		}
		clocks = append(clocks, c)
	}
	kv, err := js0.KeyValue(context.Background(), DevClockBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(context.Background()); err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Fatalf("the bucket: %v, want 3 replicas", err)
	}
	const steps = 30
	for range steps {
		done := make(chan error, len(clocks))
		for _, c := range clocks {
			go func() { _, err := c.Advance(time.Second); done <- err }()
		}
		for range clocks {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.Contains(logs.String(), "not kept") {
		t.Fatalf("an instance gave up keeping the offset:\n%s", logs.String())
	}
	waitFor(t, "the kept offset", func() error {
		if got, err := KeptDevClockOffset(context.Background(), js0, "auth"); err != nil || got != steps*time.Second {
			return fmt.Errorf("kept %v (%v), want %v", got, err, steps*time.Second)
		}
		return nil
	})
}
