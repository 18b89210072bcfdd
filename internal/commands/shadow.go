package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// Shadow accounts (issue 19): a NIR without an account goes through the
// same decider as a registered account with a validated address whose
// password is never given, so its replies over time are a real account's:
// the 3rd wrong password answers `account_locked` with the same reason, time
// and message, the block ends the same way, and a reset request does the
// same work. Its state lives in the Shadows store (keyed by the NIR's index
// key, expiring, bounded), never in the event stream: a flood of random
// NIRs must not grow the source of truth.

// shadowState is what a shadow account keeps between attempts: the fields
// of domain.Account the login and reset rules read, and the requests it
// recorded lately, so that a retried request is answered from what it
// recorded, as on an account (docs/idempotency.md): otherwise a retry
// would count twice on an unknown NIR and once on a registered one.
type shadowState struct {
	PasswordFailures int             `json:"password_failures,omitempty"`
	PasswordFailedAt time.Time       `json:"password_failed_at,omitzero"`
	BlockedUntil     time.Time       `json:"blocked_until,omitzero"`
	BlockReason      string          `json:"block_reason,omitempty"`
	ResetRequests    []time.Time     `json:"reset_requests,omitempty"`
	Recent           []shadowRequest `json:"recent,omitempty"`
}

// shadowRequest is a request a shadow account recorded: its idempotency
// key and the fact it recorded (the only two a shadow records).
type shadowRequest struct {
	Key          string    `json:"key"`
	At           time.Time `json:"at"`
	Failures     int       `json:"failures,omitempty"`     // a password.failed: its count
	BlockedUntil time.Time `json:"blocked_until,omitzero"` // and its block
	Reset        bool      `json:"reset,omitempty"`        // a reset request
}

// fact is the event the request recorded, for Decider.Refusal.
func (r shadowRequest) fact() events.Event {
	if r.Reset {
		return events.PasswordResetRequested{RequestedAt: r.At}
	}
	return events.PasswordFailed{Failures: r.Failures, BlockedUntil: r.BlockedUntil, At: r.At}
}

// recorded returns the request key recorded lately, as an account's
// recent requests (keepRecentRequests, recentRequestsTTL).
func (st shadowState) recorded(key string, now time.Time) (shadowRequest, bool) {
	for _, r := range st.Recent {
		if key != "" && r.Key == key && now.Before(r.At.Add(recentRequestsTTL)) {
			return r, true
		}
	}
	return shadowRequest{}, false
}

// maxShadowBytes bounds what is read back from the store.
const maxShadowBytes = 16 << 10

func (st shadowState) account() domain.Account {
	return domain.Account{ID: "shadow", Status: domain.StatusActive, EmailValidated: true, Affiliation: domain.AffiliationActive,
		PasswordFailures: st.PasswordFailures, PasswordFailedAt: st.PasswordFailedAt,
		BlockedUntil: st.BlockedUntil, BlockReason: st.BlockReason, ResetRequests: st.ResetRequests}
}

func shadowOf(a domain.Account) shadowState {
	return shadowState{PasswordFailures: a.PasswordFailures, PasswordFailedAt: a.PasswordFailedAt,
		BlockedUntil: a.BlockedUntil, BlockReason: a.BlockReason, ResetRequests: a.ResetRequests}
}

type cachedShadow struct {
	state shadowState
	rev   uint64
}

// shadowDecide decides cmd on the NIR's shadow account and records the new
// state, with compare-and-set on the store's revision (another instance's
// write is re-read and the decision made again), as an account's fact is
// appended with an expected sequence. It returns the refusal to tell. A
// retried request (same idempotency key) is answered from what it recorded.
// A store at its size bound does not change the reply: the attempt is
// answered as decided, not counted, and logged (docs/enumeration.md); any
// other write failure is an internal error, as a failed append is.
func (s *Service) shadowDecide(ctx context.Context, nirKey string, now time.Time, cmd domain.Command) error {
	key := requestKey(ctx)
	c, cached := s.shadows.get(nirKey)
	if !cached {
		var err error
		if c, err = s.loadShadow(ctx, nirKey); err != nil {
			return fmt.Errorf("shadow read: %w", err)
		}
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		a := c.state.account()
		if r, done := c.state.recorded(key, now); done {
			return s.accounts.decider.Refusal(a, r.fact())
		}
		evs, refusal := s.accounts.decider.Decide(a, cmd, now)
		if len(evs) == 0 {
			return refusal
		}
		req := shadowRequest{Key: key, At: now}
		for _, e := range evs {
			a = domain.Evolve(a, e)
			switch e := e.(type) {
			case events.PasswordFailed:
				req.Failures, req.BlockedUntil = e.Failures, e.BlockedUntil
			case events.PasswordResetRequested:
				req.Reset = true
			}
		}
		next := shadowOf(a)
		next.Recent = c.state.Recent
		if key != "" {
			next.Recent = rememberShadow(c.state.Recent, req, now)
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("shadow encode: %w", err)
		}
		rev, err := s.cfg.Shadows.Put(ctx, nirKey, b, c.rev)
		switch {
		case errors.Is(err, eventstore.ErrConflict):
			s.cfg.Metrics.Conflict(StoreShadow)
			if c, err = s.loadShadow(ctx, nirKey); err != nil {
				return fmt.Errorf("shadow read: %w", err)
			}
			s.cfg.Metrics.Retry(RetryConflict)
			continue
		case errors.Is(err, eventstore.ErrFull):
			s.log.Warn("shadow store full: an attempt on an unknown NIR answered without being counted", "err", err)
			return refusal
		case err != nil:
			return fmt.Errorf("shadow write: %w", err)
		}
		s.putShadow(nirKey, cachedShadow{state: next, rev: rev})
		for _, e := range evs {
			s.cfg.Metrics.Recorded(e, true)
		}
		return refusal
	}
	return fmt.Errorf("shadow: still conflicting after %d attempts", maxAttempts)
}

// rememberShadow keeps the requests of the last recentRequestsTTL, at most
// keepRecentRequests of them, and adds r.
func rememberShadow(recent []shadowRequest, r shadowRequest, now time.Time) []shadowRequest {
	out := make([]shadowRequest, 0, keepRecentRequests)
	for _, x := range recent {
		if now.Before(x.At.Add(recentRequestsTTL)) {
			out = append(out, x)
		}
	}
	if over := len(out) + 1 - keepRecentRequests; over > 0 {
		out = out[over:]
	}
	return append(out, r)
}

// putShadow caches a shadow state unless the cache holds a newer one
// (requests on one NIR are not all serialised on this instance: reset
// requests take no gate).
func (s *Service) putShadow(nirKey string, c cachedShadow) {
	if old, ok := s.shadows.get(nirKey); ok && old.rev > c.rev {
		return
	}
	s.shadows.put(nirKey, c)
}

// currentShadow returns the NIR's shadow state as the store holds it now
// (one read, standing in for the account's last-sequence check before a
// login pays a hash: the same work on both paths, issue 19). An unreadable
// store reads as a fresh state; the decision reads and writes it again.
func (s *Service) currentShadow(ctx context.Context, nirKey string) cachedShadow {
	c, err := s.loadShadow(ctx, nirKey)
	if err != nil {
		return cachedShadow{}
	}
	s.putShadow(nirKey, c)
	return c
}

func (s *Service) loadShadow(ctx context.Context, nirKey string) (cachedShadow, error) {
	b, rev, err := s.cfg.Shadows.Get(ctx, nirKey)
	if errors.Is(err, eventstore.ErrNotFound) {
		return cachedShadow{}, nil
	}
	if err != nil {
		return cachedShadow{}, err
	}
	st, ok := decodeShadow(b)
	if !ok {
		// Unreadable or oversized: start afresh over it (the revision is
		// kept, so the next write replaces it).
		return cachedShadow{rev: rev}, nil
	}
	return cachedShadow{state: st, rev: rev}, nil
}

// decodeShadow reads a shadow state as the store holds it; ok is false
// for one that is oversized, unreadable or keeps too many requests.
func decodeShadow(b []byte) (shadowState, bool) {
	var st shadowState
	if len(b) > maxShadowBytes || json.Unmarshal(b, &st) != nil || len(st.ResetRequests) > domain.MaxRecentRequests || len(st.Recent) > keepRecentRequests {
		return shadowState{}, false
	}
	return st, true
}
