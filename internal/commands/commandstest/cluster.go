package commandstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/natsutil"
)

// StartCluster starts a 3-node cluster (natsutil.StartTestCluster) and
// the harness on it: the stream and buckets with 3 replicas, the
// front-end's connection on node o.FrontEnd, instance i on node i % 3.
// It returns once the stream has a leader and every replica is current.
func StartCluster(tb testing.TB, o Options) *Harness {
	tb.Helper()
	o.Cluster = natsutil.StartTestCluster(tb, 3)
	h := Start(tb, o)
	h.Cluster.WaitStream(contract.EventsStream)
	return h
}

// startNATS is the single test server, or the cluster of o.Cluster.
func startNATS(tb testing.TB, o Options) (*server.Server, *nats.Conn, eventstore.JetStreamConfig) {
	tb.Helper()
	if o.Cluster == nil {
		srv := o.Server
		if srv == nil {
			srv = natsutil.RunTestServer(tb)
		}
		return srv, natsutil.Connect(tb, srv), eventstore.JetStreamConfig{}
	}
	replicas := o.Replicas
	if replicas == 0 {
		replicas = o.Cluster.Size()
	}
	return nil, o.Cluster.Connect(tb, o.FrontEnd), eventstore.JetStreamConfig{Replicas: replicas}
}

// instanceConn is the connection of the next instance: to the server, or
// to the next node of the cluster in turn.
func (h *Harness) instanceConn() *nats.Conn {
	h.T.Helper()
	if h.Cluster == nil {
		return natsutil.Connect(h.T, h.Server)
	}
	node := len(h.Svcs) % h.Cluster.Size()
	h.SvcNodes = append(h.SvcNodes, node)
	return h.Cluster.Connect(h.T, node)
}
