package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// retentionTTL stands for AUTH_ATTEMPTS_RETENTION on the server's side: the
// messages' TTL passes in real time, in seconds; the harness clock then
// moves 12 months for the rules.
const retentionTTL = 2 * time.Second

// Login attempts leave the stream once their retention has passed, and the
// account loses nothing: it logs in with its password, its expired trusted
// device asks for the code again (6 months, past), and the two wrong codes
// typed before the retention still count (the counter has no time limit,
// only a success or an adviser clears it): one more wrong code blocks.
// Both the instance that saw everything (its cache ahead of the stream's
// last kept event) and a fresh one (reading the snapshot) decide so.
func TestAttemptsExpireAndTheAccountKeepsItsState(t *testing.T) {
	h := &harness{commandstest.Start(t, commandstest.Options{AttemptsTTL: retentionTTL, Configure: func(c *commands.Config) {
		c.AttemptsRetention = 8760 * time.Hour
	}})}
	ctx := context.Background()
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	loginID := h.StartLogin(nir1, password)
	remembered := h.Req(contract.CmdLoginOTPVerify, obj{"login_id": loginID, "code": h.LastCode(acc), "remember_device": true})
	if !remembered.OK || remembered.DeviceToken == "" {
		t.Fatalf("remember this device: %+v", remembered.Error)
	}
	wantError(t, h.Req(contract.CmdLoginPassword, obj{"nir": nir1, "password": "pas-le-bon"}), domain.CodeInvalidCredentials)
	loginID = h.StartLogin(nir1, password)
	for range 2 {
		wantError(t, h.Req(contract.CmdLoginOTPVerify, obj{"login_id": loginID, "code": wrongCode(h.LastCode(acc), 1)}), domain.CodeOTPInvalid)
	}
	// A second account, whose state only the first instance has in its
	// cache once its attempts expire.
	acc2 := h.Register(nir2, "jean@exemple.fr", password)
	h.Login(acc2, nir2, password)
	recorded := h.History(acc)
	if len(recorded) != 9 {
		t.Fatalf("%d events recorded, want 9: %v", len(recorded), types(recorded))
	}

	// Only the attempts carry a TTL; the registration stays.
	stream, err := h.JS.Stream(ctx, h.Store.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.GetMsg(ctx, 1)
	if err != nil || first.Header.Get(jetstream.MsgTTLHeader) != "" {
		t.Fatalf("account.registered: TTL header %q (%v), want none", first.Header.Get(jetstream.MsgTTLHeader), err)
	}
	last, err := stream.GetLastMsgForSubject(ctx, h.Store.Subject(acc))
	if err != nil || last.Header.Get(jetstream.MsgTTLHeader) == "" {
		t.Fatalf("login.otp_failed: no TTL header (%v)", err)
	}
	// The coverer writes a snapshot that covers the last attempt before it
	// can expire (a quarter of its TTL after its append).
	testwait.For(t, "a snapshot to cover the last attempt", 10*time.Second, func() bool {
		seq, _, err := h.Store.Snapshots().Get(ctx, acc)
		return err == nil && seq == last.Sequence
	})

	testwait.For(t, "the attempts to expire", 10*time.Second, func() bool {
		return len(h.History(acc)) == 1 && len(h.History(acc2)) == 1
	})
	if got := h.History(acc); got[0].Type != events.TypeAccountRegistered {
		t.Fatalf("left in the stream: %v", types(got))
	}
	h.Clock.Advance(365 * 24 * time.Hour)
	h.AddInstance(testPolicy())

	// A fresh instance reads the account from the snapshot that covers
	// the expired attempts.
	fresh := 1
	req := func(cmd string, body obj) Reply { return decode(t, h.Handle(fresh, cmd, mustJSON(t, body))) }
	rep := req(contract.CmdLoginPassword, obj{"nir": nir1, "password": password, "device_token": remembered.DeviceToken})
	if !rep.OK || rep.Status != contract.StatusOTPRequired {
		t.Fatalf("login with the expired device: %+v %+v, want otp_required", rep, rep.Error)
	}
	if send := req(contract.CmdLoginOTPSend, obj{"login_id": rep.LoginID}); !send.OK {
		t.Fatalf("code: %+v", send.Error)
	}
	blocked := req(contract.CmdLoginOTPVerify, obj{"login_id": rep.LoginID, "code": wrongCode(h.LastCode(acc), 1)})
	wantError(t, blocked, domain.CodeAccountLocked)
	if blocked.Error.Reason != domain.ReasonOTPFailures {
		t.Fatalf("blocked for %q, want %q", blocked.Error.Reason, domain.ReasonOTPFailures)
	}
	// The instance that saw it all has the second account in its cache,
	// ahead of the stream's last kept event: it appends after that one.
	rep = decode(t, h.Handle(0, contract.CmdLoginPassword, mustJSON(t, obj{"nir": nir2, "password": password})))
	if !rep.OK || rep.Status != contract.StatusOTPRequired {
		t.Fatalf("second account, first instance: %+v %+v, want otp_required", rep, rep.Error)
	}
	h.Clock.Advance(time.Hour)
	if session := h.Login(acc, nir1, password); session == "" {
		t.Fatal("no session after the block")
	}
}

// With a retention, only attempts get a snapshot: the coverer covers an
// attempt whose snapshot was never written (appended here without the
// service, as after a crash), while a tail of events that never expire,
// such as an imported account's registration alone, gets no snapshot key,
// even when a fresh instance loads the account cold (each key costs
// nats-server memory for good: docs/scale.md).
func TestOnlyAttemptsGetASnapshot(t *testing.T) {
	h := &harness{commandstest.Start(t, commandstest.Options{AttemptsTTL: time.Hour, Configure: func(c *commands.Config) {
		c.AttemptsRetention = 8760 * time.Hour
		c.CoverDelay = time.Millisecond
	}})}
	ctx := context.Background()
	registered := h.Register(nir1, "valerie@yahoo.fr", password)
	attempted := h.Register(nir2, "jean@exemple.fr", password)
	// An attempt whose snapshot was never written: appended without the service.
	last, err := h.Store.LastSeq(ctx, attempted)
	if err != nil {
		t.Fatal(err)
	}
	failed := events.Wrap(attempted, events.PasswordFailed{Failures: 1, At: commandstest.T0}, commandstest.T0, events.Metadata{Channel: "web"})
	res, err := h.Store.Append(ctx, attempted, last, failed, "")
	if err != nil {
		t.Fatal(err)
	}
	fresh := len(h.Svcs)
	h.AddInstance(testPolicy())
	for _, acc := range []string{registered, attempted} {
		rep := decode(t, h.Handle(fresh, contract.CmdAccountSetAffiliation, mustJSON(t, obj{"account_id": acc, "affiliation": "active", "channel": "backoffice"})))
		if !rep.OK {
			t.Fatalf("set affiliation of %s: %+v", acc, rep.Error)
		}
	}
	testwait.For(t, "the coverer to cover the attempt", 10*time.Second, func() bool {
		seq, _, err := h.Store.Snapshots().Get(ctx, attempted)
		return err == nil && seq == res.Seq
	})
	if n := len(h.History(registered)); n != 1 {
		t.Fatalf("%d events for the registered account, want its registration alone", n)
	}
	if seq, _, err := h.Store.Snapshots().Get(ctx, registered); !errors.Is(err, eventstore.ErrNotFound) {
		t.Errorf("registration alone: snapshot at %d (%v), want none", seq, err)
	}
}

// A retention shorter than what the rules look back at is refused.
func TestARetentionShorterThanTheRulesIsRefused(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	cfg := commands.Config{Keys: h.Keys, Store: h.Store, Index: h.Store.Index(), Snapshots: h.Store.Snapshots(), Shadows: h.Store.Shadows(),
		Sources: h.Store.Sources(), Fraud: h.Store.Fraud(),
		Policy: testPolicy(), AttemptsRetention: 90 * 24 * time.Hour}
	if _, err := commands.New(cfg); err == nil {
		t.Fatal("a 90-day retention was accepted; trusted devices last 6 months")
	}
	cfg.AttemptsRetention = testPolicy().AttemptsMemory()
	if _, err := commands.New(cfg); err != nil {
		t.Fatalf("the policy's own memory: %v", err)
	}
}

func types(envs []events.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.Type
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b []byte) Reply {
	t.Helper()
	var r Reply
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("reply %s: %v", b, err)
	}
	return r
}
