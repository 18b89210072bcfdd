package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
)

// flowEnv is the dev stack with a client, reading mails from the catcher as
// a person reads their mailbox.
type flowEnv struct {
	t  *testing.T
	d  *Dev
	nc *nats.Conn
}

func newFlowEnv(t *testing.T) *flowEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := StartDev(context.Background(), devConfig(t, t.TempDir(), pgtestDB(t)), io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	if _, err := d.EnsureDemoAccount(context.Background()); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(d.NATS.Conn.ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &flowEnv{t: t, d: d, nc: nc}
}

func (f *flowEnv) req(subject string, body map[string]any) map[string]any {
	f.t.Helper()
	b, _ := json.Marshal(body)
	m, err := f.nc.Request(contract.Default.Command(subject), b, 10*time.Second)
	if err != nil {
		f.t.Fatalf("%s: %v", subject, err)
	}
	var rep map[string]any
	_ = json.Unmarshal(m.Data, &rep)
	if rep["ok"] != true {
		f.t.Fatalf("%s: %s", subject, m.Data)
	}
	return rep
}

// seen is the set of mails received so far; mail() waits for a newer one.
func (f *flowEnv) seen() map[string]bool {
	ids := map[string]bool{}
	for _, m := range f.d.Catcher.Messages() {
		ids[m.MessageID] = true
	}
	return ids
}

// mail waits for a mail to addr, not in before, whose subject contains subject.
func (f *flowEnv) mail(addr, subject string, before map[string]bool) catcher.Message {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := f.d.Catcher.Wait(ctx, func(m catcher.Message) bool {
		return catcher.To(addr)(m) && strings.Contains(m.Subject, subject) && !before[m.MessageID]
	})
	if err != nil {
		f.t.Fatalf("no mail %q to %s: %v", subject, addr, err)
	}
	return m
}

func (f *flowEnv) login(password string) string {
	f.t.Helper()
	before := f.seen()
	l := f.req("login.password", map[string]any{"nir": DemoNIR, "password": password})
	f.req("login.otp.send", map[string]any{"login_id": l["login_id"]})
	code := f.mail(DemoEmail, "code de sécurité", before).Code
	ok := f.req("login.otp.verify", map[string]any{"login_id": l["login_id"], "code": code})
	return ok["session"].(map[string]any)["token"].(string)
}

// The three flows of issue 5 end to end: commands, events, notifier, real
// SMTP into the catcher, codes and links read from the mails.
func TestPasswordChangeResetAndEmailChangeByMail(t *testing.T) {
	f := newFlowEnv(t)
	session := f.login(DemoPassword)

	// Password change: a 4-digit code by mail, then the "modifié" mail.
	n := f.seen()
	f.req("password.change.start", map[string]any{"session": session})
	code := f.mail(DemoEmail, "modifier le mot de passe", n).Code
	if len(code) != 4 {
		t.Fatalf("confirmation code %q", code)
	}
	f.req("password.change.verify_code", map[string]any{"session": session, "code": code})
	n = f.seen()
	f.req("password.change.complete", map[string]any{"session": session, "new_password": "lampe-orage-violon"})
	changed := f.mail(DemoEmail, "a été modifié", n)
	if !strings.Contains(changed.Text, "Le mot de passe de votre compte ameli a été modifié le ") || !strings.Contains(changed.Text, "(heure de Paris)") {
		t.Fatalf("password changed mail:\n%s", changed.Text)
	}

	// Forgotten password: the link in the mail sets a new one.
	n = f.seen()
	f.req("password.reset.request", map[string]any{"nir": DemoNIR})
	link := f.mail(DemoEmail, "Réinitialisation", n).Link
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("reset link %q", link)
	}
	n = f.seen()
	f.req("password.reset.complete", map[string]any{"token": u.Query().Get("token"), "new_password": "nuage-brique-saumon"})
	f.mail(DemoEmail, "a été modifié", n)
	session = f.login("nuage-brique-saumon")

	// Email change: a code to the new address, a notice to the old one.
	n = f.seen()
	f.req("email.change", map[string]any{"session": session, "new_email": "valerie.nouvelle@exemple.fr"})
	ecode := f.mail("valerie.nouvelle@exemple.fr", "nouvelle adresse", n).Code
	n = f.seen()
	f.req("email.confirm", map[string]any{"session": session, "code": ecode})
	notice := f.mail(DemoEmail, "adresse mail de votre compte ameli a été modifiée", n)
	if strings.Contains(notice.Text, "valerie.nouvelle@exemple.fr") {
		t.Fatal("the notice to the old address must show the new one masked, not in clear")
	}
}
