package commands

// Use case: account.revoke_biometrics, an adviser ends a device's (or
// every device's) enrolment.

import (
	"context"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

type revokeRequest struct {
	accountRef
	DeviceID string `json:"device_id,omitempty"`
}

func (s *Service) revokeBiometrics(ctx context.Context, data []byte) contract.Reply {
	var req revokeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if req.DeviceID != "" {
		if err := checkDeviceID(req.DeviceID); err != nil {
			return errorReply(err)
		}
	}
	_, id, err := s.backoffice(ctx, contract.CmdAccountRevokeBiometrics, &req.accountRef, domain.RevokeBiometrics{DeviceID: req.DeviceID, Reason: "adviser"})
	if err != nil {
		return errorReply(err)
	}
	return contract.AccountReply{Done: contract.OK(contract.StatusBiometricsRevoked), AccountID: id}
}
