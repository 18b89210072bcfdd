// Package eventsim generates plausible account histories (every event type,
// in the order a real account would produce them) for the projector's tests
// and the benchmarks, so both replay the same mix of events.
package eventsim

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Sim makes plausible histories: every event type, blocks and their lifts,
// devices trusted past the bound, reactivations, in an order the decider
// could have produced. It is deterministic for a seed, except event ids.
type Sim struct {
	Rng  *rand.Rand
	seed uint64
	n    int
}

// Account is one simulated account's progress through its history.
type Account struct {
	ID          string
	Seq         uint64 // last subject sequence, for appends
	at          time.Time
	registered  bool
	deactivated bool
	pwFailures  int
	otpFailures int
	requests    int
	login       string
	blocked     bool
	bioDevices  []string
}

// Start is when simulated histories begin.
var Start = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

func New(seed uint64) *Sim {
	return &Sim{Rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: seed}
}

func (s *Sim) Accounts(n int) []*Account {
	out := make([]*Account, n)
	for i := range out {
		s.n++
		out[i] = &Account{ID: "01SIM" + strconv.FormatUint(s.seed, 10) + "A" + strconv.Itoa(1000000+s.n), at: Start.Add(time.Duration(s.Rng.IntN(3600)) * time.Second)}
	}
	return out
}

func (s *Sim) id(prefix string) string { return prefix + strconv.FormatUint(s.Rng.Uint64(), 36) }

// next returns the account's next event, wrapped.
func (s *Sim) Next(a *Account) events.Envelope {
	a.at = a.at.Add(time.Duration(1+s.Rng.IntN(600)) * time.Second)
	e := s.event(a)
	channels := []string{"web", "app", "kiosk", "backoffice"}
	md := events.Metadata{Channel: channels[s.Rng.IntN(len(channels))],
		ClientIP: "198.51.100." + strconv.Itoa(s.Rng.IntN(250)), UserAgent: "sim/1"}
	return events.Wrap(a.ID, e, a.at, md)
}

func (s *Sim) event(a *Account) events.Event {
	at := a.at
	if !a.registered {
		a.registered = true
		return events.AccountRegistered{NIRHash: s.id("nir"), EmailSealed: s.id("sealed"), MaskedEmail: "v***@y***.fr",
			EmailValidated: s.Rng.IntN(10) > 0, PasswordHash: "$argon2id$x", Affiliation: "active", At: at}
	}
	if a.deactivated {
		if s.Rng.IntN(3) == 0 {
			a.deactivated, a.pwFailures, a.otpFailures, a.requests, a.blocked, a.bioDevices = false, 0, 0, 0, false, nil
			return events.AccountReactivated{EmailSealed: s.id("sealed"), MaskedEmail: "n***@x***.fr", EmailValidated: true,
				PasswordHash: "$argon2id$y", Affiliation: "active", At: at}
		}
		return events.LoginRefused{Reason: "account_deactivated", At: at}
	}
	switch r := s.Rng.IntN(100); {
	case r < 22:
		a.pwFailures++
		if a.pwFailures == 3 {
			a.pwFailures, a.blocked = 0, true
			return events.PasswordFailed{Failures: 3, BlockedUntil: at.Add(15 * time.Minute), At: at}
		}
		return events.PasswordFailed{Failures: a.pwFailures, At: at}
	case r < 40:
		a.login = s.id("login")
		return events.PasswordVerified{LoginID: a.login, At: at}
	case r < 55:
		a.requests++
		if a.requests > 5 {
			a.blocked = true
			return events.OTPQuotaExceeded{LoginID: a.login, BlockedUntil: at.Add(time.Hour), At: at}
		}
		return events.OTPIssued{LoginID: a.login, CodeHash: s.id("ch"), CodeSealed: s.id("cs"), ToSealed: s.id("ts"),
			RequestsLastHour: a.requests, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)}
	case r < 63:
		a.otpFailures++
		if a.otpFailures == 3 {
			a.otpFailures, a.blocked = 0, true
			return events.OTPFailed{LoginID: a.login, Failures: 3, BlockedUntil: at.Add(15 * time.Minute), At: at}
		}
		return events.OTPFailed{LoginID: a.login, Failures: a.otpFailures, At: at}
	case r < 80:
		a.pwFailures, a.otpFailures, a.requests = 0, 0, 0
		e := events.LoginSucceeded{LoginID: a.login, Method: events.MethodOTP, Channel: "web", SessionHash: s.id("sh"),
			SessionExpiresAt: at.Add(time.Hour), At: at}
		switch s.Rng.IntN(6) {
		case 0, 1:
			// Short-lived devices now and then, so the expiry prune matters.
			e.DeviceHash, e.DeviceExpiresAt = s.id("dev"), at.Add(time.Duration(1+s.Rng.IntN(48))*time.Hour)
		case 2:
			e.Method, e.LoginID = events.MethodTrustedDevice, ""
		case 3:
			if len(a.bioDevices) > 0 {
				e.Method, e.LoginID, e.Channel = events.MethodBiometric, "", "app"
				e.BiometricDevice = a.bioDevices[s.Rng.IntN(len(a.bioDevices))]
			}
		}
		return e
	case r < 82:
		a.deactivated = true
		return events.AccountDeactivated{Reason: "holder", At: at}
	case r < 84:
		a.pwFailures, a.otpFailures, a.requests, a.blocked = 0, 0, 0, false
		return events.AccountUnlocked{At: at}
	case r < 85:
		return events.AffiliationSet{Affiliation: []string{"active", "pending", "none"}[s.Rng.IntN(3)], At: at}
	case r < 87:
		// A new password, changed or reset, revokes the enrolments.
		method := events.MethodChange
		a.bioDevices = nil
		if s.Rng.IntN(2) == 0 {
			method = events.MethodReset
			a.pwFailures = 0
		}
		return events.PasswordChanged{Method: method, PasswordHash: "$argon2id$z", At: at}
	case r < 88:
		return events.PasswordResetRequested{TokenHash: s.id("th"), TokenSealed: s.id("ts"), ToSealed: s.id("to"), RequestedAt: at, ExpiresAt: at.Add(time.Hour)}
	case r < 89:
		return events.EmailChanged{EmailSealed: s.id("es"), MaskedEmail: "m***@z***.fr", KeptSessionHash: s.id("sh"), At: at}
	case r < 90:
		flow := []string{events.FlowPasswordChange, events.FlowEmailChange}[s.Rng.IntN(2)]
		if s.Rng.IntN(2) == 0 {
			return events.ChangeRequestsExceeded{Flow: flow, BlockedUntil: at.Add(time.Hour), At: at}
		}
		return events.ChangeCodeFailed{Flow: flow, Failures: 3, BlockedUntil: at.Add(15 * time.Minute), At: at}
	case r < 92:
		d := s.id("bio")
		if len(a.bioDevices) > 0 && s.Rng.IntN(3) == 0 {
			d = a.bioDevices[0] // re-enrolment renews
		} else {
			a.bioDevices = append(a.bioDevices, d)
		}
		return events.BiometricEnrolled{DeviceID: d, PublicKey: "MFkw", ExpiresAt: at.AddDate(0, 6, 0), At: at}
	case r < 93:
		if len(a.bioDevices) > 0 {
			d := a.bioDevices[0]
			a.bioDevices = a.bioDevices[1:]
			return events.BiometricRevoked{DeviceID: d, Reason: "adviser", At: at}
		}
		a.bioDevices = nil
		return events.BiometricRevoked{Reason: "adviser", At: at}
	case r < 95:
		return events.BiometricChallengeIssued{DeviceID: s.id("bio"), ChallengeHash: s.id("c"), ExpiresAt: at.Add(time.Minute), At: at}
	case r < 96:
		return events.BiometricLoginFailed{DeviceID: s.id("bio"), Reason: "bad_signature", At: at}
	case r < 97:
		return events.BiometricOfferAnswered{Response: "later", At: at}
	case r < 98:
		return events.PasswordChangeCodeIssued{CodeHash: s.id("c"), CodeSealed: s.id("s"), ToSealed: s.id("t"), RequestsLastHour: 1, IssuedAt: at, ExpiresAt: at.Add(15 * time.Minute)}
	case r < 99:
		return events.LoginRefused{Reason: "affiliation_pending", At: at}
	}
	return events.SessionEnded{SessionHash: s.id("sh"), Reason: "logout", At: at}
}
