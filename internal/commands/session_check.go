package commands

import (
	"context"
	"fmt"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// sessionCheck answers session.check, the introspection a front-end (the
// web BFF) asks before showing a logged-in page: is this session open, for
// which account, until when, and when was the login before it
// (« Dernière connexion »). It records nothing.
//
// No sliding extension: a session lives the policy's SessionLifetime (30
// minutes) from its login, whatever the activity, so asking never extends
// it and a stolen token is worth at most that long. A closed session
// (logout, change of credentials, deactivation) or an expired one answers
// session_invalid.
func (s *Service) sessionCheck(ctx context.Context, data []byte) Reply {
	var req sessionRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	accountID, hash, err := s.sessionAccount(req.Session)
	if err != nil {
		return errorReply(err)
	}
	c, err := s.accounts.fresh(ctx, accountID)
	if err != nil {
		return s.fail("session.check", err)
	}
	session, open := c.state.OpenSession(hash, s.clock.Now())
	if !open {
		return errorReply(&domain.Error{Code: domain.CodeSessionInvalid})
	}
	rep := ok("session_valid")
	rep.AccountID = accountID
	rep.ExpiresAt = utc(session.ExpiresAt)
	rep.PreviousLoginAt = utc(session.PreviousLoginAt)
	rep.MaskedEmail = c.state.MaskedEmail
	return rep
}

// fresh returns the account's state checked against the stream: a read
// that records nothing has no expected sequence to catch a state this
// instance has not seen yet (a logout served by another instance).
func (r *accounts) fresh(ctx context.Context, accountID string) (cached, error) {
	unlock := r.lock(accountID)
	defer unlock()
	c, err := r.load(ctx, accountID)
	if err != nil {
		return cached{}, err
	}
	last, err := r.store.LastSeq(ctx, accountID)
	if err != nil {
		return cached{}, fmt.Errorf("check account %s: %w", accountID, err)
	}
	if last != c.seq {
		if c, err = r.catchUp(ctx, c); err != nil {
			return cached{}, err
		}
		r.cache.put(accountID, c)
	}
	return c, nil
}
