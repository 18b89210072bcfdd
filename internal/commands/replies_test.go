package commands

import (
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
)

// The cache keeps the newest replies within its bound, and expired ones go
// (on the service's clock, moved here by hand).
func TestReplyCacheKeepsTheNewest(t *testing.T) {
	clk := clock.NewFixed(time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC))
	c := newReplyCache(clk, time.Hour, 3, maxReplyBytes, noMetrics{})
	key := func(i byte) string { return string([]byte{i}) }
	for i := byte(1); i <= 5; i++ {
		c.put(key(i), []byte{i})
	}
	for i := byte(1); i <= 5; i++ {
		_, ok := c.get(key(i))
		if want := i >= 3; ok != want {
			t.Fatalf("reply %d kept=%v, want %v", i, ok, want)
		}
	}
	short := newReplyCache(clk, time.Minute, 10, maxReplyBytes, noMetrics{})
	short.put(key(1), nil)
	clk.Advance(time.Minute - time.Nanosecond)
	if _, ok := short.get(key(1)); !ok {
		t.Fatal("reply dropped before its time")
	}
	clk.Advance(time.Nanosecond + 1)
	if _, ok := short.get(key(1)); ok {
		t.Fatal("expired reply still given")
	}
	short.put(key(2), nil)
	if len(short.items) != 1 {
		t.Fatalf("expired reply not dropped: %d items", len(short.items))
	}
}

// The cache is bounded in bytes too (a batch's reply is large): past
// maxBytes the oldest replies go, a reply larger than the bound is not
// kept, and the metrics follow the entries and the evictions.
func TestReplyCacheIsBoundedInBytes(t *testing.T) {
	clk := clock.NewFixed(time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC))
	m := &countingMetrics{}
	c := newReplyCache(clk, time.Hour, 100, 1000, m)
	for i := range 10 {
		c.put(string(rune('a'+i)), make([]byte, 299)) // 300 bytes with the key
	}
	if c.len() != 3 || c.bytes != 900 {
		t.Fatalf("%d replies, %d bytes held; want the newest 3, 900 bytes", c.len(), c.bytes)
	}
	if _, ok := c.get("j"); !ok {
		t.Fatal("newest reply dropped")
	}
	c.put("huge", make([]byte, 1000))
	if _, ok := c.get("huge"); ok || c.len() != 3 {
		t.Fatalf("a reply over the bound was kept (%d replies)", c.len())
	}
	if m.bound != 100 || m.entries != 3 || m.evicted != 7 {
		t.Fatalf("metrics: bound %d, entries %d, evicted %d; want 100, 3, 7", m.bound, m.entries, m.evicted)
	}
}

// countingMetrics counts the cache metrics of one cache.
type countingMetrics struct {
	noMetrics
	bound, entries, evicted int
}

func (m *countingMetrics) CacheBound(_ string, max int) { m.bound = max }
func (m *countingMetrics) Cached(_ string, added, evicted int) {
	m.entries += added
	m.evicted += evicted
}
