// Package contract is the wire contract of the authentication service in
// one place: the names of the JetStream stream and KV buckets, the subjects
// (commands, events, dev clock, dead letters), the command names, the reply
// statuses and the reply types. Everything else builds its subjects and
// replies from here instead of spelling them out.
//
// It imports the standard library only, so every package may import it,
// the decider included. The JSON Schemas of schemas/ are the published form
// of this contract; the package's tests check that the two agree.
package contract

import "strings"

// DefaultPrefix is the subject prefix when none is configured
// (AUTH_SUBJECT_PREFIX).
const DefaultPrefix = "auth"

// Names of the JetStream stream and KV buckets (SPEC sections 3 and 5).
const (
	// EventsStream holds every event, one subject per account: the source
	// of truth.
	EventsStream = "AUTH_EVENTS"
	// DLQStream holds the dead letters: events a consumer gave up on.
	DLQStream = "AUTH_DLQ"
	// NIRIndexBucket maps a keyed NIR hash (and a keyed device id hash) to
	// an account id: the atomic uniqueness check.
	NIRIndexBucket = "AUTH_NIR_INDEX"
	// SnapshotBucket holds account state snapshots.
	SnapshotBucket = "AUTH_SNAPSHOTS"
	// ShadowBucket holds the login state of NIRs without an account.
	ShadowBucket = "AUTH_SHADOWS"
	// SourceBucket holds the failed password attempts counted per client
	// source (issue 20), keyed by a keyed hash of the source.
	SourceBucket = "AUTH_SOURCES"
	// FraudStream holds the facts about sources for the fraud teams
	// (fraud.source_throttled, fraud.source_released), <prefix>.fraud.>.
	FraudStream = "AUTH_FRAUD"
)

// Subjects is a subject prefix; its methods build every subject under it.
// The empty prefix is DefaultPrefix. Account ids and consumer names are put
// in as given: callers pass validated ones (a ULID, a durable name).
type Subjects string

// Default is the subjects under DefaultPrefix.
const Default Subjects = DefaultPrefix

// Prefix is the prefix itself, DefaultPrefix for "".
func (s Subjects) Prefix() string {
	if s == "" {
		return DefaultPrefix
	}
	return string(s)
}

// Command is the request subject of a command: <prefix>.cmd.<name>, name
// one of Commands() (e.g. "login.password").
func (s Subjects) Command(name string) string { return s.Prefix() + ".cmd." + name }

// CommandGroup is the parent of every command subject, <prefix>.cmd: the
// group of the commands' micro service.
func (s Subjects) CommandGroup() string { return s.Prefix() + ".cmd" }

// Events is the subject of one account's events: <prefix>.events.<account id>.
func (s Subjects) Events(accountID string) string { return s.Prefix() + ".events." + accountID }

// AllEvents is the wildcard of every account's events, <prefix>.events.>:
// the stream's subjects and the consumers' filter.
func (s Subjects) AllEvents() string { return s.Prefix() + ".events.>" }

// AccountOf reads the account id from an event subject built by Events;
// false if subject is not one.
func (s Subjects) AccountOf(subject string) (string, bool) {
	id, ok := strings.CutPrefix(subject, s.Prefix()+".events.")
	if !ok || id == "" || strings.Contains(id, ".") {
		return "", false
	}
	return id, true
}

// Fraud is the subject of a fraud event type ("fraud.source_throttled"):
// <prefix>.<type>, so <prefix>.fraud.source_throttled.
func (s Subjects) Fraud(eventType string) string { return s.Prefix() + "." + eventType }

// AllFraud is the wildcard of every fraud event, <prefix>.fraud.>: the
// subjects of FraudStream.
func (s Subjects) AllFraud() string { return s.Prefix() + ".fraud.>" }

// DevClockAdvance is the development clock's subject,
// <prefix>.dev.clock.advance: a request {"seconds": N} moves the clock of
// every component that follows it (AUTH_DEV_CLOCK=1 only).
func (s Subjects) DevClockAdvance() string { return s.Prefix() + "." + CmdDevClockAdvance }

// DeadLetters is where a consumer's dead letters go: <prefix>.dlq.<consumer>.
func (s Subjects) DeadLetters(consumer string) string { return s.Prefix() + ".dlq." + consumer }

// AllDeadLetters is the wildcard of every consumer's dead letters,
// <prefix>.dlq.>: the subjects of DLQStream.
func (s Subjects) AllDeadLetters() string { return s.Prefix() + ".dlq.>" }

// Command names: the subject of each after "<prefix>.cmd." (SPEC section 4).
// Each has a request schema, schemas/commands/<name>.json.
const (
	CmdLoginPassword  = "login.password"
	CmdLoginOTPSend   = "login.otp.send"
	CmdLoginOTPVerify = "login.otp.verify"
	CmdSessionLogout  = "session.logout"
	CmdSessionCheck   = "session.check"

	CmdAccountRegister         = "account.register"
	CmdAccountImport           = "account.import"
	CmdAccountImportBatch      = "account.import_batch"
	CmdAccountDeactivate       = "account.deactivate"
	CmdAccountSetAffiliation   = "account.set_affiliation"
	CmdAccountUnlock           = "account.unlock"
	CmdAccountRevokeBiometrics = "account.revoke_biometrics"

	CmdPasswordChangeStart      = "password.change.start"
	CmdPasswordChangeVerifyCode = "password.change.verify_code"
	CmdPasswordChangeComplete   = "password.change.complete"
	CmdPasswordResetRequest     = "password.reset.request"
	CmdPasswordResetComplete    = "password.reset.complete"
	CmdEmailChange              = "email.change"
	CmdEmailConfirm             = "email.confirm"

	CmdBiometricOffer     = "biometric.offer"
	CmdBiometricEnroll    = "biometric.enroll"
	CmdBiometricChallenge = "biometric.challenge"
	CmdBiometricLogin     = "biometric.login"

	// OpenID Connect (issue 18): asked by the provider in the web process.
	CmdOIDCAuthorize = "oidc.authorize"
	CmdOIDCToken     = "oidc.token"
	CmdOIDCUserinfo  = "oidc.userinfo"
)

// CmdDevClockAdvance names the development clock's request
// (schemas/commands/dev.clock.advance.json). It is not a command: its
// subject is Subjects.DevClockAdvance, outside <prefix>.cmd.
const CmdDevClockAdvance = "dev.clock.advance"

// Commands lists the commands the commands service serves, in the order
// of SPEC section 4.
func Commands() []string {
	return []string{
		CmdLoginPassword, CmdLoginOTPSend, CmdLoginOTPVerify, CmdSessionLogout, CmdSessionCheck,
		CmdAccountRegister, CmdAccountImport, CmdAccountImportBatch, CmdAccountDeactivate, CmdAccountSetAffiliation, CmdAccountUnlock, CmdAccountRevokeBiometrics,
		CmdPasswordChangeStart, CmdPasswordChangeVerifyCode, CmdPasswordChangeComplete, CmdPasswordResetRequest, CmdPasswordResetComplete,
		CmdEmailChange, CmdEmailConfirm,
		CmdBiometricOffer, CmdBiometricEnroll, CmdBiometricChallenge, CmdBiometricLogin,
		CmdOIDCAuthorize, CmdOIDCToken, CmdOIDCUserinfo,
	}
}

// BackOfficeCommands are the advisers' acts (SPEC section 4: they name the
// account by account_id or nir), in the order of Commands(): only the
// back-office may request them. deploy/nats/users.conf lets the backoffice
// user request these and nothing else; the frontend user (the web and app
// front-ends) the PublicCommands only. A test keeps the file equal to
// these lists.
func BackOfficeCommands() []string {
	return []string{CmdAccountRegister, CmdAccountImport, CmdAccountImportBatch, CmdAccountDeactivate, CmdAccountSetAffiliation, CmdAccountUnlock, CmdAccountRevokeBiometrics}
}

// IsBackOffice tells whether name is one of BackOfficeCommands.
func IsBackOffice(name string) bool {
	for _, c := range BackOfficeCommands() {
		if c == name {
			return true
		}
	}
	return false
}

// PublicCommands are the commands a person sends through a front-end
// (login, session, password and email, the app's biometrics): Commands()
// but the BackOfficeCommands, in the same order.
func PublicCommands() []string {
	var out []string
	for _, c := range Commands() {
		if !IsBackOffice(c) {
			out = append(out, c)
		}
	}
	return out
}

// InboxRoot is the root of every reply subject the commands service
// answers on: a request whose reply subject is not under it is dropped
// (IsInbox). NATS lets a requester name any reply subject, and the
// service's user may publish events: a reply sent to <prefix>.events.<id>
// would land in the audit trail. Each NATS user reads its replies under
// _INBOX.<user> (AUTH_NATS_INBOX_PREFIX).
const InboxRoot = "_INBOX"

// IsInbox tells whether reply is under InboxRoot (a subject of two tokens
// at least, the first _INBOX).
func IsInbox(reply string) bool {
	rest, ok := strings.CutPrefix(reply, InboxRoot+".")
	return ok && rest != "" && !strings.ContainsAny(reply, " \t\r\n")
}
