package natsutil

import (
	"path/filepath"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// deploy/nats/nats-server.conf is a valid nats-server configuration with
// the durability docs/durability.md chooses: JetStream, sync always, a
// cluster routing to three nodes.
func TestDeployedServerConfig(t *testing.T) {
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	o, err := server.ProcessConfigFile(filepath.Join("..", "..", "deploy", "nats", "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if o.ServerName != "nats-1" || !o.JetStream || !o.SyncAlways || o.Cluster.Name == "" || len(o.Routes) != 3 {
		t.Fatalf("server %q jetstream %v sync always %v cluster %q routes %d", o.ServerName, o.JetStream, o.SyncAlways, o.Cluster.Name, len(o.Routes))
	}
}
