package notifier

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
)

// The mails remembered as sent but not recorded are bounded: past
// maxUnrecorded a new one is not kept, and entries older than a day make
// room (their redelivery went to another replica long ago).
func TestUnrecordedMailsAreBounded(t *testing.T) {
	clk := clock.NewFixed(time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC))
	n := &Notifier{cfg: Config{Clock: clk}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), pendingRecords: map[string]unrecorded{}}
	for i := range maxUnrecorded + 5 {
		n.rememberUnrecorded(fmt.Sprint(i), unrecorded{messageID: "m", at: clk.Now()})
	}
	if len(n.pendingRecords) != maxUnrecorded {
		t.Fatalf("%d kept, want %d", len(n.pendingRecords), maxUnrecorded)
	}
	clk.Advance(unrecordedTTL + time.Second)
	n.rememberUnrecorded("new", unrecorded{messageID: "m", at: clk.Now()})
	if _, ok := n.pendingRecords["new"]; !ok || len(n.pendingRecords) != 1 {
		t.Fatalf("after a day: %d kept, new one kept %v", len(n.pendingRecords), ok)
	}
}
