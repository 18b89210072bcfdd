package events

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzUpcast is a type registered only for this target, at version 3, with
// upcasters from 1 and 2, so the fuzzer also goes through the upcasting
// chain (production types are all at version 1 so far).
type fuzzUpcast struct {
	Reason string    `json:"reason"`
	Count  int       `json:"count"`
	At     time.Time `json:"at"`
}

func (fuzzUpcast) EventType() string { return "test.fuzz_upcast" }

func registerFuzzUpcast() {
	Register(3, fuzzUpcast{})
	RegisterUpcaster("test.fuzz_upcast", 1, func(data json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Cause string    `json:"cause"`
			At    time.Time `json:"at"`
		}
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"reason": v1.Cause, "at": v1.At})
	})
	RegisterUpcaster("test.fuzz_upcast", 2, func(data json.RawMessage) (json.RawMessage, error) {
		var v2 map[string]json.RawMessage
		if err := json.Unmarshal(data, &v2); err != nil {
			return nil, err
		}
		if _, ok := v2["count"]; !ok {
			v2["count"] = json.RawMessage("1")
		}
		return json.Marshal(v2)
	})
}

// FuzzUnmarshal: Unmarshal of any bytes (a stream message) never panics;
// what it reads is at the current version of its type, and Marshal then
// Unmarshal is a fixpoint: the envelope written back reads back to the
// same bytes.
func FuzzUnmarshal(f *testing.F) {
	registerFuzzUpcast()
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	for _, typ := range Types() {
		e, err := New(typ)
		if err != nil {
			f.Fatal(err)
		}
		b, err := Marshal(Wrap("01GNNA1J5X1V2RZ3E9W5YQ8K6T", reflect.ValueOf(e).Elem().Interface().(Event), at,
			Metadata{CausationID: "req-1", Channel: "web", ClientIP: "203.0.113.7", UserAgent: "Mozilla/5.0"}))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","type":"test.fuzz_upcast","version":1,"account_id":"acc","occurred_at":"2023-01-05T13:30:00Z","data":{"cause":"logout","at":"2023-01-05T13:30:00Z"}}`,
		`{"id":"x","type":"test.fuzz_upcast","version":2,"account_id":"acc","occurred_at":"2023-01-05T13:30:00+02:00","data":{"reason":"r","at":"2023-01-05T13:30:00Z"}}`,
		`{"id":"x","type":"test.fuzz_upcast","version":1,"data":"not an object"}`,
		`{"id":"x","type":"login.password_failed","version":1,"data":{"failures":"3"}}`,
		`{"id":"x","type":"login.password_failed","version":1,"data":null}`,
		`{"id":"x","type":"login.password_failed","version":0,"data":{}}`,
		`{"id":"x","type":"login.password_failed","version":9223372036854775807,"data":{}}`,
		`{"id":"x","type":"account.registered","version":1,"occurred_at":"0000-01-01T00:00:00Z","data":{"at":"9999-12-31T23:59:59.999999999+23:59"}}`,
		`{"type":"unknown.type","version":1,"data":{}}`,
		`{"type":"account.registered","version":1,"data":{}} trailing`,
		`{"type":"account.registered","version":1,"data":{}}{"type":"account.registered"}`,
		`{"type":"account.registered","type":"login.refused","version":1,"data":{}}`,
		`[]`, `null`, `""`, `{`, "", "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Unmarshal(b)
		// The one-pass decoder reads what it takes as encoding/json does
		// (issue 17): same envelope, same data, or it leaves the message
		// to encoding/json.
		if fast, ok := decodeFast(b); ok {
			slow, serr := unmarshalSlow(b)
			if serr != nil || !sameEnvelope(fast, slow) {
				t.Fatalf("decodeFast(%q) = %+v, encoding/json %+v (%v)", b, fast, slow, serr)
			}
		}
		if err != nil {
			return
		}
		if env.Data == nil || env.Data.EventType() != env.Type || env.Version != CurrentVersion(env.Type) {
			t.Fatalf("Unmarshal(%q) = %+v: data, type or version off", b, env)
		}
		out, err := Marshal(env)
		if err != nil {
			t.Fatalf("Marshal of what Unmarshal(%q) read: %v", b, err)
		}
		back, err := Unmarshal(out)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(Unmarshal(%q))) = %v (written %s)", b, err, out)
		}
		out2, err := Marshal(back)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("not a fixpoint:\n%s\n%s (%v)", out, out2, err)
		}
	})
}

// FuzzRoundTrip: a valid event (any registered type, its data read from
// the fuzzer's JSON, any metadata in UTF-8, any time) reads back from
// Marshal as it was written: same envelope, same data, same instant.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), []byte(`{}`), "01GNNA1J5X1V2RZ3E9W5YQ8K6T", "req-1", "web", "203.0.113.7", "Mozilla/5.0", int64(1672925400000000000))
	f.Add(uint8(5), []byte(`{"failures":3,"blocked_until":"2023-01-05T14:00:00Z","at":"2023-01-05T13:30:00+01:00"}`), "", "", "app", "::1", "", int64(0))
	f.Add(uint8(9), []byte(`{"masked_email":"v***@y***.fr","email_sealed":"\u00e9\u2028"}`), "é", "\u2028", "kiosk", "", "\x7f", int64(-1))
	f.Fuzz(func(t *testing.T, typeIdx uint8, data []byte, accountID, causation, channel, clientIP, ua string, nanos int64) {
		types := Types()
		e, err := New(types[int(typeIdx)%len(types)])
		if err != nil {
			t.Fatal(err)
		}
		if json.Unmarshal(data, e) != nil {
			return // not this type's data: FuzzUnmarshal's business
		}
		for _, s := range []string{accountID, causation, channel, clientIP, ua} {
			if !utf8Valid(s) {
				return // the service takes UTF-8 only (commands.decode)
			}
		}
		ev := reflect.ValueOf(e).Elem().Interface().(Event)
		// Times come from the service's clock, never from outside: after
		// 1970 (a ULID's time) is all Wrap is asked for.
		env := Wrap(accountID, ev, time.Unix(0, nanos&math.MaxInt64), Metadata{CausationID: causation, Channel: channel, ClientIP: clientIP, UserAgent: ua})
		b, err := Marshal(env)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", env, err)
		}
		back, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if !back.OccurredAt.Equal(env.OccurredAt) {
			t.Fatalf("occurred_at %v read back as %v", env.OccurredAt, back.OccurredAt)
		}
		back.OccurredAt = env.OccurredAt
		want, _ := json.Marshal(env.Data)
		got, _ := json.Marshal(back.Data)
		back.Data, env.Data = nil, nil
		if !reflect.DeepEqual(back, env) || !bytes.Equal(got, want) {
			t.Fatalf("round trip changed the event:\n%+v %s\n%+v %s", env, want, back, got)
		}
	})
}

// sameEnvelope: the same envelope and data, times the same instant in the
// same location name and offset.
func sameEnvelope(a, b Envelope) bool {
	sameTime := func(x, y time.Time) bool {
		xn, xo := x.Zone()
		yn, yo := y.Zone()
		return x.Equal(y) && xn == yn && xo == yo
	}
	if !sameTime(a.OccurredAt, b.OccurredAt) || reflect.TypeOf(a.Data) != reflect.TypeOf(b.Data) {
		return false
	}
	av, bv := reflect.ValueOf(a.Data), reflect.ValueOf(b.Data)
	for i := range av.NumField() {
		x, y := av.Field(i).Interface(), bv.Field(i).Interface()
		if xt, ok := x.(time.Time); ok {
			if !sameTime(xt, y.(time.Time)) {
				return false
			}
		} else if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	a.OccurredAt, b.OccurredAt, a.Data, b.Data = time.Time{}, time.Time{}, nil, nil
	return a == b
}

func utf8Valid(s string) bool { return utf8.ValidString(s) }
