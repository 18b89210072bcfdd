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

// answerBiometricOffer records the holder's answer to the offer made after
// an app login (seed, App Étape 4: « plus tard », « ne plus me le
// rappeler », or refuse).
func (d Decider) answerBiometricOffer(a Account, c AnswerBiometricOffer, now time.Time) ([]events.Event, error) {
	if _, ok := a.appSession(c.SessionHash, now); !a.Exists() || !ok {
		return nil, &Error{Code: CodeSessionInvalid}
	}
	switch c.Response {
	case events.OfferLater, events.OfferNever, events.OfferRefuse:
	default:
		return nil, InvalidRequest("response", "doit valoir later, never ou refuse")
	}
	return record(events.BiometricOfferAnswered{Response: c.Response, At: now})
}

// enrollBiometric enrols a device for BiometricMonths (seed, App Étape 3:
// « pendant 6 mois »), from an app session opened with password and code
// (App Étape 4: the offer follows such a login), never from one opened by
// biometrics: an enrolment made from a device's session would outlive that
// device's revocation (issue 11).
func (d Decider) enrollBiometric(a Account, c EnrollBiometric, now time.Time) ([]events.Event, error) {
	if s, ok := a.appSession(c.SessionHash, now); !a.Exists() || !ok || s.Device != "" {
		return nil, &Error{Code: CodeSessionInvalid}
	}
	return record(events.BiometricEnrolled{DeviceID: c.DeviceID, PublicKey: c.PublicKey,
		ExpiresAt: now.AddDate(0, d.Policy.BiometricMonths, 0), At: now})
}

// issueBiometricChallenge gives an enrolled device a challenge to sign,
// valid BiometricChallengeLifetime, at most BiometricChallengesPerHour per
// device (our choice: a challenge costs a signature check).
func (d Decider) issueBiometricChallenge(a Account, c IssueBiometricChallenge, now time.Time) ([]events.Event, error) {
	p := d.Policy
	if !a.Exists() {
		return nil, unknownDevice()
	}
	b, err := a.enrolled(c.DeviceID, now)
	if err != nil {
		return nil, err
	}
	if countSince(b.Challenges, now, time.Hour) >= p.BiometricChallengesPerHour {
		return nil, &Error{Code: CodeBiometricFailed, Reason: BiometricRateLimited}
	}
	return record(events.BiometricChallengeIssued{DeviceID: c.DeviceID, ChallengeHash: c.ChallengeHash,
		ExpiresAt: now.Add(p.BiometricChallengeLifetime), At: now})
}

// biometricLogin opens an app session with a signed challenge (seed, App
// « Connexion avec biométrie activée », Cas 1-2); a failure or an expired
// enrolment falls back to password and code. A block holds here too, and
// the account state is told as after a right password.
func (d Decider) biometricLogin(a Account, c BiometricLogin, now time.Time) ([]events.Event, error) {
	if !a.Exists() {
		return nil, unknownDevice()
	}
	if a.Blocked(now) {
		return nil, locked(a.BlockReason, a.BlockedUntil)
	}
	b, err := a.enrolled(c.DeviceID, now)
	if err != nil {
		return nil, err
	}
	if b.Challenge == "" || !equalHash(b.Challenge, c.ChallengeHash) || !now.Before(b.ChallengeExpiresAt) {
		// Spent, superseded, expired or forged: nothing to spend.
		return nil, &Error{Code: CodeBiometricFailed, Reason: BiometricBadChallenge}
	}
	if !c.SignatureOK {
		return recordRefusal(events.BiometricLoginFailed{DeviceID: c.DeviceID, Reason: BiometricBadSignature, At: now},
			&Error{Code: CodeBiometricFailed, Reason: BiometricBadSignature})
	}
	if err := d.refusal(a); err != nil {
		return nil, err
	}
	return record(events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: c.DeviceID,
		SessionHash: c.SessionHash, SessionExpiresAt: now.Add(d.Policy.SessionLifetime), At: now})
}

// revokeBiometrics ends one enrolment, or all (an adviser's act, our
// choice); revoking what is not enrolled changes nothing, and an unknown
// account is refused as by the other back-office commands.
func (d Decider) revokeBiometrics(a Account, c RevokeBiometrics, now time.Time) ([]events.Event, error) {
	if !a.Exists() {
		return nil, &Error{Code: CodeAccountNotFound}
	}
	if c.DeviceID == "" && len(a.Biometrics) == 0 {
		return nil, nil
	}
	if _, ok := a.Biometric(c.DeviceID); c.DeviceID != "" && !ok {
		return nil, nil
	}
	return record(events.BiometricRevoked{DeviceID: c.DeviceID, Reason: c.Reason, At: now})
}

// enrolled returns a device's valid enrolment: an unknown or revoked device
// fails, an expired one says so (the app falls back to password and code).
func (a Account) enrolled(deviceID string, now time.Time) (BiometricDevice, *Error) {
	b, ok := a.Biometric(deviceID)
	if !ok {
		return b, unknownDevice()
	}
	if !now.Before(b.ExpiresAt) {
		return b, &Error{Code: CodeBiometricExpired}
	}
	return b, nil
}

// unknownDevice: no enrolment of this device on this account, or no account.
func unknownDevice() *Error {
	return &Error{Code: CodeBiometricFailed, Reason: BiometricUnknownDevice}
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
