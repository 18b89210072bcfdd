package schemacheck_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/schemas"
)

// t0 has nanoseconds and a zone offset on purpose: the data's times are
// written as the clock gives them, and must still be RFC 3339.
var t0 = time.Date(2023, 1, 5, 14, 30, 0, 123456789, domain.Paris)

const (
	nir   = "2690549588157"
	email = "valerie@yahoo.fr"
)

// fixture builds values the way the service does, with its real keys,
// hashes and sealing, so the examples look like what reaches the stream.
type fixture struct {
	keys      *secrets.Keys
	accountID string
	loginID   string
	phc       string
	rehashed  string
	publicKey string // a device's ECDSA P-256 key, base64 DER SubjectPublicKeyInfo
	challenge string // a biometric challenge as the service issues it
}

const deviceID = "phone-A1_ios.17"

func newFixture(t *testing.T) fixture {
	t.Helper()
	keys, err := secrets.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	cheap := domain.Argon2Params{Memory: 256, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	stronger := cheap
	stronger.Memory *= 2
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	return fixture{keys: keys, accountID: events.NewID(t0), loginID: events.NewID(t0.Add(time.Second)),
		phc: secrets.HashPassword("Motdepasse-2023", cheap), rehashed: secrets.HashPassword("Motdepasse-2023", stronger),
		publicKey: base64.StdEncoding.EncodeToString(der), challenge: base64.StdEncoding.EncodeToString(raw)}
}

// examples returns one value of every event type, every field set.
func (f fixture) examples() map[string]events.Event {
	sealed := f.keys.Seal(email, f.accountID)
	session := f.keys.TokenHash("session", f.accountID+"."+secrets.NewToken())
	out := map[string]events.Event{}
	for _, e := range []events.Event{
		events.AccountRegistered{NIRHash: f.keys.NIRIndexKey(nir), EmailSealed: sealed, MaskedEmail: domain.MaskEmail(email),
			EmailValidated: true, PasswordHash: f.phc, Affiliation: domain.AffiliationActive,
			IdentitySealed: f.keys.Seal(`{"given_name":"Marie"}`, f.accountID), At: t0},
		events.AccountReactivated{EmailSealed: f.keys.Seal("nouvelle@mail.fr", f.accountID), MaskedEmail: domain.MaskEmail("nouvelle@mail.fr"),
			EmailValidated: true, PasswordHash: f.phc, Affiliation: domain.AffiliationPending,
			IdentitySealed: f.keys.Seal(`{"given_name":"Marie"}`, f.accountID), At: t0},
		events.AccountDeactivated{Reason: "demande de l'assuré", At: t0},
		events.AffiliationSet{Affiliation: domain.AffiliationNone, At: t0},
		events.AccountUnlocked{PreviousReason: domain.ReasonPasswordFailures, At: t0},
		events.PasswordFailed{Failures: 3, BlockedUntil: t0.Add(15 * time.Minute), NoticeTo: sealed, At: t0},
		events.PasswordVerified{LoginID: f.loginID, NewPasswordHash: f.rehashed, At: t0},
		events.LoginRefused{Reason: domain.CodeAffiliationPending, At: t0},
		events.OTPIssued{LoginID: f.loginID, CodeHash: f.keys.CodeHash(f.accountID, "login:"+f.loginID, "123456"),
			CodeSealed: f.keys.Seal("123456", f.accountID), ToSealed: sealed, RequestsLastHour: 2,
			IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)},
		events.OTPQuotaExceeded{LoginID: f.loginID, BlockedUntil: t0.Add(time.Hour), NoticeTo: sealed, At: t0},
		events.OTPFailed{LoginID: f.loginID, Failures: 3, BlockedUntil: t0.Add(15 * time.Minute), NoticeTo: sealed, At: t0},
		events.LoginSucceeded{LoginID: f.loginID, Method: events.MethodOTP, Channel: "app", SessionHash: session,
			SessionExpiresAt: t0.Add(30 * time.Minute), DeviceHash: f.keys.TokenHash("device:"+f.accountID, secrets.NewToken()),
			DeviceExpiresAt: t0.AddDate(0, 6, 0), BiometricDevice: deviceID, NewPasswordHash: f.rehashed, NoticeTo: sealed, At: t0},
		events.SessionEnded{SessionHash: session, Reason: "logout", At: t0},
		events.PasswordChangeCodeIssued{CodeHash: f.keys.CodeHash(f.accountID, "password_change", "1234"),
			CodeSealed: f.keys.Seal("1234", f.accountID), ToSealed: sealed, RequestsLastHour: 1,
			IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)},
		events.ChangeCodeVerified{SessionHash: strings.Repeat("ab", 32), At: t0},
		events.PasswordChanged{Method: events.MethodChange, PasswordHash: f.rehashed, KeptSessionHash: session, ToSealed: sealed, At: t0},
		events.PasswordResetRequested{TokenHash: f.keys.TokenHash("reset:"+f.accountID, secrets.NewToken()),
			TokenSealed: f.keys.Seal(secrets.NewToken(), f.accountID), ToSealed: sealed,
			RequestedAt: t0, ExpiresAt: t0.Add(time.Hour)},
		events.EmailChangeCodeIssued{NewEmailSealed: f.keys.Seal("nouvelle@mail.fr", f.accountID), NewMaskedEmail: domain.MaskEmail("nouvelle@mail.fr"),
			CodeHash: f.keys.CodeHash(f.accountID, "email_change", "1234"), CodeSealed: f.keys.Seal("1234", f.accountID),
			RequestsLastHour: 3, IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)},
		events.EmailChanged{EmailSealed: f.keys.Seal("nouvelle@mail.fr", f.accountID), MaskedEmail: domain.MaskEmail("nouvelle@mail.fr"),
			OldToSealed: sealed, KeptSessionHash: session, At: t0},
		events.ChangeRequestsExceeded{Flow: events.FlowPasswordChange, BlockedUntil: t0.Add(time.Hour), At: t0},
		events.ChangeCodeFailed{Flow: events.FlowEmailChange, Failures: 3, BlockedUntil: t0.Add(15 * time.Minute), At: t0},
		events.BiometricOfferAnswered{Response: events.OfferNever, At: t0},
		events.BiometricEnrolled{DeviceID: deviceID, PublicKey: f.publicKey, ExpiresAt: t0.AddDate(0, 6, 0), At: t0},
		events.BiometricChallengeIssued{DeviceID: deviceID, ChallengeHash: f.keys.TokenHash("challenge:"+f.accountID, f.challenge),
			ExpiresAt: t0.Add(2 * time.Minute), At: t0},
		events.BiometricLoginFailed{DeviceID: deviceID, Reason: domain.BiometricBadSignature, At: t0},
		events.BiometricRevoked{DeviceID: deviceID, Reason: "adviser", At: t0},
		events.OIDCAuthorized{ClientID: "fc-demo", Scopes: []string{"openid", "profile"}, ACR: events.ACREidas1,
			AMR: []string{events.AMRPwd, events.AMROTP}, AuthTime: t0.Add(-time.Minute), At: t0},
		events.OIDCTokenIssued{ClientID: "fc-demo", Scopes: []string{"openid", "email"}, ACR: events.ACREidas1, At: t0},
	} {
		out[e.EventType()] = e
	}
	return out
}

var metadata = events.Metadata{CausationID: "req-01:login.password", CorrelationID: "flow-42", Channel: "app",
	ClientIP: "2001:db8::7", UserAgent: "ameli/8.3 (iPhone; iOS 17.2)"}

func marshal(t *testing.T, env events.Envelope) []byte {
	t.Helper()
	b, err := events.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonFields returns the JSON names of a struct's fields, and whether each
// is optional (omitempty or omitzero): the others are always written.
func jsonFields(t *testing.T, v any) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		name, opts, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "-" || name == "" {
			t.Fatalf("%s.%s: no json name", rt.Name(), rt.Field(i).Name)
		}
		out[name] = strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
	}
	return out
}

// schemaDoc reads a schema file as JSON.
func schemaDoc(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := fs.ReadFile(schemas.FS, path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeObject(t, b)
}

func sortedStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	sort.Strings(out)
	return out
}

func wantValid(t *testing.T, what string, err error, raw []byte) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: want valid, got %v\n%s", what, err, raw)
	}
}

func wantInvalid(t *testing.T, what string, err error, raw []byte) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: want a violation, got none\n%s", what, raw)
		return
	}
	var se *schemacheck.Error
	if !errors.As(err, &se) || len(se.Violations) == 0 || !strings.HasPrefix(se.Schema, schemacheck.BaseURL) {
		t.Errorf("%s: want a *schemacheck.Error naming the schema, got %T %v", what, err, err)
	}
}

// (a) every registered type has a schema, and every schema a type.
func TestEveryEventTypeHasASchema(t *testing.T) {
	if got, want := schemacheck.EventTypes(), events.Types(); !slices.Equal(got, want) {
		t.Fatalf("schemas for %v\nregistered types %v", got, want)
	}
	env := schemaDoc(t, "events/envelope.json")
	typeEnum := sortedStrings(env["properties"].(map[string]any)["type"].(map[string]any)["enum"])
	if !slices.Equal(typeEnum, events.Types()) {
		t.Fatalf("envelope's type enum %v\nregistered types %v", typeEnum, events.Types())
	}
}

// Each data schema names exactly the Go struct's fields, and requires
// exactly those always written (no omitempty, no omitzero).
func TestEventSchemasMatchTheGoStructs(t *testing.T) {
	for _, typ := range events.Types() {
		zero, err := events.New(typ)
		if err != nil {
			t.Fatal(err)
		}
		fields := jsonFields(t, reflect.ValueOf(zero).Elem().Interface())
		doc := schemaDoc(t, "events/"+typ+".json")
		var props, required, wantRequired []string
		for p := range doc["properties"].(map[string]any) {
			props = append(props, p)
		}
		sort.Strings(props)
		if r, ok := doc["required"]; ok {
			required = sortedStrings(r)
		}
		var names []string
		for name, optional := range fields {
			names = append(names, name)
			if !optional {
				wantRequired = append(wantRequired, name)
			}
		}
		sort.Strings(names)
		sort.Strings(wantRequired)
		if !slices.Equal(props, names) {
			t.Errorf("%s: schema properties %v, Go fields %v", typ, props, names)
		}
		if !slices.Equal(required, wantRequired) {
			t.Errorf("%s: schema requires %v, Go always writes %v", typ, required, wantRequired)
		}
		if doc["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties must be false", typ)
		}
	}
}

// (b) a realistic event of every type validates; broken copies do not.
func TestEventsValidateAndBrokenCopiesFail(t *testing.T) {
	f := newFixture(t)
	examples := f.examples()
	types := events.Types()
	for i, typ := range types {
		e, ok := examples[typ]
		if !ok {
			t.Errorf("%s: no example in this test", typ)
			continue
		}
		t.Run(typ, func(t *testing.T) {
			// The example sets every field, so every field's schema is used.
			v := reflect.ValueOf(e)
			for j := 0; j < v.NumField(); j++ {
				if v.Field(j).IsZero() {
					t.Fatalf("example leaves %s unset", v.Type().Field(j).Name)
				}
			}
			raw := marshal(t, events.Wrap(f.accountID, e, t0, metadata))
			wantValid(t, "full example", schemacheck.ValidateEvent(raw), raw)

			// The same fact with no optional field and no request metadata.
			minV := reflect.New(v.Type()).Elem()
			minV.Set(v)
			fields := jsonFields(t, e)
			for j := 0; j < minV.NumField(); j++ {
				name, _, _ := strings.Cut(minV.Type().Field(j).Tag.Get("json"), ",")
				if fields[name] {
					minV.Field(j).SetZero()
				}
			}
			minimal := minV.Interface().(events.Event)
			if s, ok := minimal.(events.LoginSucceeded); ok {
				s.Method = events.MethodTrustedDevice // no login_id: a remembered device
				minimal = s
			}
			env := events.Wrap(f.accountID, minimal, t0, events.Metadata{})
			env.CorrelationID = ""
			rawMin := marshal(t, env)
			wantValid(t, "minimal example", schemacheck.ValidateEvent(rawMin), rawMin)

			// Broken data: an unknown field, each field of the wrong JSON
			// type, each always-written field missing.
			breakData := func(what string, change func(data map[string]any)) {
				t.Helper()
				m := decodeObject(t, raw)
				change(m["data"].(map[string]any))
				b := encode(t, m)
				wantInvalid(t, what, schemacheck.ValidateEvent(b), b)
			}
			breakData("unknown data field", func(d map[string]any) { d["is_admin"] = true })
			for name, optional := range fields {
				breakData("wrong type of "+name, func(d map[string]any) {
					switch d[name].(type) {
					case string:
						d[name] = 42
					case bool:
						d[name] = "true"
					default:
						d[name] = "42"
					}
				})
				if !optional {
					breakData("missing "+name, func(d map[string]any) { delete(d, name) })
				}
			}
			// Another type's data under this type.
			other := examples[types[(i+1)%len(types)]]
			if other == nil {
				t.Fatalf("no example of %s", types[(i+1)%len(types)])
			}
			breakData("data of "+other.EventType(), func(d map[string]any) {
				clear(d)
				for k, v := range decodeObject(t, encode(t, other)) {
					d[k] = v
				}
			})

			// Broken envelopes.
			breakEnv := func(what string, change func(env map[string]any)) {
				t.Helper()
				m := decodeObject(t, raw)
				change(m)
				b := encode(t, m)
				wantInvalid(t, what, schemacheck.ValidateEvent(b), b)
			}
			for _, name := range []string{"id", "type", "version", "account_id", "occurred_at", "data"} {
				breakEnv("missing "+name, func(m map[string]any) { delete(m, name) })
			}
			breakEnv("unknown envelope field", func(m map[string]any) { m["trace"] = "x" })
			breakEnv("occurred_at not RFC 3339", func(m map[string]any) { m["occurred_at"] = "2023-01-05 14:30:00" })
			breakEnv("unknown type", func(m map[string]any) { m["type"] = "login.teleported" })
			breakEnv("unknown version", func(m map[string]any) { m["version"] = 2 })
			breakEnv("bad channel", func(m map[string]any) { m["channel"] = "fax" })
			breakEnv("bad client_ip", func(m map[string]any) { m["client_ip"] = "999.1.1.1" })
			breakEnv("account_id not a ULID", func(m map[string]any) { m["account_id"] = "../../etc" })
		})
	}
}

// (c) every command the contract names (the commands service serves
// exactly those: its own test checks) has a request schema, and every
// request schema a command, plus the dev clock's.
func TestEveryCommandSubjectHasASchema(t *testing.T) {
	want := append(contract.Commands(), contract.CmdDevClockAdvance)
	sort.Strings(want)
	if got := schemacheck.Commands(); !slices.Equal(got, want) {
		t.Fatalf("command schemas %v\nsubjects served %v", got, want)
	}
	if err := schemacheck.ValidateCommand("login.teleport", []byte(`{}`)); !errors.Is(err, schemacheck.ErrNoSchema) {
		t.Fatalf("unknown subject: %v", err)
	}
}

func TestCommandExamples(t *testing.T) {
	const acc = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	common := `"request_id":"r-1:a.b_c","channel":"kiosk","client_ip":"203.0.113.7","user_agent":"Mozilla/5.0"`
	f := newFixture(t)
	session := `"session":"` + acc + `.token"`
	const bcryptHash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	for _, c := range []struct {
		subject, body string
		valid         bool
	}{
		{"login.password", `{"nir":"2 69 05 49 588 157 80","password":"Motdepasse-2023",` + common + `}`, true},
		{"login.password", `{"nir":"1 85 05 2A 123 456","password":"x","device_token":"abc"}`, true},
		{"login.password", `{"nir":"2690549588157","password":"x","client_ip":"fe80::1%eth0"}`, true},
		{"login.password", `{"password":"x"}`, false},
		{"login.password", `{"nir":2690549588157,"password":"x"}`, false},
		{"login.password", `{"nir":"2690549588157","password":"x","admin":true}`, false},
		{"login.password", `{"nir":"269054958815","password":"x"}`, false},
		{"login.password", `{"nir":"2690549ABC157","password":"x"}`, false},
		{"login.password", `{"nir":"2690549588157","password":"x","channel":"fax"}`, false},
		{"login.password", `{"nir":"2690549588157","password":"x","request_id":"a b"}`, false},
		{"login.password", `{"nir":"2690549588157","password":"   "}`, false},
		{"login.otp.send", `{"login_id":"v1.abc",` + common + `}`, true},
		{"login.otp.send", `{}`, false},
		{"login.otp.verify", `{"login_id":"v1.abc","code":"123 456","remember_device":true}`, true},
		{"login.otp.verify", `{"login_id":"v1.abc","code":"12a456"}`, false},
		{"login.otp.verify", `{"login_id":"v1.abc","code":"123456","remember_device":"yes"}`, false},
		{"login.password", `{"nir":"2690549588157","password":"x","channel":"app","device_id":"` + deviceID + `"}`, true},
		{"login.password", `{"nir":"2690549588157","password":"x","device_id":"phone/1"}`, false},
		{"login.otp.verify", `{"login_id":"v1.abc","code":"123456","channel":"app","device_id":"` + deviceID + `"}`, true},
		{"login.otp.verify", `{"login_id":"v1.abc","code":"123456","device_id":""}`, false},
		{"biometric.offer", `{` + session + `,"response":"later","channel":"app"}`, true},
		{"biometric.offer", `{` + session + `,"response":"never"}`, true},
		{"biometric.offer", `{` + session + `,"response":"activer"}`, false},
		{"biometric.offer", `{"response":"refuse"}`, false},
		{"biometric.offer", `{` + session + `}`, false},
		{"biometric.enroll", `{` + session + `,"device_id":"` + deviceID + `","public_key":"` + f.publicKey + `",` + common + `}`, true},
		{"biometric.enroll", `{` + session + `,"device_id":"` + deviceID + `","public_key":"not base64!"}`, false},
		{"biometric.enroll", `{` + session + `,"device_id":"` + strings.Repeat("a", 129) + `","public_key":"` + f.publicKey + `"}`, false},
		{"biometric.enroll", `{` + session + `,"public_key":"` + f.publicKey + `"}`, false},
		{"biometric.enroll", `{"device_id":"` + deviceID + `","public_key":"` + f.publicKey + `"}`, false},
		{"biometric.challenge", `{"device_id":"` + deviceID + `","channel":"app"}`, true},
		{"biometric.challenge", `{}`, false},
		{"biometric.challenge", `{"device_id":"phone A1"}`, false},
		{"biometric.login", `{"device_id":"` + deviceID + `","challenge":"` + f.challenge + `","signature":"MEUCIQDx/+Yw9A=="}`, true},
		{"biometric.login", `{"device_id":"` + deviceID + `","challenge":"` + f.challenge + `"}`, false},
		{"biometric.login", `{"device_id":"` + deviceID + `","challenge":"abc","signature":"MEUCIQDx/+Yw9A=="}`, false},
		{"biometric.login", `{"device_id":"` + deviceID + `","challenge":"` + f.challenge + `","signature":"MEUC-IQDx_Yw9A=="}`, false},
		{"account.revoke_biometrics", `{"account_id":"` + acc + `","channel":"backoffice"}`, true},
		{"account.revoke_biometrics", `{"nir":"2690549588157","device_id":"` + deviceID + `"}`, true},
		{"account.revoke_biometrics", `{"nir":"2690549588157","account_id":"` + acc + `"}`, false},
		{"account.revoke_biometrics", `{"device_id":"` + deviceID + `"}`, false},
		{"account.revoke_biometrics", `{"account_id":"` + acc + `","device_id":"a b"}`, false},
		{"account.import", `{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"` + bcryptHash + `","email_validated":true,"affiliation":"active"}`, true},
		{"account.import", `{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"` + f.phc + `","email_validated":true,"affiliation":"active"}`, true},
		{"account.import", `{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"md5:abc","email_validated":true,"affiliation":"active"}`, false},
		{"account.import", `{"nir":"2690549588157","email":"valerie@yahoo.fr","password":"Motdepasse-2023","email_validated":true,"affiliation":"active"}`, false},
		{"account.import_batch", `{"rows":[{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"` + bcryptHash + `","email_validated":true,"affiliation":"active"},{"nir":"1 84 03 75 123 456","email":"a@b.fr","password_hash":"` + f.phc + `","email_validated":false,"affiliation":"none"}],` + common + `}`, true},
		{"account.import_batch", `{"rows":[]}`, false},
		{"account.import_batch", `{}`, false},
		{"account.import_batch", `{"rows":[{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"md5:abc","email_validated":true,"affiliation":"active"}]}`, false},
		{"account.import_batch", `{"rows":[{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"` + bcryptHash + `","email_validated":true,"affiliation":"active","password":"x"}]}`, false},
		{"account.import_batch", `{"nir":"2690549588157","email":"valerie@yahoo.fr","password_hash":"` + bcryptHash + `","email_validated":true,"affiliation":"active"}`, false},
		{"session.logout", `{"session":"` + acc + `.token"}`, true},
		{"session.logout", `{"session":""}`, false},
		{"account.register", `{"nir":"2690549588157","email":"valerie@yahoo.fr","password":"Motdepasse-2023","email_validated":false,"affiliation":"pending","channel":"backoffice"}`, true},
		{"account.register", `{"nir":"2690549588157","email":"nobody","password":"Motdepasse-1","email_validated":true,"affiliation":"active"}`, false},
		{"account.register", `{"nir":"2690549588157","email":"a@b.fr","password":"Motdepasse-1","affiliation":"active"}`, false},
		{"account.register", `{"nir":"2690549588157","email":"a@b.fr","password":"Motdepasse-1","email_validated":true,"affiliation":"maybe"}`, false},
		{"account.deactivate", `{"account_id":"` + acc + `","reason":"demande de l'assuré"}`, true},
		{"account.deactivate", `{"nir":"2690549588157"}`, true},
		{"account.set_affiliation", `{"account_id":"` + acc + `","affiliation":"none"}`, true},
		{"account.set_affiliation", `{"account_id":"` + acc + `"}`, false},
		{"account.unlock", `{"nir":"2690549588157","channel":"backoffice"}`, true},
		{"account.unlock", `{"nir":"2690549588157","account_id":"` + acc + `"}`, false},
		{"account.unlock", `{"account_id":"../../etc"}`, false},
		{"account.unlock", `{}`, false},
		{"dev.clock.advance", `{"seconds":900}`, true},
		{"dev.clock.advance", `{"seconds":-1}`, false},
		{"dev.clock.advance", `{"seconds":"900"}`, false},
	} {
		err := schemacheck.ValidateCommand(c.subject, []byte(c.body))
		if c.valid {
			wantValid(t, c.subject, err, []byte(c.body))
		} else {
			wantInvalid(t, c.subject, err, []byte(c.body))
		}
	}
}

// (d) replies: every status and every error code the domain knows, built
// as the service builds them, validate; broken ones do not.
func TestReplies(t *testing.T) {
	f := newFixture(t)
	utc := func(t time.Time) *time.Time { u := t.UTC().Truncate(time.Second); return &u }
	no := false
	session := &contract.Session{Token: f.accountID + "." + secrets.NewToken(), ExpiresAt: t0.Add(30 * time.Minute).UTC()}
	okReplies := []contract.AnyReply{
		{OK: true, Status: "otp_required", LoginID: f.keys.Seal(f.accountID+"|"+f.loginID, "login"), MaskedEmail: domain.MaskEmail(email)},
		{OK: true, Status: "otp_sent", MaskedEmail: domain.MaskEmail(email), ExpiresAt: utc(t0.Add(15 * time.Minute)), Message: domain.OTPResentInfo},
		{OK: true, Status: "authenticated", AccountID: f.accountID, Session: session, OfferBiometric: &no,
			DeviceToken: secrets.NewToken(), DeviceTokenExpiresAt: utc(t0.AddDate(0, 6, 0))},
		{OK: true, Status: "authenticated", AccountID: f.accountID, Session: session},
		{OK: true, Status: "logged_out"},
		{OK: true, Status: "registered", AccountID: f.accountID},
		{OK: true, Status: "reactivated", AccountID: f.accountID},
		{OK: true, Status: "deactivated", AccountID: f.accountID, DeactivatedAt: utc(t0)},
		{OK: true, Status: "affiliation_set", AccountID: f.accountID},
		{OK: true, Status: "unlocked", AccountID: f.accountID},
		{OK: true, Status: "clock_advanced", Now: utc(t0)},
		{OK: true, Status: "code_sent", MaskedEmail: domain.MaskEmail(email), ExpiresAt: utc(t0.Add(15 * time.Minute))},
		{OK: true, Status: "code_verified"},
		{OK: true, Status: "password_changed"},
		{OK: true, Status: "email_changed", MaskedEmail: domain.MaskEmail("nouvelle@mail.fr")},
		{OK: true, Status: "reset_requested"},
		{OK: true, Status: "password_reset"},
		{OK: true, Status: "offer_recorded"},
		{OK: true, Status: "biometric_enrolled", ExpiresAt: utc(t0.AddDate(0, 6, 0))},
		{OK: true, Status: "challenge_issued", Challenge: f.challenge, ExpiresAt: utc(t0.Add(2 * time.Minute))},
		{OK: true, Status: "authenticated", AccountID: f.accountID, Session: session, OfferBiometric: &no},
		{OK: true, Status: "biometrics_revoked", AccountID: f.accountID},
		{OK: true, Status: "imported", Results: []contract.ImportResult{
			{OK: true, Status: "registered", AccountID: f.accountID},
			{OK: true, Status: "reactivated", AccountID: f.accountID},
			{Error: &contract.ErrorBody{Code: domain.CodeAccountExists, Message: (&domain.Error{Code: domain.CodeAccountExists}).Message()}},
			{Error: &contract.ErrorBody{Code: domain.CodeInvalidRequest, Message: "m", Field: "password_hash"}}}},
	}
	for _, rep := range okReplies {
		raw := encode(t, rep)
		wantValid(t, rep.Status, schemacheck.ValidateReply(raw), raw)
	}

	until := t0.Add(15 * time.Minute)
	domainErrors := map[string]*domain.Error{
		domain.CodeInvalidRequest:       domain.InvalidRequest("nir", domain.ErrNIRLength.Error()),
		domain.CodeAccountLocked:        {Reason: domain.ReasonOTPFailures, BlockedUntil: until},
		domain.CodeOTPQuotaExceeded:     {Reason: domain.ReasonOTPQuota, BlockedUntil: until},
		domain.CodeOTPInvalid:           {AttemptsLeft: 2},
		domain.CodeOTPExpired:           {Minutes: 15},
		domain.CodeAccountDeactivated:   {DeactivatedAt: t0},
		domain.CodeCodeRequestsExceeded: {BlockedUntil: until},
		domain.CodeCodeAttemptsExceeded: {BlockedUntil: until},
		domain.CodeEmailRecentlyChanged: {Until: t0.Add(48 * time.Hour)},
		domain.CodeCodeInvalid:          {AttemptsLeft: 1},
		domain.CodeCodeExpired:          {Minutes: 15},
		domain.CodeWeakPassword:         {Detail: "il doit contenir au moins 8 caractères"},
		domain.CodeBiometricFailed:      {Reason: domain.BiometricBadSignature},
	}
	codes := domainCodes(t)
	enum := sortedStrings(schemaDoc(t, "replies/reply.json")["$defs"].(map[string]any)["error"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)["enum"])
	if !slices.Equal(enum, codes) {
		t.Errorf("reply schema's codes %v\ndomain's codes %v", enum, codes)
	}
	for _, code := range codes {
		de := domainErrors[code]
		if de == nil {
			de = &domain.Error{}
		}
		de.Code = code
		opt := func(t time.Time) *time.Time {
			if t.IsZero() {
				return nil
			}
			return utc(t)
		}
		rep := contract.AnyReply{OK: false, Error: &contract.ErrorBody{Code: de.Code, Message: de.Message(), Field: de.Field,
			Reason: de.Reason, BlockedUntil: opt(de.BlockedUntil), AttemptsLeft: de.AttemptsLeft,
			DeactivatedAt: opt(de.DeactivatedAt), Until: opt(de.Until)}}
		raw := encode(t, rep)
		wantValid(t, code, schemacheck.ValidateReply(raw), raw)
	}
	// Refusals as the handlers also send them: a code_invalid with no
	// attempts left to tell (no verified code to complete), each reason of
	// biometric_failed, the change flow of a code_* refusal.
	for _, de := range []*domain.Error{
		{Code: domain.CodeCodeInvalid},
		{Code: domain.CodeCodeInvalid, Reason: events.FlowPasswordChange, AttemptsLeft: 2},
		{Code: domain.CodeCodeExpired, Reason: events.FlowEmailChange, Minutes: 15},
		{Code: domain.CodeCodeRequestsExceeded, Reason: events.FlowPasswordChange, BlockedUntil: until},
		{Code: domain.CodeCodeAttemptsExceeded, Reason: events.FlowEmailChange, BlockedUntil: until},
		{Code: domain.CodeBiometricFailed, Reason: domain.BiometricUnknownDevice},
		{Code: domain.CodeBiometricFailed, Reason: domain.BiometricBadChallenge},
		{Code: domain.CodeBiometricFailed, Reason: domain.BiometricBadSignature},
		{Code: domain.CodeBiometricFailed, Reason: domain.BiometricRateLimited},
		{Code: domain.CodeBiometricExpired},
	} {
		rep := contract.AnyReply{OK: false, Error: &contract.ErrorBody{Code: de.Code, Message: de.Message(), Reason: de.Reason,
			AttemptsLeft: de.AttemptsLeft}}
		if !de.BlockedUntil.IsZero() {
			rep.Error.BlockedUntil = utc(de.BlockedUntil)
		}
		raw := encode(t, rep)
		wantValid(t, de.Code+" "+de.Reason, schemacheck.ValidateReply(raw), raw)
	}

	for what, raw := range map[string]string{
		"unknown field":                `{"ok":true,"status":"logged_out","debug":"x"}`,
		"unknown error field":          `{"ok":false,"error":{"code":"unavailable","message":"m","stack":"x"}}`,
		"ok with an error":             `{"ok":true,"status":"logged_out","error":{"code":"unavailable","message":"m"}}`,
		"refusal without error":        `{"ok":false}`,
		"refusal with a status":        `{"ok":false,"status":"x","error":{"code":"unavailable","message":"m"}}`,
		"no ok":                        `{"status":"logged_out"}`,
		"unknown status":               `{"ok":true,"status":"teleported"}`,
		"unknown code":                 `{"ok":false,"error":{"code":"oops","message":"m"}}`,
		"lock without its end":         `{"ok":false,"error":{"code":"account_locked","message":"m","reason":"password_failures"}}`,
		"lock with a bad date":         `{"ok":false,"error":{"code":"account_locked","message":"m","reason":"password_failures","blocked_until":"05/01/2023"}}`,
		"invalid without its field":    `{"ok":false,"error":{"code":"invalid_request","message":"m"}}`,
		"session without token":        `{"ok":true,"status":"authenticated","account_id":"` + f.accountID + `","session":{"expires_at":"2023-01-05T14:00:00Z"}}`,
		"otp_required without id":      `{"ok":true,"status":"otp_required","masked_email":"v***@y***.fr"}`,
		"device token alone":           `{"ok":true,"status":"authenticated","account_id":"` + f.accountID + `","session":{"token":"` + session.Token + `","expires_at":"2023-01-05T14:00:00Z"},"device_token":"abc"}`,
		"challenge without it":         `{"ok":true,"status":"challenge_issued","expires_at":"2023-01-05T14:00:00Z"}`,
		"challenge without its end":    `{"ok":true,"status":"challenge_issued","challenge":"` + f.challenge + `"}`,
		"challenge not base64":         `{"ok":true,"status":"challenge_issued","challenge":"a challenge","expires_at":"2023-01-05T14:00:00Z"}`,
		"challenge elsewhere":          `{"ok":true,"status":"offer_recorded","challenge":"` + f.challenge + `"}`,
		"enrolment without its end":    `{"ok":true,"status":"biometric_enrolled"}`,
		"revocation without account":   `{"ok":true,"status":"biometrics_revoked"}`,
		"biometric without reason":     `{"ok":false,"error":{"code":"biometric_failed","message":"m"}}`,
		"biometric with a lock reason": `{"ok":false,"error":{"code":"biometric_failed","message":"m","reason":"password_failures"}}`,
		"unknown reason":               `{"ok":false,"error":{"code":"biometric_failed","message":"m","reason":"bad_luck"}}`,
		"not JSON":                     `{"ok":true,`,
		"two objects":                  `{"ok":true,"status":"logged_out"} {}`,
		"imported without results":     `{"ok":true,"status":"imported"}`,
		"results elsewhere":            `{"ok":true,"status":"registered","account_id":"` + f.accountID + `","results":[{"ok":true,"status":"registered","account_id":"` + f.accountID + `"}]}`,
		"a result without its account": `{"ok":true,"status":"imported","results":[{"ok":true,"status":"registered"}]}`,
		"results in a result":          `{"ok":true,"status":"imported","results":[{"ok":true,"status":"imported","results":[{"ok":true,"status":"registered","account_id":"` + f.accountID + `"}]}]}`,
	} {
		wantInvalidReply := schemacheck.ValidateReply([]byte(raw))
		if wantInvalidReply == nil {
			t.Errorf("%s: want a violation, got none\n%s", what, raw)
		}
	}
}

// domainCodes reads the error codes of the wire contract from the
// domain's source, so a new code cannot miss the reply schema.
func domainCodes(t *testing.T) []string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "../domain/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, decl := range file.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					codes = append(codes, s)
				}
			}
		}
	}
	sort.Strings(codes)
	if len(codes) == 0 {
		t.Fatal("no codes found in internal/domain/errors.go")
	}
	return codes
}

// Errors name the schema and the place in the instance that failed.
func TestErrorsNameSchemaAndLocation(t *testing.T) {
	f := newFixture(t)
	m := decodeObject(t, marshal(t, events.Wrap(f.accountID, f.examples()[events.TypePasswordFailed], t0, metadata)))
	m["data"].(map[string]any)["failures"] = "3"
	err := schemacheck.ValidateEvent(encode(t, m))
	if err == nil {
		t.Fatal("want a violation")
	}
	msg := err.Error()
	for _, want := range []string{
		schemacheck.BaseURL + "events/envelope.json",
		"/data/failures",
		schemacheck.BaseURL + "events/login.password_failed.json#/properties/failures/type",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not say %q:\n%s", want, msg)
		}
	}
}
