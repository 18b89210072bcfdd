package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// Fuzz targets of what the commands service reads from outside: request
// bodies (decode and the field readers), and the snapshots and shadow
// states read back from the store (docs/fuzzing.md).

// requestTypes are the request types of the commands (each handler's
// `var req ...; decode(data, &req)`), by name.
var requestTypes = []func() request{
	func() request { return &loginPasswordRequest{} },
	func() request { return &otpSendRequest{} },
	func() request { return &otpVerifyRequest{} },
	func() request { return &sessionRequest{} },
	func() request { return &registerRequest{} },
	func() request { return &importRequest{} },
	func() request { return &accountRef{} },
	func() request { return &deactivateRequest{} },
	func() request { return &affiliationRequest{} },
	func() request { return &revokeRequest{} },
	func() request { return &changeStartRequest{} },
	func() request { return &codeRequest{} },
	func() request { return &newPasswordRequest{} },
	func() request { return &resetRequest{} },
	func() request { return &resetCompleteRequest{} },
	func() request { return &emailChangeRequest{} },
	func() request { return &offerRequest{} },
	func() request { return &enrollRequest{} },
	func() request { return &challengeRequest{} },
	func() request { return &biometricLoginRequest{} },
}

// wantInvalidRequest fails unless err is an invalid_request naming a field.
func wantInvalidRequest(t *testing.T, what string, err error) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Code != domain.CodeInvalidRequest || de.Field == "" {
		t.Fatalf("%s: refusal %#v is not an invalid_request naming a field", what, err)
	}
}

// FuzzDecode: decode, for every request type, never panics; a refusal is
// an invalid_request naming a field; what it accepts is at most 64 KiB of
// UTF-8, and its request written back as JSON decodes to the same request.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"nir":"1 84 03 75 123 456","password":"motdepasse","channel":"web","request_id":"web-0123456789abcdef0123456789abcdef","client_ip":"203.0.113.7","user_agent":"Mozilla/5.0"}`,
		`{"login_id":"abc","code":"123 456","remember_device":true}`,
		`{"nir":"184037512345612","email":"v@yahoo.fr","password":"p","email_validated":true,"affiliation":"active","channel":"backoffice"}`,
		`{"nir":"1840375123456","email":"v@yahoo.fr","password_hash":"$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy","email_validated":null,"affiliation":"active"}`,
		`{"account_id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","reason":"décès","channel":"backoffice"}`,
		`{"session":"s","new_email":"a@b.fr"}`, `{"session":"s","device_id":"d","public_key":"k"}`,
		`{"nir":1}`, `{"password":null}`, `{"remember_device":"yes"}`, `{"unknown":1}`, `{"Nir":"x"}`, `{"NIR":"x"}`,
		`{"channel":"fax"}`, `{"client_ip":"999.1.1.1"}`, `{"client_ip":"fe80::1%eth0"}`, `{"request_id":"a b"}`,
		`{"nir":"x","nir":"y"}`, `{} {}`, `{}  `, `{}x`, `[]`, `"x"`, `null`, `1`, ``, ` `, `{`, `{"nir":"\ud800"}`,
		"{\"nir\":\"\xff\"}", `{"email_validated":1}`, `{"user_agent":"` + strings.Repeat("a", 513) + `"}`,
		`{"request_id":"` + strings.Repeat("a", 129) + `"}`, `{"nir":` + strings.Repeat("[", 1000) + `}`,
	} {
		f.Add(uint8(len(s)), []byte(s)) // each seed on one request type, to keep the seeds fast
	}
	for i := range requestTypes {
		f.Add(uint8(i), []byte(`{"channel":"app","request_id":"r-1"}`))
	}
	f.Add(uint8(0), []byte(`{"password":"`+strings.Repeat("x", MaxRequestBytes)+`"}`))
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		req := requestTypes[int(kind)%len(requestTypes)]()
		err := decode(data, req)
		if err != nil {
			wantInvalidRequest(t, "decode", err)
			return
		}
		if len(data) > MaxRequestBytes || !utf8.Valid(data) {
			t.Fatalf("decode accepted %d bytes (UTF-8: %v)", len(data), utf8.Valid(data))
		}
		if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
			t.Fatalf("decode accepted %q, not a JSON object", data)
		}
		out, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(req).Elem()).Interface().(request)
		if err := decode(out, back); err != nil && len(out) <= MaxRequestBytes {
			t.Fatalf("%T %s read from %q does not decode again: %v", req, out, data, err)
		} else if err == nil && !reflect.DeepEqual(req, back) {
			t.Fatalf("round trip of %q: %+v, then %+v", data, req, back)
		}
	})
}

// FuzzFields: the field readers never panic; each refusal is an
// invalid_request naming the field; what they accept is canonical (a
// 13-character NIR, a normalized address, a code of exactly its digits)
// and reads again to itself.
func FuzzFields(f *testing.F) {
	for _, s := range []string{
		"1 84 03 75 123 456 12", "1840375123456", "2 84 03 2A 123 456", "v.dupont@yahoo.fr", " V@Yahoo.FR ", "123 456",
		"123456", "12345", "1234567", "١٢٣٤٥٦", "12 34 56 78", "", " ", "\u00a0", "\t", "a@b", strings.Repeat("1", 300),
		"1840375123456\x00", "\xff\xfe", "0000000000000",
	} {
		f.Add(s, uint8(6))
	}
	f.Fuzz(func(t *testing.T, v string, digits uint8) {
		n := int(digits%10) + 1
		if code, err := codeField(v, n); err != nil {
			wantInvalidRequest(t, "codeField", err)
		} else if len(code) != n || strings.Trim(code, "0123456789") != "" {
			t.Fatalf("codeField(%q, %d) = %q", v, n, code)
		} else if again, err := codeField(code, n); err != nil || again != code {
			t.Fatalf("codeField(%q) = %q, then %q, %v", v, code, again, err)
		}
		if nir, err := nirField("nir", v); err != nil {
			wantInvalidRequest(t, "nirField", err)
		} else if len(nir) != 13 {
			t.Fatalf("nirField(%q) = %q", v, nir)
		} else if again, err := nirField("nir", nir); err != nil || again != nir {
			t.Fatalf("nirField(%q) = %q, then %q, %v", v, nir, again, err)
		}
		if email, err := emailField("email", v); err != nil {
			wantInvalidRequest(t, "emailField", err)
		} else if len(email) > 254 || strings.Count(email, "@") != 1 {
			t.Fatalf("emailField(%q) = %q", v, email)
		} else if again, err := emailField("email", email); err != nil || again != email {
			t.Fatalf("emailField(%q) = %q, then %q, %v", v, email, again, err)
		}
		if err := required("password", v, 128); err != nil {
			wantInvalidRequest(t, "required", err)
		} else if strings.TrimSpace(v) == "" || len(v) > 128 {
			t.Fatalf("required accepted %q", v)
		}
	})
}

// FuzzSnapshot: an account's snapshot as read back from the store (whoever
// can write the bucket wrote it) never panics the service; oversized,
// unreadable, other-version, other-account snapshots are refused (the
// account is replayed instead); an accepted one writes back to a fixpoint.
func FuzzSnapshot(f *testing.F) {
	const id = "01GNNA1J5X1V2RZ3E9W5YQ8K6T"
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	good, _ := json.Marshal(snapshot{Version: snapshotVersion, State: domain.Account{ID: id, Status: domain.StatusActive,
		EmailValidated: true, Affiliation: domain.AffiliationActive, PasswordFailures: 2, PasswordFailedAt: at,
		OTPRequests: []time.Time{at}, ResetRequests: []time.Time{at, at}}, Recent: []recorded{{}}})
	for _, b := range [][]byte{
		good, []byte(`{"v":1,"state":{"id":"` + id + `"}}`), []byte(`{"v":0,"state":{"id":"` + id + `"}}`),
		[]byte(`{"v":999,"state":{"id":"` + id + `"}}`), []byte(`{"v":1,"state":{"id":"other"}}`),
		[]byte(`{"v":1,"state":{"id":"` + id + `","password_failures":-1,"blocked_until":"0001-01-01T00:00:00Z"}}`),
		[]byte(`{"v":1,"state":{"id":"` + id + `"},"recent":[` + strings.Repeat(`{},`, keepRecentRequests) + `{}]}`),
		[]byte(`{"v":1,"state":null}`), []byte(`null`), []byte(`[]`), []byte(``), []byte(`{"v":1,"state":{"id":"` + id + `"}`),
		append(bytes.Repeat([]byte(" "), maxSnapshotBytes), good...),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, ok := decodeSnapshot(id, b)
		if !ok {
			return
		}
		if len(b) > maxSnapshotBytes || s.Version != snapshotVersion || s.State.ID != id || len(s.Recent) > keepRecentRequests {
			t.Fatalf("decodeSnapshot accepted %d bytes: version %d, id %q, %d recent", len(b), s.Version, s.State.ID, len(s.Recent))
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("an accepted snapshot does not encode: %v", err)
		}
		back, ok := decodeSnapshot(id, out)
		if out2, _ := json.Marshal(back); !ok || !bytes.Equal(out, out2) {
			t.Fatalf("snapshot not a fixpoint:\n%s\n%s", out, out2)
		}
	})
}

// FuzzShadow: a NIR's shadow state read back from the store never panics;
// oversized or unreadable states, or states with too many requests, are
// refused (the NIR starts afresh); an accepted one keeps its bounds
// through the next recorded request.
func FuzzShadow(f *testing.F) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	good, _ := json.Marshal(shadowState{PasswordFailures: 3, PasswordFailedAt: at, BlockedUntil: at.Add(time.Hour),
		BlockReason: "password", ResetRequests: []time.Time{at}, Recent: []shadowRequest{{Key: "k", At: at, Failures: 3}}})
	for _, b := range [][]byte{
		good, []byte(`{}`), []byte(`{"password_failures":"3"}`), []byte(`{"reset_requests":[` + strings.Repeat(`"2023-01-05T13:30:00Z",`, domain.MaxRecentRequests) + `"2023-01-05T13:30:00Z"]}`),
		[]byte(`{"recent":[{"key":"k","at":"2023-01-05T13:30:00Z","reset":true}]}`), []byte(`{"blocked_until":"10000-01-01T00:00:00Z"}`),
		[]byte(`null`), []byte(``), append(good, bytes.Repeat([]byte(" "), maxShadowBytes)...),
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, ok := decodeShadow(b)
		if !ok {
			return
		}
		if len(b) > maxShadowBytes || len(st.ResetRequests) > domain.MaxRecentRequests || len(st.Recent) > keepRecentRequests {
			t.Fatalf("decodeShadow accepted %d bytes, %d reset requests, %d recent", len(b), len(st.ResetRequests), len(st.Recent))
		}
		_ = st.account()
		if _, done := st.recorded("k", at); done && len(st.Recent) == 0 {
			t.Fatal("a request recorded in no recent request")
		}
		if r := rememberShadow(st.Recent, shadowRequest{Key: "new", At: at}, at); len(r) > keepRecentRequests || r[len(r)-1].Key != "new" {
			t.Fatalf("rememberShadow kept %d requests", len(r))
		}
	})
}
