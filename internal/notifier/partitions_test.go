package notifier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/events"
)

// With four partitions, two notifier replicas pull from a durable consumer
// on each partition's stream: every code is mailed once, each partition's
// consumer delivered some, and when one replica stops the other mails the
// rest, once each; the lag sums the partitions' and ends at zero.
func TestPartitionsAreSharedByTheReplicas(t *testing.T) {
	h := newPartitionedHarness(t, clock.NewFixed(t0.Add(time.Minute)), 4)
	cfg := h.testConfig()
	cfg.Partitions = 4
	first := h.start(cfg)
	second := h.start(cfg)
	mail := func(from, to int) {
		for i := from; i < to; i++ {
			h.otp(events.NewID(t0), fmt.Sprintf("assure%d@example.fr", i), fmt.Sprintf("%06d", 100000+i), t0)
		}
	}
	mail(0, 40)
	h.waitCount(40)
	h.settled(40)
	for _, st := range h.layout.Streams() {
		c, err := h.js.Consumer(context.Background(), st, "notifier")
		if err != nil {
			t.Fatal(err)
		}
		if info := c.CachedInfo(); info.Delivered.Stream == 0 {
			t.Errorf("%s: the notifier consumer delivered nothing", st)
		}
	}
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mail(40, 80)
	h.waitCount(80)
	h.settled(80)
	pending, _, err := second.Lag(context.Background())
	if err != nil || pending != 0 {
		t.Errorf("lag after the drain: %d pending, %v", pending, err)
	}
}
