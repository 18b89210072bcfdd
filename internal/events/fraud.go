package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Fraud events (issue 20): facts about client sources, not accounts, on
// their own stream (AUTH_FRAUD, subjects <prefix>.fraud.<fact>), for the
// fraud teams. They are not account events: no account id, not in the
// account events' registry, never read by Evolve. Schemas:
// schemas/fraud/<type>.json.
const (
	TypeSourceThrottled = "fraud.source_throttled"
	TypeSourceReleased  = "fraud.source_released"
)

// FraudTypes are the fraud event types, sorted (docs/consumers.md lists
// them; a docslinks test keeps it so).
func FraudTypes() []string { return []string{TypeSourceReleased, TypeSourceThrottled} }

// Source kinds: one client address, or its network prefix (/24 for IPv4,
// /64 for IPv6).
const (
	SourceKindIP     = "ip"
	SourceKindPrefix = "prefix"
)

// Why a source was released.
const (
	ReleaseWindowPassed = "window_passed" // seen at the first attempt after the window's end (lazily)
	ReleaseAdviser      = "adviser"       // reserved: an adviser command releasing a source early (not built yet)
)

// FraudEvent is one message of AUTH_FRAUD: its id (also its Nats-Msg-Id,
// so a fact written twice is stored once), type, version, time, and the
// source's facts.
type FraudEvent struct {
	ID         string      `json:"id"`
	Type       string      `json:"type"`
	Version    int         `json:"version"`
	OccurredAt time.Time   `json:"occurred_at"`
	Data       SourceFacts `json:"data"`
}

// SourceFacts is the data of both fraud events. Source is the address as
// a one-address prefix ("203.0.113.7/32", "2001:db8::1/128") or the
// network prefix ("203.0.113.0/24", "2001:db8::/64"): fraud teams need it,
// the store's keys and the subjects never hold it.
type SourceFacts struct {
	Source        string    `json:"source"`
	Kind          string    `json:"kind"`                 // SourceKindIP or SourceKindPrefix
	Failures      int       `json:"failures"`             // attempts counted in the window
	Budget        int       `json:"budget"`               // the policy's budget for the kind
	WindowStart   time.Time `json:"window_start"`         // when the window opened
	WindowSeconds int64     `json:"window_seconds"`       // the policy's window
	Until         time.Time `json:"until"`                // throttled: end of the throttle; released: when it ended or would have
	Reason        string    `json:"reason,omitempty"`     // released: ReleaseWindowPassed or ReleaseAdviser
	RequestID     string    `json:"request_id,omitempty"` // released by an adviser: the request's request_id
}

// MarshalFraud encodes a fraud event as it is stored.
func MarshalFraud(e FraudEvent) ([]byte, error) {
	if e.Type != TypeSourceThrottled && e.Type != TypeSourceReleased {
		return nil, fmt.Errorf("marshal fraud event %s: %w %q", e.ID, ErrUnknownType, e.Type)
	}
	return json.Marshal(e)
}

// UnmarshalFraud decodes a fraud event of a known type.
func UnmarshalFraud(b []byte) (FraudEvent, error) {
	var e FraudEvent
	if err := json.Unmarshal(b, &e); err != nil {
		return FraudEvent{}, fmt.Errorf("unmarshal fraud event: %w", err)
	}
	if e.Type != TypeSourceThrottled && e.Type != TypeSourceReleased {
		return FraudEvent{}, fmt.Errorf("unmarshal fraud event %s: %w %q", e.ID, ErrUnknownType, e.Type)
	}
	return e, nil
}
