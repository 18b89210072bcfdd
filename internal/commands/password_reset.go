package commands

// Use cases: password.reset.request and password.reset.complete, the
// forgotten password's emailed single-use link.

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/passwordrule"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type resetRequest struct {
	Common
	NIR string `json:"nir"`
}

type resetCompleteRequest struct {
	Common
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// passwordResetRequest answers the same whatever the NIR: only a
// registered account with a validated email gets a link, and the reply does
// not say whether one was sent.
func (s *Service) passwordResetRequest(ctx context.Context, data []byte) contract.Reply {
	start := time.Now()
	var req resetRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	nir, err := nirField("nir", req.NIR)
	if err != nil {
		return errorReply(err)
	}
	defer s.floor(ctx, start)
	now := s.clock.Now()
	nirKeys := s.keys.NIRIndexKeys(nir)
	nirKey := nirKeys[0] // an unknown NIR's shadow is under the current key
	accountID, err := s.findIndexed(ctx, nirKeys)
	if errors.Is(err, eventstore.ErrNotFound) {
		// The same work as for a known NIR (issue 19): a token made,
		// hashed and sealed, and the request recorded on the NIR's shadow
		// account (its write standing in for the append), within the same
		// limit of links per hour.
		s.log.Info("reset request for an unknown NIR", "channel", req.Channel, "client_ip", req.ClientIP)
		token := "shadow." + secrets.NewToken()
		cmd := domain.RequestPasswordReset{TokenHash: s.keys.TokenHash("reset", token), TokenSealed: s.keys.Seal(token, nirKey)}
		if err := s.shadowDecide(ctx, nirKey, now, cmd); err != nil {
			return s.fail(contract.CmdPasswordResetRequest, err)
		}
		return contract.OK(contract.StatusResetRequested)
	}
	if err != nil {
		return s.fail(contract.CmdPasswordResetRequest, err)
	}
	token := accountID + "." + secrets.NewToken()
	_, err = s.accounts.execute(ctx, accountID, now, metadata(&req.Common), func(domain.Account) (domain.Command, error) {
		return domain.RequestPasswordReset{TokenHash: s.keys.TokenHash("reset", token), TokenSealed: s.keys.Seal(token, accountID)}, nil
	})
	if err != nil {
		return s.fail(contract.CmdPasswordResetRequest, err)
	}
	return contract.OK(contract.StatusResetRequested)
}

func (s *Service) passwordResetComplete(ctx context.Context, data []byte) contract.Reply {
	var req resetCompleteRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := required("token", req.Token, 256); err != nil {
		return errorReply(err)
	}
	if err := required("new_password", req.NewPassword, maxPasswordBytes); err != nil {
		return errorReply(err)
	}
	if err := passwordrule.Check(s.policy, req.NewPassword); err != nil {
		return errorReply(err)
	}
	accountID, _, found := strings.Cut(req.Token, ".")
	if !found || !validAccountID(accountID) {
		return errorReply(&domain.Error{Code: domain.CodeResetTokenInvalid})
	}
	tokenHash := s.storedHash(ctx, accountID, s.keys.TokenHashes("reset", req.Token), resetHash)
	release, rep, admitted := s.admitNewPassword(ctx, contract.CmdPasswordResetComplete, accountID, domain.CompletePasswordReset{TokenHash: tokenHash})
	if !admitted {
		return rep
	}
	defer release()
	hash, err := s.hashPassword(ctx, accountID, req.NewPassword)
	if err != nil {
		return s.fail(contract.CmdPasswordResetComplete, err)
	}
	_, err = s.decide(ctx, contract.CmdPasswordResetComplete, accountID, s.clock.Now(), &req.Common, func(domain.Account) (domain.Command, error) {
		return domain.CompletePasswordReset{TokenHash: tokenHash, PasswordHash: hash}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	return contract.OK(contract.StatusPasswordReset)
}
