package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/ameli-auth/authsvc/internal/events"
)

// CloudEvents export (issue 20): `authctl events --format cloudevents`
// writes each event as one CloudEvents 1.0 event in the JSON format (CNCF
// spec, json-format.md), one per line, the envelope that data pipelines
// accept. The mapping, as docs/authctl.md gives it:
//
//   - id: the event id (a ULID, unique across the stream and its partitions,
//     so source + id is unique as the spec asks);
//   - source: /ameli-auth/<subject prefix>/events, with /partitions/<p>
//     appended when the events are split in partitions;
//   - type: fr.ameli.auth.<event type> (reverse-DNS prefix, our choice);
//   - subject: the account id; time: occurred_at;
//   - datacontenttype: application/json; dataschema: the $id of the type's
//     JSON Schema in schemas/events (left out for a type this build does
//     not know);
//   - data: the event's data at its current version (older versions are
//     upcast as events.Unmarshal does; one this build cannot read is passed
//     as stored, with its stored version);
//   - extensions (lowercase alphanumeric names, as the spec requires):
//     eventversion (integer), streamseq (the stream sequence, a decimal
//     string: CloudEvents integers are 32-bit), partition (integer, only
//     with several partitions), and the envelope's correlationid,
//     causationid, channel, clientip, useragent when set.
const (
	cloudEventsSpecVersion = "1.0"
	cloudEventsTypePrefix  = "fr.ameli.auth."
	// cloudEventsSchemaBase is the base of the $id of every schema in
	// schemas/events (a test keeps them equal).
	cloudEventsSchemaBase = "https://schemas.ameli-auth.example/events/"
)

// cloudEvent is the JSON shape of one exported event. Optional attributes
// are omitted when empty, as the spec wants them absent rather than null.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema,omitempty"`
	EventVersion    int             `json:"eventversion"`
	StreamSeq       string          `json:"streamseq"`
	Partition       *int            `json:"partition,omitempty"`
	CorrelationID   string          `json:"correlationid,omitempty"`
	CausationID     string          `json:"causationid,omitempty"`
	Channel         string          `json:"channel,omitempty"`
	ClientIP        string          `json:"clientip,omitempty"`
	UserAgent       string          `json:"useragent,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// storedEnvelope reads an envelope as stored, its data raw: what the
// export passes through when this build cannot decode the type.
type storedEnvelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Version       int             `json:"version"`
	AccountID     string          `json:"account_id"`
	OccurredAt    time.Time       `json:"occurred_at"`
	CausationID   string          `json:"causation_id"`
	CorrelationID string          `json:"correlation_id"`
	Channel       string          `json:"channel"`
	ClientIP      string          `json:"client_ip"`
	UserAgent     string          `json:"user_agent"`
	Data          json.RawMessage `json:"data"`
}

// cloudEventsSource is the source attribute of the events of one stream:
// partition < 0 means the events are not split.
func cloudEventsSource(prefix string, partition int) string {
	s := "/ameli-auth/" + prefix + "/events"
	if partition >= 0 {
		s += "/partitions/" + strconv.Itoa(partition)
	}
	return s
}

// toCloudEvent maps one stored envelope. It fails only on a message that
// is not an envelope at all (no id or no type), which the spec could not
// carry.
func toCloudEvent(prefix string, partition int, seq uint64, raw []byte) (cloudEvent, error) {
	var w storedEnvelope
	if err := json.Unmarshal(raw, &w); err != nil {
		return cloudEvent{}, fmt.Errorf("decode envelope: %w", err)
	}
	if w.ID == "" || w.Type == "" {
		return cloudEvent{}, errors.New("decode envelope: no id or no type")
	}
	ce := cloudEvent{
		SpecVersion: cloudEventsSpecVersion, ID: w.ID, Source: cloudEventsSource(prefix, partition),
		Type: cloudEventsTypePrefix + w.Type, Subject: w.AccountID, Time: w.OccurredAt.UTC(),
		DataContentType: "application/json", EventVersion: w.Version,
		StreamSeq: strconv.FormatUint(seq, 10), CorrelationID: w.CorrelationID, CausationID: w.CausationID,
		Channel: w.Channel, ClientIP: w.ClientIP, UserAgent: w.UserAgent, Data: w.Data,
	}
	if partition >= 0 {
		ce.Partition = &partition
	}
	if ce.CorrelationID == "" { // left out of the JSON when implied (events.Marshal)
		ce.CorrelationID = w.CausationID
		if ce.CorrelationID == "" {
			ce.CorrelationID = w.ID
		}
	}
	env, err := events.Unmarshal(raw)
	if err != nil {
		return ce, nil // unknown type or newer version: as stored, no schema to name
	}
	ce.DataSchema = cloudEventsSchemaBase + w.Type + ".json"
	if env.Version != w.Version {
		data, err := json.Marshal(env.Data)
		if err != nil {
			return cloudEvent{}, fmt.Errorf("encode upcast data of %s: %w", w.Type, err)
		}
		ce.Data, ce.EventVersion = data, env.Version
	}
	if len(ce.Data) == 0 {
		ce.Data = json.RawMessage("{}")
	}
	return ce, nil
}

// cloudEventsPrinter writes one CloudEvents JSON event per line.
type cloudEventsPrinter struct {
	w      io.Writer
	prefix string
}

func (cloudEventsPrinter) header() {}

func (p cloudEventsPrinter) row(m sourced) error {
	ce, err := toCloudEvent(p.prefix, m.src.partition, m.seq, m.data)
	if err != nil {
		return fmt.Errorf("%s: %w", m.where(), err)
	}
	b, err := json.Marshal(ce)
	if err != nil {
		return fmt.Errorf("%s: encode cloudevent: %w", m.where(), err)
	}
	_, err = p.w.Write(append(b, '\n'))
	return err
}
