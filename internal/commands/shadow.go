package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
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
// of domain.Account the login and reset rules read.
type shadowState struct {
	PasswordFailures int         `json:"password_failures,omitempty"`
	PasswordFailedAt time.Time   `json:"password_failed_at,omitzero"`
	BlockedUntil     time.Time   `json:"blocked_until,omitzero"`
	BlockReason      string      `json:"block_reason,omitempty"`
	ResetRequests    []time.Time `json:"reset_requests,omitempty"`
}

// maxShadowBytes bounds what is read back from the store.
const maxShadowBytes = 4 << 10

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
// write is re-read and the decision made again). It returns the refusal to
// tell. The caller holds the NIR's gate. A store that refuses the write
// (full, or down) does not change the reply: the attempt is answered as
// decided, not counted, and logged.
func (s *Service) shadowDecide(ctx context.Context, nirKey string, now time.Time, cmd domain.Command) error {
	c, cached := s.shadows.get(nirKey)
	if !cached {
		var err error
		if c, err = s.loadShadow(ctx, nirKey); err != nil {
			s.log.Warn("shadow state unreadable: answered without it", "err", err)
		}
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		a := c.state.account()
		evs, refusal := s.accounts.decider.Decide(a, cmd, now)
		if len(evs) == 0 {
			return refusal
		}
		for _, e := range evs {
			a = domain.Evolve(a, e)
		}
		next := shadowOf(a)
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("shadow encode: %w", err)
		}
		rev, err := s.cfg.Shadows.Put(ctx, nirKey, b, c.rev)
		if errors.Is(err, eventstore.ErrConflict) {
			if c, err = s.loadShadow(ctx, nirKey); err != nil {
				s.log.Warn("shadow state unreadable: answered without it", "err", err)
				return refusal
			}
			continue
		}
		if err != nil {
			s.log.Warn("shadow state not recorded: answered without it", "err", err)
			return refusal
		}
		s.shadows.put(nirKey, cachedShadow{state: next, rev: rev})
		return refusal
	}
	return fmt.Errorf("shadow: still conflicting after %d attempts", maxAttempts)
}

// peekShadow returns the NIR's shadow state as this instance knows it (an
// unreadable store reads as a fresh state; the decision checks again).
func (s *Service) peekShadow(ctx context.Context, nirKey string) cachedShadow {
	if c, ok := s.shadows.get(nirKey); ok {
		return c
	}
	c, err := s.loadShadow(ctx, nirKey)
	if err != nil {
		return cachedShadow{}
	}
	s.shadows.put(nirKey, c)
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
	var st shadowState
	if len(b) > maxShadowBytes || json.Unmarshal(b, &st) != nil || len(st.ResetRequests) > domain.MaxRecentRequests {
		// Unreadable or oversized: start afresh over it (the revision is
		// kept, so the next write replaces it).
		return cachedShadow{rev: rev}, nil
	}
	return cachedShadow{state: st, rev: rev}, nil
}
