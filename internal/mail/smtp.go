package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// TLS modes of AUTH_SMTP_TLS.
const (
	TLSDefault  = ""         // STARTTLS when the server offers it, else plain
	TLSNone     = "none"     // never encrypt (a local relay, the dev catcher)
	TLSStartTLS = "starttls" // STARTTLS required: refuse a server that does not offer it
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, usually port 465)
)

// SMTPConfig is how to reach the SMTP server.
type SMTPConfig struct {
	Addr     string // host:port; without a port, 465 for TLSImplicit, 25 for TLSNone, else 587
	TLS      string // TLSDefault, TLSNone, TLSStartTLS or TLSImplicit
	User     string // optional; with it, the strongest mechanism the server offers (never a cleartext one without TLS)
	Password string
	HELO     string        // default: the machine's host name
	Timeout  time.Duration // connection and each command; default 10s

	// TLSConfig replaces the default (system roots, the host of Addr as
	// server name). For a private CA, or tests.
	TLSConfig *tls.Config

	MaxConns    int           // connections kept open and used at once; default 2
	IdleTimeout time.Duration // an idle connection older than this is closed, not reused; default 30s
}

// Defaults.
const (
	DefaultSMTPTimeout = 10 * time.Second
	defaultMaxConns    = 2
	defaultIdleTimeout = 30 * time.Second
)

// SMTPSender delivers Messages over SMTP through go-mail, keeping a few
// connections open between mails (a code must leave at once; a new TLS
// handshake per mail would cost more than the mail).
type SMTPSender struct {
	client *gomail.Client
	cfg    SMTPConfig
	slots  chan struct{}

	mu     sync.Mutex
	idle   []idleConn
	closed bool
}

type idleConn struct {
	c     *smtp.Client
	since time.Time
}

// NewSMTPSender checks the configuration; it connects on the first Send.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSMTPTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = defaultIdleTimeout
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		host, portStr = cfg.Addr, ""
	}
	if host == "" {
		return nil, fmt.Errorf("AUTH_SMTP_ADDR: no host in %q", cfg.Addr)
	}
	port := 587
	switch cfg.TLS {
	case TLSImplicit:
		port = 465
	case TLSNone:
		port = 25
	case TLSDefault, TLSStartTLS:
	default:
		return nil, fmt.Errorf("AUTH_SMTP_TLS: %q is not none, starttls or tls", cfg.TLS)
	}
	if portStr != "" {
		if port, err = strconv.Atoi(portStr); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("AUTH_SMTP_ADDR: bad port in %q", cfg.Addr)
		}
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(cfg.Timeout)}
	switch cfg.TLS {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if cfg.TLSConfig != nil {
		tc := cfg.TLSConfig.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		opts = append(opts, gomail.WithTLSConfig(tc))
	}
	if cfg.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.User), gomail.WithPassword(cfg.Password))
	}
	if cfg.HELO != "" {
		opts = append(opts, gomail.WithHELO(cfg.HELO))
	}
	c, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return &SMTPSender{client: c, cfg: cfg, slots: make(chan struct{}, cfg.MaxConns)}, nil
}

// ErrClosed: Send after Close.
var ErrClosed = errors.New("mail: sender closed")

// Send delivers one message. It returns nil once the server accepted the
// message (its reply to the end of DATA), and otherwise a *DeliveryError
// telling whether trying again can help.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	msg, err := m.build()
	if err != nil {
		return &DeliveryError{Step: "compose", detail: redact(err.Error())}
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return &DeliveryError{Temporary: true, Step: "wait for a connection", detail: ctx.Err().Error()}
	}
	defer func() { <-s.slots }()

	conn, reused, err := s.conn(ctx)
	if err != nil {
		return err
	}
	err = s.client.SendWithSMTPClient(conn, msg)
	if err != nil && reused && !msg.IsDelivered() && connLost(err) {
		// The kept connection died while idle (the server's timeout);
		// nothing was sent on it. Once more on a fresh one.
		s.discard(conn)
		if conn, err = s.dial(ctx); err != nil {
			return err
		}
		err = s.client.SendWithSMTPClient(conn, msg)
	}
	switch {
	case msg.IsDelivered():
		// Accepted. An error after that (the RSET that readies the next
		// mail) must not make the caller send it again.
		if err != nil {
			s.discard(conn)
		} else {
			s.release(conn)
		}
		return nil
	case err != nil:
		s.discard(conn)
		return classify(err)
	}
	s.release(conn)
	return nil
}

func (s *SMTPSender) conn(ctx context.Context) (*smtp.Client, bool, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false, ErrClosed
	}
	var stale []*smtp.Client
	var got *smtp.Client
	for len(s.idle) > 0 {
		ic := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if time.Since(ic.since) < s.cfg.IdleTimeout {
			got = ic.c
			break
		}
		stale = append(stale, ic.c)
	}
	s.mu.Unlock()
	for _, c := range stale {
		s.discard(c)
	}
	if got != nil {
		return got, true, nil
	}
	c, err := s.dial(ctx)
	return c, false, err
}

func (s *SMTPSender) dial(ctx context.Context) (*smtp.Client, error) {
	c, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, &DeliveryError{Temporary: true, Step: "connect to " + s.cfg.Addr, Code: replyCode(err), detail: redact(err.Error())}
	}
	return c, nil
}

func (s *SMTPSender) release(c *smtp.Client) {
	s.mu.Lock()
	if !s.closed {
		s.idle = append(s.idle, idleConn{c: c, since: time.Now()})
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.discard(c)
}

// discard closes a connection, politely if it still answers.
func (s *SMTPSender) discard(c *smtp.Client) {
	if err := s.client.CloseWithSMTPClient(c); err != nil {
		_ = c.Close()
	}
}

// Close closes the idle connections; Sends in flight finish first on
// theirs, which they close.
func (s *SMTPSender) Close() error {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, ic := range idle {
		s.discard(ic.c)
	}
	return nil
}

func connLost(err error) bool {
	var se *gomail.SendError
	return errors.As(err, &se) && se.Reason == gomail.ErrConnCheck
}

// DeliveryError is a failed delivery. Its text never carries an address:
// it goes to logs and to the dead-letter stream.
type DeliveryError struct {
	Temporary bool   // trying again later can succeed (4xx, connection, TLS, timeout)
	Code      int    // the SMTP reply code, 0 when the server did not answer one
	Enhanced  string // RFC 3463 status, e.g. 5.1.1, when the server gives it
	Step      string // what was being done: connect, MAIL FROM, RCPT TO, DATA…
	detail    string
}

func (e *DeliveryError) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	s := "smtp " + kind + " failure"
	if e.Step != "" {
		s += " (" + e.Step + ")"
	}
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// IsPermanent tells whether err is a delivery the server refused for good
// (a 5xx reply), or a message that cannot be built: sending it again
// cannot succeed.
func IsPermanent(err error) bool {
	var de *DeliveryError
	return errors.As(err, &de) && !de.Temporary
}

func classify(err error) error {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return &DeliveryError{Temporary: true, Step: "send", detail: redact(err.Error())}
	}
	code := se.ErrorCode()
	// Only a 5xx reply about this message (its recipient, its content) is
	// permanent. An error without a reply (a broken connection, a timeout)
	// may well pass next time, and a 5xx to MAIL FROM refuses our sender
	// (authentication required, sender not allowed): that is the
	// configuration, the same for every mail, and fixing it must let them
	// all leave rather than send them to the dead letters.
	permanent := code >= 500 && code <= 599 && se.Reason != gomail.ErrSMTPMailFrom
	return &DeliveryError{
		Temporary: !permanent,
		Code:      code,
		Enhanced:  se.EnhancedStatusCode(),
		Step:      se.Reason.String(),
		detail:    redact(err.Error()),
	}
}

// replyCode finds an SMTP reply code in a connection-time error ("535 5.7.8 …").
func replyCode(err error) int {
	s := err.Error()
	for i := 0; i+3 <= len(s); i++ {
		if (s[i] == '4' || s[i] == '5') && (i == 0 || s[i-1] == ' ') && isDigit(s[i+1]) && isDigit(s[i+2]) && (i+3 == len(s) || s[i+3] == ' ') {
			n, _ := strconv.Atoi(s[i : i+3])
			return n
		}
	}
	return 0
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

var addressRE = regexp.MustCompile(`[^\s<>()\[\]"',;:]+@[^\s<>()\[\]"',;:]+`)

// redact removes anything shaped like an email address: servers echo the
// recipient in their replies, and go-mail lists the affected recipients.
// Message-IDs look like addresses too; they are dropped with the rest.
func redact(s string) string {
	s = addressRE.ReplaceAllString(s, "<redacted>")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
