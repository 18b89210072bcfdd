// Package natsutil starts an in-process NATS server with JetStream, for the
// single-binary deployment and for tests that must not depend on a NATS
// running on the machine.
package natsutil

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig says where the embedded server listens and keeps its data.
type EmbeddedConfig struct {
	// Listen is host:port. An empty value, an empty port or port -1 (or 0,
	// which nats-server would read as 4222) picks a random free port.
	Listen string
	// StoreDir is the JetStream file store directory.
	StoreDir string
}

// readyTimeout bounds the wait for the server to accept clients; JetStream
// recovers its streams before that, so a large store makes it slower.
const readyTimeout = 10 * time.Second

// StartEmbedded starts a nats-server with JetStream in this process and
// waits until it accepts connections. If the requested port is taken it
// falls back to a random free port: read srv.ClientURL() for the address
// actually used. The server does not log and does not handle signals, so it
// never writes to the host's stdout nor fights the host for SIGTERM.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return nil, err
	}
	if opts.Port > 0 && !portFree(opts.Host, opts.Port) {
		opts.Port = server.RANDOM_PORT
	}
	srv, err := startServer(opts)
	if err != nil && opts.Port != server.RANDOM_PORT {
		// The port may have been taken between the probe and the bind.
		opts.Port = server.RANDOM_PORT
		srv, err = startServer(opts)
	}
	return srv, err
}

func embeddedOptions(cfg EmbeddedConfig) (*server.Options, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: StoreDir is required")
	}
	host, port := "127.0.0.1", server.RANDOM_PORT
	if cfg.Listen != "" {
		h, p, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: listen %q: %w", cfg.Listen, err)
		}
		if h != "" {
			host = h
		}
		if p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < -1 || n > 65535 {
				return nil, fmt.Errorf("embedded nats: listen %q: bad port", cfg.Listen)
			}
			if n > 0 {
				port = n
			}
		}
	}
	return &server.Options{
		ServerName: "authsvc-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoLog:      true,
		NoSigs:     true,
	}, nil
}

// portFree probes the port because nats-server reports a failed bind only
// through its logger, which is off: it would just never become ready.
func portFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// startServer copies opts so the caller's copy keeps RANDOM_PORT and the
// server's own copy gets the bound port.
func startServer(opts *server.Options) (*server.Server, error) {
	o := *opts
	srv, err := server.NewServer(&o)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: not ready after %s on %s:%d", readyTimeout, o.Host, o.Port)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("embedded nats: JetStream did not start (store %s)", o.StoreDir)
	}
	return srv, nil
}
