package commands

// Use cases: email.change and email.confirm, a new address confirmed by a
// code sent to it.

import (
	"context"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type emailChangeRequest struct {
	Common
	Session  string `json:"session"`
	NewEmail string `json:"new_email"`
}

func (s *Service) emailChange(ctx context.Context, data []byte) contract.Reply {
	var req emailChangeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	email, err := emailField("new_email", req.NewEmail)
	if err != nil {
		return errorReply(err)
	}
	code := secrets.NewCode(s.policy.OTPDigits)
	out, _, err := s.onSession(ctx, contract.CmdEmailChange, &req.Common, req.Session, func(accountID, hash string, _ domain.Account) (domain.Command, error) {
		return domain.RequestEmailChange{SessionHash: hash, NewEmailSealed: s.keys.Seal(email, accountID), NewMaskedEmail: domain.MaskEmail(email),
			CodeHash: s.keys.CodeHash(accountID, events.FlowEmailChange, code), CodeSealed: s.keys.Seal(code, accountID)}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	rep := contract.ChangeReply{Done: contract.OK(contract.StatusCodeSent)}
	for _, e := range out.recorded {
		if e, isIssued := e.(events.EmailChangeCodeIssued); isIssued {
			rep.MaskedEmail, rep.ExpiresAt = e.NewMaskedEmail, contract.Timestamp(e.ExpiresAt)
		}
	}
	return rep
}

func (s *Service) emailConfirm(ctx context.Context, data []byte) contract.Reply {
	var req codeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	code, err := codeField(req.Code, s.policy.OTPDigits)
	if err != nil {
		return errorReply(err)
	}
	out, _, err := s.onSession(ctx, contract.CmdEmailConfirm, &req.Common, req.Session, func(accountID, hash string, a domain.Account) (domain.Command, error) {
		codeHash, _ := secrets.Match(s.keys.CodeHashes(accountID, events.FlowEmailChange, code), flowCodeHash(a.EmailChange)...)
		return domain.ConfirmEmailChange{SessionHash: hash, CodeHash: codeHash}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	rep := contract.ChangeReply{Done: contract.OK(contract.StatusEmailChanged)}
	for _, e := range out.recorded {
		if e, isChanged := e.(events.EmailChanged); isChanged {
			rep.MaskedEmail = e.MaskedEmail
		}
	}
	return rep
}
