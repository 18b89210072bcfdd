package schemacheck_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
)

// Both fraud events validate as the service writes them, and broken copies
// do not (issue 20).
func TestFraudEvents(t *testing.T) {
	if got := schemacheck.FraudEventTypes(); !slices.Equal(got, []string{events.TypeSourceReleased, events.TypeSourceThrottled}) {
		t.Fatalf("fraud schemas for %v", got)
	}
	t0 := time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)
	facts := events.SourceFacts{Source: "203.0.113.0/24", Kind: events.SourceKindPrefix, Failures: 1000, Budget: 1000,
		WindowStart: t0, WindowSeconds: 86400, Until: t0.Add(24 * time.Hour)}
	throttled := events.FraudEvent{ID: events.NewID(t0), Type: events.TypeSourceThrottled, Version: 1, OccurredAt: t0, Data: facts}
	released := throttled
	released.ID, released.Type = events.NewID(t0), events.TypeSourceReleased
	released.Data.Reason, released.Data.RequestID, released.Data.Source, released.Data.Kind = events.ReleaseAdviser, "bo-1", "2001:db8::1/128", events.SourceKindIP
	for _, e := range []events.FraudEvent{throttled, released} {
		raw, err := events.MarshalFraud(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemacheck.ValidateFraudEvent(raw); err != nil {
			t.Errorf("%s: %v\n%s", e.Type, err, raw)
		}
		back, err := events.UnmarshalFraud(raw)
		if err != nil || back.Data != e.Data {
			t.Errorf("%s read back as %+v, %v", e.Type, back, err)
		}
	}
	good, _ := events.MarshalFraud(released)
	for what, edit := range map[string]func(m map[string]any){
		"no source":         func(m map[string]any) { delete(m["data"].(map[string]any), "source") },
		"an account field":  func(m map[string]any) { m["account_id"] = "01H00000000000000000000000" },
		"an unknown kind":   func(m map[string]any) { m["data"].(map[string]any)["kind"] = "asn" },
		"released, no why":  func(m map[string]any) { delete(m["data"].(map[string]any), "reason") },
		"a source, no mask": func(m map[string]any) { m["data"].(map[string]any)["source"] = "203.0.113.7" },
	} {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		raw, _ := json.Marshal(m)
		if err := schemacheck.ValidateFraudEvent(raw); err == nil {
			t.Errorf("%s: accepted %s", what, raw)
		}
	}
	if err := schemacheck.ValidateFraudEvent([]byte(`{"type":"login.succeeded"}`)); err == nil || !strings.Contains(err.Error(), "no schema") {
		t.Errorf("an account event as a fraud event: %v", err)
	}
}
