package commands

// Sessions: the authenticated reply every login ends with, and
// session.logout.

import (
	"context"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// authenticated is the reply of a login recorded as e: the session
// (sessionToken, whose keyed hash e holds, and its end), offer_biometric on
// the app channel only (never after a biometric login), and deviceToken
// with its end (6 months) when the login remembered the device.
func (s *Service) authenticated(accountID, channel, sessionToken string, e events.LoginSucceeded, deviceToken, deviceID string, st domain.Account) contract.AuthenticatedReply {
	rep := contract.AuthenticatedReply{Done: contract.OK(contract.StatusAuthenticated), AccountID: accountID}
	rep.Session = &contract.Session{Token: sessionToken, ExpiresAt: e.SessionExpiresAt.UTC()}
	if channel == "app" {
		offer := e.Method != events.MethodBiometric && st.OfferBiometric(s.policy, deviceID, e.At)
		rep.OfferBiometric = &offer
	}
	if deviceToken != "" && e.DeviceHash != "" {
		rep.DeviceToken = deviceToken
		rep.DeviceTokenExpiresAt = contract.Timestamp(e.DeviceExpiresAt)
	}
	return rep
}

func (s *Service) logout(ctx context.Context, data []byte) contract.Reply {
	var req sessionRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	accountID, hash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReply(err)
	}
	_, err = s.accounts.execute(ctx, accountID, s.clock.Now(), metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.Logout{SessionHash: hash}, nil
	})
	if err != nil {
		return s.fail(contract.CmdSessionLogout, err)
	}
	return contract.OK(contract.StatusLoggedOut)
}
