package natsutil

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestCluster is a cluster of nats-servers with JetStream, embedded in the
// test process, for the tests of what survives a node's death, a partition
// and a restart of the whole cluster.
//
// Every route goes through a Proxy: node i reaches node j through
// routes[i][j], so Isolate(i) cuts node i off from the others (both
// directions) while it keeps running and serving its clients. Each node
// advertises a sink address (a listener that closes what it accepts) as
// its cluster address, so the servers never open the implicit routes
// gossip suggests, which would go around the proxies.
type TestCluster struct {
	tb    testing.TB
	Name  string
	nodes []*testNode
	// routes[i][j] carries node i's route to node j; nil when i == j.
	routes [][]*Proxy
	sink   net.Listener
	sinkWG sync.WaitGroup
}

type testNode struct {
	name        string
	tags        []string // server_tags (JetStream placement tags)
	storeDir    string
	clientPort  int // 0 before the first start, then kept for restarts
	clusterPort int
	srv         *server.Server // nil while down
}

// ClusterReadyTimeout bounds the waits for the cluster and its JetStream
// meta leader to form; a Raft election takes 4 to 9 s in nats-server 2.15
// after a leader is lost, and the race detector slows everything down.
const ClusterReadyTimeout = 45 * time.Second

// ClusterOption shapes a TestCluster.
type ClusterOption func(*TestCluster)

// WithServerTags gives node i the server_tags tags[i] (nats-server
// lowercases them), for the tests of JetStream placement; nodes past the
// list get none.
func WithServerTags(tags ...[]string) ClusterOption {
	return func(c *TestCluster) {
		for i, nd := range c.nodes {
			if i < len(tags) {
				nd.tags = slices.Clone(tags[i])
			}
		}
	}
}

// StartTestCluster starts n clustered servers on 127.0.0.1 (random ports,
// a store each in tb.TempDir()) and waits until every node routes to every
// other and the JetStream meta group has a leader. Everything stops when the
// test ends.
func StartTestCluster(tb testing.TB, n int, opts ...ClusterOption) *TestCluster {
	tb.Helper()
	if n < 2 {
		tb.Fatalf("test cluster: %d nodes, want at least 2", n)
	}
	c := &TestCluster{tb: tb, Name: "authsvc-test"}
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("test cluster: sink: %v", err)
	}
	c.sink = sink
	c.sinkWG.Add(1)
	go func() {
		defer c.sinkWG.Done()
		for {
			conn, err := sink.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_ = conn.Close()
			}
		}
	}()
	c.routes = make([][]*Proxy, n)
	for i := range n {
		c.routes[i] = make([]*Proxy, n)
		for j := range n {
			if i == j {
				continue
			}
			p, err := NewProxy("")
			if err != nil {
				c.stop()
				tb.Fatalf("test cluster: %v", err)
			}
			c.routes[i][j] = p
		}
	}
	for i := range n {
		c.nodes = append(c.nodes, &testNode{name: fmt.Sprintf("n%d", i), storeDir: tb.TempDir()})
	}
	for _, o := range opts {
		o(c)
	}
	tb.Cleanup(c.stop)
	// Later nodes dial the ones already up, so the mesh forms without
	// waiting for the servers' one-second route retry.
	for i := range n {
		c.Start(i)
	}
	c.WaitReady()
	return c
}

// Size is the number of nodes.
func (c *TestCluster) Size() int { return len(c.nodes) }

// NodeName is node i's server name (n0, n1...), as stream infos name the
// peers.
func (c *TestCluster) NodeName(i int) string { return c.nodes[i].name }

// Tags is node i's server_tags (WithServerTags).
func (c *TestCluster) Tags(i int) []string { return slices.Clone(c.nodes[i].tags) }

// Server is node i's running server, nil while it is down.
func (c *TestCluster) Server(i int) *server.Server { return c.nodes[i].srv }

// ClientURL is node i's client URL (the same across restarts).
func (c *TestCluster) ClientURL(i int) string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.nodes[i].clientPort))
}

// URLs lists every node's client URL, node first's first: a client given
// it with nats.DontRandomize connects to that node and fails over to the
// others.
func (c *TestCluster) URLs(first int) string {
	urls := []string{c.ClientURL(first)}
	for i := range c.nodes {
		if i != first {
			urls = append(urls, c.ClientURL(i))
		}
	}
	return strings.Join(urls, ",")
}

// Connect connects to node i (falling over to the others when it is down)
// and closes the connection when the test ends. It reconnects without end,
// so it rides over a restart of the whole cluster.
func (c *TestCluster) Connect(tb testing.TB, i int) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(c.URLs(i),
		nats.DontRandomize(),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.MaxReconnects(-1),
	)
	if err != nil {
		tb.Fatalf("connect to test cluster node %d: %v", i, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

func (c *TestCluster) options(i int) *server.Options {
	nd := c.nodes[i]
	var routes []string
	for j, p := range c.routes[i] {
		if j != i {
			routes = append(routes, "nats-route://"+p.Addr())
		}
	}
	port := func(p int) int {
		if p == 0 {
			return server.RANDOM_PORT
		}
		return p
	}
	o := &server.Options{
		ServerName: nd.name,
		Host:       "127.0.0.1",
		Port:       port(nd.clientPort),
		JetStream:  true,
		StoreDir:   nd.storeDir,
		NoLog:      true,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name:      c.Name,
			Host:      "127.0.0.1",
			Port:      port(nd.clusterPort),
			Advertise: c.sink.Addr().String(),
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
	}
	o.Tags.Add(nd.tags...)
	return o
}

// Start starts node i, which must be down, on its ports and store (random
// ports the first time). It does not wait for the cluster: see WaitReady.
func (c *TestCluster) Start(i int) {
	c.tb.Helper()
	nd := c.nodes[i]
	if nd.srv != nil {
		c.tb.Fatalf("test cluster: node %d already running", i)
	}
	srv, err := startServer(c.options(i))
	if err != nil {
		c.tb.Fatalf("test cluster: node %d: %v", i, err)
	}
	nd.srv = srv
	nd.clientPort = srv.Addr().(*net.TCPAddr).Port
	nd.clusterPort = srv.ClusterAddr().Port
	for j := range c.nodes {
		if j != i {
			c.routes[j][i].SetTarget(net.JoinHostPort("127.0.0.1", strconv.Itoa(nd.clusterPort)))
		}
	}
}

// Shutdown stops node i (a clean shutdown of the process, as by SIGTERM
// without lame duck mode) and waits until it has stopped.
func (c *TestCluster) Shutdown(i int) {
	nd := c.nodes[i]
	if nd.srv == nil {
		return
	}
	nd.srv.Shutdown()
	nd.srv.WaitForShutdown()
	nd.srv = nil
}

// Restart stops node i and starts it again on the same ports and store.
func (c *TestCluster) Restart(i int) {
	c.tb.Helper()
	c.Shutdown(i)
	c.Start(i)
}

// RestartAll stops every node, then starts them all again, and waits for
// the cluster to form.
func (c *TestCluster) RestartAll() {
	c.tb.Helper()
	for i := range c.nodes {
		c.Shutdown(i)
	}
	for i := range c.nodes {
		c.Start(i)
	}
	c.WaitReady()
}

// Isolate cuts every route between node i and the others, both ways.
func (c *TestCluster) Isolate(i int) {
	for j := range c.nodes {
		if j != i {
			c.routes[i][j].Cut()
			c.routes[j][i].Cut()
		}
	}
}

// Heal restores node i's routes; the servers redial within their route
// retry interval (1 s).
func (c *TestCluster) Heal(i int) {
	for j := range c.nodes {
		if j != i {
			c.routes[i][j].Heal()
			c.routes[j][i].Heal()
		}
	}
}

// WaitReady waits until every running node routes to every other running
// node, one of them is the JetStream meta leader, knows them all as
// JetStream peers (so it can place replicas) and all are current with it.
func (c *TestCluster) WaitReady() {
	c.tb.Helper()
	c.poll("cluster ready", ClusterReadyTimeout, c.readiness)
}

func (c *TestCluster) readiness() error {
	var running []*testNode
	for _, nd := range c.nodes {
		if nd.srv != nil {
			running = append(running, nd)
		}
	}
	leaders := 0
	for _, nd := range running {
		rz, err := nd.srv.Routez(nil)
		if err != nil {
			return fmt.Errorf("%s routez: %w", nd.name, err)
		}
		peers := map[string]bool{}
		for _, r := range rz.Routes {
			peers[r.RemoteName] = true
		}
		if len(peers) != len(running)-1 {
			return fmt.Errorf("%s routes to %d nodes, want %d", nd.name, len(peers), len(running)-1)
		}
		if nd.srv.JetStreamIsLeader() {
			leaders++
			// Placement needs the leader to know each peer online with
			// JetStream and its stats, else "no suitable peers".
			if peers := nd.srv.JetStreamClusterPeers(); len(peers) != len(running) {
				return fmt.Errorf("meta leader %s knows %d JetStream peers %v, want %d", nd.name, len(peers), peers, len(running))
			}
		}
		if !nd.srv.JetStreamIsCurrent() {
			return fmt.Errorf("%s JetStream meta not current", nd.name)
		}
	}
	if leaders != 1 {
		return fmt.Errorf("%d JetStream meta leaders", leaders)
	}
	return nil
}

// WaitStream waits until the stream (in the default account) has a leader
// among the running nodes and every running node that hosts a replica is
// current on it, as many as the stream has replicas (with placement tags,
// on more nodes than replicas, the others hold none).
func (c *TestCluster) WaitStream(stream string) {
	c.tb.Helper()
	c.poll("stream "+stream+" ready", ClusterReadyTimeout, func() error {
		if c.StreamLeader(stream) < 0 {
			return fmt.Errorf("stream %s has no leader", stream)
		}
		hosts, err := c.hosts(stream)
		if err != nil {
			return err
		}
		for _, nd := range hosts {
			if !nd.srv.JetStreamIsStreamCurrent(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
				return fmt.Errorf("%s not current on stream %s", nd.name, stream)
			}
		}
		return nil
	})
}

// hosts lists the running nodes the stream (in the default account) is
// assigned to, and fails unless they and the nodes down are at least as
// many as its replicas (its leader's configuration says): a running node
// that has not learned the assignment yet is not left out.
func (c *TestCluster) hosts(stream string) ([]*testNode, error) {
	leader := c.StreamLeader(stream)
	if leader < 0 {
		return nil, fmt.Errorf("stream %s has no leader", stream)
	}
	replicas := streamReplicas(c.nodes[leader].srv, stream)
	var hosts []*testNode
	down := 0
	for _, nd := range c.nodes {
		switch {
		case nd.srv == nil:
			down++
		case nd.srv.JetStreamIsStreamAssigned(server.DEFAULT_GLOBAL_ACCOUNT, stream):
			hosts = append(hosts, nd)
		}
	}
	if len(hosts)+down < replicas {
		return nil, fmt.Errorf("stream %s: %d running nodes host it (%d down), it has %d replicas", stream, len(hosts), down, replicas)
	}
	return hosts, nil
}

// WaitApplied waits until every running node's replica of the stream (in
// the default account) holds the messages up to seq. A client that reads
// right after an acked append may be answered by a replica that has not
// applied it yet (direct gets, consumers placed on followers): tests that
// need to read their own writes wait here first.
func (c *TestCluster) WaitApplied(stream string, seq uint64) {
	c.tb.Helper()
	c.poll(fmt.Sprintf("stream %s applied up to %d", stream, seq), ClusterReadyTimeout, func() error {
		hosts, err := c.hosts(stream)
		if err != nil {
			return err
		}
		for _, nd := range hosts {
			if last := streamLastSeq(nd.srv, stream); last < seq {
				return fmt.Errorf("%s has stream %s up to %d", nd.name, stream, last)
			}
		}
		return nil
	})
}

// streamReplicas is the stream's replicas in srv's configuration of it, 0
// if srv does not hold it.
func streamReplicas(srv *server.Server, stream string) int {
	jsz, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Config: true})
	if err != nil {
		return 0
	}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if st.Name == stream && st.Config != nil {
				return max(st.Config.Replicas, 1)
			}
		}
	}
	return 0
}

func streamLastSeq(srv *server.Server, stream string) uint64 {
	jsz, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0
	}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if st.Name == stream {
				return st.State.LastSeq
			}
		}
	}
	return 0
}

// StreamLeader is the index of the node leading the stream, -1 if none.
func (c *TestCluster) StreamLeader(stream string) int {
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// poll checks ready until it returns nil, failing the test with its last
// error after timeout.
func (c *TestCluster) poll(what string, timeout time.Duration, ready func() error) {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("test cluster: %s: timed out after %s: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // polling, until the deadline above
	}
}

func (c *TestCluster) stop() {
	for i := range c.nodes {
		c.Shutdown(i)
	}
	for _, row := range c.routes {
		for _, p := range row {
			if p != nil {
				_ = p.Close()
			}
		}
	}
	_ = c.sink.Close()
	c.sinkWG.Wait()
}
