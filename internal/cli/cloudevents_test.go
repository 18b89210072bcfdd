package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"time"

	cloudevent "github.com/cloudevents/sdk-go/v2/event"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
	"github.com/ameli-auth/authsvc/schemas"
)

// parseCloudEvent reads one line with the CNCF Go SDK and validates it
// against the spec's rules (required attributes, their types, extension
// names).
func parseCloudEvent(t *testing.T, line []byte) cloudevent.Event {
	t.Helper()
	var ev cloudevent.Event
	if err := ev.UnmarshalJSON(line); err != nil {
		t.Fatalf("not a CloudEvents JSON event: %v\n%s", err, line)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v\n%s", err, line)
	}
	return ev
}

// Every event of the stream comes out as one valid CloudEvent whose
// attributes and data are the envelope's, whose dataschema is the $id of
// a schema in schemas/ that its data satisfies.
func TestEventsCloudEvents(t *testing.T) {
	e := newTestEnv(t)
	idA, _ := scriptHistory(e)
	res := e.authctl(ctxTimeout(t, 20*time.Second), nil, "events", "--format", "cloudevents")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	stream, err := e.js.Stream(context.Background(), contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	seq := uint64(0)
	for sc.Scan() {
		seq++
		ev := parseCloudEvent(t, sc.Bytes())
		stored, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		env, err := events.Unmarshal(stored.Data)
		if err != nil {
			t.Fatal(err)
		}
		if ev.SpecVersion() != "1.0" || ev.ID() != env.ID || ev.Type() != "fr.ameli.auth."+env.Type ||
			ev.Subject() != env.AccountID || !ev.Time().Equal(env.OccurredAt) ||
			ev.Source() != "/ameli-auth/auth/events" || ev.DataContentType() != "application/json" {
			t.Errorf("line %d: attributes %s\nfor envelope %s", seq, ev.String(), stored.Data)
		}
		ext := ev.Extensions()
		if ext["streamseq"] != "1" && seq == 1 || ext["correlationid"] != env.CorrelationID || ext["channel"] != nilIfEmpty(env.Channel) {
			t.Errorf("line %d: extensions %v", seq, ext)
		}
		if _, ok := ext["partition"]; ok {
			t.Errorf("line %d: a partition on an unsplit stream", seq)
		}
		if v, _ := ext["eventversion"].(int32); int(v) != env.Version {
			t.Errorf("line %d: eventversion %v, want %d", seq, ext["eventversion"], env.Version)
		}
		// The data is the envelope's, and the schema named is the type's.
		var wire struct {
			Data json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(stored.Data, &wire)
		if !jsonEqual(t, ev.Data(), wire.Data) {
			t.Errorf("line %d: data %s, want %s", seq, ev.Data(), wire.Data)
		}
		path := strings.TrimPrefix(ev.DataSchema(), schemacheck.BaseURL)
		schema, err := fs.ReadFile(schemas.FS, path)
		if err != nil || path == ev.DataSchema() {
			t.Fatalf("line %d: dataschema %q is no schema of schemas/: %v", seq, ev.DataSchema(), err)
		}
		var doc struct {
			ID string `json:"$id"`
		}
		if json.Unmarshal(schema, &doc); doc.ID != ev.DataSchema() {
			t.Errorf("line %d: dataschema %q, the schema's $id %q", seq, ev.DataSchema(), doc.ID)
		}
		if err := schemacheck.ValidateEvent(stored.Data); err != nil {
			t.Errorf("line %d: %v", seq, err)
		}
	}
	if info, _ := stream.Info(context.Background()); seq == 0 || seq != info.State.Msgs {
		t.Fatalf("%d lines for %d events", seq, info.State.Msgs)
	}

	// The filters apply as to the other formats.
	res = e.authctl(ctxTimeout(t, 20*time.Second), nil, "events", "-o", "cloudevents", "--account", idA, "--type", "login.otp_issued")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 1 {
		t.Fatalf("exit %d, %d lines:\n%s%s", res.code, len(lines), res.stdout, res.stderr)
	}
	if ev := parseCloudEvent(t, []byte(lines[0])); ev.Subject() != idA || ev.Type() != "fr.ameli.auth.login.otp_issued" {
		t.Fatalf("%s", ev.String())
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// A partition's events name it in their source and extension; a type this
// build does not know passes as stored, without a dataschema, and still
// makes a valid CloudEvent; a message that is no envelope is refused.
func TestCloudEventMapping(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	env := events.Wrap("01JAAAAAAAAAAAAAAAAAAAAAAA", events.PasswordFailed{Failures: 1, At: at}, at,
		events.Metadata{Channel: "web", ClientIP: "2001:db8::1", UserAgent: "Mozilla/5.0", CausationID: "req-1"})
	raw, err := events.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ce, err := toCloudEvent("auth", 3, 1042, raw)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := json.Marshal(ce)
	ev := parseCloudEvent(t, line)
	ext := ev.Extensions()
	if ev.Source() != "/ameli-auth/auth/events/partitions/3" || ext["partition"] != int32(3) || ext["streamseq"] != "1042" ||
		ext["clientip"] != "2001:db8::1" || ext["useragent"] != "Mozilla/5.0" || ext["causationid"] != "req-1" ||
		ext["correlationid"] != env.CorrelationID || ev.DataSchema() != schemacheck.BaseURL+"events/login.password_failed.json" {
		t.Errorf("mapped to %s", ev.String())
	}

	unknown := []byte(`{"id":"01JBBBBBBBBBBBBBBBBBBBBBBB","type":"fraud.source_throttled","version":2,"account_id":"","occurred_at":"2026-03-01T09:30:00Z","data":{"prefix":"192.0.2.0/24"}}`)
	if ce, err = toCloudEvent("auth", -1, 7, unknown); err != nil {
		t.Fatal(err)
	}
	line, _ = json.Marshal(ce)
	ev = parseCloudEvent(t, line)
	if ev.DataSchema() != "" || ev.Type() != "fr.ameli.auth.fraud.source_throttled" || ev.Extensions()["eventversion"] != int32(2) ||
		!jsonEqual(t, ev.Data(), []byte(`{"prefix":"192.0.2.0/24"}`)) || ev.Subject() != "" {
		t.Errorf("unknown type mapped to %s", ev.String())
	}

	for _, bad := range []string{`not json`, `{"type":"login.succeeded"}`, `{"id":"x"}`} {
		if _, err := toCloudEvent("auth", -1, 1, []byte(bad)); err == nil {
			t.Errorf("%s: exported", bad)
		}
	}
}
