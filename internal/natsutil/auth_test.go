package natsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// testPKI is a CA and certificates it signed, as PEM files in a directory.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CAFile string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key}
	p.CAFile = p.write(t, name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue returns the certificate and key files of a leaf for 127.0.0.1.
func (p *testPKI) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

// runTLSServer runs a server that speaks TLS only, with a user; verify
// asks for a client certificate signed by the CA (mutual TLS).
func runTLSServer(t *testing.T, pki *testPKI, verify bool) *server.Server {
	t.Helper()
	cert, key := pki.issue(t, "nats-1", x509.ExtKeyUsageServerAuth)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cert, KeyFile: key, CaFile: pki.CAFile, Verify: verify})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: tc, TLSVerify: verify, TLSTimeout: 2,
		Users: []*server.User{{Username: "commands", Password: "pw-1"}}, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func connectWith(t *testing.T, url string, a Auth) (*nats.Conn, error) {
	t.Helper()
	opts, err := a.Options()
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	nc, err := nats.Connect(url, append(opts, nats.MaxReconnects(0), nats.Timeout(2*time.Second))...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// AUTH_NATS_TLS_CA makes the connection TLS, the server's certificate
// verified against that CA; a client certificate is sent for mutual TLS;
// the user and password travel inside. Without the CA's trust, or to a
// server without TLS, no connection.
func TestAuthOptionsTLS(t *testing.T) {
	pki := newTestPKI(t, "auth-test")
	srv := runTLSServer(t, pki, false)
	url := "nats://" + srv.Addr().String()

	nc, err := connectWith(t, url, Auth{User: "commands", Password: "pw-1", TLSCA: pki.CAFile, InboxPrefix: "_INBOX.commands"})
	if err != nil {
		t.Fatalf("TLS with the CA: %v", err)
	}
	if st, err := nc.TLSConnectionState(); err != nil || !st.HandshakeComplete || st.PeerCertificates[0].Subject.CommonName != "nats-1" {
		t.Fatalf("connection state %v, %v", st, err)
	}
	if inbox := nc.NewInbox(); !strings.HasPrefix(inbox, "_INBOX.commands.") {
		t.Fatalf("inbox %q", inbox)
	}
	if _, err := connectWith(t, url, Auth{User: "commands", Password: "wrong", TLSCA: pki.CAFile}); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("a wrong password over TLS: %v, want an authorization error", err)
	}
	// Another CA: the server's certificate is not trusted.
	other := newTestPKI(t, "someone-else")
	if _, err := connectWith(t, url, Auth{User: "commands", Password: "pw-1", TLSCA: other.CAFile}); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("TLS with another CA: %v, want unknown authority", err)
	}
	// A server in clear, with the CA set: refused, never talked to in clear.
	plain := RunTestServer(t)
	if _, err := connectWith(t, plain.ClientURL(), Auth{TLSCA: pki.CAFile}); !errors.Is(err, nats.ErrSecureConnWanted) {
		t.Fatalf("a server without TLS: %v, want %v", err, nats.ErrSecureConnWanted)
	}

	// Mutual TLS: the server asks for a client certificate from its CA.
	mtls := runTLSServer(t, pki, true)
	murl := "nats://" + mtls.Addr().String()
	cert, key := pki.issue(t, "commands", x509.ExtKeyUsageClientAuth)
	if _, err := connectWith(t, murl, Auth{User: "commands", Password: "pw-1", TLSCA: pki.CAFile, TLSCert: cert, TLSKey: key}); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if _, err := connectWith(t, murl, Auth{User: "commands", Password: "pw-1", TLSCA: pki.CAFile}); err == nil {
		t.Fatal("mutual TLS without a client certificate connected")
	}
}

// A missing or unreadable file is an error at start that names it.
func TestAuthOptionsBadFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		a    Auth
		want string
	}{
		{Auth{CredsFile: filepath.Join(dir, "missing.creds")}, "nats .creds file"},
		{Auth{TLSCA: filepath.Join(dir, "missing.pem")}, "nats TLS CA"},
		{Auth{TLSCA: notPEM}, "no PEM certificate in " + notPEM},
		{Auth{TLSCert: notPEM, TLSKey: notPEM}, "nats TLS client certificate"},
		{Auth{User: "a", CredsFile: notPEM}, "both set"},
	} {
		if _, err := c.a.Options(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.a, err, c.want)
		}
	}
}
