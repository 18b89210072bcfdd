package events

import (
	"bytes"
	"io"
	"reflect"
	"strconv"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// One-pass decoding (issue 17: decoding was half of the projector's CPU).
//
// encoding/json reads an envelope in four scans: Unmarshal validates the
// whole message, then decodes it, skipping data into a RawMessage; then a
// Decoder scans data again to find its end and decodes it. decodeFast
// reads the message once, as a stream of tokens (jsontext, the
// go-json-experiment module: the Go team's JSON v2, which became the
// standard library's encoding/json/v2 experiment), and decodes data
// straight into its Go type when the type and version came before it (as
// Marshal writes them), with encoding/json's own semantics
// (jsonv1.DefaultOptionsV1: names matched without case, unknown names
// ignored, time.Time's UnmarshalJSON).
//
// It takes only the usual shape: each envelope member once, spelled as
// Marshal spells it, with a value of its JSON kind, and a current version.
// For anything else (an unknown or duplicated member, a null, an old
// version to upcast, a syntax error) it answers ok=false and Unmarshal
// decodes the message the old way, so a message reads the same either way
// and errors keep their wording (TestDecodeFastAgreesWithEncodingJSON,
// FuzzUnmarshal).

var (
	v1Options = jsonv1.DefaultOptionsV1()

	decoders = sync.Pool{New: func() any { return new(fastDecoder) }}
)

type fastDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

// Envelope members, as bits of a set: each may come once.
const (
	mID = 1 << iota
	mType
	mVersion
	mAccountID
	mOccurredAt
	mCausationID
	mCorrelationID
	mChannel
	mClientIP
	mUserAgent
	mData
)

// decodeFast decodes an envelope in one pass; ok=false means "decode it
// the usual way" (see above), never that the message is bad.
func decodeFast(b []byte) (env Envelope, ok bool) {
	fd := decoders.Get().(*fastDecoder)
	defer func() {
		fd.buf = bytes.Buffer{}
		fd.dec.Reset(&fd.buf) // drop the references to b
		decoders.Put(fd)
	}()
	fd.buf = *bytes.NewBuffer(b) // jsontext parses a bytes.Buffer in place, without a copy
	fd.dec.Reset(&fd.buf)
	d := &fd.dec

	if d.PeekKind() != '{' {
		return env, false
	}
	if _, err := d.ReadToken(); err != nil {
		return env, false
	}
	var (
		seen    int
		reg     registration
		regOK   bool
		val     Event
		rawData jsontext.Value
	)
	str := func(dst *string) bool {
		if d.PeekKind() != '"' {
			return false
		}
		t, err := d.ReadToken()
		if err != nil {
			return false
		}
		*dst = t.String()
		return true
	}
	for d.PeekKind() != '}' {
		if d.PeekKind() != '"' {
			return env, false
		}
		name, err := d.ReadToken()
		if err != nil {
			return env, false
		}
		var bit int
		var good bool
		switch name.String() {
		case "id":
			bit, good = mID, str(&env.ID)
		case "type":
			bit, good = mType, str(&env.Type)
			if good {
				regMu.RLock()
				reg, regOK = registry[env.Type]
				regMu.RUnlock()
			}
		case "version":
			bit = mVersion
			if d.PeekKind() == '0' {
				v, err := d.ReadValue()
				if err == nil {
					env.Version, err = strconv.Atoi(string(v))
					good = err == nil
				}
			}
		case "account_id":
			bit, good = mAccountID, str(&env.AccountID)
		case "occurred_at":
			bit = mOccurredAt
			if d.PeekKind() == '"' {
				v, err := d.ReadValue()
				good = err == nil && env.OccurredAt.UnmarshalJSON(v) == nil
			}
		case "causation_id":
			bit, good = mCausationID, str(&env.CausationID)
		case "correlation_id":
			bit, good = mCorrelationID, str(&env.CorrelationID)
		case "channel":
			bit, good = mChannel, str(&env.Channel)
		case "client_ip":
			bit, good = mClientIP, str(&env.ClientIP)
		case "user_agent":
			bit, good = mUserAgent, str(&env.UserAgent)
		case "data":
			bit = mData
			if d.PeekKind() != '{' {
				break
			}
			if seen&mType != 0 && seen&mVersion != 0 {
				// The usual order: decode data straight into its type.
				if !regOK || env.Version != reg.version {
					break // the slow path says what is wrong, or upcasts
				}
				ptr := reg.new()
				if jsonv2.UnmarshalDecode(d, ptr, v1Options) != nil {
					break
				}
				val, good = reflect.ValueOf(ptr).Elem().Interface().(Event), true
			} else {
				// Type or version after data: keep it for the end.
				v, err := d.ReadValue()
				rawData, good = v, err == nil
			}
		}
		if !good || seen&bit != 0 {
			return env, false
		}
		seen |= bit
	}
	if _, err := d.ReadToken(); err != nil { // '}'
		return env, false
	}
	if _, err := d.ReadToken(); err != io.EOF { // nothing after the object
		return env, false
	}
	if seen&mData == 0 || !regOK || env.Version != reg.version {
		return env, false
	}
	if val == nil {
		ptr := reg.new()
		if jsonv2.Unmarshal(rawData, ptr, v1Options) != nil {
			return env, false
		}
		val = reflect.ValueOf(ptr).Elem().Interface().(Event)
	}
	env.Data = val
	if env.CorrelationID == "" {
		env.CorrelationID = impliedCorrelation(env.ID, env.CausationID)
	}
	return env, true
}
