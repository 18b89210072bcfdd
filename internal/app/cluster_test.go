package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
	"github.com/ameli-auth/authsvc/internal/natsusers"
	"github.com/ameli-auth/authsvc/internal/pgtest"
)

// The local cluster of `make cluster`, as processes, with the NATS users
// of deploy/nats/users.conf: a connection without a user is refused, the
// front-end's user may not append an event, and nobody meets a refusal
// doing their job; the dev clock is off. The demo account is registered
// (as the back-office), logs in through the web front-end (password, the
// code read in the mail catcher, the home page's session check), then the
// node leading the events stream and commands-1 are killed (SIGKILL), and
// the same login succeeds again on what is left; both come back, the node
// catches up, and the projector has both logins in the read models.
func TestClusterProcessesServeALoginAcrossANodeAndACommandsKill(t *testing.T) {
	began := time.Now()
	dbURL := pgtest.NewDatabase(t) // fails under CI=true when Postgres is missing, never skips there
	bin := buildBinaries(t)
	built := time.Since(began)
	for _, env := range []string{"AUTH_NATS_URL", "AUTH_WEB_ADDR", "AUTH_HTTP_ADDR", "AUTH_PUBLIC_URL", "AUTH_SECRET_KEY", "AUTH_SMTP_ADDR"} {
		t.Setenv(env, "")
	}
	cfg, err := config.Load("test", []string{"-var-dir", t.TempDir(), "-database-url", dbURL}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out := &syncBuffer{}
	c, err := StartCluster(ctx, cfg, ClusterOptions{BinDir: bin, Output: out}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start the cluster: %v\n%s", err, lastLines(out.String(), 60))
	}
	t.Cleanup(func() {
		c.Stop(context.Background())
		if t.Failed() {
			t.Logf("the cluster's output (end):\n%s", lastLines(out.String(), 150))
		}
	})
	started := time.Since(began)
	if _, err := StartCluster(ctx, cfg, ClusterOptions{BinDir: bin}, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "another local cluster runs") {
		t.Fatalf("a second cluster on the same var dir: %v", err)
	}
	for _, p := range c.Processes() {
		if !p.Running() {
			t.Fatalf("%s is not running", p.Name())
		}
		if !strings.Contains(out.String(), fmt.Sprintf("%-11s | ", p.Name())) {
			t.Errorf("no line of %s in the output, prefixed with its name", p.Name())
		}
	}
	st, ok, err := RunningCluster(cfg.VarDir)
	if err != nil || !ok || st.NATSURL != c.NATSURL || st.WebURL != c.WebURL || len(st.Processes) != 9 || len(st.NATSPasswordFiles) != len(ClusterNATSUsers) {
		t.Fatalf("cluster.json: %+v ok %v err %v", st, ok, err)
	}
	stateJSON, err := os.ReadFile(ClusterStatePath(cfg.VarDir))
	if err != nil {
		t.Fatal(err)
	}
	// The users' passwords: one file each, private, named by cluster.json
	// and never written in it, nor in any process's output.
	for _, u := range ClusterNATSUsers {
		path := st.NATSPasswordFiles[u]
		fi, err := os.Stat(path)
		if err != nil || path != ClusterNATSPasswordFile(cfg.VarDir, u) || fi.Mode().Perm() != 0o600 {
			t.Fatalf("the password file of %s: %q %v %v", u, path, fi, err)
		}
		pw, err := readClusterNATSPassword(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(stateJSON), pw) {
			t.Errorf("cluster.json holds the password of %s", u)
		}
		defer func() { // once every process has written its lines
			if strings.Contains(out.String(), pw) {
				t.Errorf("a process logged the NATS password of %s", u)
			}
		}()
	}

	// NATS refuses a connection without a user, and the front-end's user
	// appending an event: the users are on.
	if nc, err := nats.Connect(c.NATSURL, nats.NoReconnect()); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("a connection without a user: %v, want an authorization violation", err)
	}
	refused := make(chan error, 8)
	frontend, err := c.connectAs("frontend", "test-frontend", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer frontend.Close()
	forged := contract.Default.Events("01M8QG8TQKRW4KX1C0B8KR11D2")
	if err := frontend.Publish(forged, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if want := `Permissions Violation for Publish to "` + forged + `"`; !strings.Contains(err.Error(), want) {
			t.Fatalf("the frontend user appending an event: %v, want %s", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the frontend user appended an event without a refusal")
	}

	// The topology: the stream and the buckets on the three nodes; no dev
	// clock, whose bucket nobody may create.
	if _, err := c.JS.KeyValue(ctx, DevClockBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the dev clock's bucket: %v, want none", err)
	}
	for _, name := range []string{contract.EventsStream, "KV_" + contract.NIRIndexBucket} {
		info, err := c.JS.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := info.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}

	if created, err := c.EnsureDemoAccount(ctx); err != nil || !created {
		t.Fatalf("register the demo account: created %v, %v", created, err)
	}
	w := &webUser{t: t, c: c, seen: map[string]bool{}}
	w.login(DemoNIR, DemoPassword)
	firstLogin := time.Since(began)

	// Faults: the node leading the stream (by the Go API), and one
	// commands service (by authctl's page, as by hand).
	leader := streamLeaderNode(t, c)
	if err := c.Process(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(c.PageURL+"/processes/commands-1/kill", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || c.Process("commands-1").Running() || c.Process(leader).Running() {
		t.Fatalf("kill commands-1 through the page: %s; commands-1 running %v, %s running %v",
			res.Status, c.Process("commands-1").Running(), leader, c.Process(leader).Running())
	}
	killed := time.Now()
	w.login(DemoNIR, DemoPassword)
	loginAfterKill := time.Since(killed)

	// Both come back on their ports and store; the node catches up.
	for _, name := range []string{leader, "commands-1"} {
		if err := c.Process(name).Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitStreamWhole(t, c)
	restarted := time.Since(began)

	// The projector (whichever leads) has both logins.
	demo, err := readDemo(ClusterDir(cfg.VarDir))
	if err != nil || demo.AccountID == "" {
		t.Fatalf("demo.json: %+v %v", demo, err)
	}
	db, err := pgx.Connect(ctx, c.DB.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	waitFor(t, "both logins in the read model", func() error {
		var n int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM auth.login_attempts WHERE account_id = $1 AND outcome = 'succeeded'", demo.AccountID).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("%d succeeded logins", n)
		}
		return nil
	})
	if strings.Contains(out.String(), DemoPassword) {
		t.Error("a child logged the demo password")
	}
	// Nobody was refused anything doing its job (a permission missing
	// from users.conf shows here): only the test's forged event was.
	for line := range strings.Lines(out.String()) {
		if strings.Contains(line, "Permissions Violation") || strings.Contains(line, "Publish Violation") ||
			strings.Contains(line, "Subscription Violation") {
			if !strings.Contains(line, forged) {
				t.Errorf("a refusal in the cluster's output: %s", line)
			}
		}
	}
	t.Logf("binaries %s; cluster ready at %s; first login at %s; login after the kills took %s; everything back at %s; total %s",
		built.Round(time.Millisecond), started.Round(time.Millisecond), firstLogin.Round(time.Millisecond),
		loginAfterKill.Round(time.Millisecond), restarted.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// The configuration each node is given carries deploy/nats/nats-server.conf's
// settings: its users (deploy/nats/users.conf, the same users with the
// same permissions, no anonymous access), JetStream with sync always, the
// same cluster name, a route to each of the three nodes.
func TestClusterNodeConfigIsTheDeployedOne(t *testing.T) {
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TAG", clusterNodeTag)
	for _, u := range []string{"COMMANDS", "PROJECTOR", "NOTIFIER", "FRONTEND", "BACKOFFICE", "ADMIN"} {
		t.Setenv("NATS_PASSWORD_"+u, "pw"+u) // the users' passwords, read by deploy/nats/users.conf
	}
	deployed, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	node := natsNode{Name: "nats-2", Client: "127.0.0.1:4422", Route: "127.0.0.1:6422", Monitor: "127.0.0.1:8422",
		StoreDir: filepath.Join(dir, "nats-2"),
		Routes:   []string{"nats-route://127.0.0.1:6421", "nats-route://127.0.0.1:6422", "nats-route://127.0.0.1:6423"}}
	conf := filepath.Join(dir, "nats-2.conf")
	if err := os.WriteFile(conf, []byte(node.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := natsusers.Conf(contract.Layout{}) // as StartCluster does
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.conf"), users, 0o600); err != nil {
		t.Fatal(err)
	}
	local, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("%v\n%s", err, node.config())
	}
	if local.JetStream != deployed.JetStream || local.SyncAlways != deployed.SyncAlways || !local.SyncAlways ||
		local.Cluster.Name != deployed.Cluster.Name || len(local.Routes) != len(deployed.Routes) ||
		!slices.Equal(local.Tags, deployed.Tags) {
		t.Errorf("local node: jetstream %v sync always %v cluster %q routes %d tags %v; deployed: %v %v %q %d %v",
			local.JetStream, local.SyncAlways, local.Cluster.Name, len(local.Routes), local.Tags,
			deployed.JetStream, deployed.SyncAlways, deployed.Cluster.Name, len(deployed.Routes), deployed.Tags)
	}
	if len(local.Users) != len(ClusterNATSUsers) || len(local.Users) != len(deployed.Users) || local.NoAuthUser != "" {
		t.Fatalf("local node: %d users (no-auth user %q), want the %d of users.conf", len(local.Users), local.NoAuthUser, len(deployed.Users))
	}
	for i, u := range local.Users {
		d := deployed.Users[i]
		if u.Username != ClusterNATSUsers[i] || u.Username != d.Username || u.Password != "pw"+strings.ToUpper(u.Username) ||
			!reflect.DeepEqual(u.Permissions, d.Permissions) {
			t.Errorf("local node's user %d: %q with %+v; deployed: %q with %+v", i, u.Username, u.Permissions, d.Username, d.Permissions)
		}
	}
	if local.ServerName != "nats-2" || local.Host != "127.0.0.1" || local.Port != 4422 || local.Cluster.Port != 6422 ||
		local.HTTPPort != 8422 || local.StoreDir != node.StoreDir {
		t.Errorf("local node: name %q host %q port %d route port %d monitor %d store %q", local.ServerName, local.Host,
			local.Port, local.Cluster.Port, local.HTTPPort, local.StoreDir)
	}
}

// streamLeaderNode is the name of the node leading the events stream.
func streamLeaderNode(t *testing.T, c *Cluster) string {
	t.Helper()
	var leader string
	waitFor(t, "a leader of the events stream", func() error {
		st, err := c.JS.Stream(context.Background(), contract.EventsStream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return fmt.Errorf("no leader")
		}
		leader = info.Cluster.Leader
		return nil
	})
	if c.Process(leader) == nil {
		t.Fatalf("the stream leader %q is not a node of the cluster", leader)
	}
	return leader
}

// waitStreamWhole waits until the events stream has a leader and its two
// other replicas are current.
func waitStreamWhole(t *testing.T, c *Cluster) {
	t.Helper()
	waitFor(t, "the events stream whole again", func() error {
		st, err := c.JS.Stream(context.Background(), contract.EventsStream)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		return streamWhole(info)
	})
}

func streamWhole(info *jetstream.StreamInfo) error {
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return fmt.Errorf("no leader")
	}
	if len(info.Cluster.Replicas) != 2 {
		return fmt.Errorf("leader %s with %d replicas", info.Cluster.Leader, len(info.Cluster.Replicas))
	}
	for _, r := range info.Cluster.Replicas {
		if !r.Current || r.Offline {
			return fmt.Errorf("replica %s current %v offline %v", r.Name, r.Current, r.Offline)
		}
	}
	return nil
}

// waitFor polls ready until it returns nil, for at most a minute.
func waitFor(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // polling, until the deadline above
	}
}

// webUser is a person logging in through the web front-end with a plain
// HTTP client, reading the codes in the mail catcher.
type webUser struct {
	t    *testing.T
	c    *Cluster
	seen map[string]bool // mails already read
}

// login goes through the three forms (NIR and password, send the code,
// type the code) and opens the home page with the session cookie. A page
// that says the service is unavailable (503: an election in progress) is
// sent again, as a person would, with the same request id.
func (w *webUser) login(nir, password string) {
	w.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := w.get(client, "/connexion", "")
	form := hiddenFields(page)
	form.Set("nir", nir)
	form.Set("password", password)
	page, _ = w.post(client, "/connexion", form, `name="login_id"`)
	page, _ = w.post(client, "/connexion/envoi-code", hiddenFields(page), `name="code"`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mail, err := w.c.Catcher.Wait(ctx, func(m catcher.Message) bool {
		return catcher.To(DemoEmail)(m) && m.Code != "" && !w.seen[m.ID]
	})
	if err != nil {
		w.t.Fatalf("no code mailed: %v", err)
	}
	w.seen[mail.ID] = true
	form = hiddenFields(page)
	form.Set("code", mail.Code)
	_, res := w.post(client, "/connexion/code", form, "")
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/accueil" {
		w.t.Fatalf("the code: %s to %q, want 303 to /accueil", res.Status, res.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range res.Cookies() {
		if strings.HasSuffix(ck.Name, "ameli-session") && ck.Value != "" {
			session = ck
		}
	}
	if session == nil {
		w.t.Fatal("no session cookie after the code")
	}
	// The home page checks the session (session.check) before it shows.
	if home := w.get(client, "/accueil", session.Name+"="+session.Value); !strings.Contains(home, "Se déconnecter") {
		w.t.Fatalf("the home page after the login:\n%s", home)
	}
}

func (w *webUser) get(client *http.Client, path, cookie string) string {
	w.t.Helper()
	var body string
	w.retry503(path, func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, w.c.WebURL+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		return client.Do(req)
	}, &body)
	return body
}

// post sends form to path until it is not 503, and wants want in the page
// (when set).
func (w *webUser) post(client *http.Client, path string, form url.Values, want string) (string, *http.Response) {
	w.t.Helper()
	var body string
	res := w.retry503(path, func() (*http.Response, error) { return client.PostForm(w.c.WebURL+path, form) }, &body)
	if want != "" && (res.StatusCode != http.StatusOK || !strings.Contains(body, want)) {
		w.t.Fatalf("POST %s: %s, no %s in:\n%s", path, res.Status, want, body)
	}
	return body, res
}

func (w *webUser) retry503(path string, do func() (*http.Response, error), body *string) *http.Response {
	w.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := do()
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			*body = string(b)
			if res.StatusCode != http.StatusServiceUnavailable {
				return res
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: still unavailable after a minute (%v)", path, err)
		}
		time.Sleep(100 * time.Millisecond) // polling, until the deadline above
	}
}
