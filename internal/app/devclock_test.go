package app

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// The commands service answers <prefix>.dev.clock.advance and a follower
// (the projector's and the notifier's FollowDevClock) listens: both accept
// and refuse the same requests, so their clocks stay equal, and a refusal is
// the commands' invalid_request reply naming the field.
func TestDevClockResponderAndFollowerAgree(t *testing.T) {
	answers, follows := &clock.Dev{}, &clock.Dev{}
	h := commandstest.Start(t, commandstest.Options{Configure: func(c *commands.Config) {
		c.DevClock, c.Clock = answers, answers
	}})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := FollowDevClock(natsutil.Connect(t, h.Server), contract.DefaultPrefix, follows, log); err != nil {
		t.Fatal(err)
	}

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
			data := h.RawSubject(contract.Default.DevClockAdvance(), []byte(c.body))
			var rep contract.AnyReply
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatalf("reply %s: %v", data, err)
			}
			if c.field == "" {
				if !rep.OK || rep.Status != contract.StatusClockAdvanced || rep.Now == nil || answers.Offset() <= before {
					t.Fatalf("reply %s, offset %v (was %v)", data, answers.Offset(), before)
				}
				return
			}
			if rep.OK || rep.Error == nil || rep.Error.Code != "invalid_request" || rep.Error.Field != c.field ||
				!strings.Contains(rep.Error.Message, "« "+c.field+" »") || answers.Offset() != before {
				t.Fatalf("reply %s, offset %v (was %v)", data, answers.Offset(), before)
			}
		})
	}
	// One more step: the follower handles requests in order, so once it has
	// caught up with this one it has judged every request above.
	if data := h.RawSubject(contract.Default.DevClockAdvance(), []byte(`{"seconds":1}`)); !strings.Contains(string(data), `"ok":true`) {
		t.Fatalf("last step: %s", data)
	}
	want := answers.Offset()
	if want > clock.MaxOffset || answers.Now().Year() > time.Now().Year()+11 {
		t.Fatalf("responder's clock at %v (offset %v)", answers.Now(), want)
	}
	deadline := time.Now().Add(5 * time.Second)
	for follows.Offset() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := follows.Offset(); got != want {
		t.Fatalf("follower offset %v, responder %v", got, want)
	}
}

// Without AUTH_DEV_CLOCK=1 a following component runs on the system clock
// and listens to nothing.
func TestFollowClockIsTheSystemClockUnlessAskedFor(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	n := &NATS{Conn: natsutil.Connect(t, srv)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk, stop, err := FollowClock(config.Config{Prefix: contract.DefaultPrefix}, n, log)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, ok := clk.(clock.System); !ok {
		t.Fatalf("clock %T, want clock.System", clk)
	}
	clk, stop, err = FollowClock(config.Config{Prefix: contract.DefaultPrefix, DevClock: true}, n, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	dev, ok := clk.(*clock.Dev)
	if !ok {
		t.Fatalf("clock %T, want *clock.Dev", clk)
	}
	if err := n.Conn.Publish(contract.Default.DevClockAdvance(), []byte(`{"seconds":60}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for dev.Offset() != time.Minute && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if dev.Offset() != time.Minute {
		t.Fatalf("offset %v after one step of 60 s", dev.Offset())
	}
}
