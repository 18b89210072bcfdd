package eventstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// TestScanCancelledMidwayCleansUp: a Load cancelled while it reads stops
// there and still deletes its consumer.
func TestScanCancelledMidwayCleansUp(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	bg, cancelBg := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelBg()
	j, err := OpenJetStream(bg, js, JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	acc := events.NewID(time.Now())
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 3000
	for i := 1; i <= n; i++ {
		msg, err := EventMsg(j.Subject(acc), events.Wrap(acc, events.PasswordFailed{Failures: i, At: at}, at, events.Metadata{}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsgAsync(msg); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()

	ctx, cancel := context.WithCancel(bg)
	seen := 0
	err = j.scan(ctx, j.Subject(acc), 0, n, false, func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error) {
		seen++
		if seen == 10 {
			cancel()
		}
		return false, nil
	})
	if !errors.Is(err, context.Canceled) || seen != 10 {
		t.Fatalf("scan: err %v after %d messages; want context.Canceled after 10", err, seen)
	}
	st, err := js.Stream(bg, j.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().State.Consumers; c != 0 {
		t.Fatalf("%d consumers left after a cancelled scan", c)
	}
}

func TestValidateAccountID(t *testing.T) {
	if err := ValidateAccountID(events.NewID(time.Now())); err != nil {
		t.Fatalf("a ULID was refused: %v", err)
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b", "a\x00b", "a\u00a0b"} {
		if ValidateAccountID(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Both refusals of an expected-sequence append map to ErrConflict; only
// 10164 is re-sent.
func TestWrongLastSeqCodes(t *testing.T) {
	for _, code := range []jetstream.ErrorCode{jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant} {
		err := fmt.Errorf("publish: %w", &jetstream.APIError{Code: 400, ErrorCode: code})
		if !isWrongLastSeq(err) {
			t.Errorf("%d is not recognised as a wrong last sequence", code)
		}
		if got := isSubjectInProcess(err); got != (code == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			t.Errorf("isSubjectInProcess(%d) = %v", code, got)
		}
	}
	if isWrongLastSeq(errors.New("timeout")) || isSubjectInProcess(nil) {
		t.Error("other errors recognised as conflicts")
	}
}
