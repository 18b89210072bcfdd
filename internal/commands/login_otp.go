package commands

// Use cases: login.otp.send and login.otp.verify, the security code of a
// login that the password step opened (login_id).

import (
	"context"
	"strings"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type otpSendRequest struct {
	Common
	LoginID string `json:"login_id"`
}

type otpVerifyRequest struct {
	Common
	LoginID        string `json:"login_id"`
	Code           string `json:"code"`
	RememberDevice bool   `json:"remember_device,omitempty"`
	DeviceID       string `json:"device_id,omitempty"` // app: as in login.password
}

// openLoginID reads the account and login of a login_id.
func (s *Service) openLoginID(loginID string) (accountID, login string, err error) {
	if err := required("login_id", loginID, 512); err != nil {
		return "", "", err
	}
	plain, err := s.keys.Open(loginID, "login")
	if err != nil {
		return "", "", &domain.Error{Code: domain.CodeLoginExpired}
	}
	accountID, login, found := strings.Cut(plain, "|")
	if !found {
		return "", "", &domain.Error{Code: domain.CodeLoginExpired}
	}
	return accountID, login, nil
}

func (s *Service) otpSend(ctx context.Context, data []byte) contract.Reply {
	var req otpSendRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	accountID, login, err := s.openLoginID(req.LoginID)
	if err != nil {
		return errorReply(err)
	}
	now := s.clock.Now()
	code := secrets.NewCode(s.policy.OTPDigits)
	cmd := domain.SendOTP{LoginID: login,
		CodeHash:   s.keys.CodeHash(accountID, "login:"+login, code),
		CodeSealed: s.keys.Seal(code, accountID)}
	out, err := s.decide(ctx, contract.CmdLoginOTPSend, accountID, now, &req.Common, func(domain.Account) (domain.Command, error) {
		return cmd, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	rep := contract.LoginReply{Done: contract.OK(contract.StatusOTPSent), MaskedEmail: out.state.MaskedEmail}
	for _, e := range out.recorded {
		if e, isIssued := e.(events.OTPIssued); isIssued {
			rep.ExpiresAt = contract.Timestamp(e.ExpiresAt)
			if e.RequestsLastHour > 1 {
				rep.Message = domain.OTPResentInfo
			}
		}
	}
	return rep
}

func (s *Service) otpVerify(ctx context.Context, data []byte) contract.Reply {
	var req otpVerifyRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	code, err := codeField(req.Code, s.policy.OTPDigits)
	if err != nil {
		return errorReply(err)
	}
	accountID, login, err := s.openLoginID(req.LoginID)
	if err != nil {
		return errorReply(err)
	}
	now := s.clock.Now()
	sessionToken := accountID + "." + secrets.NewToken()
	deviceToken, deviceHash := "", ""
	if req.RememberDevice {
		deviceToken = secrets.NewToken()
		deviceHash = s.keys.TokenHash("device:"+accountID, deviceToken)
	}
	codeHashes := s.keys.CodeHashes(accountID, "login:"+login, code)
	cmd := domain.VerifyOTP{LoginID: login, RememberDevice: req.RememberDevice, DeviceHash: deviceHash,
		SessionHash: s.keys.TokenHash("session", sessionToken), Channel: req.Channel}
	out, err := s.decide(ctx, contract.CmdLoginOTPVerify, accountID, now, &req.Common, func(a domain.Account) (domain.Command, error) {
		cmd.CodeHash, _ = secrets.Match(codeHashes, otpHash(a)...) // issued before a key rotation: its key's hash
		return cmd, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	for _, e := range out.recorded {
		if e, isOK := e.(events.LoginSucceeded); isOK && !out.duplicate {
			return s.authenticated(accountID, req.Channel, sessionToken, e, deviceToken, req.DeviceID, out.state)
		}
	}
	return s.replayedSecret(contract.CmdLoginOTPVerify)
}
