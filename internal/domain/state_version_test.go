package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

var update = flag.Bool("update", false, "rewrite testdata/state_version.golden (after bumping StateVersion)")

const stateGolden = "testdata/state_version.golden"

// A stored state must never outlive the rules that made it. The golden file
// holds StateVersion with a fingerprint of what it names: Account's shape
// (every field's Go name, JSON tag and type, recursively) and Evolve's
// behaviour (the state after each event of a fixed history that has every
// event type and goes past every state bound). Any change of either fails
// here until StateVersion is bumped (so the commands service ignores older
// snapshots and replays the events) and the golden regenerated:
//
//	go test ./internal/domain -run TestStateVersion -update
func TestStateVersionNamesTheStateShapeAndEvolveRules(t *testing.T) {
	want := stateFingerprint(t)
	b, err := os.ReadFile(stateGolden)
	if err != nil && !*update {
		t.Fatalf("%v: run go test ./internal/domain -run TestStateVersion -update", err)
	}
	goldenVersion, golden := parseStateGolden(string(b))
	if *update {
		if golden != "" && golden != want && goldenVersion == StateVersion {
			t.Fatalf("the state's shape or Evolve's rules changed: bump domain.StateVersion (now %d) before regenerating the golden", StateVersion)
		}
		out := fmt.Sprintf("# domain.StateVersion and the fingerprint of what it names (state_version_test.go).\n"+
			"# Regenerate only after bumping StateVersion: go test ./internal/domain -run TestStateVersion -update\n"+
			"version %d\n%s", StateVersion, want)
		if err := os.WriteFile(stateGolden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if golden != want {
		if goldenVersion == StateVersion {
			t.Errorf("Account's shape or Evolve's rules changed, and StateVersion is still %d: snapshots written by the old code would be served as current.\n"+
				"Bump domain.StateVersion, then run go test ./internal/domain -run TestStateVersion -update", StateVersion)
		} else {
			t.Errorf("StateVersion is %d, the golden names %d: run go test ./internal/domain -run TestStateVersion -update", StateVersion, goldenVersion)
		}
		reportFirstDifference(t, golden, want)
		return
	}
	if goldenVersion != StateVersion {
		t.Errorf("StateVersion is %d, the golden names %d: run go test ./internal/domain -run TestStateVersion -update", StateVersion, goldenVersion)
	}
}

func parseStateGolden(s string) (version int, fingerprint string) {
	var rest []string
	for _, line := range strings.SplitAfter(s, "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "version "):
			version, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "version ")))
		default:
			rest = append(rest, line)
		}
	}
	return version, strings.Join(rest, "")
}

func reportFirstDifference(t *testing.T, golden, now string) {
	t.Helper()
	g, n := strings.Split(golden, "\n"), strings.Split(now, "\n")
	for len(g) < len(n) {
		g = append(g, "")
	}
	for len(n) < len(g) {
		n = append(n, "")
	}
	i := 0
	for i < len(g)-1 && g[i] == n[i] {
		i++
	}
	t.Errorf("first difference, line %d:\n golden %q\n now    %q", i+1, g[i], n[i])
}

// stateFingerprint is the shape of Account, then one line per event of the
// history: its type and a digest of the state's JSON after it.
func stateFingerprint(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("shape\n")
	describeType(&b, reflect.TypeFor[Account](), "  ", map[reflect.Type]bool{})
	b.WriteString("evolve\n")
	a := Account{ID: "acc"}
	for i, e := range richHistory() {
		a = Evolve(a, e)
		j, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(j)
		fmt.Fprintf(&b, "  %3d %-28s %s\n", i+1, e.EventType(), hex.EncodeToString(sum[:8]))
	}
	return b.String()
}

// describeType writes a type's shape: a struct's fields (Go name, JSON tag,
// type), recursively; types with their own JSON encoding (time.Time) as
// their name.
func describeType(b *strings.Builder, t reflect.Type, indent string, seen map[reflect.Type]bool) {
	if t.Kind() != reflect.Struct || t.Implements(reflect.TypeFor[json.Marshaler]()) || seen[t] {
		return
	}
	seen[t] = true
	for f := range t.Fields() {
		fmt.Fprintf(b, "%s%s %s json:%q\n", indent, f.Name, f.Type, f.Tag.Get("json"))
		inner := f.Type
		for inner.Kind() == reflect.Pointer || inner.Kind() == reflect.Slice || inner.Kind() == reflect.Array || inner.Kind() == reflect.Map {
			inner = inner.Elem()
		}
		describeType(b, inner, indent+"  ", seen)
	}
}

// richHistory is a fixed history with every event type, every branch of
// Evolve (blocks and plain failures, a change and a reset, both change
// flows, web and app logins, biometric logins), and more of each bounded
// kind than the state keeps, so a changed bound changes the fingerprint.
func richHistory() []events.Event {
	day := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return day.Add(time.Duration(m) * time.Minute) }
	login := func(id string, m int, channel, device string) events.LoginSucceeded {
		return events.LoginSucceeded{LoginID: id, Method: events.MethodOTP, Channel: channel, SessionHash: "s-" + id,
			SessionExpiresAt: at(m + 600), DeviceHash: device, DeviceExpiresAt: at(m).AddDate(0, 6, 0), At: at(m)}
	}
	h := []events.Event{
		events.AccountRegistered{NIRHash: "nir#", EmailSealed: "mail-1", MaskedEmail: "v***@y***.fr", EmailValidated: true,
			PasswordHash: "$argon2id$1", Affiliation: AffiliationActive, IdentitySealed: "identity-1", At: at(0)},
		events.AffiliationSet{Affiliation: AffiliationPending, At: at(1)},
		events.AffiliationSet{Affiliation: AffiliationActive, At: at(2)},
		events.PasswordFailed{Failures: 1, At: at(3)},
		events.PasswordFailed{Failures: 2, At: at(4)},
		events.PasswordFailed{Failures: 3, BlockedUntil: at(19), At: at(5)},
		events.AccountUnlocked{PreviousReason: ReasonPasswordFailures, At: at(6)},
		events.LoginRefused{Reason: CodeAffiliationPending, At: at(7)},
	}
	// More pending logins and code requests than the state keeps, then a
	// quota block.
	for i := range MaxPendingLogins + 2 {
		id := "L" + strconv.Itoa(i)
		h = append(h, events.PasswordVerified{LoginID: id, NewPasswordHash: map[bool]string{true: "$argon2id$2"}[i == 0], At: at(10 + i)})
	}
	for i := range MaxRecentRequests + 2 {
		h = append(h, events.OTPIssued{LoginID: "L6", CodeHash: "c" + strconv.Itoa(i), CodeSealed: "sealed", ToSealed: "mail-1",
			RequestsLastHour: 1, IssuedAt: at(20 + i), ExpiresAt: at(35 + i)})
	}
	h = append(h,
		events.OTPQuotaExceeded{LoginID: "L6", BlockedUntil: at(150), At: at(90)},
		events.AccountUnlocked{PreviousReason: ReasonOTPQuota, At: at(91)},
		events.OTPFailed{LoginID: "L6", Failures: 1, At: at(92)},
		events.OTPFailed{LoginID: "L6", Failures: 3, BlockedUntil: at(107), At: at(93)},
		events.PasswordVerified{LoginID: "L7", At: at(110)},
		events.OTPIssued{LoginID: "L7", CodeHash: "c7", IssuedAt: at(110), ExpiresAt: at(125)},
	)
	// More sessions and trusted devices than the state keeps, on the web
	// and the app.
	for i := range MaxTrustedDevices + 2 {
		channel := "web"
		if i%3 == 0 {
			channel = "app"
		}
		h = append(h, login("L7", 111+i, channel, "dev-"+strconv.Itoa(i)))
	}
	h = append(h,
		events.SessionEnded{SessionHash: "s-L7", Reason: "logout", At: at(130)},
		events.BiometricOfferAnswered{Response: events.OfferLater, At: at(131)},
	)
	// More enrolled phones than the state keeps, a challenge, a failed and
	// a successful biometric login, one phone revoked.
	for i := range MaxBiometricDevices + 2 {
		h = append(h, events.BiometricEnrolled{DeviceID: "phone-" + strconv.Itoa(i), PublicKey: "pk", ExpiresAt: at(140).AddDate(0, 6, 0), At: at(140 + i)})
	}
	h = append(h,
		events.BiometricChallengeIssued{DeviceID: "phone-6", ChallengeHash: "ch1", ExpiresAt: at(152), At: at(150)},
		events.BiometricLoginFailed{DeviceID: "phone-6", Reason: BiometricBadSignature, At: at(151)},
		events.BiometricChallengeIssued{DeviceID: "phone-6", ChallengeHash: "ch2", ExpiresAt: at(154), At: at(152)},
		events.LoginSucceeded{Method: events.MethodBiometric, Channel: "app", BiometricDevice: "phone-6", SessionHash: "s-bio",
			SessionExpiresAt: at(183), At: at(153)},
		events.BiometricChallengeIssued{DeviceID: "phone-5", ChallengeHash: "ch3", ExpiresAt: at(156), At: at(154)},
		events.BiometricRevoked{DeviceID: "phone-5", Reason: "adviser", At: at(155)},
		// The password-change flow: requests, a failure, a block, a code
		// verified and the change.
		events.PasswordChangeCodeIssued{CodeHash: "k1", CodeSealed: "sealed", ToSealed: "mail-1", RequestsLastHour: 1, IssuedAt: at(160), ExpiresAt: at(175)},
		events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 1, At: at(161)},
		events.ChangeCodeFailed{Flow: events.FlowPasswordChange, Failures: 3, BlockedUntil: at(177), At: at(162)},
		events.ChangeRequestsExceeded{Flow: events.FlowPasswordChange, BlockedUntil: at(223), At: at(163)},
		events.PasswordChangeCodeIssued{CodeHash: "k2", CodeSealed: "sealed", ToSealed: "mail-1", RequestsLastHour: 1, IssuedAt: at(230), ExpiresAt: at(245)},
		events.ChangeCodeVerified{SessionHash: "s-bio", At: at(231)},
		events.PasswordResetRequested{TokenHash: "tok1", TokenSealed: "sealed", ToSealed: "mail-1", RequestedAt: at(232), ExpiresAt: at(292)},
		events.PasswordChanged{Method: events.MethodChange, PasswordHash: "$argon2id$3", KeptSessionHash: "s-bio", ToSealed: "mail-1", At: at(233)},
		// The email-change flow: a code, a failure, a block, the change.
		events.EmailChangeCodeIssued{NewEmailSealed: "mail-2", NewMaskedEmail: "n***@m***.fr", CodeHash: "e1", CodeSealed: "sealed",
			RequestsLastHour: 1, IssuedAt: at(240), ExpiresAt: at(255)},
		events.ChangeCodeFailed{Flow: events.FlowEmailChange, Failures: 1, At: at(241)},
		events.ChangeCodeFailed{Flow: events.FlowEmailChange, Failures: 3, BlockedUntil: at(257), At: at(242)},
		events.ChangeRequestsExceeded{Flow: events.FlowEmailChange, BlockedUntil: at(303), At: at(243)},
		events.EmailChangeCodeIssued{NewEmailSealed: "mail-2", NewMaskedEmail: "n***@m***.fr", CodeHash: "e2", CodeSealed: "sealed",
			RequestsLastHour: 1, IssuedAt: at(310), ExpiresAt: at(325)},
		events.EmailChanged{EmailSealed: "mail-2", MaskedEmail: "n***@m***.fr", OldToSealed: "mail-1", KeptSessionHash: "s-bio", At: at(311)},
		// A reset after a password block, then the account's close and
		// reopening.
		events.PasswordFailed{Failures: 3, BlockedUntil: at(335), At: at(320)},
		events.PasswordResetRequested{TokenHash: "tok2", TokenSealed: "sealed", ToSealed: "mail-2", RequestedAt: at(321), ExpiresAt: at(381)},
		events.PasswordChanged{Method: events.MethodReset, PasswordHash: "$argon2id$4", ToSealed: "mail-2", At: at(322)},
		login("L8", 330, "app", "dev-x"),
		events.BiometricOfferAnswered{Response: events.OfferNever, At: at(331)},
		events.OIDCAuthorized{ClientID: "fc", Scopes: []string{"openid"}, ACR: events.ACREidas1, AMR: AMR(events.MethodOTP), AuthTime: at(330), At: at(332)},
		events.OIDCTokenIssued{ClientID: "fc", Scopes: []string{"openid"}, ACR: events.ACREidas1, At: at(333)},
		events.AccountDeactivated{Reason: "holder", At: at(340)},
		events.AccountReactivated{EmailSealed: "mail-3", MaskedEmail: "r***@o***.fr", EmailValidated: true,
			PasswordHash: "$argon2id$5", Affiliation: AffiliationActive, At: at(350)},
	)
	return h
}

// The history has every event type: a new type fails here until it is
// added, and adding it moves the fingerprint.
func TestTheStateVersionHistoryHasEveryEventType(t *testing.T) {
	var seen []string
	for _, e := range richHistory() {
		if !slices.Contains(seen, e.EventType()) {
			seen = append(seen, e.EventType())
		}
	}
	slices.Sort(seen)
	if want := events.Types(); !slices.Equal(seen, want) {
		t.Fatalf("richHistory's event types:\n got  %v\n want %v", seen, want)
	}
}
