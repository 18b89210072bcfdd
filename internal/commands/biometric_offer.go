package commands

// Use case: biometric.offer, the answer to the app's biometric offer.

import (
	"context"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

type offerRequest struct {
	Common
	Session  string `json:"session"`
	Response string `json:"response"`
}

func (s *Service) biometricOffer(ctx context.Context, data []byte) contract.Reply {
	var req offerRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := required("response", req.Response, 16); err != nil {
		return errorReply(err)
	}
	_, _, err := s.onSession(ctx, contract.CmdBiometricOffer, &req.Common, req.Session, func(_, hash string, _ domain.Account) (domain.Command, error) {
		return domain.AnswerBiometricOffer{SessionHash: hash, Response: req.Response}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	return contract.OK(contract.StatusOfferRecorded)
}
