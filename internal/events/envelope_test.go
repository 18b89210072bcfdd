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
