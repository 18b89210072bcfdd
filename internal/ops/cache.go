package ops

import (
	"context"
	"errors"
	"sync"
	"time"
)

// CacheFor is how long the answer of a check that asks another server
// (Postgres, the events stream, a consumer's lag) is reused by /readyz and
// /metrics: every probe and scrape within it gets the same answer, and
// probes that come while the check runs wait for it instead of asking
// again. So a flood of /readyz or /metrics requests costs each server at
// most one round of questions a second; an answer is at most CacheFor
// older than it looks (docs/operations.md, Health and readiness).
const CacheFor = time.Second

// shared is one check's answer, asked by one caller at a time and reused
// for CacheFor after it came (a failure as well: a server that is down is
// not asked faster for being probed more).
type shared[T any] struct {
	ask func(context.Context) T
	now func() time.Time // time.Now; a test's clock

	mu      sync.Mutex
	val     T
	until   time.Time     // the answer is fresh before it; zero: none yet
	running chan struct{} // closed when the check in flight ends; nil: none
	answers uint64        // answers so far
	waiting int           // callers waiting for one (tests)
}

var errNoAnswer = errors.New("the check gave no answer")

func newShared[T any](now func() time.Time, ask func(context.Context) T) *shared[T] {
	return &shared[T]{ask: ask, now: now}
}

// get is the fresh answer, or the one of the check in flight, or a new
// check's. The check runs in the first caller's goroutine with ctx's
// values but not its end (the others wait for it; ask bounds its own
// time); a waiting caller whose ctx ends gets ctx's error.
func (c *shared[T]) get(ctx context.Context) (T, error) {
	c.mu.Lock()
	if c.now().Before(c.until) {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	if wait := c.running; wait != nil {
		c.waiting++
		gen := c.answers
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.waiting--
			c.mu.Unlock()
		}()
		var zero T
		select {
		case <-wait:
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.answers == gen {
				return zero, errNoAnswer // the check panicked
			}
			return c.val, nil
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	done := make(chan struct{})
	c.running = done
	c.mu.Unlock()

	defer func() {
		// Even if ask panics, the waiters are let go (errNoAnswer) and
		// the next caller asks again.
		c.mu.Lock()
		c.running = nil
		close(done)
		c.mu.Unlock()
	}()
	v := c.ask(context.WithoutCancel(ctx))
	c.mu.Lock()
	c.val, c.until = v, c.now().Add(CacheFor)
	c.answers++
	c.mu.Unlock()
	return v, nil
}

// expire makes the next get ask again (tests).
func (c *shared[T]) expire() {
	c.mu.Lock()
	c.until = time.Time{}
	c.mu.Unlock()
}
