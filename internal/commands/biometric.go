package commands

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

type offerRequest struct {
	Common
	Session  string `json:"session"`
	Response string `json:"response"`
}

type enrollRequest struct {
	Common
	Session   string `json:"session"`
	DeviceID  string `json:"device_id"`
	PublicKey string `json:"public_key"`
}

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

type revokeRequest struct {
	accountRef
	DeviceID string `json:"device_id,omitempty"`
}

func checkDeviceID(id string) error {
	if err := required("device_id", id, 128); err != nil {
		return err
	}
	if strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) {
		return domain.InvalidRequest("device_id", "ne doit contenir que des lettres, chiffres, - _ .")
	}
	return nil
}

// deviceKey is the index key of a device id: device ids are chosen by the
// app, so the index keeps only their keyed hash.
func (s *Service) deviceKey(deviceID string) string {
	return "bio_" + s.keys.TokenHash("biometric-device", deviceID)
}

// parsePublicKey accepts only ECDSA P-256 keys, base64 DER SubjectPublicKeyInfo.
func parsePublicKey(b64 string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, domain.InvalidRequest("public_key", "doit être encodée en base64")
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, domain.InvalidRequest("public_key", "doit être une clé publique DER (SubjectPublicKeyInfo)")
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, domain.InvalidRequest("public_key", "doit être une clé ECDSA P-256")
	}
	return k, nil
}

func (s *Service) biometricOffer(ctx context.Context, data []byte) Reply {
	var req offerRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := required("response", req.Response, 16); err != nil {
		return errorReply(err)
	}
	_, _, err := s.onSession(ctx, "biometric.offer", &req.Common, req.Session, func(_, hash string, _ domain.Account) (domain.Command, error) {
		return domain.AnswerBiometricOffer{SessionHash: hash, Response: req.Response}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	return ok("offer_recorded")
}

func (s *Service) biometricEnroll(ctx context.Context, data []byte) Reply {
	var req enrollRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return errorReply(err)
	}
	if err := required("public_key", req.PublicKey, 1024); err != nil {
		return errorReply(err)
	}
	if _, err := parsePublicKey(req.PublicKey); err != nil {
		return errorReply(err)
	}
	accountID, sessionHash, err := s.sessionAccount(req.Session)
	if err != nil {
		return errorReply(err)
	}
	// The session is checked before the device id is claimed: a forged
	// session must neither take a device id from its holder nor write to
	// the index (issue 11).
	if refused, err := s.accounts.refusal(ctx, accountID, s.clock.Now(),
		domain.EnrollBiometric{SessionHash: sessionHash, DeviceID: req.DeviceID, PublicKey: req.PublicKey}); err != nil {
		return s.fail("biometric.enroll", err)
	} else if refused != nil {
		return errorReply(refused)
	}
	// A device id belongs to one account: the first enrolment claims it
	// atomically; a claim by another account is refused.
	key := s.deviceKey(req.DeviceID)
	if err := s.index.Create(ctx, key, accountID); errors.Is(err, eventstore.ErrExists) {
		owner, err := s.index.Get(ctx, key)
		if err != nil {
			return s.fail("biometric.enroll", fmt.Errorf("read device index: %w", err))
		}
		if owner != accountID {
			return errorReply(domain.InvalidRequest("device_id", "est déjà enregistré pour un autre compte"))
		}
	} else if err != nil {
		return s.fail("biometric.enroll", fmt.Errorf("claim device: %w", err))
	}
	out, _, err := s.onSession(ctx, "biometric.enroll", &req.Common, req.Session, func(_, hash string, _ domain.Account) (domain.Command, error) {
		return domain.EnrollBiometric{SessionHash: hash, DeviceID: req.DeviceID, PublicKey: req.PublicKey}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	rep := ok("biometric_enrolled")
	for _, e := range out.recorded {
		if e, isEnrolled := e.(events.BiometricEnrolled); isEnrolled {
			rep.ExpiresAt = utc(e.ExpiresAt)
		}
	}
	return rep
}

// deviceAccount finds the account a device is enrolled on.
func (s *Service) deviceAccount(ctx context.Context, deviceID string) (string, error) {
	id, err := s.index.Get(ctx, s.deviceKey(deviceID))
	if errors.Is(err, eventstore.ErrNotFound) {
		return "", &domain.Error{Code: domain.CodeBiometricFailed, Reason: domain.BiometricUnknownDevice}
	}
	return id, err
}

func (s *Service) biometricChallenge(ctx context.Context, data []byte) Reply {
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
	out, err := s.decide(ctx, "biometric.challenge", accountID, s.clock.Now(), &req.Common, func(domain.Account) (domain.Command, error) {
		return domain.IssueBiometricChallenge{DeviceID: req.DeviceID, ChallengeHash: s.keys.TokenHash("challenge:"+accountID, challenge)}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	if out.duplicate {
		return s.replayedSecret("biometric.challenge")
	}
	rep := ok("challenge_issued")
	rep.Challenge = challenge
	for _, e := range out.recorded {
		if e, isIssued := e.(events.BiometricChallengeIssued); isIssued {
			rep.ExpiresAt = utc(e.ExpiresAt)
		}
	}
	return rep
}

func (s *Service) biometricLogin(ctx context.Context, data []byte) Reply {
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
	out, err := s.decide(ctx, "biometric.login", accountID, s.clock.Now(), &req.Common, func(a domain.Account) (domain.Command, error) {
		valid := false
		if b, found := a.Biometric(req.DeviceID); found {
			if pub, err := parsePublicKey(b.PublicKey); err == nil {
				valid = ecdsa.VerifyASN1(pub, digest[:], sig)
			}
		}
		return domain.BiometricLogin{DeviceID: req.DeviceID, ChallengeHash: s.keys.TokenHash("challenge:"+accountID, req.Challenge),
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
	return s.replayedSecret("biometric.login")
}

func (s *Service) revokeBiometrics(ctx context.Context, data []byte) Reply {
	var req revokeRequest
	if err := decode(data, &req); err != nil {
		return errorReply(err)
	}
	if req.DeviceID != "" {
		if err := checkDeviceID(req.DeviceID); err != nil {
			return errorReply(err)
		}
	}
	_, id, err := s.backoffice(ctx, "account.revoke_biometrics", &req.accountRef, domain.RevokeBiometrics{DeviceID: req.DeviceID, Reason: "adviser"})
	if err != nil {
		return errorReply(err)
	}
	rep := ok("biometrics_revoked")
	rep.AccountID = id
	return rep
}
