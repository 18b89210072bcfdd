package events

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEveryTypeRoundTrips(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	for _, typ := range Types() {
		e, err := New(typ)
		if err != nil {
			t.Fatal(err)
		}
		env := Wrap("01GNNA1J5X1V2RZ3E9W5YQ8K6T", reflect.ValueOf(e).Elem().Interface().(Event), at,
			Metadata{CausationID: "req-1", Channel: "web", ClientIP: "203.0.113.7"})
		b, err := Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if back.Type != typ || back.ID != env.ID || back.CausationID != "req-1" || back.CorrelationID != env.ID ||
			reflect.TypeOf(back.Data) != reflect.TypeOf(env.Data) || !back.OccurredAt.Equal(at) {
			t.Fatalf("%s: round trip changed the envelope: %+v", typ, back)
		}
	}
}

// correlation_id is left out of the JSON when a reader can infer it (the
// causation id, else the event id) and read back all the same; one that
// says something else is kept, and events written with it read as before.
func TestCorrelationIsLeftOutWhenImplied(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	e := PasswordFailed{Failures: 1, At: at}
	for _, c := range []struct {
		name    string
		md      Metadata
		onWire  bool
		wantCor func(Envelope) string
	}{
		{"a request's: its request id", Metadata{CausationID: "web-1", CorrelationID: "web-1"}, false, func(Envelope) string { return "web-1" }},
		{"no request id: the event's id", Metadata{}, false, func(e Envelope) string { return e.ID }},
		{"a flow of its own", Metadata{CausationID: "web-2", CorrelationID: "flow-9"}, true, func(Envelope) string { return "flow-9" }},
		{"the event id under a request", Metadata{CausationID: "web-3"}, true, func(e Envelope) string { return e.ID }},
	} {
		env := Wrap("01GNNA1J5X1V2RZ3E9W5YQ8K6T", e, at, c.md)
		b, err := Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), `"correlation_id"`); got != c.onWire {
			t.Errorf("%s: correlation_id on the wire %v, want %v: %s", c.name, got, c.onWire, b)
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if want := c.wantCor(env); back.CorrelationID != want || env.CorrelationID != want {
			t.Errorf("%s: correlation %q read back, %q written, want %q", c.name, back.CorrelationID, env.CorrelationID, want)
		}
	}
	// As written before issue 16: the same values, correlation_id spelt out.
	old := `{"id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","type":"login.password_failed","version":1,"account_id":"01GNNA1J5X1V2RZ3E9W5YQ8K6A","occurred_at":"2023-01-05T13:30:00Z","causation_id":"web-1","correlation_id":"web-1","data":{"failures":1,"at":"2023-01-05T13:30:00Z"}}`
	env, err := Unmarshal([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if env.CorrelationID != "web-1" || env.CausationID != "web-1" {
		t.Fatalf("old event: causation %q correlation %q", env.CausationID, env.CorrelationID)
	}
}

// testRenamed is a type whose version 1 had a field since renamed: old
// events are upcast when read, never rewritten.
type testRenamed struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

func (testRenamed) EventType() string { return "test.renamed" }

func TestOldVersionsAreUpcastWhenRead(t *testing.T) {
	Register(2, testRenamed{})
	RegisterUpcaster("test.renamed", 1, func(data json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Cause string    `json:"cause"`
			At    time.Time `json:"at"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(testRenamed{Reason: v1.Cause, At: v1.At})
	})
	old := `{"id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","type":"test.renamed","version":1,"account_id":"acc","occurred_at":"2023-01-05T13:30:00Z","data":{"cause":"logout","at":"2023-01-05T13:30:00Z"}}`
	env, err := Unmarshal([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if got := env.Data.(testRenamed); got.Reason != "logout" || env.Version != 2 {
		t.Fatalf("upcast: %+v (version %d)", got, env.Version)
	}
	future := strings.Replace(old, `"version":1`, `"version":3`, 1)
	if _, err := Unmarshal([]byte(future)); err == nil {
		t.Fatal("a version newer than this build must be refused, not guessed")
	}
	if _, err := Unmarshal([]byte(strings.Replace(old, "test.renamed", "test.unknown", 1))); err == nil {
		t.Fatal("an unknown type must be refused")
	}
}

// The attempts are the login steps and sessions, never what the account
// is; a rehash at login stays.
func TestIsAttempt(t *testing.T) {
	attempts := map[string]bool{
		TypePasswordFailed: true, TypePasswordVerified: true, TypeLoginRefused: true, TypeOTPIssued: true,
		TypeOTPQuotaExceeded: true, TypeOTPFailed: true, TypeLoginSucceeded: true, TypeSessionEnded: true,
		TypeBiometricChallengeIssued: true, TypeBiometricLoginFailed: true,
	}
	for _, typ := range Types() {
		e, err := New(typ)
		if err != nil {
			t.Fatal(err)
		}
		if got := IsAttempt(reflect.ValueOf(e).Elem().Interface().(Event)); got != attempts[typ] {
			t.Errorf("%s: IsAttempt %v, want %v", typ, got, attempts[typ])
		}
	}
	if IsAttempt(PasswordVerified{LoginID: "l", NewPasswordHash: "$argon2id$..."}) || IsAttempt(LoginSucceeded{NewPasswordHash: "$argon2id$..."}) {
		t.Error("an attempt with a new password hash may expire")
	}
}

// Marshal encodes the data in place; its bytes are those of the former
// two-pass encoding (the data on its own, then the envelope around it as a
// json.RawMessage), which every event on the streams was written with:
// for every type, with its fields filled (strings with characters JSON
// escapes, including HTML's), with and without the optional envelope fields.
func TestMarshalIsTheTwoPassEncoding(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 123456789, time.FixedZone("", 3600))
	for _, typ := range Types() {
		e, err := New(typ)
		if err != nil {
			t.Fatal(err)
		}
		v := reflect.ValueOf(e).Elem()
		fill(v, at)
		for _, md := range []Metadata{{}, {CausationID: "req-<1>&", CorrelationID: "flow", Channel: "web", ClientIP: "203.0.113.7", UserAgent: "Mozilla/5.0 \"x\" \u2028é"}} {
			env := Wrap("01GNNA1J5X1V2RZ3E9W5YQ8K6T", v.Interface().(Event), at, md)
			got, err := Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal(env.Data)
			if err != nil {
				t.Fatal(err)
			}
			w := wireEnvelope{ID: env.ID, Type: env.Type, Version: env.Version, AccountID: env.AccountID,
				OccurredAt: env.OccurredAt, CausationID: env.CausationID, CorrelationID: env.CorrelationID,
				Channel: env.Channel, ClientIP: env.ClientIP, UserAgent: env.UserAgent, Data: data}
			if w.CorrelationID == impliedCorrelation(w.ID, w.CausationID) {
				w.CorrelationID = ""
			}
			want, err := json.Marshal(w)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("%s: one pass\n%s\ntwo passes\n%s", typ, got, want)
			}
		}
	}
}

// fill sets every field of v to a value that is not its zero: strings
// with characters JSON escapes, times, numbers, booleans, one element in
// slices and maps.
func fill(v reflect.Value, at time.Time) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("a<b>&c\"d\\e\n\u2028é")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(at))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), at)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), at)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, at)
		fill(e, at)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(p.Elem(), at)
		v.Set(p)
	}
}
