package mail_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/mail/catcher"
)

const from = "Votre Assurance Maladie <ne-pas-repondre@app.assurance-maladie.fr>"

func startCatcher(t *testing.T, opts catcher.Options) *catcher.Catcher {
	t.Helper()
	c, err := catcher.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newSender(t *testing.T, cfg mail.SMTPConfig) *mail.SMTPSender {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Second
	}
	s, err := mail.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func codeMail(t *testing.T, to, code string) mail.Message {
	t.Helper()
	subject, text, html, err := mail.Render(mail.KindLoginCode, mail.LoginCode{Code: code, Lifetime: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return mail.Message{From: from, To: to, MessageID: mail.MessageID("01JEVENT"+code, mail.KindLoginCode, from),
		Date: time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC), Subject: subject, Text: text, HTML: html}
}

func waitOne(t *testing.T, c *catcher.Catcher, match func(catcher.Message) bool) catcher.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := c.Wait(ctx, match)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSendDeliversMultipartAlternativeInFrench(t *testing.T) {
	c := startCatcher(t, catcher.Options{})
	s := newSender(t, mail.SMTPConfig{Addr: c.Addr(), TLS: mail.TLSNone})
	if err := s.Send(context.Background(), codeMail(t, "valerie@example.fr", "123456")); err != nil {
		t.Fatal(err)
	}
	m := waitOne(t, c, nil)
	if m.MediaType != "multipart/alternative" {
		t.Errorf("media type %q", m.MediaType)
	}
	if m.Subject != "Votre code de sécurité pour vous connecter à votre compte ameli" {
		t.Errorf("subject %q", m.Subject)
	}
	if m.From != "\"Votre Assurance Maladie\" <ne-pas-repondre@app.assurance-maladie.fr>" && m.From != from {
		t.Errorf("From %q", m.From)
	}
	if m.MailFrom != "ne-pas-repondre@app.assurance-maladie.fr" || len(m.RcptTo) != 1 || m.RcptTo[0] != "valerie@example.fr" {
		t.Errorf("envelope %q -> %q", m.MailFrom, m.RcptTo)
	}
	if m.MessageID != "01JEVENT123456.login-code@app.assurance-maladie.fr" {
		t.Errorf("Message-ID %q", m.MessageID)
	}
	if !m.Date.Equal(time.Date(2023, 1, 5, 13, 30, 0, 0, time.UTC)) {
		t.Errorf("Date %v", m.Date)
	}
	for k, want := range map[string]string{"Auto-Submitted": "auto-generated", "Content-Language": "fr", "Mime-Version": "1.0"} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if m.Code != "123456" || !strings.Contains(m.Text, "valable seulement 15 minutes") || !strings.Contains(m.HTML, ">123456</span>") {
		t.Errorf("parts: code %q\n%s\n%s", m.Code, m.Text, m.HTML)
	}
	if m.TLS {
		t.Error("TLS none went encrypted")
	}
}

func TestSenderKeepsItsConnectionAndReconnectsWhenTheServerDroppedIt(t *testing.T) {
	c := startCatcher(t, catcher.Options{})
	s := newSender(t, mail.SMTPConfig{Addr: c.Addr(), TLS: mail.TLSNone, MaxConns: 1})
	for i, code := range []string{"111111", "222222", "333333"} {
		if err := s.Send(context.Background(), codeMail(t, "a@example.fr", code)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if n := c.Sessions(); n != 1 {
		t.Errorf("3 mails took %d connections, want 1", n)
	}
	// The server goes away and comes back on the same address: the kept
	// connection is dead, the next mail must still leave, once.
	addr := c.Addr()
	_ = c.Close()
	c2 := startCatcher(t, catcher.Options{Addr: addr})
	if err := s.Send(context.Background(), codeMail(t, "a@example.fr", "444444")); err != nil {
		t.Fatal(err)
	}
	if m := waitOne(t, c2, nil); m.Code != "444444" || c2.Count() != 1 {
		t.Errorf("after reconnect: code %q, %d mails", m.Code, c2.Count())
	}
}

func TestRefusalsAreClassifiedAndNeverNameTheAddress(t *testing.T) {
	const rcpt = "secret.person@example.fr"
	c := startCatcher(t, catcher.Options{Refuse: func(m catcher.Message) error {
		if strings.Contains(m.Code, "5") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + rcpt + ">: mailbox unavailable"}
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: rcpt + " try later"}
	}})
	s := newSender(t, mail.SMTPConfig{Addr: c.Addr(), TLS: mail.TLSNone})

	err := s.Send(context.Background(), codeMail(t, rcpt, "555555"))
	var de *mail.DeliveryError
	if !mail.IsPermanent(err) || !asDelivery(err, &de) || de.Code != 550 || de.Enhanced != "5.1.1" {
		t.Fatalf("550: want a permanent DeliveryError with its code, got %#v (%v)", de, err)
	}
	if strings.Contains(err.Error(), "secret.person") {
		t.Errorf("the error names the address: %v", err)
	}

	err = s.Send(context.Background(), codeMail(t, rcpt, "444444"))
	if err == nil || mail.IsPermanent(err) || !asDelivery(err, &de) || de.Code != 451 {
		t.Fatalf("451: want a temporary DeliveryError, got %v", err)
	}
	if strings.Contains(err.Error(), "secret.person") {
		t.Errorf("the error names the address: %v", err)
	}
	if err := s.Send(context.Background(), mail.Message{From: from, To: "not an address"}); !mail.IsPermanent(err) || strings.Contains(err.Error(), "not an address") {
		t.Errorf("bad recipient: %v", err)
	}
}

func asDelivery(err error, de **mail.DeliveryError) bool {
	d, ok := err.(*mail.DeliveryError)
	*de = d
	return ok
}

func TestServerDownIsTemporary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s := newSender(t, mail.SMTPConfig{Addr: addr, TLS: mail.TLSNone})
	err = s.Send(context.Background(), codeMail(t, "a@example.fr", "123456"))
	if err == nil || mail.IsPermanent(err) || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("want a temporary connect failure, got %v", err)
	}
}

func TestTLSModes(t *testing.T) {
	serverTLS, roots := selfSigned(t)
	clientTLS := &tls.Config{RootCAs: roots}

	plain := startCatcher(t, catcher.Options{})
	starttls := startCatcher(t, catcher.Options{TLSConfig: serverTLS})
	implicit := startCatcher(t, catcher.Options{TLSConfig: serverTLS, ImplicitTLS: true})
	auth := startCatcher(t, catcher.Options{TLSConfig: serverTLS, Users: map[string]string{"notifier": "s3cret"}})

	for _, tc := range []struct {
		name    string
		c       *catcher.Catcher
		cfg     mail.SMTPConfig
		wantTLS bool
		wantErr string
	}{
		{"default uses STARTTLS when offered", starttls, mail.SMTPConfig{}, true, ""},
		{"default goes plain when not offered", plain, mail.SMTPConfig{}, false, ""},
		{"starttls required and offered", starttls, mail.SMTPConfig{TLS: mail.TLSStartTLS}, true, ""},
		{"starttls required, not offered", plain, mail.SMTPConfig{TLS: mail.TLSStartTLS}, false, "STARTTLS"},
		{"none never encrypts", starttls, mail.SMTPConfig{TLS: mail.TLSNone}, false, ""},
		{"implicit tls", implicit, mail.SMTPConfig{TLS: mail.TLSImplicit}, true, ""},
		{"auth over STARTTLS", auth, mail.SMTPConfig{User: "notifier", Password: "s3cret"}, true, ""},
		{"wrong password", auth, mail.SMTPConfig{User: "notifier", Password: "nope"}, false, "535"},
		{"auth required", auth, mail.SMTPConfig{}, false, "temporary failure (sending SMTP MAIL FROM command)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Addr, cfg.TLSConfig = tc.c.Addr(), clientTLS
			s := newSender(t, cfg)
			before := tc.c.Count()
			err := s.Send(context.Background(), codeMail(t, "a@example.fr", "123456"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want an error with %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ms := tc.c.Messages()
			if tc.c.Count() != before+1 || ms[len(ms)-1].TLS != tc.wantTLS {
				t.Errorf("TLS %v, want %v", ms[len(ms)-1].TLS, tc.wantTLS)
			}
		})
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	for _, cfg := range []mail.SMTPConfig{{Addr: ""}, {Addr: "host:notaport"}, {Addr: "host:25", TLS: "ssl"}} {
		if _, err := mail.NewSMTPSender(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// selfSigned returns a server TLS config for 127.0.0.1 and the pool that
// trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "catcher test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}
