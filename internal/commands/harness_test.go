package commands

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// Reply is a reply as the tests read it.
type Reply = contract.AnyReply

// cheapArgon2 keeps tests fast; the rules do not depend on the cost.
var cheapArgon2 = domain.Argon2Params{Memory: 256, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

func testPolicy() domain.Policy {
	p := domain.SeedPolicy()
	p.Argon2 = cheapArgon2
	return p
}

// t0 is a Thursday, 5 January 2023, 14:30 in Paris.
var t0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

// harness runs commands service instances over an embedded nats-server,
// as in production: requests go through NATS, events to JetStream.
type harness struct {
	t     testing.TB
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *eventstore.JetStream
	keys  *secrets.Keys
	clock *clock.Fixed
	svcs  []*Service

	mu      sync.Mutex
	replies []json.RawMessage // every reply seen, for the schema test

	schemasChecked bool
	configure      func(*Config) // applied to each instance's configuration
}

func newHarness(t testing.TB, instances int, policy domain.Policy) *harness {
	t.Helper()
	return newHarnessWith(t, instances, policy, nil)
}

// newHarnessWith is newHarness with each instance's configuration changed
// by configure.
func newHarnessWith(t testing.TB, instances int, policy domain.Policy, configure func(*Config)) *harness {
	t.Helper()
	srv := natsutil.RunTestServer(t)
	nc := natsutil.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.OpenJetStream(context.Background(), js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, nc: nc, js: js, store: store, keys: keys, clock: clock.NewFixed(t0), configure: configure}
	// Cleanups run last in, first out: registered here, the schema check runs
	// after every instance has stopped (nothing more is appended) and before
	// h.nc and the test server, registered earlier, go away.
	t.Cleanup(h.checkSchemas)
	for i := 0; i < instances; i++ {
		h.addInstance(policy)
	}
	return h
}

// checkSchemas validates every reply the test received and every event in
// the stream, as stored, against the JSON Schemas of schemas/ (SPEC section
// 5: every event the code can emit is checked against its schema).
func (h *harness) checkSchemas() {
	if h.schemasChecked {
		return
	}
	h.schemasChecked = true
	const maxReported = 10
	h.mu.Lock()
	replies := slices.Clone(h.replies)
	h.mu.Unlock()
	bad := 0
	for _, raw := range replies {
		if err := schemacheck.ValidateReply(raw); err != nil {
			if bad++; bad <= maxReported {
				h.t.Errorf("reply does not match replies/reply.json: %v\n%s", err, raw)
			}
		}
	}
	if bad > maxReported {
		h.t.Errorf("%d replies in all do not match their schema", bad)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := h.js.Stream(ctx, h.store.StreamName())
	if err != nil {
		h.t.Errorf("schema check: open stream: %v", err)
		return
	}
	info, err := stream.Info(ctx)
	if err != nil {
		h.t.Errorf("schema check: stream info: %v", err)
		return
	}
	if info.State.Msgs == 0 {
		return
	}
	bad = 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			h.t.Errorf("schema check: read event %d: %v", seq, err)
			return
		}
		if err := schemacheck.ValidateEvent(msg.Data); err != nil {
			if bad++; bad <= maxReported {
				h.t.Errorf("event %d on %s does not match its schema: %v\n%s", seq, msg.Subject, err, msg.Data)
			}
		}
	}
	if bad > maxReported {
		h.t.Errorf("%d events in all do not match their schema", bad)
	}
}

// addInstance starts one more service instance on its own connection.
func (h *harness) addInstance(policy domain.Policy) *Service {
	h.t.Helper()
	cfg := Config{Policy: policy, Keys: h.keys, Store: h.store, Index: h.store.Index(), Snapshots: h.store.Snapshots(),
		Shadows: h.store.Shadows(), Clock: h.clock, ResponseFloor: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if h.configure != nil {
		h.configure(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := svc.Start(natsutil.Connect(h.t, h.srv)); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = svc.Stop() })
	h.svcs = append(h.svcs, svc)
	return svc
}

// raw sends a request body as is and returns the raw reply.
func (h *harness) raw(subject string, body []byte) []byte {
	h.t.Helper()
	msg, err := h.nc.Request("auth.cmd."+subject, body, 10*time.Second)
	if err != nil {
		h.t.Fatalf("request %s: %v", subject, err)
	}
	h.mu.Lock()
	h.replies = append(h.replies, json.RawMessage(msg.Data))
	h.mu.Unlock()
	return msg.Data
}

// req sends a request and decodes its reply.
func (h *harness) req(subject string, body any) Reply {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	var rep Reply
	if err := json.Unmarshal(h.raw(subject, b), &rep); err != nil {
		h.t.Fatalf("decode reply of %s: %v", subject, err)
	}
	return rep
}

type obj = map[string]any

func (h *harness) register(nir, email, password string) string {
	h.t.Helper()
	rep := h.req("account.register", obj{"nir": nir, "email": email, "password": password, "email_validated": true, "affiliation": "active", "channel": "backoffice"})
	if !rep.OK {
		h.t.Fatalf("register: %+v", rep.Error)
	}
	return rep.AccountID
}

// history returns the account's events as stored.
func (h *harness) history(accountID string) []events.Envelope {
	h.t.Helper()
	recs, err := h.store.Load(context.Background(), accountID, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]events.Envelope, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Envelope)
	}
	return out
}

func count(envs []events.Envelope, eventType string) int {
	n := 0
	for _, e := range envs {
		if e.Type == eventType {
			n++
		}
	}
	return n
}

// lastCode reads the latest security code the way the notifier does: from
// the sealed copy in the account's last otp_issued event.
func (h *harness) lastCode(accountID string) string {
	h.t.Helper()
	envs := h.history(accountID)
	for i := len(envs) - 1; i >= 0; i-- {
		if e, ok := envs[i].Data.(events.OTPIssued); ok {
			code, err := h.keys.Open(e.CodeSealed, accountID)
			if err != nil {
				h.t.Fatal(err)
			}
			return code
		}
	}
	h.t.Fatal("no code issued")
	return ""
}

// streamCount is the number of messages in the stream.
func (h *harness) streamCount() uint64 {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), "AUTH_EVENTS")
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// login runs the password step and the code send, returning the login_id.
func (h *harness) startLogin(nir, password string) string {
	h.t.Helper()
	rep := h.req("login.password", obj{"nir": nir, "password": password})
	if !rep.OK || rep.Status != "otp_required" {
		h.t.Fatalf("login.password: %+v %+v", rep, rep.Error)
	}
	send := h.req("login.otp.send", obj{"login_id": rep.LoginID})
	if !send.OK {
		h.t.Fatalf("otp.send: %+v", send.Error)
	}
	return rep.LoginID
}

func wantError(t testing.TB, rep Reply, code string) {
	t.Helper()
	if rep.OK || rep.Error == nil || rep.Error.Code != code {
		got := "ok " + rep.Status
		if rep.Error != nil {
			got = rep.Error.Code + " " + rep.Error.Field + ": " + rep.Error.Message
		}
		t.Fatalf("want %s, got %s", code, got)
	}
}
