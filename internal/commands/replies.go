package commands

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
)

// replyCache remembers, for a short while and in memory only, the reply
// to each request that carried a request_id, so a client retrying after a
// timeout gets the very reply it missed (with the session token it carried)
// instead of a decision made again on a changed account. The key is the
// request's idempotency key (a keyed hash of subject and whole body): only
// the holder of the identical request can read it. It is bounded both in
// replies and in bytes (an account.import_batch reply holds a result per
// row); a reply it dropped early is rebuilt, where it can be, from the fact
// the request recorded (docs/idempotency.md).
type replyCache struct {
	mu       sync.Mutex
	clock    clock.Clock // the service's: a test (or the dev clock) moves expiry with it
	ttl      time.Duration
	max      int
	maxBytes int
	bytes    int // of the replies and keys held
	items    map[string]cachedReply
	order    []string // keys, oldest first: with one TTL, insertion order is expiry order
	metrics  Metrics
}

// The reply cache's bounds: 10,000 replies of a few hundred bytes (what
// two minutes of retries of one instance need), and 32 MiB whatever the
// replies (a 1,000-row batch's reply is about 80 KB).
const (
	maxReplies    = 10_000
	maxReplyBytes = 32 << 20
)

type cachedReply struct {
	body    []byte
	expires time.Time
}

// newReplyCache keeps each reply ttl (on clk's time), and at most max
// replies and maxBytes, the newest; its changes are told to metrics.
func newReplyCache(clk clock.Clock, ttl time.Duration, max, maxBytes int, metrics Metrics) *replyCache {
	metrics.CacheBound(CacheReplies, max)
	return &replyCache{clock: clk, ttl: ttl, max: max, maxBytes: maxBytes, items: map[string]cachedReply{}, metrics: metrics}
}

// hasRequestID tells whether a request on subject carries a request_id:
// only those are idempotent (their key is Keys.RequestKey of subject and
// body). A body without the bytes "request" and without any \u escape
// (a key may be spelt with escapes) has none, and is not decoded for it:
// most requests, a front-end's first try, carry no request_id.
func hasRequestID(subject string, data []byte) bool {
	if !bytes.Contains(data, []byte("request")) && !bytes.Contains(data, []byte(`\u`)) {
		return false
	}
	var probe struct {
		RequestID string `json:"request_id"`
	}
	return len(data) <= maxRequestBytes(subject) && json.Unmarshal(data, &probe) == nil && probe.RequestID != ""
}

func (c *replyCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.items[k]
	if !ok || c.clock.Now().After(r.expires) {
		return nil, false
	}
	return r.body, true
}

// put keeps a reply, dropping from the front the expired ones and, past
// max replies or maxBytes, the oldest: O(1) amortised, the newest replies
// kept. A reply larger than maxBytes is not kept.
func (c *replyCache) put(k string, body []byte) {
	size := len(k) + len(body)
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	added, evicted := 0, 0
	if old, dup := c.items[k]; dup {
		c.bytes -= len(k) + len(old.body)
	} else {
		c.order = append(c.order, k)
		added++
	}
	c.items[k] = cachedReply{body: body, expires: now.Add(c.ttl)}
	c.bytes += size
	for len(c.order) > 0 {
		oldest := c.order[0]
		r, ok := c.items[oldest]
		if ok && now.Before(r.expires) && len(c.items) <= c.max && c.bytes <= c.maxBytes {
			break
		}
		if ok {
			c.bytes -= len(oldest) + len(r.body)
			delete(c.items, oldest)
			evicted++
		}
		c.order = c.order[1:]
	}
	c.metrics.Cached(CacheReplies, added-evicted, evicted)
}

// len is the number of replies held.
func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
