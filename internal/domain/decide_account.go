package domain

import (
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// Register creates the account, or reactivates a deactivated one (Cas 1 bis).
type Register struct {
	NIRHash        string
	EmailSealed    string
	MaskedEmail    string
	EmailValidated bool
	PasswordHash   string
	Affiliation    string
	IdentitySealed string // the civil identity, sealed; "" if none
}

// Deactivate closes the account.
type Deactivate struct{ Reason string }

// SetAffiliation records what the national register says.
type SetAffiliation struct{ Affiliation string }

// Unlock lifts a block and clears the counters (an adviser's act).
type Unlock struct{}

func (Register) isCommand()       {}
func (Deactivate) isCommand()     {}
func (SetAffiliation) isCommand() {}
func (Unlock) isCommand()         {}

// register: a new NIR gets an account; a deactivated one is reactivated by
// registering again (seed, Cas 1 bis: « cliquez sur le lien "Créer un
// compte" »); an active one is refused.
func (d Decider) register(a Account, c Register, now time.Time) ([]events.Event, error) {
	if !validAffiliation(c.Affiliation) {
		return nil, InvalidRequest("affiliation", "doit valoir active, pending ou none")
	}
	switch a.Status {
	case "":
		return record(events.AccountRegistered{NIRHash: c.NIRHash, EmailSealed: c.EmailSealed, MaskedEmail: c.MaskedEmail,
			EmailValidated: c.EmailValidated, PasswordHash: c.PasswordHash, Affiliation: c.Affiliation,
			IdentitySealed: c.IdentitySealed, At: now})
	case StatusDeactivated:
		return record(events.AccountReactivated{EmailSealed: c.EmailSealed, MaskedEmail: c.MaskedEmail,
			EmailValidated: c.EmailValidated, PasswordHash: c.PasswordHash, Affiliation: c.Affiliation,
			IdentitySealed: c.IdentitySealed, At: now})
	}
	return nil, &Error{Code: CodeAccountExists}
}

// deactivate closes an account (seed, Cas 1 bis: by the holder or an
// adviser, FAQ); closing it twice changes nothing.
func (d Decider) deactivate(a Account, c Deactivate, now time.Time) ([]events.Event, error) {
	if !a.Exists() {
		return nil, &Error{Code: CodeAccountNotFound}
	}
	if a.Status == StatusDeactivated {
		return nil, nil
	}
	return record(events.AccountDeactivated{Reason: c.Reason, At: now})
}

// setAffiliation records the register's answer (seed, Cas 8-9, FAQ: the
// RFI); the same answer again changes nothing.
func (d Decider) setAffiliation(a Account, c SetAffiliation, now time.Time) ([]events.Event, error) {
	if !a.Exists() {
		return nil, &Error{Code: CodeAccountNotFound}
	}
	if !validAffiliation(c.Affiliation) {
		return nil, InvalidRequest("affiliation", "doit valoir active, pending ou none")
	}
	if a.Affiliation == c.Affiliation {
		return nil, nil
	}
	return record(events.AffiliationSet{Affiliation: c.Affiliation, At: now})
}

// unlock is an adviser's act (our choice): it lifts the block and clears
// the login counters; with nothing to clear it changes nothing.
func (d Decider) unlock(a Account, now time.Time) ([]events.Event, error) {
	if !a.Exists() {
		return nil, &Error{Code: CodeAccountNotFound}
	}
	if !a.Blocked(now) && a.PasswordFailures == 0 && a.OTPFailures == 0 && len(a.OTPRequests) == 0 {
		return nil, nil
	}
	prev := ""
	if a.Blocked(now) {
		prev = a.BlockReason
	}
	return record(events.AccountUnlocked{PreviousReason: prev, At: now})
}

func validAffiliation(s string) bool {
	return s == AffiliationActive || s == AffiliationPending || s == AffiliationNone
}
