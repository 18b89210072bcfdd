package commands

import (
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
// the holder of the identical request can read it.
type replyCache struct {
	mu    sync.Mutex
	clock clock.Clock // the service's: a test (or the dev clock) moves expiry with it
	ttl   time.Duration
	max   int
	items map[string]cachedReply
	order []string // keys, oldest first: with one TTL, insertion order is expiry order
}

type cachedReply struct {
	body    []byte
	expires time.Time
}

// newReplyCache keeps each reply ttl (on clk's time) and at most max
// replies, the newest.
func newReplyCache(clk clock.Clock, ttl time.Duration, max int) *replyCache {
	return &replyCache{clock: clk, ttl: ttl, max: max, items: map[string]cachedReply{}}
}

// hasRequestID tells whether a request on subject carries a request_id:
// only those are idempotent (their key is Keys.RequestKey of subject and
// body).
func hasRequestID(subject string, data []byte) bool {
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
// max, the oldest: O(1) amortised, the newest replies kept.
func (c *replyCache) put(k string, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	for len(c.order) > 0 {
		oldest := c.order[0]
		r, ok := c.items[oldest]
		if ok && now.Before(r.expires) && len(c.items) < c.max {
			break
		}
		delete(c.items, oldest)
		c.order = c.order[1:]
	}
	if _, dup := c.items[k]; !dup {
		c.order = append(c.order, k)
	}
	c.items[k] = cachedReply{body: body, expires: now.Add(c.ttl)}
}
