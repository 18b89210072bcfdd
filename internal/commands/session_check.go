package commands

// Use case: session.check, the introspection a front-end (the web BFF)
// asks before showing a logged-in page (issue 13).

import (
	"context"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// sessionCheck answers session.check: is this session open, for which
// account, until when, and when was the login before it (« Dernière
// connexion »). It records nothing, and reads the state checked against
// the stream (a logout served by another instance counts).
//
// No sliding extension (our choice): a session lives the policy's
// SessionLifetime (30 minutes) from its login, whatever the activity, so
// asking never extends it and a stolen token is worth at most that long. A
// closed session (logout, change of credentials, deactivation) or an
// expired one answers session_invalid.
func (s *Service) sessionCheck(ctx context.Context, data []byte) contract.Reply {
	var req sessionRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	accountID, hash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	c, err := s.accounts.current(ctx, accountID)
	if err != nil {
		return s.fail(contract.CmdSessionCheck, err)
	}
	session, open := c.state.OpenSession(hash, s.clock.Now())
	if !open {
		return errorReplyFor(req.Channel, &domain.Error{Code: domain.CodeSessionInvalid})
	}
	return contract.SessionReply{Done: contract.OK(contract.StatusSessionValid), MaskedEmail: c.state.MaskedEmail,
		ExpiresAt: contract.Timestamp(session.ExpiresAt), AccountID: accountID,
		PreviousLoginAt: contract.Timestamp(session.PreviousLoginAt)}
}
