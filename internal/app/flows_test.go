package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/ops/opstest"
	"github.com/ameli-auth/authsvc/internal/testwait"
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

// Every metric of the whole stack, after logins, codes, a lockout, a NIR
// without an account, a password change, an email change, a reset link
// and web pages reached with a token and an address in their path: no
// label value holds a NIR, an email, an account id or a token of those
// flows (the NIR in any spelling), and the stack's one page is ready and
// serves them.
func TestMetricLabelsHoldNoPersonalData(t *testing.T) {
	f := newFlowEnv(t)
	raw := func(subject string, body map[string]any) {
		b, _ := json.Marshal(body)
		if _, err := f.nc.Request(contract.Default.Command(subject), b, 10*time.Second); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
	}
	demo, err := readDemo(f.d.Config.VarDir)
	if err != nil {
		t.Fatal(err)
	}
	before := f.seen()
	l := f.req("login.password", map[string]any{"nir": DemoNIR, "password": DemoPassword})
	loginID, _ := l["login_id"].(string)
	f.req("login.otp.send", map[string]any{"login_id": loginID})
	loginCode := f.mail(DemoEmail, "code de sécurité", before).Code
	ok := f.req("login.otp.verify", map[string]any{"login_id": loginID, "code": loginCode, "remember_device": true})
	session := ok["session"].(map[string]any)["token"].(string)
	device, _ := ok["device_token"].(string)

	before = f.seen()
	f.req("password.change.start", map[string]any{"session": session})
	changeCode := f.mail(DemoEmail, "modifier le mot de passe", before).Code
	f.req("password.change.verify_code", map[string]any{"session": session, "code": changeCode})
	const newEmail = "valerie.nouvelle@exemple.fr"
	before = f.seen()
	f.req("email.change", map[string]any{"session": session, "new_email": newEmail})
	emailCode := f.mail(newEmail, "nouvelle adresse", before).Code
	before = f.seen()
	f.req("password.reset.request", map[string]any{"nir": DemoNIR})
	link := f.mail(DemoEmail, "Réinitialisation", before).Link
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("reset link %q", link)
	}
	resetToken := u.Query().Get("token")

	const nir2, email2, unknownNIR = "1 84 12 76 451 089 46", "second@exemple.fr", "2 55 08 13 055 123 12"
	id2 := f.req("account.register", map[string]any{"nir": nir2, "email": email2, "password": DemoPassword,
		"email_validated": true, "affiliation": "active", "channel": "backoffice"})["account_id"].(string)
	for range 3 {
		raw("login.password", map[string]any{"nir": nir2, "password": "pas-le-bon-mot"})
		raw("login.password", map[string]any{"nir": unknownNIR, "password": "pas-le-bon-mot"})
	}
	for _, path := range []string{"/password/reset?token=" + url.QueryEscape(resetToken), "/" + email2, "/connexion"} {
		res, err := http.Get(f.d.Web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}

	// The stack's page is ready once the projector and the notifier have
	// caught up, and serves every component's metrics.
	if f.d.HTTPURL == "" {
		t.Fatal("the dev page is not served")
	}
	get := func(path string) (int, string) {
		res, err := http.Get(f.d.HTTPURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	testwait.Until(t, 30*time.Second, func() error {
		if code, body := get("/readyz"); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %q", code, body)
		}
		return nil
	})
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "auth_commands_total{") || !strings.Contains(body, "go_goroutines ") {
		t.Fatalf("/metrics: %d", code)
	}
	reg := f.d.Metrics
	for _, want := range []struct {
		name   string
		labels []string
	}{
		{"auth_lockouts_total", []string{"kind", "password"}},
		{"auth_codes_issued_total", []string{"kind", "login"}},
		{"auth_codes_issued_total", []string{"kind", "password_change"}},
		{"auth_codes_issued_total", []string{"kind", "email_change"}},
		{"auth_codes_issued_total", []string{"kind", "password_reset"}},
		{"auth_notifier_mails_total", []string{"kind", "login_code", "outcome", "sent"}},
		{"auth_notifier_mails_total", []string{"kind", "password_reset", "outcome", "sent"}},
		{"auth_projector_events_applied_total", nil},
		{"auth_projector_leader", nil},
		{"auth_web_requests_total", []string{"route", "GET /password/reset"}},
		{"auth_hash_queue_wait_seconds", nil},
		{"auth_nats_connected", []string{"conn", "auth-dev"}},
		{"auth_nats_connected", []string{"conn", "auth-web"}},
		{"auth_nats_connected", []string{"conn", "auth-notifier-subscriber"}},
	} {
		if opstest.Value(t, reg, want.name, want.labels...) < 1 {
			t.Errorf("%s%v not counted", want.name, want.labels)
		}
	}
	for _, family := range []string{"auth_consumer_lag_events", "auth_consumer_lag_seconds", "auth_nats_reconnects_total", "auth_events_appended_total"} {
		if !opstest.Families(t, reg)[family] {
			t.Errorf("no %s", family)
		}
	}
	labels := opstest.CheckLabels(t, reg, DemoNIR, nir2, unknownNIR, DemoEmail, email2, newEmail, demo.AccountID, id2,
		session, device, loginID, loginCode, changeCode, emailCode, resetToken, DemoPassword)
	t.Logf("%d label values checked", labels)
}
