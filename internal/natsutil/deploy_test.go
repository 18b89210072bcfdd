package natsutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// deploy/nats/nats-server.conf is a valid nats-server configuration with
// the durability docs/durability.md chooses: JetStream, sync always, a
// cluster routing to three nodes; and its users (users.conf, included),
// whose passwords come from the environment. What each user may do is
// tested in internal/app (TestNATSUsersPermissions) and internal/contract
// (TestUsersConfMatchesTheContract).
func TestDeployedServerConfig(t *testing.T) {
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TAG", "group:a")
	users := []string{"commands", "projector", "notifier", "frontend", "backoffice", "admin"}
	for _, u := range users {
		t.Setenv("NATS_PASSWORD_"+strings.ToUpper(u), "pw-of-"+u)
	}
	o, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if o.ServerName != "nats-1" || !o.JetStream || !o.SyncAlways || o.Cluster.Name == "" || len(o.Routes) != 3 {
		t.Fatalf("server %q jetstream %v sync always %v cluster %q routes %d", o.ServerName, o.JetStream, o.SyncAlways, o.Cluster.Name, len(o.Routes))
	}
	if len(o.Users) != len(users) || o.NoAuthUser != "" || o.Nkeys != nil {
		t.Fatalf("%d users, no-auth user %q, nkeys %v; want the %d users of users.conf and no anonymous access", len(o.Users), o.NoAuthUser, o.Nkeys, len(users))
	}
	for _, u := range o.Users {
		if u.Password != "pw-of-"+u.Username || u.Permissions == nil {
			t.Errorf("user %s: password not from NATS_PASSWORD_%s, or no permissions", u.Username, strings.ToUpper(u.Username))
		}
	}
	// A missing password is an error at start, not an empty password.
	os.Unsetenv("NATS_PASSWORD_FRONTEND")
	if _, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "nats-server.conf")); err == nil || !strings.Contains(err.Error(), "NATS_PASSWORD_FRONTEND") {
		t.Fatalf("without NATS_PASSWORD_FRONTEND: %v", err)
	}
}
