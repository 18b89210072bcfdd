package natsutil

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func clientPort(t *testing.T, url string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(url[len("nats://"):])
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestStartEmbeddedRandomPort(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if p := clientPort(t, srv.ClientURL()); p == "4222" || p == "0" {
		t.Fatalf("random port gave %s", srv.ClientURL())
	}
	if !srv.JetStreamEnabled() {
		t.Fatal("JetStream not enabled")
	}
}

func TestStartEmbeddedFallsBackWhenPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	srv, err := StartEmbedded(EmbeddedConfig{Listen: taken, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if clientPort(t, srv.ClientURL()) == clientPort(t, "nats://"+taken) {
		t.Fatalf("server claims the taken port %s", taken)
	}
}

func TestStartEmbeddedRequestedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv, err := StartEmbedded(EmbeddedConfig{Listen: addr, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if srv.ClientURL() != "nats://"+addr {
		t.Fatalf("ClientURL %s, want nats://%s", srv.ClientURL(), addr)
	}
}

func TestStartEmbeddedNeedsStoreDir(t *testing.T) {
	if _, err := StartEmbedded(EmbeddedConfig{}); err == nil {
		t.Fatal("no error without StoreDir")
	}
	if _, err := StartEmbedded(EmbeddedConfig{Listen: "nohostport", StoreDir: t.TempDir()}); err == nil {
		t.Fatal("no error for a malformed Listen")
	}
}

func TestRestartTestServerKeepsPortAndData(t *testing.T) {
	srv := RunTestServer(t)
	nc := Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "s.1", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	srv2 := RestartTestServer(t, srv)
	if srv2.ClientURL() != url {
		t.Fatalf("restarted on %s, want %s", srv2.ClientURL(), url)
	}
	if srv.Running() {
		t.Fatal("old server still running")
	}
	// Polling, until the deadline, for the client to reconnect.
	for deadline := time.Now().Add(10 * time.Second); !nc.IsConnected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client did not reconnect")
		}
	}
	st, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "s.1")
	if err != nil || string(m.Data) != "kept" {
		t.Fatalf("after restart: %v, %v", m, err)
	}
	// A second restart works from the restarted server.
	srv3 := RestartTestServer(t, srv2)
	if srv3.ClientURL() != url {
		t.Fatalf("second restart on %s, want %s", srv3.ClientURL(), url)
	}
}
