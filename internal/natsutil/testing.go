package natsutil

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The options each test server was started with, so RestartTestServer can
// start an identical one. Kept here rather than in a wrapper type so tests
// keep handling a plain *server.Server.
var (
	testOptsMu sync.Mutex
	testOpts   = map[*server.Server]EmbeddedConfig{}
)

// RunTestServer starts an embedded JetStream server on a random port with a
// store in tb.TempDir(); it is shut down when the test ends.
func RunTestServer(tb testing.TB) *server.Server {
	tb.Helper()
	return runTestServer(tb, EmbeddedConfig{Listen: "127.0.0.1:-1", StoreDir: tb.TempDir()})
}

func runTestServer(tb testing.TB, cfg EmbeddedConfig) *server.Server {
	tb.Helper()
	opts, err := embeddedOptions(cfg)
	if err != nil {
		tb.Fatalf("test nats server: %v", err)
	}
	// No fallback to a random port here: a restart must come back on the
	// same port for the clients to reconnect, so a taken port is a failure.
	srv, err := startServer(opts)
	if err != nil {
		tb.Fatalf("test nats server: %v", err)
	}
	// Remember the bound port so a restart reuses it.
	cfg.Listen = net.JoinHostPort(opts.Host, strconv.Itoa(srv.Addr().(*net.TCPAddr).Port))
	testOptsMu.Lock()
	testOpts[srv] = cfg
	testOptsMu.Unlock()
	tb.Cleanup(func() { stopTestServer(srv) })
	return srv
}

func stopTestServer(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
	testOptsMu.Lock()
	delete(testOpts, srv)
	testOptsMu.Unlock()
}

// RestartTestServer shuts srv down and starts a new server on the same port
// with the same store, so a test can check what survives a restart. Clients
// made by Connect reconnect on their own. srv must come from RunTestServer
// or RestartTestServer.
func RestartTestServer(tb testing.TB, srv *server.Server) *server.Server {
	tb.Helper()
	testOptsMu.Lock()
	cfg, ok := testOpts[srv]
	testOptsMu.Unlock()
	if !ok {
		tb.Fatalf("RestartTestServer: server %s was not started by RunTestServer", srv.ClientURL())
	}
	stopTestServer(srv)
	return runTestServer(tb, cfg)
}

// Connect connects to srv, closing the connection when the test ends. It
// reconnects quickly and for long enough to ride over RestartTestServer.
func Connect(tb testing.TB, srv *server.Server) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(srv.ClientURL(),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
		nats.MaxReconnects(200),
	)
	if err != nil {
		tb.Fatalf("connect to test nats server %s: %v", srv.ClientURL(), err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// RunConfiguredTestServer starts a server from a nats-server configuration
// file, its includes and $VARIABLES processed as nats-server does (the
// test sets the variables with t.Setenv), but as one node on a random port
// of 127.0.0.1, without monitoring and with a store in tb.TempDir(): what
// the file says of users, permissions and JetStream is what is tested. It
// is shut down when the test ends.
func RunConfiguredTestServer(tb testing.TB, path string) *server.Server {
	tb.Helper()
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		tb.Fatalf("test nats server: %s: %v", path, err)
	}
	opts.ServerName = "authsvc-test"
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort, opts.HTTPSPort = "", 0, 0
	opts.Cluster, opts.Routes, opts.RoutesStr = server.ClusterOpts{}, nil, ""
	opts.StoreDir = tb.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	if !opts.JetStream {
		tb.Fatalf("test nats server: %s does not enable JetStream", path)
	}
	srv, err := startServer(opts)
	if err != nil {
		tb.Fatalf("test nats server: %v", err)
	}
	tb.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}
