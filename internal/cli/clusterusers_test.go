package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// On the local cluster (`make cluster`), whose nodes run
// deploy/nats/users.conf, authctl run by hand finds who to be in
// <var>/cluster.json: the front-end's user for a person's commands, the
// back-office's for an adviser's, the admin for the streams, each password
// read from the file cluster.json names; AUTH_NATS_USER, when set, wins.
// Here a node with the real users.conf stands for the cluster, with no
// commands service: a request the user may send gets "no responders" at
// once, one it may not send is dropped by the server and times out.
func TestAuthctlConnectsAsTheUserOfTheLocalCluster(t *testing.T) {
	for _, env := range []string{"AUTH_NATS_URL", "AUTH_NATS_USER", "AUTH_NATS_PASSWORD", "AUTH_NATS_PASSWORD_FILE", "AUTH_NATS_CREDS", "AUTH_NATS_INBOX_PREFIX"} {
		t.Setenv(env, "")
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TAG", "group:a")
	varDir := t.TempDir()
	files := map[string]string{}
	for _, u := range app.ClusterNATSUsers {
		pw := "pw" + u + "X7q2"
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(u), pw)
		files[u] = filepath.Join(varDir, "cluster", "nats-passwords", u)
		if err := os.MkdirAll(filepath.Dir(files[u]), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(files[u], []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv := natsutil.RunConfiguredTestServer(t, filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))
	run := func(args ...string) runResult {
		var out, errw syncBuffer
		code := Run(context.Background(), append([]string{"--var-dir", varDir}, args...), strings.NewReader(""), &out, &errw)
		return runResult{stdout: out.String(), stderr: errw.String(), code: code}
	}
	expect := func(r runResult, want string, args ...string) {
		t.Helper()
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("authctl %s: status %d, stderr %q; want %q", strings.Join(args, " "), r.code, r.stderr, want)
		}
	}
	try := func(want string, args ...string) { t.Helper(); expect(run(args...), want, args...) }

	// No cluster running on the var dir: no user, refused.
	try("Authorization Violation", "--nats-url", srv.ClientURL(), "req", "login.password", "{}")

	st := app.ClusterState{DevState: app.DevState{PID: os.Getpid(), NATSURL: srv.ClientURL(), Prefix: "auth", NATSPasswordFiles: files}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(app.ClusterStatePath(varDir), b, 0o600); err != nil {
		t.Fatal(err)
	}
	const noResponders = "no responders"
	try(noResponders, "req", "login.password", "{}")                       // frontend
	try(noResponders, "req", "account.unlock", "{}")                       // backoffice
	try("no commands service answers", "account", "unlock", "--nir", nirA) // backoffice
	try("no stream AUTH_EVENTS", "events")                                 // admin: reads the streams
	// --nats-url naming the cluster's node: the same users.
	try(noResponders, "--nats-url", srv.ClientURL(), "req", "login.password", "{}")

	// AUTH_NATS_USER wins: the front-end's user may not send a back-office
	// command, dropped by the server, so no reply ever comes.
	t.Setenv("AUTH_NATS_USER", "frontend")
	t.Setenv("AUTH_NATS_PASSWORD_FILE", files["frontend"])
	try("deadline exceeded", "req", "--timeout", "500ms", "account.unlock", "{}")
}
