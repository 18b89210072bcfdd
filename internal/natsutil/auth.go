package natsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// Auth is who a connection is to NATS and how it checks the server
// (config.NATSClient gives it; docs/operations.md, "NATS users and
// permissions" and "TLS"). The zero value is an anonymous connection
// without TLS, as dev mode's embedded server takes.
type Auth struct {
	User, Password string // a user of deploy/nats/users.conf
	CredsFile      string // or a .creds file (user JWT and nkey seed), for operator/JWT deployments
	// TLSCA, a PEM file, makes TLS required and the server's certificate
	// verified against it; TLSCert and TLSKey, PEM files, add a client
	// certificate (mutual TLS).
	TLSCA, TLSCert, TLSKey string
	// InboxPrefix is the prefix of the connection's reply subjects; ""
	// keeps nats.go's _INBOX. The users' permissions let each subscribe
	// to its own prefix only.
	InboxPrefix string
}

// Options are the nats.go options for a: credentials, TLS and the inbox
// prefix. The files are read now, so a missing or unreadable one is an
// error naming it, not a connection failure later.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.CredsFile != "" && a.User != "":
		return nil, errors.New("nats: a user and a .creds file are both set")
	case a.CredsFile != "":
		if _, err := os.Stat(a.CredsFile); err != nil {
			return nil, fmt.Errorf("nats .creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	if a.TLSCA != "" || a.TLSCert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if a.TLSCA != "" {
			pem, err := os.ReadFile(a.TLSCA)
			if err != nil {
				return nil, fmt.Errorf("nats TLS CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("nats TLS CA: no PEM certificate in %s", a.TLSCA)
			}
			tc.RootCAs = pool
		}
		if a.TLSCert != "" || a.TLSKey != "" {
			cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
			if err != nil {
				return nil, fmt.Errorf("nats TLS client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		// nats.Secure makes TLS required: a server that does not offer it
		// is refused instead of talked to in clear.
		opts = append(opts, nats.Secure(tc))
	}
	if a.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(a.InboxPrefix))
	}
	return opts, nil
}
