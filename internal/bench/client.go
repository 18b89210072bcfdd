package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// benchPassword passes the password rule; every bench account has it.
const benchPassword = "cheval-agrafe-batterie"

// cheapArgon2 is for the phases whose path never hashes (code checks, a
// back-office command): their accounts are made cheaply, and a commands
// instance with this policy starts at once.
var cheapArgon2 = domain.Argon2Params{Memory: 256, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// body is a command request as a front-end sends it.
type body struct {
	RequestID      string `json:"request_id,omitempty"`
	Channel        string `json:"channel,omitempty"`
	NIR            string `json:"nir,omitempty"`
	Email          string `json:"email,omitempty"`
	Password       string `json:"password,omitempty"`
	PasswordHash   string `json:"password_hash,omitempty"`
	EmailValidated *bool  `json:"email_validated,omitempty"`
	Affiliation    string `json:"affiliation,omitempty"`
	AccountID      string `json:"account_id,omitempty"`
	LoginID        string `json:"login_id,omitempty"`
	Code           string `json:"code,omitempty"`
	ClientIP       string `json:"client_ip,omitempty"`
	UserAgent      string `json:"user_agent,omitempty"`
}

// requestID is what a front-end sends with each request (authctl does).
func requestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// client sends commands over NATS as front-ends do, spread over a few
// connections.
type client struct {
	conns   []*nats.Conn
	prefix  string
	next    atomic.Uint64
	retries *atomic.Int64 // the run's count of retried requests
}

func (r *runner) newClient(n int) (*client, error) {
	c := &client{prefix: r.streamCf.Prefix, retries: &r.retries}
	if c.prefix == "" {
		c.prefix = contract.DefaultPrefix
	}
	for i := 0; i < n; i++ {
		nc, err := r.connect(fmt.Sprintf("authbench-client-%d", i))
		if err != nil {
			return nil, err
		}
		c.conns = append(c.conns, nc)
	}
	return c, nil
}

const requestTimeout = 30 * time.Second

// do sends one command and decodes its reply. A request that times out
// (a loaded machine) is sent again, byte for byte: the same request_id
// makes it the same request (docs/idempotency.md), answered once.
func (c *client) do(ctx context.Context, subject string, b body) (contract.AnyReply, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return contract.AnyReply{}, err
	}
	var msg *nats.Msg
	err = retryTimeouts(ctx, c.retries, func() error {
		nc := c.conns[c.next.Add(1)%uint64(len(c.conns))]
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		var err error
		msg, err = nc.RequestWithContext(rctx, contract.Subjects(c.prefix).Command(subject), data)
		return err
	})
	if err != nil {
		return contract.AnyReply{}, fmt.Errorf("%s: %w", subject, err)
	}
	var rep contract.AnyReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return rep, fmt.Errorf("%s: reply %q: %w", subject, msg.Data, err)
	}
	return rep, nil
}

// expect sends a command and wants the given status.
func (c *client) expect(ctx context.Context, subject string, b body, status string) (contract.AnyReply, error) {
	rep, err := c.do(ctx, subject, b)
	if err != nil {
		return rep, err
	}
	if !rep.OK || rep.Status != status {
		code, msg := "", ""
		if rep.Error != nil {
			code, msg = rep.Error.Code, rep.Error.Message
		}
		return rep, fmt.Errorf("%s: want %s, got ok=%v status=%q error=%s %s", subject, status, rep.OK, rep.Status, code, msg)
	}
	return rep, nil
}

// account is a registered bench account.
type account struct {
	id, nir string
}

// importAccounts creates n accounts through account.import with a hash
// made once (so the time goes to what is measured, not to set-up), with
// the given concurrency.
func (r *runner) importAccounts(ctx context.Context, c *client, n, concurrency int, params domain.Argon2Params) ([]account, error) {
	phc := secrets.HashPassword(benchPassword, params)
	out := make([]account, n)
	validated := true
	err := parallel(ctx, n, concurrency, func(ctx context.Context, i int) error {
		nir := r.nextNIR()
		rep, err := c.expect(ctx, "account.import", body{RequestID: requestID(), Channel: "backoffice", NIR: nir,
			Email: fmt.Sprintf("bench.%d@exemple.fr", i), PasswordHash: phc, EmailValidated: &validated, Affiliation: "active"}, "registered")
		if err != nil {
			return err
		}
		r.remember(nir, rep.AccountID)
		out[i] = account{id: rep.AccountID, nir: nir}
		return nil
	})
	return out, err
}

// parallel runs fn for 0..n-1 on `workers` goroutines and returns the
// first error (which stops the others).
func parallel(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return ctx.Err()
}

// codeReader reads the login codes the way a user reads the mail: from the
// sealed copy in each login.otp_issued event, through a plain subscription
// to the events' subjects, by account.
type codeReader struct {
	sub  *nats.Subscription
	keys *secrets.Keys

	mu    sync.Mutex
	codes map[string]chan string
	bad   atomic.Int64
}

func (r *runner) startCodeReader() (*codeReader, error) {
	nc, err := r.connect("authbench-codes")
	if err != nil {
		return nil, err
	}
	cr := &codeReader{keys: r.keys, codes: map[string]chan string{}}
	prefix := r.streamCf.Prefix
	if prefix == "" {
		prefix = contract.DefaultPrefix
	}
	if cr.sub, err = nc.Subscribe(contract.Subjects(prefix).AllEvents(), cr.handle); err != nil {
		return nil, err
	}
	if err := cr.sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	return cr, nc.Flush()
}

func (cr *codeReader) stop() { _ = cr.sub.Unsubscribe() }

// channel is where the account's codes arrive.
func (cr *codeReader) channel(accountID string) chan string {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	ch, ok := cr.codes[accountID]
	if !ok {
		ch = make(chan string, 8)
		cr.codes[accountID] = ch
	}
	return ch
}

func (cr *codeReader) handle(m *nats.Msg) {
	if m.Header.Get(eventstore.HeaderEventType) != events.TypeOTPIssued {
		return
	}
	env, err := events.Unmarshal(m.Data)
	if err != nil {
		cr.bad.Add(1)
		return
	}
	e, ok := env.Data.(events.OTPIssued)
	if !ok {
		cr.bad.Add(1)
		return
	}
	code, err := cr.keys.Open(e.CodeSealed, env.AccountID)
	if err != nil {
		cr.bad.Add(1)
		return
	}
	select {
	case cr.channel(env.AccountID) <- code:
	default: // nobody reads this account's codes
	}
}

// drain forgets codes left over from an abandoned login.
func drain(ch chan string) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func waitCode(ctx context.Context, ch chan string) (string, error) {
	t := time.NewTimer(requestTimeout)
	defer t.Stop()
	select {
	case c := <-ch:
		return c, nil
	case <-t.C:
		return "", fmt.Errorf("no login.otp_issued event read within %s", requestTimeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// startLogin runs login.password and login.otp.send, and reads the code.
func startLogin(ctx context.Context, c *client, cr *codeReader, a account) (loginID, code string, err error) {
	ch := cr.channel(a.id)
	drain(ch)
	rep, err := c.expect(ctx, contract.CmdLoginPassword, body{RequestID: requestID(), Channel: "web", NIR: a.nir, Password: benchPassword}, contract.StatusOTPRequired)
	if err != nil {
		return "", "", err
	}
	if _, err := c.expect(ctx, "login.otp.send", body{RequestID: requestID(), Channel: "web", LoginID: rep.LoginID}, "otp_sent"); err != nil {
		return "", "", err
	}
	code, err = waitCode(ctx, ch)
	return rep.LoginID, code, err
}

func verify(ctx context.Context, c *client, loginID, code string) error {
	_, err := c.expect(ctx, contract.CmdLoginOTPVerify, body{RequestID: requestID(), Channel: "web", LoginID: loginID, Code: code}, contract.StatusAuthenticated)
	return err
}

// startCommands starts a commands service instance, with its real worker
// pool and micro endpoints, on a connection of its own.
func (r *runner) startCommands(policy domain.Policy) (*commands.Service, func(), error) {
	return r.startCommandsWith(policy, nil)
}

// startCommandsWith is startCommands with the configuration changed by
// configure.
func (r *runner) startCommandsWith(policy domain.Policy, configure func(*commands.Config)) (*commands.Service, func(), error) {
	svc, err := r.newCommands(policy, configure)
	if err != nil {
		return nil, nil, err
	}
	nc, err := r.connect("authbench-commands")
	if err != nil {
		return nil, nil, err
	}
	if err := svc.Start(nc); err != nil {
		return nil, nil, err
	}
	return svc, func() { _ = svc.Stop(); nc.Close() }, nil
}

func (r *runner) newCommands(policy domain.Policy, configure func(*commands.Config)) (*commands.Service, error) {
	log := r.opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := commands.Config{Prefix: r.streamCf.Prefix, Policy: policy, Keys: r.keys, Store: r.store,
		Index: r.store.Index(), Snapshots: r.store.Snapshots(), Shadows: r.store.Shadows(), Sources: r.store.Sources(), Fraud: r.store.Fraud(), Logger: log, HashObserver: r.hashObserver}
	if configure != nil {
		configure(&cfg)
	}
	return commands.New(cfg)
}

// window lets the work warm up, then counts what count() gains over d.
func window(ctx context.Context, warmup, d time.Duration, count func() int64) (n int64, took time.Duration, err error) {
	if err := sleep(ctx, warmup); err != nil {
		return 0, 0, err
	}
	c0, t0 := count(), time.Now()
	if err := sleep(ctx, d); err != nil {
		return 0, 0, err
	}
	return count() - c0, time.Since(t0), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// percentile of durations (nearest rank).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

func (l *latencies) all() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ds)
}

func hashOnce(p domain.Argon2Params) string { return secrets.HashPassword(benchPassword, p) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs
	}
	return b
}

func decodeReply(b []byte) contract.AnyReply {
	var rep contract.AnyReply
	if err := json.Unmarshal(b, &rep); err != nil {
		rep.Status = "undecodable reply: " + string(b)
	}
	return rep
}
