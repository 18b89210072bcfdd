// Package catcher is the dev mail catcher: a small SMTP server (go-smtp)
// that keeps the mails it receives in memory instead of delivering them,
// prints each one's subject and code to the console, and shows them on a
// web page. Tests read the codes through its Go API.
//
// It is for dev mode and tests only: it accepts mail for anyone, without
// authentication, and the console line carries the code in clear.
package catcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Catcher. The zero value listens on a free port of
// 127.0.0.1 and prints nothing.
type Options struct {
	Addr    string    // listen address; default 127.0.0.1:0 (a free port)
	Console io.Writer // where to print each mail's subject and code; nil: nowhere
	Keep    int       // how many mails to keep, the oldest dropped first; default 500

	// TLSConfig makes the catcher offer STARTTLS (or, with ImplicitTLS,
	// speak TLS from the first byte).
	TLSConfig   *tls.Config
	ImplicitTLS bool

	// Refuse, when set, is asked about each mail once received; an error
	// refuses it (return an *smtp.SMTPError to choose the reply code,
	// e.g. 550 for a permanent refusal or 451 for a temporary one).
	// Tests use it to play a picky server.
	Refuse func(Message) error

	// Users, when set, makes the catcher offer AUTH PLAIN (over TLS only)
	// and refuse mail from unauthenticated sessions: user -> password.
	Users map[string]string
}

// Message is one received mail, parsed.
type Message struct {
	ID        string // 1, 2, 3… in order of arrival
	Received  time.Time
	MailFrom  string   // SMTP envelope sender
	RcptTo    []string // SMTP envelope recipients
	TLS       bool     // whether it came over an encrypted connection
	Header    netmail.Header
	From      string // header, decoded
	To        string // header, decoded
	Subject   string // header, decoded
	MessageID string // header, without angle brackets
	Date      time.Time
	MediaType string // of the whole message, e.g. multipart/alternative
	Text      string // the text/plain part, decoded
	HTML      string // the text/html part, decoded
	Code      string // the code found alone on a line of the text part, if any
	Link      string // the first http(s) link of the text part, if any
	Raw       []byte
}

// Catcher is a running mail catcher.
type Catcher struct {
	opts     Options
	srv      *smtp.Server
	ln       net.Listener
	sessions atomic.Int64

	mu      sync.Mutex
	msgs    []Message
	nextID  int
	changed chan struct{} // closed and replaced at each new mail
}

// Start listens and serves until Close.
func Start(opts Options) (*Catcher, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Keep <= 0 {
		opts.Keep = 500
	}
	c := &Catcher{opts: opts, changed: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(c.newSession))
	srv.Domain = "catcher.localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 10
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = discardLogger{}
	var (
		ln  net.Listener
		err error
	)
	if opts.ImplicitTLS {
		if opts.TLSConfig == nil {
			return nil, errors.New("catcher: ImplicitTLS needs a TLSConfig")
		}
		ln, err = tls.Listen("tcp", opts.Addr, opts.TLSConfig)
	} else {
		srv.TLSConfig = opts.TLSConfig
		ln, err = net.Listen("tcp", opts.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("mail catcher: listen on %s: %w", opts.Addr, err)
	}
	c.srv, c.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
	return c, nil
}

// Addr is the host:port the catcher listens on (AUTH_SMTP_ADDR for the
// notifier).
func (c *Catcher) Addr() string { return c.ln.Addr().String() }

// Close stops listening and drops open connections; the kept mails stay
// readable.
func (c *Catcher) Close() error {
	err := c.srv.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Messages returns the kept mails, oldest first.
func (c *Catcher) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.msgs...)
}

// Message returns one kept mail by ID.
func (c *Catcher) Message(id string) (Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.ID == id {
			return m, true
		}
	}
	return Message{}, false
}

// Count is the number of mails received since the start (kept or not).
func (c *Catcher) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextID
}

// Sessions is the number of SMTP connections opened so far.
func (c *Catcher) Sessions() int64 { return c.sessions.Load() }

// Wait returns the first kept mail that match accepts (nil: any), waiting
// for it to arrive until ctx ends.
func (c *Catcher) Wait(ctx context.Context, match func(Message) bool) (Message, error) {
	for {
		c.mu.Lock()
		for _, m := range c.msgs {
			if match == nil || match(m) {
				c.mu.Unlock()
				return m, nil
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("mail catcher: no matching mail: %w", ctx.Err())
		}
	}
}

// WaitCount waits until n mails were received since the start.
func (c *Catcher) WaitCount(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, ch := c.nextID, c.changed
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("mail catcher: %d mails received, want %d: %w", got, n, ctx.Err())
		}
	}
}

// To returns a matcher of mails sent to addr, for Wait.
func To(addr string) func(Message) bool {
	return func(m Message) bool {
		for _, r := range m.RcptTo {
			if strings.EqualFold(r, addr) {
				return true
			}
		}
		return false
	}
}

func (c *Catcher) add(m Message) {
	c.mu.Lock()
	c.nextID++
	m.ID = strconv.Itoa(c.nextID)
	c.msgs = append(c.msgs, m)
	if over := len(c.msgs) - c.opts.Keep; over > 0 {
		c.msgs = append([]Message(nil), c.msgs[over:]...)
	}
	// Printed before waiters wake, so the line is out when Wait returns.
	c.print(m)
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *Catcher) print(m Message) {
	if c.opts.Console == nil {
		return
	}
	line := fmt.Sprintf("mail catcher: #%s %q", m.ID, m.Subject)
	if m.Code != "" {
		line += " code " + m.Code
	}
	if m.Code == "" && m.Link != "" {
		line += " link " + m.Link
	}
	fmt.Fprintln(c.opts.Console, line)
}

type session struct {
	c    *Catcher
	conn *smtp.Conn
	from string
	to   []string
}

func (c *Catcher) newSession(conn *smtp.Conn) (smtp.Session, error) {
	c.sessions.Add(1)
	s := &session{c: c, conn: conn}
	if c.opts.Users != nil {
		return &authSession{session: s}, nil
	}
	return s, nil
}

// authSession is a session of a catcher that wants a login.
type authSession struct {
	*session
	user string
}

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *authSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if want, ok := s.c.opts.Users[user]; !ok || want != pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		s.user = user
		return nil
	}), nil
}

func (s *authSession) Mail(from string, opts *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	return s.session.Mail(from, opts)
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := Parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unparsable message: " + err.Error()}
	}
	m.Received = time.Now()
	m.MailFrom, m.RcptTo = s.from, append([]string(nil), s.to...)
	_, m.TLS = s.conn.TLSConnectionState()
	if s.c.opts.Refuse != nil {
		if err := s.c.opts.Refuse(m); err != nil {
			return err
		}
	}
	s.c.add(m)
	return nil
}

var (
	codeRE = regexp.MustCompile(`(?m)^[ \t]*(\d{4,8})[ \t]*\r?$`)
	linkRE = regexp.MustCompile(`https?://[^\s<>"]+`)
)

// Parse reads a raw mail: headers, the text and HTML parts, and the code
// or link of the text part.
func Parse(raw []byte) (Message, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, err
	}
	dec := new(mime.WordDecoder)
	header := func(k string) string {
		v := msg.Header.Get(k)
		if d, err := dec.DecodeHeader(v); err == nil {
			return d
		}
		return v
	}
	m := Message{
		Header:    msg.Header,
		From:      header("From"),
		To:        header("To"),
		Subject:   header("Subject"),
		MessageID: strings.Trim(msg.Header.Get("Message-Id"), "<> "),
		Raw:       raw,
	}
	if d, err := msg.Header.Date(); err == nil {
		m.Date = d
	}
	ct := msg.Header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	m.MediaType, _, _ = mime.ParseMediaType(ct)
	if err := walk(&m, ct, msg.Header.Get("Content-Transfer-Encoding"), msg.Body); err != nil {
		return Message{}, err
	}
	if sm := codeRE.FindStringSubmatch(m.Text); sm != nil {
		m.Code = sm[1]
	}
	m.Link = linkRE.FindString(m.Text)
	return m, nil
}

func walk(m *Message, contentType, cte string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("multipart: %w", err)
			}
			pct := p.Header.Get("Content-Type")
			if pct == "" {
				pct = "text/plain"
			}
			if err := walk(m, pct, p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s body: %w", mt, err)
	}
	switch {
	case mt == "text/plain" && m.Text == "":
		m.Text = strings.ReplaceAll(string(b), "\r\n", "\n")
	case mt == "text/html" && m.HTML == "":
		m.HTML = strings.ReplaceAll(string(b), "\r\n", "\n")
	}
	return nil
}

// newlineStripper drops line breaks, which base64.NewDecoder refuses.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, b := range p[:k] {
			if b != '\r' && b != '\n' {
				p[j] = b
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
