package projections

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

var t0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

const acc = "01HACCOUNT0000000000000000"

func env(e events.Event, at time.Time) events.Envelope {
	en := events.Wrap(acc, e, at, events.Metadata{Channel: "web", ClientIP: "192.0.2.7", UserAgent: "Firefox"})
	en.ID = "01HEVENT"
	return en
}

func upd(seq uint64, at time.Time, set Field, row AccountRow) UpdateAccount {
	return UpdateAccount{AccountID: acc, Seq: seq, At: at, Set: set, Row: row}
}

func att(seq uint64, a Attempt) InsertAttempt {
	a.EventID, a.Seq, a.AccountID = "01HEVENT", seq, acc
	a.Channel, a.ClientIP, a.UserAgent = "web", "192.0.2.7", "Firefox"
	return InsertAttempt{Attempt: a}
}

func TestReduce(t *testing.T) {
	until := t0.Add(15 * time.Minute)
	devExp := t0.AddDate(0, 6, 0)
	cases := []struct {
		name  string
		event events.Event
		want  []Statement
	}{
		{"registration writes the whole row, no secret",
			events.AccountRegistered{NIRHash: "nirhash", EmailSealed: "sealed", MaskedEmail: "v***@y***.fr",
				EmailValidated: true, PasswordHash: "$argon2id$...", Affiliation: "active", At: t0},
			[]Statement{CreateAccount{AccountID: acc, Seq: 7, At: t0, Row: AccountRow{
				Status: "active", Affiliation: "active", MaskedEmail: "v***@y***.fr", EmailValidated: true, RegisteredAt: t0}}}},
		{"reactivation starts the account afresh and forgets its devices",
			events.AccountReactivated{EmailSealed: "s", MaskedEmail: "n***@x***.fr", EmailValidated: false, PasswordHash: "h", Affiliation: "pending", At: t0},
			[]Statement{
				upd(7, t0, FieldStatus|FieldAffiliation|FieldMaskedEmail|FieldEmailValidated|FieldBlockedUntil|FieldBlockReason|
					FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour|FieldOTPLastRequestedAt|FieldPasswordChangedAt|FieldPasswordChangedBy|
					FieldPasswordChangeBlockedUntil|FieldPasswordChangeBlockReason|FieldEmailChangeBlockedUntil|FieldEmailChangeBlockReason|FieldBiometricOffer|
					FieldDeactivatedAt|FieldDeactivationReason|FieldReactivatedAt,
					AccountRow{Status: "active", Affiliation: "pending", MaskedEmail: "n***@x***.fr", PasswordChangedAt: t0, ReactivatedAt: t0}),
				ForgetDevices{AccountID: acc}, RevokeBiometrics{AccountID: acc}, CountDevices{AccountID: acc}}},
		{"deactivation records when and why, and forgets the devices",
			events.AccountDeactivated{Reason: "holder", At: t0},
			[]Statement{upd(7, t0, FieldStatus|FieldDeactivatedAt|FieldDeactivationReason,
				AccountRow{Status: "deactivated", DeactivatedAt: t0, DeactivationReason: "holder"}),
				ForgetDevices{AccountID: acc}, RevokeBiometrics{AccountID: acc}, CountDevices{AccountID: acc}}},
		{"affiliation",
			events.AffiliationSet{Affiliation: "none", At: t0},
			[]Statement{upd(7, t0, FieldAffiliation, AccountRow{Affiliation: "none"})}},
		{"unlock clears the block and every counter",
			events.AccountUnlocked{PreviousReason: "otp_quota", At: t0},
			[]Statement{upd(7, t0, FieldBlockedUntil|FieldBlockReason|FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour, AccountRow{})}},
		{"wrong password counts and is an attempt",
			events.PasswordFailed{Failures: 2, At: t0},
			[]Statement{upd(7, t0, FieldPasswordFailures, AccountRow{PasswordFailures: 2}),
				att(7, Attempt{At: t0, Step: "password", Outcome: "failed", Reason: "invalid_credentials", Failures: 2})}},
		{"third wrong password is the block, and the failures are spent",
			events.PasswordFailed{Failures: 3, BlockedUntil: until, NoticeTo: "sealed", At: t0},
			[]Statement{upd(7, t0, FieldPasswordFailures|FieldBlockedUntil|FieldBlockReason,
				AccountRow{BlockedUntil: until, BlockReason: "password_failures"}),
				att(7, Attempt{At: t0, Step: "password", Outcome: "blocked", Reason: "password_failures", Failures: 3, BlockedUntil: until})}},
		{"right password: an attempt that waits for its code, linked by a digest of the login",
			events.PasswordVerified{LoginID: "01HLOGIN", NewPasswordHash: "rehash", At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}),
				att(7, Attempt{At: t0, Step: "password", Outcome: "verified", LoginRef: LoginRef("01HLOGIN")})}},
		{"refused login says why",
			events.LoginRefused{Reason: "affiliation_pending", At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}),
				att(7, Attempt{At: t0, Step: "password", Outcome: "refused", Reason: "affiliation_pending"})}},
		{"a code request counts in the quota",
			events.OTPIssued{LoginID: "01HLOGIN", CodeHash: "ch", CodeSealed: "cs", ToSealed: "ts", RequestsLastHour: 4, IssuedAt: t0, ExpiresAt: until},
			[]Statement{upd(7, t0, FieldOTPRequestsLastHour|FieldOTPLastRequestedAt, AccountRow{OTPRequestsLastHour: 4, OTPLastRequestedAt: t0}),
				att(7, Attempt{At: t0, Step: "otp_send", Outcome: "code_sent", LoginRef: LoginRef("01HLOGIN")})}},
		{"one code too many blocks",
			events.OTPQuotaExceeded{LoginID: "01HLOGIN", BlockedUntil: t0.Add(time.Hour), At: t0},
			[]Statement{upd(7, t0, FieldBlockedUntil|FieldBlockReason, AccountRow{BlockedUntil: t0.Add(time.Hour), BlockReason: "otp_quota"}),
				att(7, Attempt{At: t0, Step: "otp_send", Outcome: "blocked", Reason: "otp_quota", BlockedUntil: t0.Add(time.Hour), LoginRef: LoginRef("01HLOGIN")})}},
		{"wrong code counts",
			events.OTPFailed{LoginID: "01HLOGIN", Failures: 1, At: t0},
			[]Statement{upd(7, t0, FieldOTPFailures, AccountRow{OTPFailures: 1}),
				att(7, Attempt{At: t0, Step: "otp", Outcome: "failed", Reason: "otp_invalid", Failures: 1, LoginRef: LoginRef("01HLOGIN")})}},
		{"third wrong code is the block",
			events.OTPFailed{LoginID: "01HLOGIN", Failures: 3, BlockedUntil: until, At: t0},
			[]Statement{upd(7, t0, FieldOTPFailures|FieldBlockedUntil|FieldBlockReason, AccountRow{BlockedUntil: until, BlockReason: "otp_failures"}),
				att(7, Attempt{At: t0, Step: "otp", Outcome: "blocked", Reason: "otp_failures", Failures: 3, BlockedUntil: until, LoginRef: LoginRef("01HLOGIN")})}},
		{"login resets the counters and the quota",
			events.LoginSucceeded{LoginID: "01HLOGIN", Method: "otp", Channel: "app", SessionHash: "sh", SessionExpiresAt: until, At: t0},
			[]Statement{upd(7, t0, FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour|FieldLastLoginAt|FieldLastLoginChannel|FieldLastLoginMethod,
				AccountRow{LastLoginAt: t0, LastLoginChannel: "app", LastLoginMethod: "otp"}),
				att(7, Attempt{At: t0, Step: "otp", Outcome: "succeeded", Method: "otp", LoginRef: LoginRef("01HLOGIN")})}},
		{"login on a trusted device is the password step",
			events.LoginSucceeded{Method: "trusted_device", SessionHash: "sh", SessionExpiresAt: until, At: t0},
			[]Statement{upd(7, t0, FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour|FieldLastLoginAt|FieldLastLoginChannel|FieldLastLoginMethod,
				AccountRow{LastLoginAt: t0, LastLoginChannel: "web", LastLoginMethod: "trusted_device"}),
				att(7, Attempt{At: t0, Step: "password", Outcome: "succeeded", Method: "trusted_device"})}},
		{"remember this device",
			events.LoginSucceeded{LoginID: "01HLOGIN", Method: "otp", Channel: "web", SessionHash: "sh", SessionExpiresAt: until,
				DeviceHash: "devhash", DeviceExpiresAt: devExp, At: t0},
			[]Statement{upd(7, t0, FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour|FieldLastLoginAt|FieldLastLoginChannel|FieldLastLoginMethod,
				AccountRow{LastLoginAt: t0, LastLoginChannel: "web", LastLoginMethod: "otp"}),
				att(7, Attempt{At: t0, Step: "otp", Outcome: "succeeded", Method: "otp", LoginRef: LoginRef("01HLOGIN"), Device: DeviceRef("devhash")}),
				TrustDevice{AccountID: acc, DeviceRef: DeviceRef("devhash"), Seq: 7, CreatedAt: t0, ExpiresAt: devExp, Channel: "web", Keep: domain.MaxTrustedDevices},
				CountDevices{AccountID: acc}}},
		{"biometric login names its device",
			events.LoginSucceeded{Method: "biometric", Channel: "app", SessionHash: "sh", SessionExpiresAt: until, BiometricDevice: "dev-1", At: t0},
			[]Statement{upd(7, t0, FieldPasswordFailures|FieldOTPFailures|FieldOTPRequestsLastHour|FieldLastLoginAt|FieldLastLoginChannel|FieldLastLoginMethod,
				AccountRow{LastLoginAt: t0, LastLoginChannel: "app", LastLoginMethod: "biometric"}),
				att(7, Attempt{At: t0, Step: "biometric", Outcome: "succeeded", Method: "biometric", Device: "dev-1"})}},
		{"password change ends devices and enrolments",
			events.PasswordChanged{Method: "change", PasswordHash: "h", KeptSessionHash: "sh", ToSealed: "s", At: t0},
			[]Statement{upd(7, t0, FieldPasswordChangedAt|FieldPasswordChangedBy, AccountRow{PasswordChangedAt: t0, PasswordChangedBy: "change"}),
				ForgetDevices{AccountID: acc}, RevokeBiometrics{AccountID: acc}, CountDevices{AccountID: acc}}},
		{"password reset ends devices and enrolments, lifts a password-failure block only, and is recorded for the takeover pattern",
			events.PasswordChanged{Method: "reset", PasswordHash: "h", At: t0},
			[]Statement{upd(7, t0, FieldPasswordChangedAt|FieldPasswordChangedBy|FieldPasswordFailures, AccountRow{PasswordChangedAt: t0, PasswordChangedBy: "reset"}),
				RecordCredentialChange{AccountID: acc, Seq: 7, Kind: ChangePasswordReset, At: t0},
				LiftBlock{AccountID: acc, Reason: "password_failures"},
				ForgetDevices{AccountID: acc}, RevokeBiometrics{AccountID: acc}, CountDevices{AccountID: acc}}},
		{"reset link requested",
			events.PasswordResetRequested{TokenHash: "th", TokenSealed: "ts", ToSealed: "s", RequestedAt: t0, ExpiresAt: until},
			[]Statement{upd(7, t0, FieldPasswordResetRequestedAt, AccountRow{PasswordResetRequestedAt: t0})}},
		{"password change code: the decider's business",
			events.PasswordChangeCodeIssued{CodeHash: "c", CodeSealed: "s", ToSealed: "t", RequestsLastHour: 1, IssuedAt: t0, ExpiresAt: until},
			[]Statement{upd(7, t0, 0, AccountRow{})}},
		{"change code verified: the decider's business",
			events.ChangeCodeVerified{At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{})}},
		{"email change code: the decider's business",
			events.EmailChangeCodeIssued{NewEmailSealed: "s", NewMaskedEmail: "m", CodeHash: "c", CodeSealed: "s", IssuedAt: t0, ExpiresAt: until},
			[]Statement{upd(7, t0, 0, AccountRow{})}},
		{"email changed: new masked address, validated, starts the cooldown, ends trusted devices, recorded for the takeover pattern",
			events.EmailChanged{EmailSealed: "s", MaskedEmail: "n***@x***.fr", OldToSealed: "o", KeptSessionHash: "sh", At: t0},
			[]Statement{upd(7, t0, FieldMaskedEmail|FieldEmailValidated|FieldEmailChangedAt, AccountRow{MaskedEmail: "n***@x***.fr", EmailValidated: true, EmailChangedAt: t0}),
				ForgetDevices{AccountID: acc}, CountDevices{AccountID: acc},
				RecordCredentialChange{AccountID: acc, Seq: 7, Kind: ChangeEmail, At: t0}}},
		{"too many password-change codes block that flow",
			events.ChangeRequestsExceeded{Flow: "password_change", BlockedUntil: until, At: t0},
			[]Statement{upd(7, t0, FieldPasswordChangeBlockedUntil|FieldPasswordChangeBlockReason,
				AccountRow{PasswordChangeBlockedUntil: until, PasswordChangeBlockReason: "code_requests_exceeded"})}},
		{"wrong change code: counts in the decider only",
			events.ChangeCodeFailed{Flow: "email_change", Failures: 1, At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{})}},
		{"third wrong email-change code blocks that flow",
			events.ChangeCodeFailed{Flow: "email_change", Failures: 3, BlockedUntil: until, At: t0},
			[]Statement{upd(7, t0, FieldEmailChangeBlockedUntil|FieldEmailChangeBlockReason,
				AccountRow{EmailChangeBlockedUntil: until, EmailChangeBlockReason: "code_attempts_exceeded"})}},
		{"biometric offer answer",
			events.BiometricOfferAnswered{Response: "never", At: t0},
			[]Statement{upd(7, t0, FieldBiometricOffer, AccountRow{BiometricOffer: "never"})}},
		{"biometric enrolment",
			events.BiometricEnrolled{DeviceID: "dev-1", PublicKey: "MFkw...", ExpiresAt: devExp, At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}),
				EnrollBiometric{AccountID: acc, DeviceID: "dev-1", Seq: 7, EnrolledAt: t0, ExpiresAt: devExp, Keep: domain.MaxBiometricDevices},
				CountDevices{AccountID: acc}}},
		{"biometric challenge is an attempt",
			events.BiometricChallengeIssued{DeviceID: "dev-1", ChallengeHash: "ch", ExpiresAt: until, At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}),
				att(7, Attempt{At: t0, Step: "biometric_challenge", Outcome: "challenge_issued", Device: "dev-1"})}},
		{"biometric failure is an attempt, without counting",
			events.BiometricLoginFailed{DeviceID: "dev-1", Reason: "bad_signature", At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}),
				att(7, Attempt{At: t0, Step: "biometric", Outcome: "failed", Reason: "bad_signature", Device: "dev-1"})}},
		{"biometric revocation",
			events.BiometricRevoked{DeviceID: "dev-1", Reason: "adviser", At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}),
				RevokeBiometrics{AccountID: acc, DeviceID: "dev-1"}, CountDevices{AccountID: acc}}},
		{"a session that ends only moves the version",
			events.SessionEnded{SessionHash: "sh", Reason: "logout", At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{})}},
		{"an oidc authorization is an audit row with its amr",
			events.OIDCAuthorized{ClientID: "fc-demo", Scopes: []string{"openid", "profile"}, ACR: "eidas1", AMR: []string{"pwd", "otp"}, AuthTime: t0.Add(-time.Minute), At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}), RecordOIDC{AccountID: acc, Seq: 7, Kind: OIDCAuthorized, ClientID: "fc-demo",
				Scopes: []string{"openid", "profile"}, ACR: "eidas1", AMR: []string{"pwd", "otp"}, At: t0}}},
		{"an oidc token issuance is an audit row without amr",
			events.OIDCTokenIssued{ClientID: "fc-demo", Scopes: []string{"openid"}, ACR: "eidas1", At: t0},
			[]Statement{upd(7, t0, 0, AccountRow{}), RecordOIDC{AccountID: acc, Seq: 7, Kind: OIDCTokenIssued, ClientID: "fc-demo",
				Scopes: []string{"openid"}, ACR: "eidas1", At: t0}}},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen[c.event.EventType()] = true
			got := Reduce(7, env(c.event, t0))
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got\n%#v\nwant\n%#v", got, c.want)
			}
		})
	}
	// Every event type this build knows has a case above.
	for _, typ := range events.Types() {
		if !seen[typ] {
			t.Errorf("no reducer case for %s", typ)
		}
	}
}

// No statement carries a secret of the event: hashes, sealed values, the
// login_id (a bearer) never reach a read model.
func TestReduceKeepsNoSecret(t *testing.T) {
	secrets := []string{"NIRHASH", "SEALED", "PWHASH", "CODEHASH", "SESSIONHASH", "DEVICEHASH", "LOGINID", "TOKENHASH", "CHALLENGEHASH"}
	all := []events.Event{
		events.AccountRegistered{NIRHash: "NIRHASH", EmailSealed: "SEALED", PasswordHash: "PWHASH", At: t0},
		events.AccountReactivated{EmailSealed: "SEALED", PasswordHash: "PWHASH", At: t0},
		events.PasswordFailed{Failures: 3, BlockedUntil: t0, NoticeTo: "SEALED", At: t0},
		events.PasswordVerified{LoginID: "LOGINID", NewPasswordHash: "PWHASH", At: t0},
		events.OTPIssued{LoginID: "LOGINID", CodeHash: "CODEHASH", CodeSealed: "SEALED", ToSealed: "SEALED", IssuedAt: t0},
		events.OTPQuotaExceeded{LoginID: "LOGINID", NoticeTo: "SEALED", At: t0},
		events.OTPFailed{LoginID: "LOGINID", NoticeTo: "SEALED", At: t0},
		events.LoginSucceeded{LoginID: "LOGINID", SessionHash: "SESSIONHASH", DeviceHash: "DEVICEHASH", NewPasswordHash: "PWHASH", NoticeTo: "SEALED", At: t0},
		events.SessionEnded{SessionHash: "SESSIONHASH", At: t0},
		events.PasswordChangeCodeIssued{CodeHash: "CODEHASH", CodeSealed: "SEALED", ToSealed: "SEALED", IssuedAt: t0},
		events.PasswordChanged{Method: "reset", PasswordHash: "PWHASH", KeptSessionHash: "SESSIONHASH", ToSealed: "SEALED", At: t0},
		events.PasswordResetRequested{TokenHash: "TOKENHASH", TokenSealed: "SEALED", ToSealed: "SEALED", RequestedAt: t0},
		events.EmailChangeCodeIssued{NewEmailSealed: "SEALED", CodeHash: "CODEHASH", CodeSealed: "SEALED", IssuedAt: t0},
		events.EmailChanged{EmailSealed: "SEALED", OldToSealed: "SEALED", KeptSessionHash: "SESSIONHASH", At: t0},
		events.BiometricChallengeIssued{DeviceID: "d", ChallengeHash: "CHALLENGEHASH", At: t0},
	}
	for _, e := range all {
		dump := strings.ToUpper(stringsOf(Reduce(1, env(e, t0))))
		for _, s := range secrets {
			if strings.Contains(dump, s) {
				t.Errorf("%s: statement carries %s: %s", e.EventType(), s, dump)
			}
		}
	}
}

func stringsOf(v any) string {
	var b strings.Builder
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			b.WriteString(v.String() + " ")
		case reflect.Interface, reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				walk(v.Field(i))
			}
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

func TestPlanFoldsAccountChangesInStreamOrder(t *testing.T) {
	const other = "01HOTHER"
	stmts := []Statement{
		UpdateAccount{AccountID: other, Seq: 1, At: t0, Set: FieldPasswordFailures, Row: AccountRow{PasswordFailures: 1}},
		CreateAccount{AccountID: acc, Seq: 2, At: t0, Row: AccountRow{Status: "active", Affiliation: "active", RegisteredAt: t0}},
		UpdateAccount{AccountID: acc, Seq: 3, At: t0.Add(time.Second), Set: FieldPasswordFailures, Row: AccountRow{PasswordFailures: 1}},
		InsertAttempt{Attempt: Attempt{EventID: "e3", At: t0, Channel: "web", ClientIP: "192.0.2.77", UserAgent: "UA", Step: StepPassword, Outcome: OutcomeFailed}},
		RecordCredentialChange{AccountID: other, Seq: 3, Kind: ChangeEmail, At: t0},
		UpdateAccount{AccountID: other, Seq: 4, At: t0.Add(2 * time.Second), Set: FieldPasswordFailures | FieldBlockedUntil,
			Row: AccountRow{PasswordFailures: 0, BlockedUntil: t0.Add(time.Hour)}},
		TrustDevice{AccountID: acc, DeviceRef: "d1", Seq: 5},
		CountDevices{AccountID: acc},
		UpdateAccount{AccountID: acc, Seq: 6, At: t0.Add(3 * time.Second), Set: FieldAffiliation, Row: AccountRow{Affiliation: "none"}},
		ForgetDevices{AccountID: other},
		CountDevices{AccountID: other},
		CountDevices{AccountID: acc},
		InsertAttempt{Attempt: Attempt{EventID: "e7", At: t0.Add(time.Second), Channel: "web", ClientIP: "192.0.2.8", UserAgent: "UA", Step: StepPassword, Outcome: OutcomeFailed}},
		// acc's block reason is known in the batch (its row is created here):
		// the lift is decided in memory; other's is not: left to SQL.
		UpdateAccount{AccountID: acc, Seq: 8, At: t0.Add(4 * time.Second), Set: FieldBlockedUntil | FieldBlockReason,
			Row: AccountRow{BlockedUntil: t0.Add(time.Hour), BlockReason: "password_failures"}},
		LiftBlock{AccountID: acc, Reason: "password_failures"},
		LiftBlock{AccountID: other, Reason: "password_failures"},
		LiftBlock{AccountID: other, Reason: "password_failures"},
	}
	got := PlanBatch(stmts)
	want := Plan{
		Devices: []Statement{TrustDevice{AccountID: acc, DeviceRef: "d1", Seq: 5}, ForgetDevices{AccountID: other}},
		Accounts: []AccountChange{
			{AccountID: acc, Create: true, Set: AllFields, Seq: 8, At: t0.Add(4 * time.Second),
				Row: AccountRow{Status: "active", Affiliation: "none", PasswordFailures: 1, RegisteredAt: t0}},
			{AccountID: other, Set: FieldPasswordFailures | FieldBlockedUntil, Seq: 4, At: t0.Add(2 * time.Second),
				Row: AccountRow{BlockedUntil: t0.Add(time.Hour)}, LiftBlockIf: []string{"password_failures"}},
		},
		Counts: []string{acc, other},
		Attempts: []Attempt{
			{EventID: "e3", At: t0, Channel: "web", ClientIP: "192.0.2.77", UserAgent: "UA", Step: StepPassword, Outcome: OutcomeFailed},
			{EventID: "e7", At: t0.Add(time.Second), Channel: "web", ClientIP: "192.0.2.8", UserAgent: "UA", Step: StepPassword, Outcome: OutcomeFailed}},
		// Both attempts count in one /24, one user agent (first seen at
		// the first), one hour.
		Fraud: FraudCounts{
			BySource:   map[SourceKey]int64{{Hour: Hour(t0), Prefix: netip.MustParsePrefix("192.0.2.0/24"), Step: StepPassword, Outcome: OutcomeFailed}: 2},
			ByDevice:   map[DeviceKey]int64{{Hour: Hour(t0), UAHash: UserAgentHash("UA"), Step: StepPassword, Outcome: OutcomeFailed}: 2},
			ByHour:     map[HourKey]int64{{Hour: Hour(t0), Channel: "web", Step: StepPassword, Outcome: OutcomeFailed}: 2},
			UserAgents: map[string]UserAgentSeen{UserAgentHash("UA"): {UserAgent: "UA", FirstSeenAt: t0}},
		},
		Changes: []RecordCredentialChange{{AccountID: other, Seq: 3, Kind: ChangeEmail, At: t0}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%#v\nwant\n%#v", got, want)
	}
}

// A Folder emptied by Reset folds the next batch as a new one would: its
// reused memory keeps nothing of the last batch (accounts, lifts, counts,
// devices, attempts), and Add says which statements brought a new account.
func TestFolderResetForgetsTheLastBatch(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	first := []Statement{
		UpdateAccount{AccountID: "a", Seq: 1, At: t0, Set: FieldOTPFailures, Row: AccountRow{OTPFailures: 2}},
		LiftBlock{AccountID: "b", Reason: "otp_failures"},
		TrustDevice{AccountID: "a", DeviceRef: "d", Seq: 1},
		CountDevices{AccountID: "a"},
		InsertAttempt{Attempt: Attempt{EventID: "e1"}},
	}
	second := []Statement{
		UpdateAccount{AccountID: "b", Seq: 7, At: t0.Add(time.Minute), Set: FieldAffiliation, Row: AccountRow{Affiliation: "none"}},
		UpdateAccount{AccountID: "c", Seq: 8, At: t0.Add(2 * time.Minute), Set: FieldStatus, Row: AccountRow{Status: "active"}},
		UpdateAccount{AccountID: "b", Seq: 9, At: t0.Add(3 * time.Minute), Set: FieldOTPFailures, Row: AccountRow{OTPFailures: 1}},
	}
	want := PlanBatch(second)
	var f Folder
	for _, s := range first {
		f.Add(s)
	}
	if p := f.Plan(); len(p.Accounts) != 2 || len(p.Devices) != 1 || len(p.Counts) != 1 || len(p.Attempts) != 1 {
		t.Fatalf("first batch: %+v", p)
	}
	f.Reset()
	var news []bool
	for _, s := range second {
		news = append(news, f.Add(s))
	}
	if got := f.Plan(); !reflect.DeepEqual(got.Accounts, want.Accounts) || len(got.Devices)+len(got.Counts)+len(got.Attempts) != 0 {
		t.Fatalf("after Reset got\n%#v\nwant\n%#v", got, want)
	}
	if !reflect.DeepEqual(news, []bool{true, true, false}) {
		t.Errorf("new accounts %v, want b and c new, then b again", news)
	}
}

func TestRefsAreStableAndDistinct(t *testing.T) {
	if LoginRef("x") != LoginRef("x") || LoginRef("x") == DeviceRef("x") || len(LoginRef("x")) != 32 {
		t.Fatal("refs: want stable, domain-separated, 32 hex characters")
	}
	if LoginRef("") != "" {
		t.Fatal("no login, no ref")
	}
}
