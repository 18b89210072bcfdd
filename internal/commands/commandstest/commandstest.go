// Package commandstest runs the commands service on an embedded
// nats-server for tests, as in production: requests go through NATS and
// events to JetStream. The tests of internal/commands, internal/cli and
// internal/app share it instead of wiring the service each on its own.
//
// When the test ends, every reply it received through the harness and
// every event in the stream are validated against the JSON Schemas of
// schemas/ (SPEC section 5).
package commandstest

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
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// T0 is the harness clock's start: Thursday 5 January 2023, 14:30 in Paris.
var T0 = time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)

// MasterKey is the services' AUTH_SECRET_KEY (32 bytes) in tests.
var MasterKey = []byte("0123456789abcdef0123456789abcdef")

// CheapArgon2 keeps tests fast; the rules do not depend on the cost.
var CheapArgon2 = domain.Argon2Params{Memory: 256, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// Policy is the seed's policy with CheapArgon2.
func Policy() domain.Policy {
	p := domain.SeedPolicy()
	p.Argon2 = CheapArgon2
	return p
}

// Obj is a request body.
type Obj = map[string]any

// Options shape a harness. Zero values take the defaults.
type Options struct {
	Instances int           // service instances, each on its own connection; 1 by default
	Policy    domain.Policy // Policy() by default
	// Configure, if set, changes each instance's configuration before it
	// starts (a hash observer, the dev clock, a failing store...).
	Configure func(*commands.Config)
	// Cluster, if set, replaces the single embedded server: the stream and
	// buckets get one replica per node, and each connection goes to a node
	// of its own (see cluster.go).
	Cluster *natsutil.TestCluster
	// FrontEnd is the node of NC when Cluster is set.
	FrontEnd int
	// AttemptsTTL is the store's eventstore.JetStreamConfig.AttemptsTTL:
	// login attempts leave the stream after it (retention tests; the
	// instances' Config.AttemptsRetention is Configure's to set).
	AttemptsTTL time.Duration
	// Partitions, if more than 1, puts the events in that many partitions
	// (AUTH_PARTITIONS, eventstore.Partitioned): the streams AUTH_EVENTS_0
	// to _N-1 instead of AUTH_EVENTS.
	Partitions int
	// Replicas, with Cluster, is the stream's and buckets' replicas;
	// default one per node.
	Replicas int
	// Server, if set (and Cluster not), is the embedded server to use
	// instead of starting one: a harness after another on the same
	// streams (a migration's tests).
	Server *server.Server
	// Placement is the store's placement tags per partition
	// (AUTH_PARTITION_PLACEMENT, eventstore.JetStreamConfig.Placement).
	Placement contract.Placement
}

// Harness is the commands service on an embedded nats-server with a fixed
// clock at T0 (Clock.Advance moves it) and no response floor.
type Harness struct {
	T      testing.TB
	Server *server.Server
	NC     *nats.Conn // the front-ends' connection
	JS     jetstream.JetStream
	// Store is the events store; with Options.Partitions, partition 0's,
	// and Parts has them all (History, StreamCount and the schema check
	// read every partition).
	Store *eventstore.JetStream
	Parts *eventstore.Partitioned // nil with one partition
	Keys  *secrets.Keys
	Clock *clock.Fixed
	Svcs  []*commands.Service // every instance started, stopped ones included
	// Cluster is Options.Cluster (Server is nil then); SvcNodes[i] is the
	// node Svcs[i] first connected to.
	Cluster  *natsutil.TestCluster
	SvcNodes []int

	configure func(*commands.Config)

	mu             sync.Mutex
	replies        []json.RawMessage // every reply received, for the schema check
	schemasChecked bool
}

// Start starts the server and the instances; everything stops when the
// test ends.
func Start(tb testing.TB, o Options) *Harness {
	tb.Helper()
	if o.Instances == 0 {
		o.Instances = 1
	}
	if o.Policy.Name == "" {
		o.Policy = Policy()
	}
	srv, nc, storeCfg := startNATS(tb, o)
	storeCfg.AttemptsTTL = o.AttemptsTTL
	storeCfg.Placement = o.Placement
	js, err0 := jetstream.New(nc)
	if err0 != nil {
		tb.Fatal(err0)
	}
	var store *eventstore.JetStream
	var parts *eventstore.Partitioned
	var err error
	if o.Partitions > 1 {
		storeCfg.Partitions = o.Partitions
		parts, err = eventstore.OpenPartitioned(context.Background(), js, storeCfg)
		if err == nil {
			store = parts.Partitions()[0]
		}
	} else {
		store, err = eventstore.OpenJetStream(context.Background(), js, storeCfg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := secrets.NewKeys(MasterKey)
	if err != nil {
		tb.Fatal(err)
	}
	h := &Harness{T: tb, Server: srv, NC: nc, JS: js, Store: store, Parts: parts, Keys: keys, Clock: clock.NewFixed(T0), configure: o.Configure, Cluster: o.Cluster}
	// Cleanups run last in, first out: registered here, the schema check runs
	// after every instance has stopped (nothing more is appended) and before
	// NC and the test server, registered earlier, go away.
	tb.Cleanup(h.CheckSchemas)
	for range o.Instances {
		h.AddInstance(o.Policy)
	}
	return h
}

// AddInstance starts one more service instance on its own connection.
func (h *Harness) AddInstance(policy domain.Policy) *commands.Service {
	h.T.Helper()
	cfg := commands.Config{Policy: policy, Keys: h.Keys, Store: h.Store, Index: h.Store.Index(), Snapshots: h.Store.Snapshots(),
		Shadows: h.Store.Shadows(), Sources: h.Store.Sources(), Fraud: h.Store.Fraud(), Clock: h.Clock, ResponseFloor: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if h.Parts != nil {
		cfg.Store, cfg.Index, cfg.Snapshots, cfg.Shadows = h.Parts, h.Parts.Index(), h.Parts.Snapshots(), h.Parts.Shadows()
		cfg.Sources, cfg.Fraud = h.Parts.Sources(), h.Parts.Fraud()
	}
	if h.configure != nil {
		h.configure(&cfg)
	}
	svc, err := commands.New(cfg)
	if err != nil {
		h.T.Fatal(err)
	}
	if err := svc.Start(h.instanceConn()); err != nil {
		h.T.Fatal(err)
	}
	h.T.Cleanup(func() { _ = svc.Stop() })
	h.Svcs = append(h.Svcs, svc)
	return svc
}

// Raw sends a command's body as is and returns the raw reply.
func (h *Harness) Raw(command string, body []byte) []byte {
	h.T.Helper()
	return h.RawSubject(contract.Default.Command(command), body)
}

// RawSubject sends body on a full subject (the dev clock's, say) and
// returns the raw reply, kept for the schema check.
func (h *Harness) RawSubject(subject string, body []byte) []byte {
	h.T.Helper()
	msg, err := h.NC.Request(subject, body, 10*time.Second)
	if err != nil {
		h.T.Fatalf("request %s: %v", subject, err)
	}
	h.keep(msg.Data)
	return msg.Data
}

func (h *Harness) keep(reply []byte) {
	h.mu.Lock()
	h.replies = append(h.replies, json.RawMessage(reply))
	h.mu.Unlock()
}

// Handle runs a command on one instance (as if the queue group had sent
// it there, for cross-instance tests) and keeps the reply for the schema
// check.
func (h *Harness) Handle(instance int, command string, body []byte) []byte {
	raw := h.Svcs[instance].Handle(context.Background(), command, body)
	h.keep(raw)
	return raw
}

// Req sends a command and decodes its reply.
func (h *Harness) Req(command string, body any) contract.AnyReply {
	h.T.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.T.Fatal(err)
	}
	var rep contract.AnyReply
	if err := json.Unmarshal(h.Raw(command, b), &rep); err != nil {
		h.T.Fatalf("decode reply of %s: %v", command, err)
	}
	return rep
}

// ReqAsync is Req for a goroutine other than the test's (which must not
// fail the test): a request that gets no readable reply comes back as an
// `unavailable` refusal.
func (h *Harness) ReqAsync(command string, body any) contract.AnyReply {
	failed := contract.AnyReply{Error: &contract.ErrorBody{Code: domain.CodeUnavailable, Message: "request failed"}}
	b, err := json.Marshal(body)
	if err != nil {
		return failed
	}
	msg, err := h.NC.Request(contract.Default.Command(command), b, 10*time.Second)
	if err != nil {
		return failed
	}
	h.keep(msg.Data)
	var rep contract.AnyReply
	if json.Unmarshal(msg.Data, &rep) != nil {
		return failed
	}
	return rep
}

// Register registers an active account with a validated email (from the
// back-office channel) and returns its id.
func (h *Harness) Register(nir, email, password string) string {
	h.T.Helper()
	rep := h.Req(contract.CmdAccountRegister, Obj{"nir": nir, "email": email, "password": password, "email_validated": true, "affiliation": "active", "channel": "backoffice"})
	if !rep.OK {
		h.T.Fatalf("register: %+v", rep.Error)
	}
	return rep.AccountID
}

// History returns the account's events as stored.
func (h *Harness) History(accountID string) []events.Envelope {
	h.T.Helper()
	var store eventstore.Store = h.Store
	if h.Parts != nil {
		store = h.Parts
	}
	recs, err := store.Load(context.Background(), accountID, 0)
	if err != nil {
		h.T.Fatal(err)
	}
	out := make([]events.Envelope, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Envelope)
	}
	return out
}

// LastEvent returns the account's latest event of a type.
func (h *Harness) LastEvent(accountID, eventType string) events.Event {
	h.T.Helper()
	envs := h.History(accountID)
	for i := len(envs) - 1; i >= 0; i-- {
		if envs[i].Type == eventType {
			return envs[i].Data
		}
	}
	h.T.Fatalf("no %s event", eventType)
	return nil
}

// Open opens a value sealed for the account (a code, a token, an address),
// as the notifier does.
func (h *Harness) Open(sealed, accountID string) string {
	h.T.Helper()
	v, err := h.Keys.Open(sealed, accountID)
	if err != nil {
		h.T.Fatal(err)
	}
	return v
}

// LastCode reads the latest security code the way the notifier does: from
// the sealed copy in the account's last login.otp_issued event.
func (h *Harness) LastCode(accountID string) string {
	h.T.Helper()
	return h.Open(h.LastEvent(accountID, events.TypeOTPIssued).(events.OTPIssued).CodeSealed, accountID)
}

// StartLogin runs the password step and the code send, and returns the
// login_id.
func (h *Harness) StartLogin(nir, password string) string {
	h.T.Helper()
	rep := h.Req(contract.CmdLoginPassword, Obj{"nir": nir, "password": password})
	if !rep.OK || rep.Status != contract.StatusOTPRequired {
		h.T.Fatalf("login.password: %+v %+v", rep, rep.Error)
	}
	if send := h.Req(contract.CmdLoginOTPSend, Obj{"login_id": rep.LoginID}); !send.OK {
		h.T.Fatalf("login.otp.send: %+v", send.Error)
	}
	return rep.LoginID
}

// Login runs a whole login on the web and returns the session token.
func (h *Harness) Login(accountID, nir, password string) string {
	h.T.Helper()
	loginID := h.StartLogin(nir, password)
	rep := h.Req(contract.CmdLoginOTPVerify, Obj{"login_id": loginID, "code": h.LastCode(accountID)})
	if !rep.OK {
		h.T.Fatalf("login: %+v", rep.Error)
	}
	return rep.Session.Token
}

// streams are the events streams' names, partition 0 first.
func (h *Harness) streams() []string {
	if h.Parts == nil {
		return []string{h.Store.StreamName()}
	}
	return h.Parts.Layout().Streams()
}

// StreamCount is the number of messages in the events streams.
func (h *Harness) StreamCount() uint64 {
	h.T.Helper()
	var n uint64
	for _, name := range h.streams() {
		st, err := h.JS.Stream(context.Background(), name)
		if err != nil {
			h.T.Fatal(err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			h.T.Fatal(err)
		}
		n += info.State.Msgs
	}
	return n
}

// Count is the number of envelopes of a type.
func Count(envs []events.Envelope, eventType string) int {
	n := 0
	for _, e := range envs {
		if e.Type == eventType {
			n++
		}
	}
	return n
}

// WantError fails the test unless rep is a refusal with that code.
func WantError(tb testing.TB, rep contract.AnyReply, code string) {
	tb.Helper()
	if rep.OK || rep.Error == nil || rep.Error.Code != code {
		got := "ok " + rep.Status
		if rep.Error != nil {
			got = rep.Error.Code + " " + rep.Error.Field + ": " + rep.Error.Message
		}
		tb.Fatalf("want %s, got %s", code, got)
	}
}

// CheckSchemas validates every reply the test received through the
// harness and every event in the stream, as stored, against the JSON
// Schemas of schemas/. It runs once, when the test ends; a test that
// restarts the server calls it itself before the restarted server stops.
func (h *Harness) CheckSchemas() {
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
				h.T.Errorf("reply does not match replies/reply.json: %v\n%s", err, raw)
			}
		}
	}
	if bad > maxReported {
		h.T.Errorf("%d replies in all do not match their schema", bad)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad = 0
	for _, name := range h.streams() {
		if !h.checkStreamSchemas(ctx, name, &bad) {
			return
		}
	}
	if bad > maxReported {
		h.T.Errorf("%d events in all do not match their schema", bad)
	}
}

// checkStreamSchemas validates every event of one stream, counting the bad
// ones in bad; false if the stream could not be read.
func (h *Harness) checkStreamSchemas(ctx context.Context, name string, bad *int) bool {
	const maxReported = 10
	stream, err := h.JS.Stream(ctx, name)
	if err != nil {
		h.T.Errorf("schema check: open stream %s: %v", name, err)
		return false
	}
	info, err := stream.Info(ctx)
	if err != nil {
		h.T.Errorf("schema check: stream info: %v", err)
		return false
	}
	if info.State.Msgs == 0 {
		return true
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			h.T.Errorf("schema check: read event %d of %s: %v", seq, name, err)
			return false
		}
		if err := schemacheck.ValidateEvent(msg.Data); err != nil {
			if *bad++; *bad <= maxReported {
				h.T.Errorf("event %d on %s does not match its schema: %v\n%s", seq, msg.Subject, err, msg.Data)
			}
		}
	}
	return true
}
