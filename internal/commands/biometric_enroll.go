package commands

// Use case: biometric.enroll, a device's ECDSA P-256 key enrolled from an
// app session.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

type enrollRequest struct {
	Common
	Session   string `json:"session"`
	DeviceID  string `json:"device_id"`
	PublicKey string `json:"public_key"`
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

// deviceKeys is the index key of a device id under each key of the
// keyring, current first: device ids are chosen by the app, so the index
// keeps only their keyed hash.
func (s *Service) deviceKeys(deviceID string) []string {
	keys := s.keys.TokenHashes("biometric-device", deviceID)
	for i := range keys {
		keys[i] = "bio_" + keys[i]
	}
	return keys
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

func (s *Service) biometricEnroll(ctx context.Context, data []byte) contract.Reply {
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
	accountID, sessionHash, err := s.sessionAccount(ctx, req.Session)
	if err != nil {
		return errorReply(err)
	}
	// The session is checked before the device id is claimed: a forged
	// session must neither take a device id from its holder nor write to
	// the index (issue 11).
	if refused, err := s.accounts.refusal(ctx, accountID, s.clock.Now(),
		domain.EnrollBiometric{SessionHash: sessionHash, DeviceID: req.DeviceID, PublicKey: req.PublicKey}); err != nil {
		return s.fail(contract.CmdBiometricEnroll, err)
	} else if refused != nil {
		return errorReply(refused)
	}
	// A device id belongs to one account: the first enrolment claims it
	// atomically; a claim by another account is refused.
	if owner, err := s.claimIndexed(ctx, s.deviceKeys(req.DeviceID), accountID); err != nil {
		return s.fail(contract.CmdBiometricEnroll, fmt.Errorf("claim device: %w", err))
	} else if owner != accountID {
		return errorReply(domain.InvalidRequest("device_id", "est déjà enregistré pour un autre compte"))
	}
	out, _, err := s.onSession(ctx, contract.CmdBiometricEnroll, &req.Common, req.Session, func(_, hash string, _ domain.Account) (domain.Command, error) {
		return domain.EnrollBiometric{SessionHash: hash, DeviceID: req.DeviceID, PublicKey: req.PublicKey}, nil
	})
	if err != nil {
		return errorReply(err)
	}
	rep := contract.BiometricReply{Done: contract.OK(contract.StatusBiometricEnrolled)}
	for _, e := range out.recorded {
		if e, isEnrolled := e.(events.BiometricEnrolled); isEnrolled {
			rep.ExpiresAt = contract.Timestamp(e.ExpiresAt)
		}
	}
	return rep
}
