package commands_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// fuzzNIR is the account registered before fuzzing, so that requests
// naming it go through a real account, not only shadow states.
const (
	fuzzNIR      = "1840375123456"
	fuzzPassword = "motdepasse-fuzz-1"
)

// newFuzzService is the commands service on in-memory stores (no NATS:
// Handle runs a request as the endpoint would), with cheap hashes, hash
// ceilings that keep any imported hash cheap, and no response floor.
func newFuzzService(f *testing.F) *commands.Service {
	keys, err := secrets.NewKeys(commandstest.MasterKey)
	if err != nil {
		f.Fatal(err)
	}
	policy := commandstest.Policy()
	policy.HashLimits = domain.HashLimits{Argon2MaxMemoryKiB: 64, Argon2MaxTime: 1, Argon2MaxThreads: 1,
		Argon2MaxKeyLen: 64, Argon2MaxSaltLen: 64, BcryptMaxCost: 4}
	mem := eventstore.NewMemory()
	svc, err := commands.New(commands.Config{Policy: policy, Keys: keys, Store: mem, Index: mem.Index(),
		Snapshots: mem.Snapshots(), Shadows: eventstore.NewMemoryShadows(), Clock: clock.NewFixed(commandstest.T0),
		Sources: eventstore.NewMemorySources(), Fraud: &eventstore.MemoryFraud{},
		ResponseFloor: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = svc.Stop() })
	rep := svc.Handle(context.Background(), contract.CmdAccountRegister, []byte(`{"nir":"`+fuzzNIR+`","email":"fuzz@exemple.fr","password":"`+
		fuzzPassword+`","email_validated":true,"affiliation":"active","channel":"backoffice"}`))
	var r contract.AnyReply
	if err := json.Unmarshal(rep, &r); err != nil || !r.OK {
		f.Fatalf("register: %s", rep)
	}
	return svc
}

// FuzzHandle sends any bytes to every command subject (and an unknown one)
// of a service on in-memory stores: Handle never panics (a handler's panic
// would be answered `unavailable` by safely, which this target also
// refuses) and always answers one JSON object that validates against
// schemas/replies/reply.json.
func FuzzHandle(f *testing.F) {
	svc := newFuzzService(f)
	subjects := append(contract.Commands(), "no.such.command")
	index := map[string]uint8{}
	for i, s := range subjects {
		index[s] = uint8(i)
	}
	// Each realistic body on its command; the nasty ones on every command.
	for _, seed := range []struct{ subject, body string }{
		{contract.CmdLoginPassword, `{"nir":"` + fuzzNIR + `","password":"` + fuzzPassword + `"}`},
		{contract.CmdLoginPassword, `{"nir":"1 84 03 75 123 456 12","password":"faux","channel":"app","device_id":"d1"}`},
		{contract.CmdLoginPassword, `{"nir":"2840375123456","password":"x","request_id":"r-1"}`},
		{contract.CmdLoginOTPSend, `{"login_id":"AAAA"}`},
		{contract.CmdLoginOTPVerify, `{"login_id":"AAAA","code":"123 456","remember_device":true}`},
		{contract.CmdSessionCheck, `{"session":"s"}`},
		{contract.CmdSessionLogout, `{"session":"s"}`},
		{contract.CmdAccountRegister, `{"nir":"2 84 03 2A 123 456","email":"a@b.fr","password":"motdepasse-long","email_validated":true,"affiliation":"active"}`},
		{contract.CmdAccountImport, `{"nir":"1840375123457","email":"a@b.fr","password_hash":"$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy","email_validated":false,"affiliation":"active","channel":"backoffice"}`},
		{contract.CmdAccountImport, `{"nir":"1840375123458","email":"a@b.fr","password_hash":"$argon2id$v=19$m=1048576,t=9,p=4$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA","affiliation":"active","channel":"backoffice"}`},
		{contract.CmdAccountImportBatch, `{"rows":[{"nir":"1840375123460","email":"a@b.fr","password_hash":"$2a$04$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy","email_validated":true,"affiliation":"active"},{"nir":"` + fuzzNIR + `","email":"a@b.fr","password_hash":"md5:x","email_validated":true,"affiliation":"none"}],"channel":"backoffice","request_id":"b-1"}`},
		{contract.CmdAccountDeactivate, `{"nir":"` + fuzzNIR + `","channel":"backoffice","reason":"décès"}`},
		{contract.CmdAccountSetAffiliation, `{"nir":"` + fuzzNIR + `","affiliation":"suspended","channel":"backoffice"}`},
		{contract.CmdAccountUnlock, `{"account_id":"01GNNA1J5X1V2RZ3E9W5YQ8K6T","nir":"` + fuzzNIR + `","channel":"backoffice"}`},
		{contract.CmdAccountRevokeBiometrics, `{"nir":"` + fuzzNIR + `","device_id":"d","channel":"backoffice"}`},
		{contract.CmdPasswordChangeStart, `{"session":"s","current_password":"x"}`},
		{contract.CmdPasswordChangeVerifyCode, `{"session":"s","code":"000000"}`},
		{contract.CmdPasswordChangeComplete, `{"session":"s","new_password":"nouveau-mot-de-passe"}`},
		{contract.CmdPasswordResetRequest, `{"nir":"` + fuzzNIR + `"}`},
		{contract.CmdPasswordResetComplete, `{"token":"t","new_password":"nouveau-mot-de-passe"}`},
		{contract.CmdEmailChange, `{"session":"s","new_email":"b@c.fr"}`},
		{contract.CmdEmailConfirm, `{"session":"s","code":"123456"}`},
		{contract.CmdBiometricOffer, `{"session":"s","response":"accept","channel":"app"}`},
		{contract.CmdBiometricEnroll, `{"session":"s","device_id":"d","public_key":"AAAA","channel":"app"}`},
		{contract.CmdBiometricChallenge, `{"device_id":"d","channel":"app"}`},
		{contract.CmdBiometricLogin, `{"device_id":"d","challenge":"c","signature":"s","channel":"app"}`},
		{"no.such.command", `{}`},
	} {
		f.Add(index[seed.subject], []byte(seed.body))
	}
	nasty := []string{
		`null`, `{}`, `[]`, ``, `{"x":1}`, "\xff", `{"nir":"` + fuzzNIR + `"}{}`,
	}
	for i := range subjects {
		f.Add(uint8(i), []byte(nasty[i%len(nasty)]))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		subject := subjects[int(which)%len(subjects)]
		rep := svc.Handle(context.Background(), subject, body)
		if !bytes.HasPrefix(rep, []byte("{")) || !json.Valid(rep) {
			t.Fatalf("%s %q: reply %q is not one JSON object", subject, body, rep)
		}
		if err := schemacheck.ValidateReply(rep); err != nil {
			t.Fatalf("%s %q: reply %s: %v", subject, body, rep, err)
		}
		var r contract.AnyReply
		if err := json.Unmarshal(rep, &r); err != nil {
			t.Fatalf("%s %q: reply %s: %v", subject, body, rep, err)
		}
		if !r.OK && r.Error != nil && r.Error.Code == domain.CodeUnavailable {
			t.Fatalf("%s %q: unavailable (a handler failed or panicked): %s", subject, body, rep)
		}
	})
}
