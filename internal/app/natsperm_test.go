package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	authevents "github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsusers"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// natsPassword is each test user's password, as the server reads it from
// NATS_PASSWORD_<USER> and the component from AUTH_NATS_PASSWORD_FILE.
func natsPassword(user string) string { return user + "-Pw7xq2" }

// restricted is a server run with deploy/nats/nats-server.conf and its
// users.conf, and the components, each connected as its own user.
type restricted struct {
	t          *testing.T
	srv        *server.Server
	dbURL      string
	mails      *catcher.Catcher
	pwDir      string
	partitions int                      // AUTH_PARTITIONS of the components
	logs       map[string]*testwait.Log // each component's log
}

func startRestricted(t *testing.T) *restricted {
	t.Helper()
	return startRestrictedOn(t, 1)
}

// startRestrictedOn runs the server with deploy/nats/nats-server.conf and
// the users file deploy/nats holds for n partitions (users.conf for one,
// users-<n>.conf), as docker-compose.yml mounts it, and the components with
// AUTH_PARTITIONS=n.
func startRestrictedOn(t *testing.T, n int) *restricted {
	t.Helper()
	for _, u := range []string{"commands", "projector", "notifier", "frontend", "backoffice", "admin"} {
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(u), natsPassword(u))
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TAG", "group:a")
	r := &restricted{t: t, pwDir: t.TempDir(), partitions: n, logs: map[string]*testwait.Log{}}
	deployed := filepath.Join("..", "..", "deploy", "nats")
	conf := filepath.Join(deployed, "nats-server.conf")
	if n > 1 {
		dir := t.TempDir()
		for target, source := range map[string]string{"nats-server.conf": "nats-server.conf", "users.conf": natsusers.FileName(n)} {
			b, err := os.ReadFile(filepath.Join(deployed, source))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, target), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		conf = filepath.Join(dir, "nats-server.conf")
	}
	r.srv = natsutil.RunConfiguredTestServer(t, conf)
	r.dbURL = pgtestDB(t)
	var err error
	// A mailbox that refuses for good: its mails go to the dead letters.
	r.mails, err = catcher.Start(catcher.Options{Refuse: func(m catcher.Message) error {
		if catcher.To(refusedEmail)(m) {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.mails.Close() })
	// Registered first, so it runs last: every component has stopped.
	t.Cleanup(r.reportRefusals)
	return r
}

const refusedEmail = "parti@exemple.fr"

// config is a production configuration of the component run as user,
// loaded as the binaries load theirs: AUTH_NATS_USER and the password
// from AUTH_NATS_PASSWORD_FILE.
func (r *restricted) config(user string) config.Config {
	t := r.t
	t.Helper()
	pwFile := filepath.Join(r.pwDir, user)
	if err := os.WriteFile(pwFile, []byte(natsPassword(user)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUTH_NATS_PASSWORD_FILE", pwFile)
	t.Setenv("AUTH_SECRET_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")))
	cfg, err := config.Load("test", []string{"-nats-url", r.srv.ClientURL(), "-nats-user", user, "-database-url", r.dbURL,
		"-smtp-addr", r.mails.Addr(), "-smtp-tls", "none", "-http-addr", "", "-web-addr", "127.0.0.1:0",
		"-public-url", "http://127.0.0.1:1", "-var-dir", t.TempDir(), "-partitions", strconv.Itoa(max(r.partitions, 1))}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dev() || cfg.NATS.Password != natsPassword(user) || cfg.NATS.Inbox() != "_INBOX."+user {
		t.Fatalf("configuration of %s: dev %v, inbox %q", user, cfg.Dev(), cfg.NATS.Inbox())
	}
	cfg.Policy.Argon2.Memory, cfg.Policy.Argon2.Time = 256, 1 // fast tests; the rules don't depend on it
	return cfg
}

func (r *restricted) log(component string) *slog.Logger {
	if r.logs[component] == nil {
		r.logs[component] = &testwait.Log{}
	}
	return slog.New(r.logs[component].Handler())
}

// connect is what a component's main does: ConnectNATS as its user.
func (r *restricted) connect(user, name string) *NATS {
	r.t.Helper()
	n, err := ConnectNATS(r.config(user), name, r.log(user))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(n.Close)
	return n
}

// probe is a client connected as a user, that records the refusals the
// server sends it (asynchronous "Permissions Violation" errors).
type probe struct {
	t    *testing.T
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	errs []string
}

func (r *restricted) probe(user string) *probe {
	t := r.t
	t.Helper()
	p := &probe{t: t, user: user}
	opts, err := NATSOptions(config.NATSClient{User: user, Password: natsPassword(user)}, "probe-"+user, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, nats.CustomInboxPrefix("_INBOX."+user), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		p.mu.Lock()
		p.errs = append(p.errs, err.Error())
		p.mu.Unlock()
	}))
	if p.nc, err = nats.Connect(r.srv.ClientURL(), opts...); err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(p.nc.Close)
	if p.js, err = jetstream.New(p.nc); err != nil {
		t.Fatal(err)
	}
	return p
}

// refused waits for the server's refusal of what: `Publish to "subject"`
// or `Subscription to "subject"`.
func (p *probe) refused(what string) {
	p.t.Helper()
	want := "Permissions Violation for " + what
	testwait.For(p.t, p.user+" refused: "+what, 5*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.errs {
			if strings.Contains(e, want) {
				return true
			}
		}
		return false
	})
}

// mayNotPublish publishes on subject (as a request: a reply would come to
// the probe's inbox) and waits for the refusal.
func (p *probe) mayNotPublish(subject string) {
	p.t.Helper()
	if err := p.nc.PublishRequest(subject, p.nc.NewInbox(), []byte("{}")); err != nil {
		p.t.Fatalf("%s publish %s: %v", p.user, subject, err)
	}
	p.refused("Publish to " + strconv.Quote(subject))
}

// mayNotSubscribe subscribes to subject and waits for the refusal.
func (p *probe) mayNotSubscribe(subject string) {
	p.t.Helper()
	sub, err := p.nc.SubscribeSync(subject)
	if err != nil {
		p.t.Fatalf("%s subscribe %s: %v", p.user, subject, err)
	}
	p.refused("Subscription to " + strconv.Quote(subject))
	_ = sub.Unsubscribe()
}

// request sends a command and decodes the reply.
func (p *probe) request(command string, body map[string]any) contract.AnyReply {
	p.t.Helper()
	b, _ := json.Marshal(body)
	m, err := p.nc.Request(contract.Default.Command(command), b, 10*time.Second)
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.user, command, err)
	}
	var rep contract.AnyReply
	if err := json.Unmarshal(m.Data, &rep); err != nil {
		p.t.Fatalf("%s: %s: %s", p.user, command, m.Data)
	}
	return rep
}

// The NATS users of deploy/nats/users.conf, with the real server
// configuration and the real components, each connected as its own user
// (password from a file): every one does its job (a registration by the
// back-office, a login through the web front-end with its code mailed by
// the notifier, a dead letter, the read models, a cold restart of the
// commands service), never meets a refusal doing it, and is refused the
// rest: the front-end publishing an event or requesting a back-office
// command or the dev clock, reading the stream or others' replies,
// deleting the stream; the projector and the notifier writing events or
// changing streams; the back-office publishing events; the admin deleting
// the stream. The stream itself refuses message deletes and purges, even
// to the admin.
func TestNATSUsersPermissions(t *testing.T) {
	r := startRestricted(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The notifier started first waits for the streams the commands
	// service creates: its user may not create them.
	ncfg := r.config("notifier")
	nn, nlog := r.connect("notifier", "auth-notifier"), r.log("notifier")
	type started struct {
		x   *Notifier
		err error
	}
	notifierUp := make(chan started, 1)
	go func() {
		x, err := StartNotifier(ctx, ncfg, nn, clock.System{}, nil, nlog)
		notifierUp <- started{x, err}
	}()
	testwait.For(t, "the notifier waiting for the streams", 10*time.Second, func() bool {
		return r.logs["notifier"].Count("waiting for a stream the commands service creates", "stream="+contract.EventsStream) == 1
	})
	// The projector retries until the stream is there.
	proj, err := StartProjector(ctx, r.config("projector"), r.connect("projector", "auth-projector"), nil, r.log("projector"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proj.Stop() })

	ccfg := r.config("commands")
	cn := r.connect("commands", "auth-commands")
	cmd, err := StartCommands(ctx, ccfg, cn, &clock.Dev{}, nil, r.log("commands"))
	if err != nil {
		t.Fatal(err)
	}
	stopCommands := sync.OnceFunc(func() { _ = cmd.Service.Stop() })
	t.Cleanup(stopCommands)
	up := <-notifierUp
	if up.err != nil {
		t.Fatal(up.err)
	}
	t.Cleanup(func() { _ = up.x.Stop(context.Background()) })

	web, err := StartWeb(r.config("frontend"), r.srv.ClientURL(), nil, r.log("frontend"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Stop(context.Background()) })

	backoffice, app, admin := r.probe("backoffice"), r.probe("frontend"), r.probe("admin")

	// The back-office registers two accounts.
	register := func(nir, email string) string {
		rep := backoffice.request(contract.CmdAccountRegister, map[string]any{"nir": nir, "email": email, "password": DemoPassword,
			"email_validated": true, "affiliation": "active", "channel": "backoffice"})
		if !rep.OK {
			t.Fatalf("register: %+v", rep.Error)
		}
		return rep.AccountID
	}
	valerie := register(DemoNIR, DemoEmail)
	const nir2 = "1 84 12 76 451 089 46"
	register(nir2, refusedEmail)

	// A login through the web front-end, the code mailed by the notifier.
	session := webLogin(t, web.URL, r.mails)
	home := webGet(t, web.URL+"/accueil", session)
	if home.StatusCode != http.StatusOK {
		t.Fatalf("GET /accueil with the session: %d", home.StatusCode)
	}

	// The app's front-end (same user): an unknown NIR (a shadow state in
	// its bucket), and a reset link to a mailbox that refuses for good:
	// a dead letter from the notifier.
	if rep := app.request(contract.CmdLoginPassword, map[string]any{"nir": "2 55 08 14 168 025 38", "password": "pas-le-bon", "channel": "app"}); rep.OK || rep.Error.Code != "invalid_credentials" {
		t.Fatalf("unknown NIR: %+v", rep)
	}
	if rep := app.request(contract.CmdPasswordResetRequest, map[string]any{"nir": nir2, "channel": "app"}); !rep.OK {
		t.Fatalf("reset request: %+v", rep.Error)
	}
	dlq, err := admin.js.Stream(ctx, contract.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the dead letter of the refused mail", 20*time.Second, func() bool {
		info, err := dlq.Info(ctx)
		return err == nil && info.State.Msgs == 1
	})
	if m, err := dlq.GetLastMsgForSubject(ctx, contract.Default.DeadLetters("notifier")); err != nil || !strings.Contains(m.Header.Get("Auth-DLQ-Reason"), "550") {
		t.Fatalf("dead letter: %v %v", m, err)
	}

	// A cold start of the commands service (new connection, empty cache)
	// reads the account back from the stream, and opens the streams again.
	stopCommands()
	cn.Close()
	cmd2, err := StartCommands(ctx, ccfg, r.connect("commands", "auth-commands"), &clock.Dev{}, nil, r.log("commands"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd2.Service.Stop() })
	if rep := app.request(contract.CmdLoginPassword, map[string]any{"nir": DemoNIR, "password": DemoPassword, "channel": "app"}); !rep.OK {
		t.Fatalf("login after the restart: %+v", rep.Error)
	}
	if rep := backoffice.request(contract.CmdAccountUnlock, map[string]any{"nir": nir2, "channel": "backoffice"}); !rep.OK {
		t.Fatalf("unlock: %+v", rep.Error)
	}
	// Enough logins for the service to write the account's snapshot in
	// its bucket (one every 25 events).
	for range 25 {
		if rep := app.request(contract.CmdLoginPassword, map[string]any{"nir": DemoNIR, "password": DemoPassword, "channel": "app"}); !rep.OK {
			t.Fatalf("login: %+v", rep.Error)
		}
	}
	snaps, err := admin.js.KeyValue(ctx, contract.SnapshotBucket)
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "a snapshot written by the commands service", 10*time.Second, func() bool {
		_, err := snaps.Get(ctx, valerie)
		return err == nil
	})

	// The projector follows the stream into Postgres and acks.
	events, err := admin.js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := events.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the projector at the stream's end", 20*time.Second, func() bool { return proj.Checkpoint() == info.State.LastSeq })
	pg, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	var accounts int
	if err := pg.QueryRow(ctx, "SELECT count(*) FROM auth.accounts").Scan(&accounts); err != nil || accounts != 2 {
		t.Fatalf("read models: %d accounts, %v", accounts, err)
	}
	// Its follower of AUTH_FRAUD too: a source throttled, written as the
	// commands service writes it, reaches the fraud read model.
	now := time.Now().UTC()
	throttled := authevents.FraudEvent{ID: authevents.NewID(now), Type: authevents.TypeSourceThrottled, Version: 1, OccurredAt: now,
		Data: authevents.SourceFacts{Source: "203.0.113.0/24", Kind: authevents.SourceKindPrefix, Failures: 1000, Budget: 1000,
			WindowStart: now, WindowSeconds: 86400, Until: now.Add(24 * time.Hour)}}
	fraudMsg, err := eventstore.FraudMsg(contract.Default, throttled)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.probe("commands").js.PublishMsg(ctx, fraudMsg, jetstream.WithMsgID(throttled.ID)); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the projector storing the source throttled", 20*time.Second, func() bool {
		var n int
		err := pg.QueryRow(ctx, "SELECT count(*) FROM auth.fraud_sources_throttled WHERE throttle_event_id = $1 AND released_at IS NULL", throttled.ID).Scan(&n)
		return err == nil && n == 1
	})

	// The audit trail: the admin sees what `nats stream info` shows, and
	// the stream itself refuses deletes and purges, to the admin too.
	if c := info.Config; !c.DenyDelete || !c.DenyPurge || c.AllowRollup || c.Sealed {
		t.Fatalf("AUTH_EVENTS: deny delete %v, deny purge %v, rollup %v, sealed %v", c.DenyDelete, c.DenyPurge, c.AllowRollup, c.Sealed)
	}
	if err := events.DeleteMsg(ctx, 1); err == nil || !strings.Contains(err.Error(), "message delete not permitted") {
		t.Errorf("admin deleting an event: %v, want message delete not permitted", err)
	}
	if err := events.Purge(ctx); err == nil || !strings.Contains(err.Error(), "stream purge not permitted") {
		t.Errorf("admin purging the stream: %v, want stream purge not permitted", err)
	}

	// A front-end naming an event subject as its reply subject: dropped by
	// the commands service, nothing appended (the commands user may
	// publish events, and answers on reply subjects).
	before := info.State.Msgs
	forged := contract.Default.Events("01M8QG8TQKRW4KX1C0B8KR11D2")
	if err := app.nc.PublishRequest(contract.Default.Command(contract.CmdSessionCheck), forged, []byte(`{"session":"x"}`)); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the commands service dropping the forged reply subject", 5*time.Second, func() bool {
		return r.logs["commands"].Count("request dropped: its reply subject is not an inbox", "reply="+forged) == 1
	})

	// What each user is refused.
	acc := contract.Default.Events("01M8QG8TQKRW4KX1C0B8KR11D2")
	api := func(op string) string { return "$JS.API." + op }

	// The front-ends: only the public commands, only their own replies.
	app.mayNotPublish(acc)
	app.mayNotPublish(contract.Default.Command(contract.CmdAccountUnlock))
	app.mayNotPublish(contract.Default.Command(contract.CmdAccountRegister))
	app.mayNotPublish(contract.Default.DevClockAdvance())
	app.mayNotSubscribe("auth.cmd.>")                        // a fake commands service reading passwords
	app.mayNotSubscribe(contract.Default.Command("login.>")) // the same, narrower
	app.mayNotSubscribe("_INBOX.>")                          // everyone's replies
	app.mayNotSubscribe("_INBOX.backoffice.>")
	app.mayNotSubscribe("_INBOX.commands.>") // the commands service's reads of its buckets
	app.mayNotSubscribe(contract.Default.AllEvents())
	// Reads of the stream through the JetStream API; the requests get no
	// answer, only the refusal.
	short, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	go func() { _, _ = app.js.Stream(short, contract.EventsStream) }()
	app.refused(`Publish to "` + api("STREAM.INFO.AUTH_EVENTS") + `"`)
	go func() {
		_, _ = app.js.OrderedConsumer(short, contract.EventsStream, jetstream.OrderedConsumerConfig{})
	}()
	app.refused(`Publish to "` + api("CONSUMER.CREATE.AUTH_EVENTS."))
	app.mayNotPublish(api("DIRECT.GET.AUTH_EVENTS.") + acc)
	app.mayNotPublish(api("STREAM.DELETE.AUTH_EVENTS"))
	app.mayNotPublish(api("STREAM.PURGE.AUTH_EVENTS"))
	app.mayNotPublish("$KV.AUTH_NIR_INDEX.forged")
	app.mayNotPublish("$SRV.PING")

	// The back-office: only its commands.
	backoffice.mayNotPublish(acc)
	backoffice.mayNotPublish(contract.Default.Command(contract.CmdLoginPassword))
	backoffice.mayNotPublish(contract.Default.DevClockAdvance())
	backoffice.mayNotPublish(api("STREAM.INFO.AUTH_EVENTS"))
	backoffice.mayNotSubscribe("_INBOX.frontend.>")

	// The projector and the notifier consume only: no event, no stream
	// change, not the other's consumer, no command.
	for _, u := range []string{"projector", "notifier"} {
		p := r.probe(u)
		p.mayNotPublish(acc)
		p.mayNotPublish(api("STREAM.DELETE.AUTH_EVENTS"))
		p.mayNotPublish(api("STREAM.UPDATE.AUTH_EVENTS"))
		p.mayNotPublish(api("STREAM.CREATE.AUTH_DLQ"))
		p.mayNotPublish(api("STREAM.MSG.DELETE.AUTH_EVENTS"))
		p.mayNotPublish(contract.Default.Command(contract.CmdLoginPassword))
		p.mayNotSubscribe("auth.cmd.>")
		other := map[string]string{"projector": "notifier", "notifier": "projector"}[u]
		p.mayNotPublish(api("CONSUMER.DELETE.AUTH_EVENTS." + other))
		p.mayNotPublish(api("CONSUMER.DELETE.AUTH_FRAUD.projector_fraud"))
		p.mayNotPublish(api("CONSUMER.CREATE.AUTH_FRAUD.fraud_tool.auth.fraud.>"))
		p.mayNotPublish(contract.Default.Fraud(authevents.TypeSourceThrottled))
	}
	r.probe("notifier").mayNotPublish(contract.Default.DeadLetters("projector"))

	// The commands service: no stream deletion, no message to an inbox
	// but once, in reply to a request it received.
	commands := r.probe("commands")
	commands.mayNotPublish(api("STREAM.DELETE.AUTH_EVENTS"))
	commands.mayNotPublish("_INBOX.frontend.stolen")
	commands.mayNotPublish(contract.Default.DeadLetters("notifier"))
	commands.mayNotSubscribe("_INBOX.frontend.>")

	// The admin: anything but appending events, deleting or updating the
	// stream (an update could add a subject to append through) and the
	// dev clock.
	admin.mayNotPublish(acc)
	admin.mayNotPublish(api("STREAM.DELETE.AUTH_EVENTS"))
	admin.mayNotPublish(api("STREAM.UPDATE.AUTH_EVENTS"))
	admin.mayNotPublish(contract.Default.DevClockAdvance())

	// Nothing was appended by all this: the forged reply subject, the
	// refused publishes.
	if info, err := events.Info(ctx); err != nil || info.State.Msgs != before {
		t.Fatalf("stream: %v messages, want %d (%v)", info.State.Msgs, before, err)
	}
}

// startRestricted's components say what they were refused, when the test
// fails: a permission missing from users.conf shows here first.
func (r *restricted) reportRefusals() {
	for name, l := range r.logs {
		if lines := l.Lines("nats error"); len(lines) > 0 {
			r.t.Errorf("%s met NATS errors doing its job (a permission missing from users.conf?):\n%s", name, strings.Join(lines, ""))
		}
	}
}

// webLogin logs in through the web front-end's pages (password, send the
// code, the code from the mail) and returns the session cookie.
func webLogin(t *testing.T, base string, mails *catcher.Catcher) *http.Cookie {
	t.Helper()
	page := webPost(t, base+"/connexion", url.Values{"nir": {DemoNIR}, "password": {DemoPassword}}, http.StatusOK)
	loginID := hiddenField(t, page, "login_id")
	webPost(t, base+"/connexion/envoi-code", url.Values{"nir": {DemoNIR}, "login_id": {loginID}}, http.StatusOK)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := mails.Wait(ctx, func(m catcher.Message) bool { return catcher.To(DemoEmail)(m) && m.Code != "" })
	if err != nil {
		t.Fatalf("no code mailed: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/connexion/code",
		strings.NewReader(url.Values{"nir": {DemoNIR}, "login_id": {loginID}, "code": {m.Code}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "ameli-session") && c.Value != "" && resp.StatusCode == http.StatusSeeOther {
			return c
		}
	}
	t.Fatalf("the code page answered %d without a session", resp.StatusCode)
	return nil
}

var noRedirect = &http.Client{Timeout: 15 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func webPost(t *testing.T, u string, form url.Values, want int) string {
	t.Helper()
	resp, err := noRedirect.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want || strings.Contains(string(b), "indisponible") {
		t.Fatalf("POST %s: %d, want %d:\n%s", u, resp.StatusCode, want, b)
	}
	return string(b)
}

func webGet(t *testing.T, u string, c *http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.AddCookie(c)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func hiddenField(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s in the page:\n%s", name, page)
	}
	return m[1]
}
