package commands

// Use cases: biometric.challenge and biometric.login, a login by an
// enrolled device signing a single-use challenge.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type challengeRequest struct {
	Common
	DeviceID string `json:"device_id"`
}

type biometricLoginRequest struct {
	Common
	DeviceID  string `json:"device_id"`
	Challenge string `json:"challenge"`
	Signature string `json:"signature"`
}

// deviceAccount finds the account a device is enrolled on.
func (s *Service) deviceAccount(ctx context.Context, deviceID string) (string, error) {
	id, err := s.findIndexed(ctx, s.deviceKeys(deviceID))
	if errors.Is(err, eventstore.ErrNotFound) {
		return "", &domain.Error{Code: domain.CodeBiometricFailed, Reason: domain.BiometricUnknownDevice}
	}
	return id, err
}

func (s *Service) biometricChallenge(ctx context.Context, data []byte) contract.Reply {
	var req challengeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return errorReply(err)
	}
	accountID, err := s.deviceAccount(ctx, req.DeviceID)
	if err != nil {
		return errorReply(err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	challenge := base64.StdEncoding.EncodeToString(raw)
	out, err := s.decide(ctx, contract.CmdBiometricChallenge, accountID, s.clock.Now(), &req.Common, func(domain.Account) (domain.Command, error) {
		return domain.IssueBiometricChallenge{DeviceID: req.DeviceID, ChallengeHash: s.keys.TokenHash("challenge:"+accountID, challenge)}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	if out.duplicate {
		return s.replayedSecret(contract.CmdBiometricChallenge)
	}
	rep := contract.BiometricReply{Done: contract.OK(contract.StatusChallengeIssued), Challenge: challenge}
	for _, e := range out.recorded {
		if e, isIssued := e.(events.BiometricChallengeIssued); isIssued {
			rep.ExpiresAt = contract.Timestamp(e.ExpiresAt)
		}
	}
	return rep
}

func (s *Service) biometricLogin(ctx context.Context, data []byte) contract.Reply {
	var req biometricLoginRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return errorReply(err)
	}
	if err := required("challenge", req.Challenge, 128); err != nil {
		return errorReply(err)
	}
	if err := required("signature", req.Signature, 256); err != nil {
		return errorReply(err)
	}
	sig, err := base64.StdEncoding.DecodeString(req.Signature)
	if err != nil {
		return errorReply(domain.InvalidRequest("signature", "doit être encodée en base64"))
	}
	challengeBytes, err := base64.StdEncoding.DecodeString(req.Challenge)
	if err != nil {
		return errorReply(domain.InvalidRequest("challenge", "doit être encodé en base64"))
	}
	accountID, err := s.deviceAccount(ctx, req.DeviceID)
	if err != nil {
		return errorReply(err)
	}
	sessionToken := accountID + "." + secrets.NewToken()
	digest := sha256.Sum256(challengeBytes)
	out, err := s.decide(ctx, contract.CmdBiometricLogin, accountID, s.clock.Now(), &req.Common, func(a domain.Account) (domain.Command, error) {
		valid := false
		if b, found := a.Biometric(req.DeviceID); found {
			if pub, err := parsePublicKey(b.PublicKey); err == nil {
				valid = ecdsa.VerifyASN1(pub, digest[:], sig)
			}
		}
		challenge, _ := secrets.Match(s.keys.TokenHashes("challenge:"+accountID, req.Challenge), challengeHash(a, req.DeviceID)...)
		return domain.BiometricLogin{DeviceID: req.DeviceID, ChallengeHash: challenge,
			SignatureOK: valid, SessionHash: s.keys.TokenHash("session", sessionToken)}, nil
	})
	if err != nil {
		return errorReplyFor(req.Channel, err)
	}
	for _, e := range out.recorded {
		if e, isOK := e.(events.LoginSucceeded); isOK && !out.duplicate {
			return s.authenticated(accountID, "app", sessionToken, e, "", req.DeviceID, out.state)
		}
	}
	return s.replayedSecret(contract.CmdBiometricLogin)
}
