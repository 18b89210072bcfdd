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
	c := newReplyCache(clk, time.Hour, 3)
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
	short := newReplyCache(clk, time.Minute, 10)
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
