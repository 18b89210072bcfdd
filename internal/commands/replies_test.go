package commands

import (
	"testing"
	"time"
)

// The cache keeps the newest replies within its bound, and expired ones go.
func TestReplyCacheKeepsTheNewest(t *testing.T) {
	c := newReplyCache(time.Hour, 3)
	key := func(i byte) [32]byte { return [32]byte{i} }
	for i := byte(1); i <= 5; i++ {
		c.put(key(i), []byte{i})
	}
	for i := byte(1); i <= 5; i++ {
		_, ok := c.get(key(i))
		if want := i >= 3; ok != want {
			t.Fatalf("reply %d kept=%v, want %v", i, ok, want)
		}
	}
	short := newReplyCache(time.Nanosecond, 10)
	short.put(key(1), nil)
	time.Sleep(time.Millisecond)
	short.put(key(2), nil)
	if len(short.items) != 1 {
		t.Fatalf("expired reply not dropped: %d items", len(short.items))
	}
}
