package app

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/projector"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// The NATS users of deploy/nats/users-4.conf (the generated file for four
// partitions) with the real components run with AUTH_PARTITIONS=4, each as
// its own user: the commands service creates the four streams and their
// buckets, the back-office registers, a person logs in through the web
// front-end with the code the notifier mails, the projector applies every
// partition, the projector's and the notifier's lags (what their /readyz
// read) are read as their users, behind and caught up; and no component
// meets a refusal doing it. What is refused stays refused on every
// partition: the front-end publishing an event or reading a stream, the
// projector and the notifier touching another's consumer or a stream, the
// admin deleting a stream.
func TestNATSUsersPermissionsFourPartitions(t *testing.T) {
	const n = 4
	r := startRestrictedOn(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	layout := contract.Layout{Partitions: n}

	ccfg := r.config("commands")
	cmd, err := StartCommands(ctx, ccfg, r.connect("commands", "auth-commands"), &clock.Dev{}, nil, r.log("commands"))
	if err != nil {
		t.Fatal(err)
	}
	stopCommands := sync.OnceFunc(func() { _ = cmd.Service.Stop() })
	t.Cleanup(stopCommands)
	pn := r.connect("projector", "auth-projector")
	proj, err := StartProjector(ctx, r.config("projector"), pn, nil, r.log("projector"))
	if err != nil {
		t.Fatal(err)
	}
	stopProjector := sync.OnceValue(proj.Stop)
	t.Cleanup(func() { _ = stopProjector() })
	nn := r.connect("notifier", "auth-notifier")
	nx, err := StartNotifier(ctx, r.config("notifier"), nn, clock.System{}, nil, r.log("notifier"))
	if err != nil {
		t.Fatal(err)
	}
	stopNotifier := sync.OnceFunc(func() { _ = nx.Stop(context.Background()) })
	t.Cleanup(stopNotifier)
	web, err := StartWeb(r.config("frontend"), r.srv.ClientURL(), nil, r.log("frontend"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = web.Stop(context.Background()) })
	backoffice, app, admin := r.probe("backoffice"), r.probe("frontend"), r.probe("admin")
	for _, name := range layout.Streams() {
		if _, err := admin.js.Stream(ctx, name); err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
	}

	register := func(nir, email string) string {
		rep := backoffice.request(contract.CmdAccountRegister, map[string]any{"nir": nir, "email": email, "password": DemoPassword,
			"email_validated": true, "affiliation": "active", "channel": "backoffice"})
		if !rep.OK {
			t.Fatalf("register: %+v", rep.Error)
		}
		return rep.AccountID
	}
	valerie := register(DemoNIR, DemoEmail)
	session := webLogin(t, web.URL, r.mails)
	if home := webGet(t, web.URL+"/accueil", session); home.StatusCode != http.StatusOK {
		t.Fatalf("GET /accueil with the session: %d", home.StatusCode)
	}
	if rep := app.request(contract.CmdLoginPassword, map[string]any{"nir": "2 55 08 14 168 025 38", "password": "pas-le-bon", "channel": "app"}); rep.OK {
		t.Fatalf("unknown NIR: %+v", rep)
	}

	// The projector applies every partition; its lag and the notifier's,
	// read as their users, come to nothing.
	lagCfg := projector.StatusConfig{JS: pn.JS, Partitions: n}
	pg, err := pgx.Connect(ctx, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	testwait.For(t, "the projector at the end of every partition", 20*time.Second, func() bool {
		l, err := projector.ReadLag(ctx, pg, lagCfg)
		return err == nil && l.Events == 0 && l.Checkpoint > 0
	})
	var accounts int
	if err := pg.QueryRow(ctx, "SELECT count(*) FROM auth.accounts WHERE account_id = $1", valerie).Scan(&accounts); err != nil || accounts != 1 {
		t.Fatalf("read models: %d, %v", accounts, err)
	}
	testwait.For(t, "the notifier at the end of every partition", 20*time.Second, func() bool {
		p, _, err := nx.Notifier.Lag(ctx)
		return err == nil && p == 0
	})
	// Behind, the lag also reads the first event not handled: the
	// projector's by ReadLag, the notifier's as its Lag does (a message
	// get by subject, direct on these streams), on every partition.
	stopNotifier()
	if err := stopProjector(); err != nil {
		t.Fatal(err)
	}
	jean := register("1 84 12 76 451 089 46", "jean@exemple.fr")
	if l, err := projector.ReadLag(ctx, pg, lagCfg); err != nil || l.Events == 0 || l.Seconds < 0 {
		t.Fatalf("projector behind: %+v, %v", l, err)
	}
	np := r.probe("notifier")
	for p, name := range layout.Streams() {
		st, err := np.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if st.CachedInfo().State.Msgs == 0 {
			continue
		}
		gctx, cancelGet := context.WithTimeout(ctx, 5*time.Second)
		_, err = st.GetMsg(gctx, st.CachedInfo().State.FirstSeq, jetstream.WithGetMsgSubject(layout.StreamSubjects(p)))
		cancelGet()
		if err != nil {
			t.Errorf("the notifier reading the first event of %s as its lag does: %v", name, err)
		}
	}

	// Refused, on every partition.
	api := func(op string) string { return "$JS.API." + op }
	own := layout.Stream(layout.PartitionOf(jean))
	app.mayNotPublish(layout.Events(jean))
	app.mayNotPublish(api("STREAM.INFO." + own))
	app.mayNotPublish(api("DIRECT.GET." + own + "." + layout.Events(jean)))
	app.mayNotSubscribe(layout.StreamSubjects(layout.PartitionOf(jean)))
	backoffice.mayNotPublish(layout.Events(jean))
	for _, u := range []string{"projector", "notifier"} {
		p := r.probe(u)
		p.mayNotPublish(layout.Events(jean))
		p.mayNotPublish(api("STREAM.UPDATE." + layout.Stream(n-1)))
		p.mayNotPublish(api("STREAM.DELETE." + layout.Stream(0)))
		other := map[string]string{"projector": "notifier", "notifier": "projector"}[u]
		p.mayNotPublish(api("CONSUMER.DELETE." + layout.Stream(2) + "." + other))
	}
	r.probe("commands").mayNotPublish(api("STREAM.DELETE." + layout.Stream(1)))
	admin.mayNotPublish(layout.Events(jean))
	admin.mayNotPublish(api("STREAM.DELETE." + layout.Stream(3)))
}
