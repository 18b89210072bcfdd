package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/contract"
)

// reply is the commands service's reply as every client reads it: the
// union of the reply types of the wire contract (internal/contract).
type reply = contract.AnyReply

// failure is a refusal: its code, its French message (the seed's wording,
// with the real dates in Paris time) and the field at fault.
type failure = contract.ErrorBody

// code is the reply's status, or its error code.
func code(r reply) string {
	_, c := r.Outcome()
	return c
}

// Error codes the pages choose by; every other code shows its message.
const (
	codeInvalidRequest       = "invalid_request"
	codeUnavailable          = "unavailable"
	codeSessionInvalid       = "session_invalid"
	codeAccountLocked        = "account_locked"
	codeOTPQuotaExceeded     = "otp_quota_exceeded"
	codeOTPExpired           = "otp_expired"
	codeLoginExpired         = "login_expired"
	codeCodeRequestsExceeded = "code_requests_exceeded"
	codeCodeAttemptsExceeded = "code_attempts_exceeded"
	codeEmailRecentlyChanged = "email_recently_changed"
	codeWeakPassword         = "weak_password"
)

// msgUnavailable is said when the service cannot be asked at all (NATS down,
// no answer in time): the service's own wording for `unavailable`.
const msgUnavailable = "Le service est momentanément indisponible. Merci de réessayer dans quelques instants."

// client sends commands over NATS as any front-end does: channel "web", the
// browser's IP address and user agent, and the form's request_id.
type client struct {
	nc      *nats.Conn
	prefix  string
	timeout time.Duration
	log     *slog.Logger
}

// send sends one command (the subject after "<prefix>.cmd.") for the
// browser's request r. It never fails: a service that cannot be reached
// answers `unavailable`, which the page shows in its red box.
func (c *client) send(r *http.Request, subject, requestID string, body map[string]any) reply {
	body["channel"] = "web"
	body["request_id"] = requestID
	if ip := clientIP(r); ip != "" {
		body["client_ip"] = ip
	}
	if ua := userAgent(r); ua != "" {
		body["user_agent"] = ua
	}
	data, err := json.Marshal(body)
	if err != nil {
		return c.unavailable(subject, err)
	}
	if !c.nc.IsConnected() {
		// Fail at once rather than wait for the timeout: nats.go is
		// reconnecting, and the next page will work when it is back.
		return c.unavailable(subject, nats.ErrConnectionClosed)
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, c.prefix+".cmd."+subject, data)
	if err != nil {
		return c.unavailable(subject, err)
	}
	var rep reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || (!rep.OK && rep.Error == nil) {
		return c.unavailable(subject, errors.New("unreadable reply"))
	}
	return rep
}

func (c *client) unavailable(subject string, err error) reply {
	c.log.Warn("command not answered", "subject", subject, "err", err)
	return reply{Error: &failure{Code: codeUnavailable, Message: msgUnavailable}}
}

// newRequestID is the idempotency key of one form: minted when the form is
// shown, sent with its submission, so a double click or a reload of the
// same submission is a retry the service answers once.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "web-" + hex.EncodeToString(b[:])
}

// formRequestID is the submitted form's request_id, or a fresh one when it
// is missing or not one of ours.
func formRequestID(r *http.Request) string {
	id := r.PostFormValue("request_id")
	if len(id) == 36 && strings.HasPrefix(id, "web-") && strings.Trim(id[4:], "0123456789abcdef") == "" {
		return id
	}
	return newRequestID()
}

// clientIP is the browser's address as the server sees it (the TCP peer).
// Behind a reverse proxy it is the proxy's: see docs/web.md.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// userAgent is the browser's user agent, cut to the 512 bytes the service
// accepts, on a character boundary.
func userAgent(r *http.Request) string {
	ua := strings.ToValidUTF8(r.UserAgent(), "?")
	for len(ua) > 512 {
		_, size := utf8.DecodeLastRuneInString(ua)
		ua = ua[:len(ua)-size]
	}
	return ua
}
