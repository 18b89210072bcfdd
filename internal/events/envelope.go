package events

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Envelope is one message of the AUTH_EVENTS stream: the fact and where it
// came from. Data is decoded to its Go type by the registry.
//
// On the wire, correlation_id is left out when it is the one a reader
// infers (impliedCorrelation: the causation id, else the event id), as it
// is for every event the commands service records (issue 16: 6 bytes of
// every event on disk, S2-compressed). Unmarshal puts it back, so Go
// readers always see it; events written before keep theirs.
type Envelope struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Version       int       `json:"version"`
	AccountID     string    `json:"account_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	CausationID   string    `json:"causation_id,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	Channel       string    `json:"channel,omitempty"`
	ClientIP      string    `json:"client_ip,omitempty"`
	UserAgent     string    `json:"user_agent,omitempty"`
	Data          Event     `json:"-"`
}

// wireEnvelope is the JSON shape, with data kept raw until its type is known.
type wireEnvelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	AccountID     string          `json:"account_id"`
	OccurredAt    time.Time       `json:"occurred_at"`
	CausationID   string          `json:"causation_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Channel       string          `json:"channel,omitempty"`
	ClientIP      string          `json:"client_ip,omitempty"`
	UserAgent     string          `json:"user_agent,omitempty"`
	Data          json.RawMessage `json:"data"`
}

// Metadata is what the application knows of a request, copied into every
// envelope it causes.
type Metadata struct {
	CausationID   string
	CorrelationID string
	Channel       string
	ClientIP      string
	UserAgent     string
}

// NewID returns a new ULID: sortable by time, unique without coordination.
func NewID(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()
}

// Wrap puts a decided event in its envelope, at the current schema version.
func Wrap(accountID string, e Event, at time.Time, md Metadata) Envelope {
	id := NewID(at)
	corr := md.CorrelationID
	if corr == "" {
		corr = id
	}
	return Envelope{
		ID: id, Type: e.EventType(), Version: CurrentVersion(e.EventType()),
		AccountID: accountID, OccurredAt: at.UTC(),
		CausationID: md.CausationID, CorrelationID: corr,
		Channel: md.Channel, ClientIP: md.ClientIP, UserAgent: md.UserAgent,
		Data: e,
	}
}

// ErrUnknownType is returned for an event type this build does not know.
var ErrUnknownType = errors.New("unknown event type")

type registration struct {
	version int
	new     func() Event
}

// Upcaster turns the data of one version into the data of the next one.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

var (
	regMu     sync.RWMutex
	registry  = map[string]registration{}
	upcasters = map[string]map[int]Upcaster{} // type -> from version -> upcaster
)

// Register declares an event type at its current version. Called from init.
func Register(version int, zero Event) {
	t := reflect.TypeOf(zero)
	regMu.Lock()
	defer regMu.Unlock()
	registry[zero.EventType()] = registration{version: version, new: func() Event {
		return reflect.New(t).Interface().(Event)
	}}
}

// RegisterUpcaster declares how data of version `from` of a type becomes
// version from+1. Old events are upcast when read, never rewritten.
func RegisterUpcaster(eventType string, from int, up Upcaster) {
	regMu.Lock()
	defer regMu.Unlock()
	if upcasters[eventType] == nil {
		upcasters[eventType] = map[int]Upcaster{}
	}
	upcasters[eventType][from] = up
}

// CurrentVersion is the version new events of a type are written with.
func CurrentVersion(eventType string) int {
	regMu.RLock()
	defer regMu.RUnlock()
	return registry[eventType].version
}

// Types lists every registered event type, sorted.
func Types() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// New returns a zero value of a registered type (for tests and tools).
func New(eventType string) (Event, error) {
	regMu.RLock()
	r, ok := registry[eventType]
	regMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, eventType)
	}
	return r.new(), nil
}

func init() {
	for _, e := range []Event{
		AccountRegistered{}, AccountReactivated{}, AccountDeactivated{},
		AffiliationSet{}, AccountUnlocked{}, PasswordFailed{}, PasswordVerified{},
		LoginRefused{}, OTPIssued{}, OTPQuotaExceeded{}, OTPFailed{},
		LoginSucceeded{}, SessionEnded{},
		PasswordChangeCodeIssued{}, ChangeCodeVerified{}, PasswordChanged{}, PasswordResetRequested{},
		EmailChangeCodeIssued{}, EmailChanged{}, ChangeRequestsExceeded{}, ChangeCodeFailed{},
		BiometricOfferAnswered{}, BiometricEnrolled{}, BiometricChallengeIssued{}, BiometricLoginFailed{}, BiometricRevoked{},
		OIDCAuthorized{}, OIDCTokenIssued{},
	} {
		Register(1, e)
	}
}

// impliedCorrelation is the correlation id of an envelope whose JSON has
// none: its causation id, else its own id (what Wrap gives when the
// request names no flow of its own).
func impliedCorrelation(id, causationID string) string {
	if causationID != "" {
		return causationID
	}
	return id
}

// Marshal encodes an envelope with its data, in one pass: the data is
// encoded in place (outEnvelope), not first on its own and then copied
// into the envelope as a json.RawMessage, which encoding/json scans and
// compacts again (issue 17: the second pass was a third of an append's
// encoding in BenchmarkVerifyCode's profile). The bytes are the same
// (TestMarshalIsTheTwoPassEncoding).
func Marshal(env Envelope) ([]byte, error) {
	if env.Data == nil {
		return nil, fmt.Errorf("marshal event %s: no data", env.ID)
	}
	e := env
	if e.CorrelationID == impliedCorrelation(e.ID, e.CausationID) {
		e.CorrelationID = ""
	}
	b, err := json.Marshal(outEnvelope{Envelope: &e, Data: e.Data})
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", env.ID, err)
	}
	return b, nil
}

// outEnvelope is wireEnvelope as written: the envelope's fields in their
// order (encoding/json writes an embedded struct's fields in its place),
// then the event itself as data (Envelope.Data is json:"-").
type outEnvelope struct {
	*Envelope
	Data Event `json:"data"`
}

// Unmarshal decodes an envelope, upcasting its data to the current version
// of its type and decoding it to the type's Go value.
func Unmarshal(b []byte) (Envelope, error) {
	if env, ok := decodeFast(b); ok {
		return env, nil
	}
	return unmarshalSlow(b)
}

// unmarshalSlow is Unmarshal with encoding/json alone: for the messages
// decodeFast leaves to it, and the reference it is tested against.
func unmarshalSlow(b []byte) (Envelope, error) {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	regMu.RLock()
	reg, ok := registry[w.Type]
	ups := upcasters[w.Type]
	regMu.RUnlock()
	if !ok {
		return Envelope{}, fmt.Errorf("decode event %s: %w %q", w.ID, ErrUnknownType, w.Type)
	}
	if w.Version < 1 || w.Version > reg.version {
		return Envelope{}, fmt.Errorf("decode event %s: %s version %d not readable by this build (current %d)", w.ID, w.Type, w.Version, reg.version)
	}
	data := w.Data
	for v := w.Version; v < reg.version; v++ {
		up, ok := ups[v]
		if !ok {
			return Envelope{}, fmt.Errorf("decode event %s: no upcaster for %s v%d", w.ID, w.Type, v)
		}
		var err error
		if data, err = up(data); err != nil {
			return Envelope{}, fmt.Errorf("upcast event %s %s v%d: %w", w.ID, w.Type, v, err)
		}
	}
	ptr := reg.new()
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(ptr); err != nil {
		return Envelope{}, fmt.Errorf("decode event %s data: %w", w.ID, err)
	}
	// Store the value, not the pointer, so type switches read naturally.
	val := reflect.ValueOf(ptr).Elem().Interface().(Event)
	if w.CorrelationID == "" {
		w.CorrelationID = impliedCorrelation(w.ID, w.CausationID)
	}
	return Envelope{
		ID: w.ID, Type: w.Type, Version: reg.version, AccountID: w.AccountID,
		OccurredAt: w.OccurredAt, CausationID: w.CausationID, CorrelationID: w.CorrelationID,
		Channel: w.Channel, ClientIP: w.ClientIP, UserAgent: w.UserAgent, Data: val,
	}, nil
}
