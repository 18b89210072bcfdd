package commands_test

// Attacks on the throttle by source (issue 20): its store's size bound.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// sourceKeys is the number of entries in AUTH_SOURCES.
func sourceKeys(t *testing.T, h *harness) uint64 {
	t.Helper()
	kv, err := h.JS.KeyValue(context.Background(), eventstore.SourceBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Values()
}

// A refused attempt costs the store nothing: an attacker whose /64 is
// throttled must not add one entry per fresh address of that /64 (2^64 of
// them, no hash spent) and so fill the bucket, which then lets every new
// source through uncounted (docs/rules.md, "Shared counting").
func TestRefusedAttemptsFromAThrottledNetworkAddNoEntries(t *testing.T) {
	p := testPolicy()
	p.SourceIP = domain.SourceBudget{Failures: 100, Window: 24 * time.Hour}
	p.SourcePrefix = domain.SourceBudget{Failures: 3, Window: 24 * time.Hour}
	h, hashes := sprayHarness(t, 1, p, nil)
	for i := range 3 {
		if o := outcome(login(h, -1, testNIR(i), "Azerty123!", fmt.Sprintf("2001:db8::%x", i+1))); o != domain.CodeInvalidCredentials {
			t.Fatalf("attempt %d: %s, want invalid_credentials", i, o)
		}
	}
	before, spent := sourceKeys(t, h), hashes.n.Load()
	const refused = 200
	for i := range refused {
		if o := outcome(login(h, -1, testNIR(100+i), "Azerty123!", fmt.Sprintf("2001:db8::1:%x", i+1))); o != domain.CodeTooManyAttempts {
			t.Fatalf("refused attempt %d: %s, want too_many_attempts", i, o)
		}
	}
	after := sourceKeys(t, h)
	t.Logf("%d refused attempts from fresh addresses of a throttled /64: entries %d -> %d, hashes %d", refused, before, after, hashes.n.Load()-spent)
	if after != before {
		t.Errorf("%d refused attempts added %d entries to %s: a throttled network fills the bucket for free", refused, after-before, eventstore.SourceBucket)
	}
}

// A full bucket must not switch the throttle off for the sources it holds:
// the attempt that spends a source's budget grows its entry ("announced"),
// and a full bucket refuses an entry that grows, so the source was let
// through uncounted, again and again, and never throttled.
func TestAFullSourceBucketStillThrottlesASourceItHolds(t *testing.T) {
	p := testPolicy()
	p.SourceIP = domain.SourceBudget{Failures: 5, Window: 24 * time.Hour}
	p.SourcePrefix = domain.SourceBudget{Failures: 1000, Window: 24 * time.Hour}
	h, _ := sprayHarness(t, 1, p, nil)
	// The bucket made small, as the deployment's 256 MiB once flooded.
	if _, err := eventstore.OpenJetStream(context.Background(), h.JS, eventstore.JetStreamConfig{SourceMaxBytes: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	const attacker = "198.51.100.9"
	for i := range 4 {
		if o := outcome(login(h, -1, testNIR(i), "Azerty123!", attacker)); o != domain.CodeInvalidCredentials {
			t.Fatalf("attempt %d: %s", i, o)
		}
	}
	// Others' sources fill the bucket to its last byte.
	src := h.Store.Sources()
	for _, size := range []int{200, 0} {
		for i := 0; ; i++ {
			if i > 10000 {
				t.Fatal("the bucket never filled")
			}
			_, err := src.Put(context.Background(), fmt.Sprintf("fill-%d-%d", size, i), make([]byte, size), 0)
			if errors.Is(err, eventstore.ErrFull) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	outcomes := map[string]int{}
	for i := range 20 {
		outcomes[outcome(login(h, -1, testNIR(10+i), "Azerty123!", attacker))]++
	}
	t.Logf("20 more wrong passwords from a source at 4 of its 5, bucket full: %v", outcomes)
	if outcomes[domain.CodeInvalidCredentials] > 1 {
		t.Errorf("%d wrong passwords checked past the budget's 5: a full bucket switched the throttle off for a source it holds", outcomes[domain.CodeInvalidCredentials]+4)
	}
}
