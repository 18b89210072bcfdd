package commands

// Coverage of login attempts by snapshots (issue 16 part 2, issue 17 part
// 3): with a retention (Config.AttemptsRetention), the server removes each
// login attempt from the stream once its TTL has passed, and the account's
// snapshot is then the only record of what the attempt did (a trusted
// device, a failure count). Every attempt must be covered by a snapshot at
// or after its sequence before it expires (docs/retention.md).
//
// The service used to write that snapshot before replying to each
// attempt: a compare-and-set on the snapshots bucket (a read and a write)
// per attempt, which made a code check cost more than two appends. The
// coverer does it off the request path, once per burst: a durable consumer
// of each events stream, shared by every instance (eventstore
// FollowAttempts), hands it each attempt; it waits until the attempt is
// coverDelay old (a login's password, code and check come within that
// time, so one snapshot covers the three), then writes the account's
// snapshot unless one at or after the attempt exists. The consumer is
// durable, so an attempt whose instance crashed before covering it is
// handed to another after the ack wait: coverage is at least once, within
// minutes, against a retention of months (at least AttemptsMemory, 186
// days with the seed's policy).

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// CoverConsumer is the durable consumer on each events stream through
// which the instances cover login attempts (docs/retention.md).
const CoverConsumer = "commands_cover"

// coverDelay is how long after its append an attempt is covered: a
// minute, or a quarter of its TTL if that is shorter (tests run TTLs of
// seconds). Our choice: a login (password, code sent, code checked) fits
// in a minute, and a minute is nothing against a retention of months.
func coverDelay(ttl time.Duration) time.Duration { return min(time.Minute, ttl/4) }

// Covered outcomes (Metrics.Covered).
const (
	CoveredAlready  = "already"  // a snapshot at or after the attempt was there (written since, or by another instance)
	CoveredSnapshot = "snapshot" // the coverer wrote one
	CoveredGone     = "gone"     // the attempt had already left the stream: nothing to cover any more
)

// coveredMemory bounds the coverer's memory of accounts it knows covered
// up to a sequence (it forgets them all past this size: they are read
// again from the snapshots bucket).
const coveredMemory = 1 << 16

// coverer covers attempts for one service instance.
type coverer struct {
	r       *accounts
	delay   time.Duration // Config.CoverDelay; 0: coverDelay
	mu      sync.Mutex
	covered map[string]uint64 // account -> sequence a snapshot is known to cover
}

// cover makes sure a snapshot covers a, waiting until a is coverDelay old
// (real time: the server's TTLs run on its clock, not the service's).
func (c *coverer) cover(ctx context.Context, a eventstore.Attempt) error {
	delay := c.delay
	if delay == 0 {
		delay = coverDelay(a.TTL)
	}
	if wait := time.Until(a.Stored.Add(delay)); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if c.knows(a) {
		c.r.metrics.Covered(CoveredAlready, time.Since(a.Stored))
		return nil
	}
	seq, _, err := c.r.snapshots.Get(ctx, a.AccountID)
	switch {
	case err == nil && seq >= a.Seq:
		c.remember(a.AccountID, seq)
		c.r.metrics.Covered(CoveredAlready, time.Since(a.Stored))
		return nil
	case err != nil && !errors.Is(err, eventstore.ErrNotFound):
		return fmt.Errorf("cover attempt %d of %s: %w", a.Seq, a.AccountID, err)
	}
	seq, err = c.r.coverNow(ctx, a.AccountID)
	if err != nil {
		return fmt.Errorf("cover attempt %d of %s: %w", a.Seq, a.AccountID, err)
	}
	c.remember(a.AccountID, seq)
	if seq < a.Seq {
		// Everything from the attempt on left the stream before it was
		// covered (the coverers were stopped for longer than the TTL).
		c.r.log.Error("a login attempt expired before a snapshot covered it; its effect on the account is lost",
			"account_id", a.AccountID, "seq", a.Seq, "stored", a.Stored)
		c.r.metrics.Covered(CoveredGone, time.Since(a.Stored))
		return nil
	}
	c.r.metrics.Covered(CoveredSnapshot, time.Since(a.Stored))
	return nil
}

func (c *coverer) knows(a eventstore.Attempt) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.covered[a.AccountID] >= a.Seq
}

func (c *coverer) remember(accountID string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.covered) >= coveredMemory {
		clear(c.covered)
	}
	if seq > c.covered[accountID] {
		c.covered[accountID] = seq
	}
}

// startCoverer follows the store's login attempts with a retention
// (Config.AttemptsRetention) whose store expires them (an
// eventstore.AttemptsFollower: JetStream). Stop ends it.
func (s *Service) startCoverer() {
	follower, ok := s.cfg.Store.(eventstore.AttemptsFollower)
	if s.cfg.AttemptsRetention == 0 || !ok || s.coverStop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.coverStop = cancel
	c := &coverer{r: s.accounts, delay: s.cfg.CoverDelay, covered: map[string]uint64{}}
	s.coverWG.Add(1)
	go func() {
		defer s.coverWG.Done()
		follower.FollowAttempts(ctx, CoverConsumer, c.cover, func(err error) {
			s.log.Warn("covering login attempts with snapshots; retried", "err", err)
		})
	}()
}

// coverNow writes the account's snapshot at its last sequence, as the
// stream holds it now, and returns that sequence. Unlike the best-effort
// snapshots, a failure is returned: the attempt is handed out again.
func (r *accounts) coverNow(ctx context.Context, accountID string) (uint64, error) {
	unlock := r.lock(accountID)
	defer unlock()
	c, err := r.load(ctx, accountID)
	if err != nil {
		return 0, err
	}
	var last uint64
	if c, last, err = r.checkTail(ctx, c); err != nil {
		return 0, err
	}
	if last != c.seq {
		if c, err = r.catchUp(ctx, c); err != nil {
			return 0, err
		}
	}
	if err := r.writeSnapshot(ctx, &c); err != nil {
		return 0, err
	}
	r.cache.put(accountID, c)
	return c.seq, nil
}
