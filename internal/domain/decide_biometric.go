package domain

import (
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// AnswerBiometricOffer records the holder's answer to the app's offer.
type AnswerBiometricOffer struct {
	SessionHash string
	Response    string
}

// EnrollBiometric registers a device's public key, from an app session.
// The key was parsed and checked (ECDSA P-256) outside.
type EnrollBiometric struct {
	SessionHash string
	DeviceID    string
	PublicKey   string
}

// IssueBiometricChallenge gives a device a fresh challenge to sign.
type IssueBiometricChallenge struct {
	DeviceID      string
	ChallengeHash string
}

// BiometricLogin opens a session with a signed challenge. SignatureOK is the
// ECDSA check, done outside against the enrolled key.
type BiometricLogin struct {
	DeviceID      string
	ChallengeHash string
	SignatureOK   bool
	SessionHash   string
}

// RevokeBiometrics ends enrolments (an adviser's act); no DeviceID: all.
type RevokeBiometrics struct {
	DeviceID string
	Reason   string
}

func (AnswerBiometricOffer) isCommand()    {}
func (EnrollBiometric) isCommand()         {}
func (IssueBiometricChallenge) isCommand() {}
func (BiometricLogin) isCommand()          {}
func (RevokeBiometrics) isCommand()        {}

// Biometric refusal reasons.
const (
	BiometricUnknownDevice = "unknown_device"
	BiometricBadChallenge  = "challenge"
	BiometricBadSignature  = "bad_signature"
	BiometricRateLimited   = "rate_limited"
)

func (d Decider) decideBiometric(a Account, c Command, now time.Time) ([]events.Event, error, bool) {
	p := d.Policy
	switch c := c.(type) {
	case AnswerBiometricOffer:
		if _, ok := a.appSession(c.SessionHash, now); !ok {
			return nil, &Error{Code: CodeSessionInvalid}, true
		}
		switch c.Response {
		case events.OfferLater, events.OfferNever, events.OfferRefuse:
		default:
			return nil, InvalidRequest("response", "doit valoir later, never ou refuse"), true
		}
		evs, err := one(events.BiometricOfferAnswered{Response: c.Response, At: now})
		return evs, err, true

	case EnrollBiometric:
		// From an app session opened with password and code (seed, App
		// Étape 4: the offer follows such a login), never from one opened
		// by biometrics: an enrolment made from a device's session would
		// outlive that device's revocation (issue 11).
		if s, ok := a.appSession(c.SessionHash, now); !ok || s.Device != "" {
			return nil, &Error{Code: CodeSessionInvalid}, true
		}
		evs, err := one(events.BiometricEnrolled{DeviceID: c.DeviceID, PublicKey: c.PublicKey,
			ExpiresAt: now.AddDate(0, p.BiometricMonths, 0), At: now})
		return evs, err, true

	case IssueBiometricChallenge:
		b, err := a.enrolled(c.DeviceID, now)
		if err != nil {
			return nil, err, true
		}
		if countSince(b.Challenges, now, time.Hour) >= p.BiometricChallengesPerHour {
			return nil, &Error{Code: CodeBiometricFailed, Reason: BiometricRateLimited}, true
		}
		evs, _ := one(events.BiometricChallengeIssued{DeviceID: c.DeviceID, ChallengeHash: c.ChallengeHash,
			ExpiresAt: now.Add(p.BiometricChallengeLifetime), At: now})
		return evs, nil, true

	case BiometricLogin:
		if a.Blocked(now) {
			return nil, locked(a.BlockReason, a.BlockedUntil), true
		}
		b, err := a.enrolled(c.DeviceID, now)
		if err != nil {
			return nil, err, true
		}
		if b.Challenge == "" || !equalHash(b.Challenge, c.ChallengeHash) || !now.Before(b.ChallengeX) {
			// Spent, superseded, expired or forged: nothing to spend.
			return nil, &Error{Code: CodeBiometricFailed, Reason: BiometricBadChallenge}, true
		}
		if !c.SignatureOK {
			evs, err := one2(events.BiometricLoginFailed{DeviceID: c.DeviceID, Reason: BiometricBadSignature, At: now},
				&Error{Code: CodeBiometricFailed, Reason: BiometricBadSignature})
			return evs, err, true
		}
		if err := d.refusal(a); err != nil {
			return nil, err, true
		}
		evs, _ := one(events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: c.DeviceID,
			SessionHash: c.SessionHash, SessionExpiresAt: now.Add(p.SessionLifetime), At: now})
		return evs, nil, true

	case RevokeBiometrics:
		if c.DeviceID == "" && len(a.Biometrics) == 0 {
			return nil, nil, true
		}
		if _, ok := a.Biometric(c.DeviceID); c.DeviceID != "" && !ok {
			return nil, nil, true
		}
		evs, _ := one(events.BiometricRevoked{DeviceID: c.DeviceID, Reason: c.Reason, At: now})
		return evs, nil, true
	}
	return nil, nil, false
}

// enrolled returns a device's valid enrolment: an unknown or revoked device
// fails, an expired one says so (the app falls back to password and code).
func (a Account) enrolled(deviceID string, now time.Time) (BiometricDevice, *Error) {
	b, ok := a.Biometric(deviceID)
	if !ok {
		return b, &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}
	}
	if !now.Before(b.ExpiresAt) {
		return b, &Error{Code: CodeBiometricExpired}
	}
	return b, nil
}

// appSession returns an open session opened on the app.
func (a Account) appSession(hash string, now time.Time) (Session, bool) {
	for _, s := range a.Sessions {
		if equalHash(s.Hash, hash) && now.Before(s.ExpiresAt) && s.Channel == "app" {
			return s, true
		}
	}
	return Session{}, false
}
