package events

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The one-pass decoder (decode.go) takes the envelopes Marshal writes and
// reads them as encoding/json does; every other shape goes to encoding/json
// (ok=false), so Unmarshal reads any message as it did before issue 17.
func TestDecodeFastAgreesWithEncodingJSON(t *testing.T) {
	at := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	var marshalled []string
	for _, typ := range Types() {
		e, _ := New(typ)
		b, err := Marshal(Wrap("01GNNA1J5X1V2RZ3E9W5YQ8K6T", reflect.ValueOf(e).Elem().Interface().(Event), at,
			Metadata{CausationID: "req-1", CorrelationID: "flow-1", Channel: "web", ClientIP: "203.0.113.7", UserAgent: "Mozilla/5.0 \"x\" \u00e9"}))
		if err != nil {
			t.Fatal(err)
		}
		marshalled = append(marshalled, string(b))
	}
	const pf = `"type":"login.password_failed","version":1`
	for _, c := range []struct {
		name string
		msg  string
		fast bool // decodeFast takes it
	}{
		{"data before type and version", `{"id":"e","data":{"failures":2,"at":"2023-01-05T13:30:00Z"},` + pf + `,"account_id":"a"}`, true},
		{"escapes and an offset", `{"id":"\u0065","account_id":"a\/b",` + pf + `,"occurred_at":"2023-01-05T13:30:00+02:00","data":{"failures":1,"at":"2023-01-05T13:30:00.5-01:00"}}`, true},
		{"names of the data in other cases", `{"id":"e",` + pf + `,"data":{"FAILURES":3,"At":"2023-01-05T13:30:00Z","unknown":[1,{"x":null}]}}`, true},
		{"data member twice", `{"id":"e",` + pf + `,"data":{"failures":1},"data":{"failures":2}}`, false},
		{"a member twice", `{"id":"e","id":"f",` + pf + `,"data":{}}`, false},
		{"a member in another case", `{"ID":"e",` + pf + `,"data":{}}`, false},
		{"an unknown member", `{"id":"e","extra":1,` + pf + `,"data":{}}`, false},
		{"a null member", `{"id":null,` + pf + `,"data":{}}`, false},
		{"null data", `{"id":"e",` + pf + `,"data":null}`, false},
		{"no data", `{"id":"e",` + pf + `}`, false},
		{"version as a string", `{"id":"e","type":"login.password_failed","version":"1","data":{}}`, false},
		{"version 1.0", `{"id":"e","type":"login.password_failed","version":1.0,"data":{}}`, false},
		{"an old version", `{"id":"e","type":"login.password_failed","version":0,"data":{}}`, false},
		{"an unknown type", `{"id":"e","type":"x.y","version":1,"data":{}}`, false},
		{"a wrong kind in data", `{"id":"e",` + pf + `,"data":{"failures":"3"}}`, false},
		{"a bad time", `{"id":"e",` + pf + `,"occurred_at":"yesterday","data":{}}`, false},
		{"trailing bytes", `{"id":"e",` + pf + `,"data":{}} x`, false},
		{"invalid UTF-8", "{\"id\":\"\xff\"," + pf + `,"data":{}}`, false},
		{"not an object", `[1]`, false},
		{"empty", ``, false},
	} {
		fast, ok := decodeFast([]byte(c.msg))
		if ok != c.fast {
			t.Errorf("%s: decodeFast took it: %v, want %v", c.name, ok, c.fast)
		}
		slow, err := unmarshalSlow([]byte(c.msg))
		if ok && (err != nil || !sameEnvelope(fast, slow)) {
			t.Errorf("%s: decodeFast %+v, encoding/json %+v (%v)", c.name, fast, slow, err)
		}
		got, gerr := Unmarshal([]byte(c.msg))
		if (gerr == nil) != (err == nil) || gerr != nil && gerr.Error() != err.Error() || err == nil && !sameEnvelope(got, slow) {
			t.Errorf("%s: Unmarshal %+v (%v), encoding/json %+v (%v)", c.name, got, gerr, slow, err)
		}
	}
	for _, m := range marshalled {
		fast, ok := decodeFast([]byte(m))
		slow, err := unmarshalSlow([]byte(m))
		if !ok || err != nil || !sameEnvelope(fast, slow) {
			t.Errorf("%s: decodeFast %+v (%v), encoding/json %+v (%v)", m[:strings.Index(m, ",")], fast, ok, slow, err)
		}
	}
}
