package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// The banner's rule, read from the account's events alone.
func TestDemoPasswordShownOnlyWhileItOpensTheAccount(t *testing.T) {
	rec := func(e events.Event) eventstore.Record { return eventstore.Record{Envelope: events.Envelope{Data: e}} }
	registered := rec(events.AccountRegistered{PasswordHash: "demo-hash"})
	opens := func(hash string) bool { return hash == "demo-hash" || hash == "demo-rehash" }
	for _, c := range []struct {
		name string
		recs []eventstore.Record
		want string
	}{
		{"just_registered_shows_it", []eventstore.Record{registered}, ""},
		{"a_rehash_at_login_is_the_same_password", []eventstore.Record{registered, rec(events.PasswordVerified{NewPasswordHash: "demo-rehash"})}, ""},
		{"a_change_or_a_reset_hides_it_without_hashing", []eventstore.Record{registered, rec(events.PasswordChanged{Method: events.MethodReset, PasswordHash: "demo-hash"})}, "changed"},
		{"a_deactivated_account_hides_it", []eventstore.Record{registered, rec(events.AccountDeactivated{})}, "deactivated"},
		{"reactivated_with_the_demo_password_shows_it_again",
			[]eventstore.Record{registered, rec(events.PasswordChanged{PasswordHash: "other"}), rec(events.AccountDeactivated{}), rec(events.AccountReactivated{PasswordHash: "demo-hash"})}, ""},
		{"reactivated_with_another_password_hides_it", []eventstore.Record{registered, rec(events.AccountDeactivated{}), rec(events.AccountReactivated{PasswordHash: "other"})}, "unknown"},
		{"registered_by_someone_else_hides_it", []eventstore.Record{rec(events.AccountRegistered{PasswordHash: "other"})}, "unknown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := demoHidden(c.recs, opens); got != c.want {
				t.Fatalf("hidden = %q, want %q", got, c.want)
			}
		})
	}
}

// In the real dev stack: the demo password is shown, then no longer once
// it was reset, and across a restart; dev.json says where dev mode is
// while it runs, demo.json keeps the demo account, both private.
func TestDevModeTellsTheTruthAcrossRestarts(t *testing.T) {
	varDir, dbURL := t.TempDir(), pgtestDB(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	d, err := StartDev(ctx, devConfig(t, varDir, dbURL), io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.EnsureDemoAccount(ctx); err != nil {
		t.Fatal(err)
	}
	truth, err := d.DemoPasswordTruth(ctx)
	if err != nil || truth.Password != DemoPassword || truth.Hidden != "" {
		t.Fatalf("fresh demo account: %+v, %v", truth, err)
	}
	st, running, err := RunningDev(varDir)
	if err != nil || !running || st.NATSURL != d.NATS.Conn.ConnectedUrl() || st.DatabaseURL != dbURL {
		t.Fatalf("dev.json: %+v running=%v err=%v", st, running, err)
	}
	for _, f := range []string{DevStatePath(varDir), demoPath(varDir)} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}

	// Forgotten password: the link's token, read from the stream as the
	// notifier does, sets another password.
	handle := func(subject string, body map[string]any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		var rep map[string]any
		_ = json.Unmarshal(d.Commands.Service.Handle(ctx, subject, b), &rep)
		if rep["ok"] != true {
			t.Fatalf("%s: %v", subject, rep)
		}
		return rep
	}
	handle("password.reset.request", map[string]any{"nir": DemoNIR})
	demo, _ := readDemo(varDir)
	keys, _ := d.Config.Keys()
	recs, err := d.Commands.Store.Load(ctx, demo.AccountID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, r := range recs {
		if e, ok := r.Envelope.Data.(events.PasswordResetRequested); ok {
			token, _ = keys.Open(e.TokenSealed, demo.AccountID)
		}
	}
	handle("password.reset.complete", map[string]any{"token": token, "new_password": "jument-trombone-cerise"})
	if truth, err := d.DemoPasswordTruth(ctx); err != nil || truth.Password != "" || truth.Hidden != "changed" {
		t.Fatalf("after a reset: %+v, %v", truth, err)
	}
	d.Stop(ctx)
	if _, running, _ := RunningDev(varDir); running {
		t.Fatal("dev.json outlived dev mode")
	}

	again, err := StartDev(ctx, devConfig(t, varDir, dbURL), io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Stop(ctx)
	if created, err := again.EnsureDemoAccount(ctx); err != nil || created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if truth, err := again.DemoPasswordTruth(ctx); err != nil || truth.Password != "" || truth.Hidden != "changed" {
		t.Fatalf("after a restart: %+v, %v", truth, err)
	}
}

// The demo identity agrees with the demo NIR, or the first dev start
// could not register the demo account.
func TestDemoIdentityMatchesTheDemoNIR(t *testing.T) {
	nir, err := domain.ParseNIR(DemoNIR)
	if err != nil {
		t.Fatal(err)
	}
	id := domain.Identity{GivenName: DemoIdentity["given_name"], FamilyName: DemoIdentity["family_name"], Birthdate: DemoIdentity["birthdate"],
		Gender: DemoIdentity["gender"], Birthplace: DemoIdentity["birthplace"], Birthcountry: DemoIdentity["birthcountry"]}
	if _, err := domain.CheckIdentity(nir, id); err != nil {
		t.Fatal(err)
	}
}
