package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// userAgent is recorded in the events of the commands authctl sends, so
// audit teams can tell its acts from a front-end's.
const userAgent = "authctl"

// defaultNATSURL is where authctl looks for NATS when nothing says where.
const defaultNATSURL = "nats://127.0.0.1:4222"

// The NATS users of deploy/nats/users.conf authctl's commands connect as
// on the local cluster (`make cluster`), by what each does.
const (
	asFrontend   = "frontend"   // login, password, req of a public command: a person's acts
	asBackoffice = "backoffice" // account ..., req of a back-office command: an adviser's acts
	asAdmin      = "admin"      // events, projections: reading the streams
)

// connect opens a NATS connection with the global flags. On the local
// cluster running on --var-dir, authctl connects as the user as (one of
// asFrontend, asBackoffice, asAdmin), its password read from the file
// <var>/cluster.json names, unless AUTH_NATS_USER or AUTH_NATS_CREDS says
// who to be.
func connect(cmd *cobra.Command, as string) (*nats.Conn, string, error) {
	url, running := natsTarget(cmd)
	prefix, _ := cmd.Flags().GetString("subject-prefix")
	// The components' reconnect options: a long `authctl login` or `req`
	// rides over a NATS restart as the services do. Only losing the
	// connection is logged (warn), on stderr.
	// Who authctl is to NATS: AUTH_NATS_USER and its password (an
	// operator's: backoffice for the advisers' acts, admin for events and
	// projections), or AUTH_NATS_CREDS; AUTH_NATS_TLS_* as the components.
	auth, err := config.LoadNATSClient()
	if err != nil {
		return nil, "", err
	}
	if file := running.NATSPasswordFiles[as]; file != "" && auth.User == "" && auth.Creds == "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("the local cluster's password of the NATS user %s: %w", as, err)
		}
		auth.User, auth.Password = as, strings.TrimSpace(string(b))
	}
	opts, err := app.NATSOptions(auth, "authctl", app.NewLogger("warn", config.LogText))
	if err != nil {
		return nil, "", err
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("connect to %s: %w", config.Redact(url), err)
	}
	return nc, prefix, nil
}

// eventsLayout is where the events are: --partitions (or AUTH_PARTITIONS),
// else the layout of the streams on the server (eventstore.FindLayout),
// under --subject-prefix.
func eventsLayout(ctx context.Context, cmd *cobra.Command, js jetstream.JetStream) (contract.Layout, error) {
	prefix, _ := cmd.Flags().GetString("subject-prefix")
	flag, _ := cmd.Flags().GetString("partitions")
	if flag = strings.TrimSpace(flag); flag == "" {
		return eventstore.FindLayout(ctx, js, prefix)
	}
	n, err := strconv.Atoi(flag)
	if err != nil || n < 1 || n > contract.MaxPartitions {
		return contract.Layout{}, usagef("--partitions (AUTH_PARTITIONS): %q is not a number from 1 to %d", flag, contract.MaxPartitions)
	}
	return contract.Layout{Prefix: prefix, Partitions: n}, nil
}

// natsURL is --nats-url (or AUTH_NATS_URL), else the NATS of the dev mode
// running on --var-dir, which may listen elsewhere than 4222, else
// defaultNATSURL.
func natsURL(cmd *cobra.Command) string {
	url, _ := natsTarget(cmd)
	return url
}

// natsTarget is natsURL, and the state of the dev mode or local cluster
// running on --var-dir when that URL is its NATS (--nats-url naming one of
// its nodes, or no --nats-url); else a zero state.
func natsTarget(cmd *cobra.Command) (string, app.DevState) {
	flag, _ := cmd.Flags().GetString("nats-url")
	st, ok := runningDev(cmd)
	switch {
	case flag != "" && ok && sameNATS(flag, st.NATSURL):
		return flag, st
	case flag != "":
		return flag, app.DevState{}
	case ok && st.NATSURL != "":
		return st.NATSURL, st
	}
	return defaultNATSURL, app.DevState{}
}

// sameNATS tells whether two comma-separated lists of NATS URLs share one.
func sameNATS(a, b string) bool {
	for _, x := range strings.Split(a, ",") {
		for _, y := range strings.Split(b, ",") {
			if x = strings.TrimSpace(x); x != "" && x == strings.TrimSpace(y) {
				return true
			}
		}
	}
	return false
}

// runningDev is the dev mode running on --var-dir, if any, else the local
// cluster running there (`authctl dev --cluster`).
func runningDev(cmd *cobra.Command) (app.DevState, bool) {
	varDir, _ := cmd.Flags().GetString("var-dir")
	st, ok, err := app.RunningDev(varDir)
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "authctl: %v (ignored)\n", err)
	}
	if ok {
		return st, true
	}
	cl, ok, err := app.RunningCluster(varDir)
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "authctl: %v (ignored)\n", err)
	}
	return cl.DevState, ok
}

// client sends commands as a front-end does: each with a request id, so a
// retry after a lost reply appends nothing twice.
type client struct {
	nc      *nats.Conn
	prefix  string
	channel string
	timeout time.Duration
	tries   int
}

func newClient(nc *nats.Conn, prefix, channel string, timeout time.Duration) *client {
	return &client{nc: nc, prefix: prefix, channel: channel, timeout: timeout, tries: 3}
}

// reply is the service's reply (commands.Reply), as far as authctl reads it.
type reply struct {
	OK          bool       `json:"ok"`
	Status      string     `json:"status"`
	LoginID     string     `json:"login_id"`
	MaskedEmail string     `json:"masked_email"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Message     string     `json:"message"`
	AccountID   string     `json:"account_id"`
	Session     *struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"session"`
	OfferBiometric       *bool       `json:"offer_biometric"`
	DeviceToken          string      `json:"device_token"`
	DeviceTokenExpiresAt *time.Time  `json:"device_token_expires_at"`
	Error                *replyError `json:"error"`
}

type replyError struct {
	Code         string     `json:"code"`
	Message      string     `json:"message"`
	Field        string     `json:"field"`
	Reason       string     `json:"reason"`
	BlockedUntil *time.Time `json:"blocked_until"`
	AttemptsLeft int        `json:"attempts_left"`
}

// startSend starts the client span of a command sent to subject: its
// context goes in the request's headers (internal/tracing). Without an
// exporter (authctl sets one up from the OTEL_* variables) it records
// nothing.
func startSend(ctx context.Context, subject, command string) (context.Context, trace.Span) {
	return otel.GetTracerProvider().Tracer(tracing.Scope+"/internal/cli").Start(ctx, "send "+subject,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(tracing.MessagingNATS, tracing.AttrCommand.String(command)))
}

// newRequestID returns a random request id (the idempotency key).
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "authctl-" + hex.EncodeToString(b[:])
}

// request sends a command's body as it is and returns the reply's message.
// A timeout or a moment without responders is retried with the same body:
// the service answers a retry (same request_id) without deciding twice.
func (c *client) request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	full := contract.Subjects(c.prefix).Command(subject)
	// Its span, child of ctx's, goes with the request (internal/tracing);
	// retries are the same request, under the same span.
	ctx, span := startSend(ctx, full, subject)
	defer span.End()
	req := nats.NewMsg(full)
	req.Data = data
	tracing.Inject(ctx, req.Header)
	for try := 1; ; try++ {
		rctx, cancel := context.WithTimeout(ctx, c.timeout)
		msg, err := c.nc.RequestMsgWithContext(rctx, req)
		cancel()
		if err == nil {
			return msg, nil
		}
		retry := errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders)
		if !retry || try >= c.tries || ctx.Err() != nil {
			if errors.Is(err, nats.ErrNoResponders) {
				return nil, fmt.Errorf("request %s: no commands service answers on %s (is it running?): %w", subject, full, errNoResponders)
			}
			return nil, fmt.Errorf("request %s: %w", subject, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(try) * 200 * time.Millisecond):
		}
	}
}

// errNoResponders: nothing serves the subject (the service is down, or
// does not know the command).
var errNoResponders = errors.New("no responders")

// send sends one command (the subject after "<prefix>.cmd.") and decodes
// the reply. A timeout or a moment without responders is retried with the
// same request id: the service answers a retry without deciding twice.
func (c *client) send(ctx context.Context, subject string, body map[string]any) (reply, error) {
	body["request_id"] = newRequestID()
	if c.channel != "" {
		body["channel"] = c.channel
	}
	body["user_agent"] = userAgent
	data, err := json.Marshal(body)
	if err != nil {
		return reply{}, err
	}
	msg, err := c.request(ctx, subject, data)
	if err != nil {
		return reply{}, err
	}
	var rep reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return reply{}, fmt.Errorf("request %s: unreadable reply: %w", subject, err)
	}
	if !rep.OK && rep.Error == nil {
		rep.Error = &replyError{Code: "unavailable", Message: "réponse sans erreur ni succès"}
	}
	return rep, nil
}
