// Package projections turns the facts of the stream into changes of the
// Postgres read models (SPEC section 6), as values.
//
// A reducer never touches a database: Reduce(seq, envelope) returns the
// statements the event causes, and the projector's generic executor turns a
// batch of them into a few set-based SQL statements (Zitadel's handler/v2
// shape). So every rule of the read models is tested here without Postgres,
// and the executor is tested once, against Postgres, for every statement kind.
//
// Statements carry absolute values, never increments: applying a batch's
// statements folded per account gives the same rows as applying them one by
// one, which is what lets the executor merge them.
package projections

import "time"

// Statement is one change of the read models. The concrete types below are
// the whole vocabulary; the executor handles each one.
type Statement interface{ isStatement() }

// Field names one column of auth.accounts that an UpdateAccount sets.
type Field uint64

// The settable columns of auth.accounts. account_id, version and updated_at
// are always written; trusted_devices and biometric_devices only by
// CountDevices.
const (
	FieldStatus Field = 1 << iota
	FieldAffiliation
	FieldMaskedEmail
	FieldEmailValidated
	FieldEmailChangedAt
	FieldBlockedUntil
	FieldBlockReason
	FieldPasswordFailures
	FieldOTPFailures
	FieldOTPRequestsLastHour
	FieldOTPLastRequestedAt
	FieldPasswordChangedAt
	FieldPasswordChangedBy
	FieldPasswordResetRequestedAt
	FieldPasswordChangeBlockedUntil
	FieldPasswordChangeBlockReason
	FieldEmailChangeBlockedUntil
	FieldEmailChangeBlockReason
	FieldLastLoginAt
	FieldLastLoginChannel
	FieldLastLoginMethod
	FieldBiometricOffer
	FieldDeactivatedAt
	FieldDeactivationReason
	FieldReactivatedAt
	FieldRegisteredAt

	fieldEnd
)

// AllFields is every settable column: what a CreateAccount writes.
const AllFields = fieldEnd - 1

// Has tells whether f includes every field of g.
func (f Field) Has(g Field) bool { return f&g == g }

// AccountRow holds the values of auth.accounts' settable columns. A zero
// time and an empty string are stored as NULL in the nullable columns.
type AccountRow struct {
	Status                     string
	Affiliation                string
	MaskedEmail                string
	EmailValidated             bool
	EmailChangedAt             time.Time
	BlockedUntil               time.Time
	BlockReason                string
	PasswordFailures           int
	OTPFailures                int
	OTPRequestsLastHour        int
	OTPLastRequestedAt         time.Time
	PasswordChangedAt          time.Time
	PasswordChangedBy          string // change or reset
	PasswordResetRequestedAt   time.Time
	PasswordChangeBlockedUntil time.Time
	PasswordChangeBlockReason  string
	EmailChangeBlockedUntil    time.Time
	EmailChangeBlockReason     string
	LastLoginAt                time.Time
	LastLoginChannel           string
	LastLoginMethod            string
	BiometricOffer             string // the holder's last answer to the offer
	DeactivatedAt              time.Time
	DeactivationReason         string
	ReactivatedAt              time.Time
	RegisteredAt               time.Time
}

// Overlay copies into r the fields of o named by set.
func (r *AccountRow) Overlay(o AccountRow, set Field) {
	if set == AllFields {
		*r = o
		return
	}
	for f := Field(1); f < fieldEnd; f <<= 1 {
		if set&f != 0 {
			r.copyField(o, f)
		}
	}
}

func (r *AccountRow) copyField(o AccountRow, f Field) {
	switch f {
	case FieldStatus:
		r.Status = o.Status
	case FieldAffiliation:
		r.Affiliation = o.Affiliation
	case FieldMaskedEmail:
		r.MaskedEmail = o.MaskedEmail
	case FieldEmailValidated:
		r.EmailValidated = o.EmailValidated
	case FieldEmailChangedAt:
		r.EmailChangedAt = o.EmailChangedAt
	case FieldBlockedUntil:
		r.BlockedUntil = o.BlockedUntil
	case FieldBlockReason:
		r.BlockReason = o.BlockReason
	case FieldPasswordFailures:
		r.PasswordFailures = o.PasswordFailures
	case FieldOTPFailures:
		r.OTPFailures = o.OTPFailures
	case FieldOTPRequestsLastHour:
		r.OTPRequestsLastHour = o.OTPRequestsLastHour
	case FieldOTPLastRequestedAt:
		r.OTPLastRequestedAt = o.OTPLastRequestedAt
	case FieldPasswordChangedAt:
		r.PasswordChangedAt = o.PasswordChangedAt
	case FieldPasswordChangedBy:
		r.PasswordChangedBy = o.PasswordChangedBy
	case FieldPasswordResetRequestedAt:
		r.PasswordResetRequestedAt = o.PasswordResetRequestedAt
	case FieldPasswordChangeBlockedUntil:
		r.PasswordChangeBlockedUntil = o.PasswordChangeBlockedUntil
	case FieldPasswordChangeBlockReason:
		r.PasswordChangeBlockReason = o.PasswordChangeBlockReason
	case FieldEmailChangeBlockedUntil:
		r.EmailChangeBlockedUntil = o.EmailChangeBlockedUntil
	case FieldEmailChangeBlockReason:
		r.EmailChangeBlockReason = o.EmailChangeBlockReason
	case FieldLastLoginAt:
		r.LastLoginAt = o.LastLoginAt
	case FieldLastLoginChannel:
		r.LastLoginChannel = o.LastLoginChannel
	case FieldLastLoginMethod:
		r.LastLoginMethod = o.LastLoginMethod
	case FieldBiometricOffer:
		r.BiometricOffer = o.BiometricOffer
	case FieldDeactivatedAt:
		r.DeactivatedAt = o.DeactivatedAt
	case FieldDeactivationReason:
		r.DeactivationReason = o.DeactivationReason
	case FieldReactivatedAt:
		r.ReactivatedAt = o.ReactivatedAt
	case FieldRegisteredAt:
		r.RegisteredAt = o.RegisteredAt
	}
}

// CreateAccount writes a whole auth.accounts row (the account's first
// event). An existing row is overwritten.
type CreateAccount struct {
	AccountID string
	Seq       uint64    // becomes version
	At        time.Time // becomes updated_at
	Row       AccountRow
}

// UpdateAccount sets the columns named by Set, plus version and updated_at,
// on an existing row. Set may be empty: every event of an account moves its
// version, so readers can tell how far the row reflects the stream.
type UpdateAccount struct {
	AccountID string
	Seq       uint64
	At        time.Time
	Set       Field
	Row       AccountRow
}

// InsertAttempt appends one row to auth.login_attempts.
type InsertAttempt struct{ Attempt Attempt }

// Attempt is a row of auth.login_attempts: one login-related fact, for fraud
// and support teams. It holds no secret: no code, no hash, no token, no
// login_id (a bearer for an hour) but LoginRef, a digest that links the
// steps of one login.
type Attempt struct {
	EventID      string
	Seq          uint64
	AccountID    string
	At           time.Time
	Channel      string
	ClientIP     string
	UserAgent    string
	Step         string // password, otp_send, otp, biometric_challenge, biometric
	Outcome      string // failed, blocked, refused, verified, code_sent, challenge_issued, succeeded
	Reason       string // why it failed, was refused or blocked
	Method       string // succeeded: otp, trusted_device, biometric
	Device       string // the biometric device id, or the ref of a device trusted at this login
	Failures     int    // failed: failures in a row after this one (0 = not applicable)
	BlockedUntil time.Time
	LoginRef     string
}

// Steps and outcomes of login attempts.
const (
	StepPassword  = "password"
	StepOTPSend   = "otp_send"
	StepOTP       = "otp"
	StepBiometric = "biometric"
	StepChallenge = "biometric_challenge"

	OutcomeFailed    = "failed"
	OutcomeBlocked   = "blocked"
	OutcomeRefused   = "refused"
	OutcomeVerified  = "verified"
	OutcomeCodeSent  = "code_sent"
	OutcomeSucceeded = "succeeded"
	OutcomeIssued    = "challenge_issued"
)

// LiftBlock clears the account's block if, at this point of the stream, its
// reason is Reason (a password reset lifts a password-failure block, not a
// code-quota one). It is the one statement whose effect depends on the row,
// so the executor resolves it in memory when the batch already set the
// reason, and in SQL otherwise.
type LiftBlock struct {
	AccountID string
	Reason    string
}

// TrustDevice records a trusted device ("Se souvenir de cet appareil"),
// then drops the account's devices that had expired at CreatedAt and keeps
// the Keep newest (by Seq), as the decider does: the table lists exactly the
// devices whose token can skip the code.
type TrustDevice struct {
	AccountID string
	DeviceRef string // a digest of the device token's keyed hash, never the hash
	Seq       uint64
	CreatedAt time.Time
	ExpiresAt time.Time
	Channel   string
	Keep      int
}

// ForgetDevices deletes every trusted device of the account (deactivated,
// reactivated, password reset: their tokens no longer work).
type ForgetDevices struct {
	AccountID string
}

// EnrollBiometric records (or renews) a device enrolled for biometric login,
// then keeps the account's Keep newest enrolments (by Seq), as the decider
// does. The device id is an identifier, not a credential; the public key is
// not kept.
type EnrollBiometric struct {
	AccountID  string
	DeviceID   string
	Seq        uint64
	EnrolledAt time.Time
	ExpiresAt  time.Time
	Keep       int
}

// RevokeBiometrics deletes one biometric enrolment of the account, or all of
// them when DeviceID is empty.
type RevokeBiometrics struct {
	AccountID string
	DeviceID  string
}

// CountDevices sets auth.accounts.trusted_devices and biometric_devices to
// the number of the account's rows in auth.trusted_devices and
// auth.biometric_devices, once the batch's device changes are applied.
type CountDevices struct {
	AccountID string
}

func (CreateAccount) isStatement()    {}
func (UpdateAccount) isStatement()    {}
func (InsertAttempt) isStatement()    {}
func (LiftBlock) isStatement()        {}
func (TrustDevice) isStatement()      {}
func (ForgetDevices) isStatement()    {}
func (EnrollBiometric) isStatement()  {}
func (RevokeBiometrics) isStatement() {}
func (CountDevices) isStatement()     {}
