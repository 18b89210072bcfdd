package notifier_test

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/notifier"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

func TestSecurityCodeIsMailedOnceWithTheSeedsText(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	h.start(h.testConfig())
	acct := events.NewID(t0)
	env := h.otp(acct, "valerie@example.fr", "482913", t0)

	m := h.waitMail(catcher.To("valerie@example.fr"))
	if m.Subject != "Votre code de sécurité pour vous connecter à votre compte ameli" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.MailFrom != "ne-pas-repondre@app.assurance-maladie.fr" || !strings.Contains(m.From, "Votre Assurance Maladie") {
		t.Errorf("from %q / %q", m.MailFrom, m.From)
	}
	if want := env.ID + ".login-code@app.assurance-maladie.fr"; m.MessageID != want {
		t.Errorf("Message-ID %q, want %q", m.MessageID, want)
	}
	if m.MediaType != "multipart/alternative" || m.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("media type %q, Auto-Submitted %q", m.MediaType, m.Header.Get("Auto-Submitted"))
	}
	if m.Code != "482913" {
		t.Errorf("code %q", m.Code)
	}
	for _, want := range []string{"Nous vous adressons votre code de sécurité", "valable seulement 15 minutes",
		"strictement personnel et ne doit jamais être communiqué", "Nous ne demandons jamais de code par téléphone",
		"généré par un automate"} {
		if !strings.Contains(m.Text, want) || !strings.Contains(htmlText(m.HTML), want) {
			t.Errorf("a part lacks %q", want)
		}
	}
	if !strings.Contains(m.HTML, ">482913</span>") {
		t.Error("the HTML part does not show the code large")
	}

	r := h.record(env.ID, notifier.StatusSent)
	if r.AccountID != acct || r.Kind != "login_code" || r.Attempts != 1 || !r.SentAt.Equal(t0.Add(time.Minute)) || r.MessageID != m.MessageID {
		t.Errorf("record %+v", r)
	}
	h.assertNoSecretsStored("valerie@example.fr", "482913")
	h.settled(1)
}

// assertNoSecretsStored scans every text column of the notifier's table.
func (h *harness) assertNoSecretsStored(secrets ...string) {
	h.t.Helper()
	rows, err := h.storeQuery(`SELECT concat_ws('|', event_id, account_id, kind, status, claimed_by, message_id, last_error) FROM notifier.sent`)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, row := range rows {
		for _, s := range secrets {
			if strings.Contains(row, s) {
				h.t.Errorf("notifier.sent holds %q: %s", s, row)
			}
		}
	}
}

func TestEveryMailedEventSendsItsMailAndOthersNone(t *testing.T) {
	now := time.Date(2025, 6, 6, 12, 27, 0, 0, time.UTC) // the seed's "password changed": 14:27 in Paris
	h := newHarness(t, clock.NewFixed(now.Add(time.Minute)))
	h.start(h.testConfig())
	acct := events.NewID(now)
	to := "valerie@example.fr"
	s := func(v string) string { return h.seal(v, acct) }
	md := events.Metadata{Channel: "web", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0"}

	// Events that mail nothing.
	h.append(acct, events.AccountRegistered{NIRHash: "x", EmailSealed: s(to), MaskedEmail: "v***@e***.fr", EmailValidated: true,
		PasswordHash: "$argon2id$", Affiliation: "active", At: now}, now, md)
	h.append(acct, events.PasswordFailed{Failures: 1, At: now}, now, md)
	h.append(acct, events.PasswordFailed{Failures: 3, BlockedUntil: now.Add(15 * time.Minute), At: now}, now, md) // seed profile: no notice
	h.append(acct, events.LoginSucceeded{Method: "otp", Channel: "web", SessionHash: "s", SessionExpiresAt: now.Add(time.Hour), At: now}, now, md)
	h.append(acct, events.PasswordChanged{Method: "change", PasswordHash: "$argon2id$", At: now}, now, md) // nobody to tell

	// Events that mail.
	h.append(acct, events.PasswordChangeCodeIssued{CodeHash: "h", CodeSealed: s("4821"), ToSealed: s(to), RequestsLastHour: 1,
		IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)}, now, md)
	changed := h.append(acct, events.PasswordChanged{Method: "change", PasswordHash: "$argon2id$", ToSealed: s(to), At: now}, now, md)
	h.append(acct, events.PasswordResetRequested{TokenHash: "h", TokenSealed: s("tok_EN-123"), ToSealed: s(to), RequestedAt: now,
		ExpiresAt: now.Add(time.Hour)}, now, md)
	h.append(acct, events.EmailChangeCodeIssued{NewEmailSealed: s("new@example.fr"), NewMaskedEmail: "n***@e***.fr", CodeHash: "h",
		CodeSealed: s("771203"), RequestsLastHour: 1, IssuedAt: now, ExpiresAt: now.Add(15 * time.Minute)}, now, md)
	h.append(acct, events.EmailChanged{EmailSealed: s("new@example.fr"), MaskedEmail: "n***@e***.fr", OldToSealed: s(to), At: now}, now, md)
	h.append(acct, events.PasswordFailed{Failures: 3, BlockedUntil: now.Add(15 * time.Minute), NoticeTo: s(to), At: now}, now, md)
	h.append(acct, events.OTPFailed{LoginID: "l", Failures: 3, BlockedUntil: now.Add(15 * time.Minute), NoticeTo: s(to), At: now}, now, md)
	h.append(acct, events.OTPQuotaExceeded{LoginID: "l", BlockedUntil: now.Add(time.Hour), NoticeTo: s(to), At: now}, now, md)
	h.append(acct, events.LoginSucceeded{Method: "otp", Channel: "web", SessionHash: "s", SessionExpiresAt: now.Add(time.Hour),
		DeviceHash: "d", DeviceExpiresAt: now.AddDate(0, 6, 0), NoticeTo: s(to), At: now}, now, md)

	h.waitCount(9)
	h.settled(9)

	bySubject := map[string]catcher.Message{}
	for _, m := range h.catcher.Messages() {
		bySubject[m.Subject] = m
	}
	check := func(subject, rcpt string, wants ...string) {
		t.Helper()
		m, ok := bySubject[subject]
		if !ok {
			t.Errorf("no mail %q", subject)
			return
		}
		if len(m.RcptTo) != 1 || m.RcptTo[0] != rcpt {
			t.Errorf("%q went to %v, want %s", subject, m.RcptTo, rcpt)
		}
		for _, w := range wants {
			if !strings.Contains(m.Text, w) || !strings.Contains(htmlText(m.HTML), w) {
				t.Errorf("%q lacks %q in a part:\n%s", subject, w, m.Text)
			}
		}
	}
	check("Votre code de confirmation pour modifier le mot de passe de votre compte ameli", to, "4821", "valable seulement 15 minutes")
	check("Le mot de passe de votre compte ameli a été modifié", to,
		"Le mot de passe de votre compte ameli a été modifié le vendredi 06 juin 2025 à 14:27 (heure de Paris).")
	check("Réinitialisation du mot de passe de votre compte ameli", to, "https://ameli.example/password/reset?token=tok_EN-123", "valable seulement 1 heure")
	check("Votre code de confirmation pour valider votre nouvelle adresse mail", "new@example.fr", "771203")
	check("L'adresse mail de votre compte ameli a été modifiée", to, "n***@e***.fr", "vendredi 06 juin 2025 à 14:27")
	check("Un nouvel appareil de confiance a été enregistré sur votre compte ameli", to, "Firefox/126.0", "jusqu'au 06/12/2025")
	var lockouts int
	for _, m := range h.catcher.Messages() {
		if m.Subject == "L'accès à votre compte ameli est temporairement bloqué" {
			lockouts++
		}
	}
	if lockouts != 3 {
		t.Errorf("%d lockout notices, want 3", lockouts)
	}
	if r := h.record(changed.ID, notifier.StatusSent); r.Kind != "password_changed" {
		t.Errorf("record %+v", r)
	}
	h.assertNoSecretsStored(to, "new@example.fr", "4821", "771203", "tok_EN-123")
}

func TestRestartAndRedeliverySendNothingTwice(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	cfg := h.testConfig()
	n1 := h.start(cfg)
	acct := events.NewID(t0)
	first := h.otp(acct, "a@example.fr", "111111", t0)
	h.waitCount(1)
	h.drained()

	// A restart: the durable consumer resumes after the last ack.
	if err := n1.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.start(cfg)
	h.settled(1)

	// A redelivery of everything: the consumer is gone (an operator reset
	// it), the next notifier starts from the beginning of the stream.
	if err := h.js.DeleteConsumer(context.Background(), contract.EventsStream, "notifier"); err != nil {
		t.Fatal(err)
	}
	h.start(cfg)
	second := h.otp(acct, "a@example.fr", "222222", t0)
	h.waitMail(func(m catcher.Message) bool { return m.Code == "222222" })
	h.settled(2)
	if r := h.record(first.ID, notifier.StatusSent); r.Attempts != 1 {
		t.Errorf("first mail claimed %d times", r.Attempts)
	}
	h.record(second.ID, notifier.StatusSent)
}

func TestSMTPDownThenUpDelivers(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	n := h.start(h.testConfig())
	_ = n
	addr := h.catcher.Addr()
	_ = h.catcher.Close() // the SMTP server is down

	acct := events.NewID(t0)
	env := h.otp(acct, "a@example.fr", "123456", t0)
	// Tried, failed, naked, delivered again: the record shows the attempts.
	testwait.Until(t, 10*time.Second, func() error {
		r, err := h.store.Record(context.Background(), env.ID)
		if err != nil || r.Attempts < 3 {
			return fmt.Errorf("no retries seen: %+v %v", r, err)
		}
		if r.Status != notifier.StatusSending || !strings.Contains(r.LastError, "connect") {
			t.Errorf("while down: %+v", r)
		}
		return nil
	})

	h.catcher = h.startCatcher(addr) // back up
	m := h.waitMail(nil)
	if m.Code != "123456" {
		t.Errorf("code %q", m.Code)
	}
	h.record(env.ID, notifier.StatusSent)
	h.settled(1)
}

func TestOneRefusedMailDoesNotHoldBackTheOthers(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	h.start(h.testConfig())
	h.refuse.set("slow@example.fr", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy, try later"})

	slow := h.otp(events.NewID(t0), "slow@example.fr", "111111", t0)
	h.otp(events.NewID(t0), "fast@example.fr", "222222", t0)
	h.waitMail(catcher.To("fast@example.fr"))
	if r, _ := h.store.Record(context.Background(), slow.ID); r.Status != notifier.StatusSending || !strings.Contains(r.LastError, "451") {
		t.Errorf("refused mail: %+v", r)
	}

	h.refuse.set("slow@example.fr", nil)
	h.waitMail(catcher.To("slow@example.fr"))
	h.settled(2)
}

func TestUnhandledMessagesGoToTheDeadLetters(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	cfg := h.testConfig()
	var told outcomes
	cfg.Mails = told.record
	h.start(cfg)
	h.refuse.set("gone@example.fr", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<gone@example.fr>: no such user"})

	acct := events.NewID(t0)
	// 1. A body that is not an event, under a mailed type.
	h.publishRaw(acct, []byte("{not json"), nats.Header{"Auth-Event-Type": {events.TypeOTPIssued}, "Auth-Event-Id": {"01BAD"}})
	// 2. No type anywhere.
	h.publishRaw(acct, []byte("\x00\x01binary"), nil)
	// 3. A permanent refusal by the SMTP server.
	refused := h.otp(acct, "gone@example.fr", "333333", t0)
	// 4. A sealed address from another key.
	other, _ := secrets.NewKeys([]byte("another key of thirty-two bytes!"))
	foreign := h.append(acct, events.OTPIssued{LoginID: "l", CodeHash: "h", CodeSealed: other.Seal("444444", acct),
		ToSealed: other.Seal("x@example.fr", acct), IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}, t0, events.Metadata{})
	// 5. A version from a newer build: not dead, waiting for an upgrade.
	h.publishRaw(acct, []byte(`{"id":"01NEWER","type":"login.otp_issued","version":99,"account_id":"`+acct+`","data":{}}`),
		nats.Header{"Auth-Event-Type": {events.TypeOTPIssued}, "Auth-Event-Id": {"01NEWER"}, "Auth-Event-Version": {"99"}})
	// And the stream goes on.
	h.otp(acct, "fine@example.fr", "555555", t0)

	dead := h.deadLetters(4)
	reasons := map[string]string{}
	for _, m := range dead {
		reason := m.Header.Get(notifier.HeaderDLQReason)
		if reason == "" || m.Header.Get(notifier.HeaderSourceSeq) == "" || m.Header.Get(notifier.HeaderDLQConsumer) != contract.EventsStream+"/notifier" {
			t.Errorf("dead letter headers %v", m.Header)
		}
		if m.Subject != "auth.dlq.notifier" {
			t.Errorf("subject %q", m.Subject)
		}
		if strings.Contains(reason, "gone@example.fr") || strings.Contains(reason, "333333") {
			t.Errorf("the reason leaks a secret: %s", reason)
		}
		reasons[m.Header.Get(notifier.HeaderSourceSeq)] = reason
		t.Logf("dead letter #%s: %s", m.Header.Get(notifier.HeaderSourceSeq), reason)
	}
	for seq, want := range map[string]string{"1": "undecodable event", "2": "undecodable message", "3": "550", "4": "sealed address does not open"} {
		if !strings.Contains(reasons[seq], want) {
			t.Errorf("dead letter of seq %s: %q, want %q", seq, reasons[seq], want)
		}
	}
	if !strings.Contains(reasons["3"], "delivery 2") {
		t.Errorf("the permanent refusal went to the dead letters after %q, want 2 deliveries", reasons["3"])
	}
	r := h.record(refused.ID, notifier.StatusFailed)
	if !strings.Contains(r.LastError, "550") || strings.Contains(r.LastError, "gone@") {
		t.Errorf("record of the refused mail: %+v", r)
	}
	h.record(foreign.ID, notifier.StatusFailed)
	h.waitMail(catcher.To("fine@example.fr"))
	// What metrics are told: by template kind, "" for the two messages
	// that are no event; the refused mail failed once per delivery.
	told.waitOutcome(t, "login_code", "sent", 1)
	if told.count("", "dead_lettered") != 2 || told.count("login_code", "dead_lettered") != 2 || told.count("login_code", "failed") != 2 {
		t.Errorf("outcomes told: %v; want 2 unknown and 2 login_code dead letters, 2 login_code failures", told.all())
	}
	// The newer version is retried past PermanentAttempts: it waits.
	testwait.For(t, "a third delivery of the newer version", 10*time.Second, func() bool {
		return h.logs.Count("mail not sent, will retry", "event_id=01NEWER", "attempt=3") > 0 ||
			h.logs.Count("mail given up", "event_id=01NEWER") > 0
	})
	h.mails(1)
	if n := len(h.deadLetters(4)); n != 4 {
		t.Errorf("%d dead letters, want 4 (the newer version waits)", n)
	}
}

func TestExpiredCodeIsNotSent(t *testing.T) {
	// The dev clock moved 20 minutes forward: a code issued now, by the
	// real clock, has expired by the notifier's.
	dev := &clock.Dev{}
	dev.Advance(20 * time.Minute)
	h := newHarness(t, dev)
	cfg := h.testConfig()
	var told outcomes
	cfg.Mails = told.record
	h.start(cfg)
	acct := events.NewID(t0)
	now := time.Now().UTC()
	stale := h.otp(acct, "a@example.fr", "111111", now)
	fresh := h.otp(acct, "a@example.fr", "222222", dev.Now())

	m := h.waitMail(nil)
	if m.Code != "222222" {
		t.Fatalf("the first mail carries %q, want the fresh code", m.Code)
	}
	h.record(stale.ID, notifier.StatusExpired)
	h.record(fresh.ID, notifier.StatusSent)
	h.settled(1)
	told.waitOutcome(t, "login_code", "expired", 1)
	told.waitOutcome(t, "login_code", "sent", 1)
}

func TestStopFinishesTheMailInFlight(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	entered, hold := make(chan struct{}, 1), make(chan struct{})
	h.catcherHold(entered, hold)
	cfg := h.testConfig()
	n1 := h.start(cfg)
	env := h.otp(events.NewID(t0), "a@example.fr", "123456", t0)
	<-entered // the SMTP transaction is under way, held by the server
	stopped := make(chan error, 1)
	go func() { stopped <- n1.Stop(context.Background()) }()
	testwait.For(t, "the stop to begin", 10*time.Second, func() bool { return h.logs.Count("Closing router") > 0 })
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a mail was in flight", err)
	default:
	}
	close(hold) // the server accepts the mail
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	// Sent, recorded, and acknowledged: nothing left for a successor.
	if r, err := h.store.Record(context.Background(), env.ID); err != nil || r.Status != notifier.StatusSent || h.catcher.Count() != 1 {
		t.Fatalf("after Stop: %+v %v, %d mails", r, err, h.catcher.Count())
	}
	h.drained()
	h.start(cfg)
	h.settled(1)
}

// A worker that claimed an event and died (maybe after the SMTP server took
// the mail: the one repeat window) leaves a row "sending". Its claim holds
// others off until it runs out, then the mail goes out once more.
func TestAClaimLeftByADeadWorkerIsTakenOverWhenItRunsOut(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	acct := events.NewID(t0)
	env := h.otp(acct, "a@example.fr", "123456", t0)
	// The claim would last an hour; the test makes it run out.
	if _, err := h.storeQuery(`INSERT INTO notifier.sent (event_id, account_id, kind, status, attempts, claimed_by, claimed_until)
		VALUES ('` + env.ID + `', '` + acct + `', 'login_code', 'sending', 1, 'dead-worker', now() + interval '1 hour')
		RETURNING event_id`); err != nil {
		t.Fatal(err)
	}
	h.start(h.testConfig())
	testwait.For(t, "the notifier to find the claim held", 10*time.Second, func() bool {
		return h.logs.Count("mail not sent, will retry", "claimed by another worker") > 0 || h.catcher.Count() > 0
	})
	if h.catcher.Count() != 0 {
		t.Fatal("sent while another worker's claim was alive")
	}
	if _, err := h.storeQuery(`UPDATE notifier.sent SET claimed_until = now() WHERE event_id = '` + env.ID + `' RETURNING event_id`); err != nil {
		t.Fatal(err)
	}
	h.waitMail(nil)
	if r := h.record(env.ID, notifier.StatusSent); r.Attempts != 2 {
		t.Errorf("record %+v", r)
	}
	h.settled(1)
}

// panicky is a sender that panics on one recipient.
type panicky struct {
	notifier.Sender
	on string
}

func (p panicky) Send(ctx context.Context, m mail.Message) error {
	if m.To == p.on {
		panic("boom")
	}
	return p.Sender.Send(ctx, m)
}

func TestAPanicIsRecoveredAndDeadLettered(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	cfg := h.testConfig()
	cfg.Sender = panicky{Sender: cfg.Sender, on: "boom@example.fr"}
	h.start(cfg)
	acct := events.NewID(t0)
	bad := h.otp(acct, "boom@example.fr", "111111", t0)
	h.otp(acct, "fine@example.fr", "222222", t0)
	h.waitMail(catcher.To("fine@example.fr"))
	dead := h.deadLetters(1)
	if reason := dead[0].Header.Get(notifier.HeaderDLQReason); !strings.HasPrefix(reason, "panic: boom") {
		t.Errorf("reason %q", reason)
	}
	h.record(bad.ID, notifier.StatusFailed)
	h.drained()
}

func TestConfigIsChecked(t *testing.T) {
	if _, err := notifier.New(notifier.Config{}); err == nil {
		t.Error("an empty config was accepted")
	}
}

func (h *harness) storeQuery(sql string) ([]string, error) {
	conn, err := pgx.Connect(context.Background(), h.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// htmlText is what a reader sees of an HTML part.
func htmlText(s string) string { return html.UnescapeString(tagRE.ReplaceAllString(s, "")) }

// After a key rotation (docs/keys.md) the notifier, given the new key as
// current and the old one as previous, still mails what the old key
// sealed: events recorded before the rotation (a redelivery, a replay)
// and new events carrying the account's address sealed back then. With
// the old key dropped, such a mail is refused for good, and the reason
// names the old key's id (never a key).
func TestMailsSealedUnderAPreviousKey(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	oldKeys := h.keys
	newKeys, err := secrets.NewKeys([]byte("another key of thirty-two bytes!"), []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	acct := events.NewID(t0)
	h.otp(acct, "avant@example.fr", "111111", t0) // recorded before the rotation
	addressA := oldKeys.Seal("mixte@example.fr", acct)
	h.keys = newKeys // the commands service's keyring after the rotation
	h.append(acct, events.OTPIssued{LoginID: "l2", CodeHash: "h", CodeSealed: h.seal("222222", acct), ToSealed: addressA,
		RequestsLastHour: 2, IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}, t0, events.Metadata{})
	cfg := h.testConfig()
	cfg.Keys = newKeys
	h.start(cfg)
	if m := h.waitMail(catcher.To("avant@example.fr")); m.Code != "111111" {
		t.Errorf("mail sealed under the previous key: code %q", m.Code)
	}
	if m := h.waitMail(catcher.To("mixte@example.fr")); m.Code != "222222" {
		t.Errorf("address under the previous key, code under the current: code %q", m.Code)
	}

	// The previous key dropped: the next such mail is dead-lettered.
	h2 := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	onlyNew, _ := secrets.NewKeys([]byte("another key of thirty-two bytes!"))
	h2.keys = onlyNew
	h2.append(acct, events.OTPIssued{LoginID: "l3", CodeHash: "h", CodeSealed: h2.seal("333333", acct), ToSealed: addressA,
		RequestsLastHour: 3, IssuedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}, t0, events.Metadata{})
	cfg2 := h2.testConfig()
	cfg2.Keys = onlyNew
	h2.start(cfg2)
	reason := h2.deadLetters(1)[0].Header.Get(notifier.HeaderDLQReason)
	if !strings.Contains(reason, "sealed address does not open") || !strings.Contains(reason, oldKeys.ID()) {
		t.Errorf("dead letter reason %q: want the address refused, naming key id %s", reason, oldKeys.ID())
	}
}

// The SMTP server's own window (RFC 1047): a server that goes down after
// keeping a mail and before its "250" reached the notifier. The notifier
// cannot know the mail was taken, so it sends it again once the server is
// back: two copies, one per server, and the second attempt's record says
// sent. TestClusterSMTPOutageWithStreamLeaderKilled closes its server under
// load and tolerates this case, and only it (lostReply).
func TestServerDownBeforeItsReplySendsTheMailAgain(t *testing.T) {
	h := newHarness(t, clock.NewFixed(t0.Add(time.Minute)))
	entered, hold := make(chan struct{}, 1), make(chan struct{})
	h.catcherHold(entered, hold)
	h.start(h.testConfig())
	env := h.otp(events.NewID(t0), "a@example.fr", "123456", t0)
	<-entered // the whole mail is with the server, which has not answered
	addr, before := h.catcher.Addr(), h.catcher
	_ = before.Close() // down, dropping the connection
	h.catcherHold(nil, nil)
	close(hold) // the closed server keeps the mail; its 250 goes nowhere
	testwait.For(t, "the lost reply to fail the attempt", 10*time.Second, func() bool {
		return h.logs.Count("mail not sent, will retry", env.ID) > 0
	})
	h.catcher = h.startCatcher(addr) // back up
	h.waitMail(nil)
	h.record(env.ID, notifier.StatusSent)
	h.settled(1)
	if before.Count() != 1 || h.catcher.Count() != 1 {
		t.Fatalf("%d mails before, %d after; want the mail on both servers", before.Count(), h.catcher.Count())
	}
	if !lostReply(before, env.ID) {
		t.Error("not recognised as a lost reply")
	}
	// A mail that is not its server's last is not a lost reply.
	other := h.otp(events.NewID(t0), "b@example.fr", "654321", t0)
	h.waitCount(2)
	if lostReply(h.catcher, env.ID) || !lostReply(h.catcher, other.ID) {
		t.Error("only the server's last mail can be a lost reply")
	}
}
