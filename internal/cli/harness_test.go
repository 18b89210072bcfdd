package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// t0 is the harness clock's start, Thursday 5 January 2023, 14:30 in Paris.
var t0 = commandstest.T0

var testMasterKey = commandstest.MasterKey

// testSecretKey is AUTH_SECRET_KEY for testMasterKey.
var testSecretKey = base64.StdEncoding.EncodeToString(testMasterKey)

const (
	nirA     = "2690549588157"
	nirB     = "1933304075242"
	password = "Motdepasse-2023"
)

// testEnv runs the real commands service on the shared harness
// (commandstest: an embedded nats-server on a random port, never the
// machine's 4222, and a fixed clock), and authctl against it through Run,
// as a shell would.
type testEnv struct {
	t       *testing.T
	h       *commandstest.Harness
	srv     *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	store   *eventstore.JetStream
	keys    *secrets.Keys
	clock   *clock.Fixed
	devices string // the devices file of authctl login
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvOn(t, nil)
}

// newPartitionedTestEnv runs the service with its events in n partitions
// (AUTH_PARTITIONS=n: the streams AUTH_EVENTS_0 to _n-1).
func newPartitionedTestEnv(t *testing.T, n int) *testEnv {
	t.Helper()
	return newTestEnvWith(t, commandstest.Options{Partitions: n}, nil)
}

// newTestEnvOn runs the service on clk (nil: the harness's fixed clock);
// e.clock is set when the service's clock is a *clock.Fixed.
func newTestEnvOn(t *testing.T, clk clock.Clock) *testEnv {
	t.Helper()
	return newTestEnvWith(t, commandstest.Options{}, clk)
}

func newTestEnvWith(t *testing.T, o commandstest.Options, clk clock.Clock) *testEnv {
	t.Helper()
	if clk != nil {
		o.Configure = func(c *commands.Config) { c.Clock = clk }
	}
	h := commandstest.Start(t, o)
	e := &testEnv{t: t, h: h, srv: h.Server, nc: h.NC, js: h.JS, store: h.Store, keys: h.Keys, clock: h.Clock,
		devices: t.TempDir() + "/ameli-auth/devices.json"}
	if clk != nil {
		e.clock, _ = clk.(*clock.Fixed)
	}
	return e
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type runResult struct {
	stdout, stderr string
	code           int
}

// authctl runs authctl with args against the test server.
func (e *testEnv) authctl(ctx context.Context, in io.Reader, args ...string) runResult {
	var out, errw syncBuffer
	return e.authctlTo(ctx, in, &out, &errw, args...)
}

func (e *testEnv) authctlTo(ctx context.Context, in io.Reader, out, errw *syncBuffer, args ...string) runResult {
	if in == nil {
		in = strings.NewReader("")
	}
	full := append([]string{"--nats-url", e.srv.ClientURL()}, args...)
	code := Run(ctx, full, in, out, errw)
	return runResult{stdout: out.String(), stderr: errw.String(), code: code}
}

// req sends a command as a front-end does.
func (e *testEnv) req(subject string, body map[string]any) reply {
	e.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	var rep reply
	if err := json.Unmarshal(e.h.Raw(subject, b), &rep); err != nil {
		e.t.Fatal(err)
	}
	return rep
}

// rawReq sends a body as is to <prefix>.cmd.subject.
func (e *testEnv) rawReq(subject, body string) reply {
	e.t.Helper()
	msg, err := e.nc.Request("auth.cmd."+subject, []byte(body), 10*time.Second)
	if err != nil {
		e.t.Fatalf("request %s: %v", subject, err)
	}
	var rep reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		e.t.Fatalf("%s: %s", subject, msg.Data)
	}
	return rep
}

func (e *testEnv) register(nir, email string) string {
	e.t.Helper()
	return e.h.Register(nir, email, password)
}

func (e *testEnv) history(accountID string) []events.Envelope {
	e.t.Helper()
	return e.h.History(accountID)
}

// waitCode waits for the account's code number n (1-based) and opens it as
// the notifier does: the sealed copy in the login.otp_issued event.
func (e *testEnv) waitCode(accountID string, n int) string {
	e.t.Helper()
	return e.waitSealed(accountID, n, "login code", func(ev events.Event) (string, bool) {
		o, ok := ev.(events.OTPIssued)
		return o.CodeSealed, ok
	})
}

// waitChangeCode is waitCode for the password-change code.
func (e *testEnv) waitChangeCode(accountID string, n int) string {
	e.t.Helper()
	return e.waitSealed(accountID, n, "password-change code", func(ev events.Event) (string, bool) {
		o, ok := ev.(events.PasswordChangeCodeIssued)
		return o.CodeSealed, ok
	})
}

// waitResetToken is waitCode for the reset link's token.
func (e *testEnv) waitResetToken(accountID string, n int) string {
	e.t.Helper()
	return e.waitSealed(accountID, n, "reset token", func(ev events.Event) (string, bool) {
		o, ok := ev.(events.PasswordResetRequested)
		return o.TokenSealed, ok
	})
}

// waitSealed polls the account's history until its n-th secret (1-based)
// that pick finds, and opens it as the notifier does.
func (e *testEnv) waitSealed(accountID string, n int, what string, pick func(events.Event) (string, bool)) string {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var sealed []string
		for _, env := range e.history(accountID) {
			if s, ok := pick(env.Data); ok {
				sealed = append(sealed, s)
			}
		}
		if len(sealed) >= n {
			v, err := e.keys.Open(sealed[n-1], accountID)
			if err != nil {
				e.t.Fatal(err)
			}
			return v
		}
		time.Sleep(20 * time.Millisecond) // polling, until the deadline above
	}
	e.t.Fatalf("no %s number %d for %s", what, n, accountID)
	return ""
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
