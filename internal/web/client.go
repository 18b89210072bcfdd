package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/realclientip/realclientip-go"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/tracing"
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
	tracer  trace.Tracer
	ip      func(*http.Request) string // the browser's address (newClientIP)
}

// send sends one command (the subject after "<prefix>.cmd.") for the
// browser's request r. It never fails: a service that cannot be reached
// answers `unavailable`, which the page shows in its red box. Its span,
// "send <prefix>.cmd.<command>", is a child of the page's, and its trace
// context goes in the request's traceparent header (internal/tracing).
func (c *client) send(r *http.Request, subject, requestID string, body map[string]any) reply {
	full := c.prefix + ".cmd." + subject
	ctx, span := c.tracer.Start(r.Context(), "send "+full, clientSpan)
	defer span.End()
	rep := c.request(ctx, r, full, subject, requestID, body)
	if span.IsRecording() {
		span.SetAttributes(tracing.MessagingNATS, semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(full), tracing.AttrCommand.String(subject), tracing.AttrOutcome.String(code(rep)))
		if code(rep) == codeUnavailable {
			span.SetStatus(codes.Error, codeUnavailable)
		}
	}
	return rep
}

var clientSpan = trace.WithSpanKind(trace.SpanKindClient)

func (c *client) request(ctx context.Context, r *http.Request, full, subject, requestID string, body map[string]any) reply {
	body["channel"] = "web"
	body["request_id"] = requestID
	if ip := c.ip(r); ip != "" {
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
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req := nats.NewMsg(full)
	req.Data = data
	tracing.Inject(ctx, req.Header)
	msg, err := c.nc.RequestMsgWithContext(ctx, req)
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

// newClientIP returns the function that gives a request's client address,
// the `client_ip` every command carries (the source that password-spraying
// defence counts, issue 20). Without trusted proxies it is the TCP peer.
// With them, a request whose TCP peer is a trusted proxy gets the
// rightmost X-Forwarded-For address that is not a trusted proxy: each
// proxy appends the address it saw, so entries to the left of the last
// untrusted one were written by the client and are ignored (the
// "rightmost trusted range" strategy of realclientip-go, chosen over our
// own parsing; MDN's X-Forwarded-For security notes say the same). A
// request from any other peer keeps its peer, whatever headers it sends;
// when every entry is trusted or the header holds no address, the peer.
func newClientIP(trusted []netip.Prefix) (func(*http.Request) string, error) {
	peer := func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return ""
		}
		return host
	}
	if len(trusted) == 0 {
		return peer, nil
	}
	nets := make([]net.IPNet, len(trusted))
	for i, p := range trusted {
		nets[i] = net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	}
	xff, err := realclientip.NewRightmostTrustedRangeStrategy("X-Forwarded-For", nets)
	if err != nil {
		return nil, fmt.Errorf("web: trusted proxies: %w", err)
	}
	return func(r *http.Request) string {
		p := peer(r)
		a, err := netip.ParseAddr(p)
		if err != nil {
			return p
		}
		a = a.Unmap()
		for _, t := range trusted {
			if t.Contains(a) {
				if ip := xff.ClientIP(r.Header, r.RemoteAddr); ip != "" {
					return ip
				}
				return p
			}
		}
		return p
	}, nil
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
