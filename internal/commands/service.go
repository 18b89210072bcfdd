// Package commands is the commands service: it decodes front-ends' requests
// strictly, decides them on the account's state with the domain's decider,
// appends the resulting fact with optimistic concurrency and replies. It
// serves them as a nats.go micro service, so instances share the load through
// its queue group and `nats micro ls|info|stats` work.
package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/sync/singleflight"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// Version is the service version shown by `nats micro info`.
const Version = "0.1.0"

// Config wires the service. Store, Index, Snapshots, Shadows and Keys are
// required.
type Config struct {
	Prefix    string // subject prefix, "auth" by default
	Policy    domain.Policy
	Keys      *secrets.Keys
	Store     eventstore.Store
	Index     eventstore.Index
	Snapshots eventstore.Snapshots
	Shadows   eventstore.Shadows // login state of NIRs without an account (issue 19)
	Clock     clock.Clock        // system clock by default
	// DevClock, when set, serves <prefix>.dev.clock.advance on this clock.
	DevClock *clock.Dev
	Logger   *slog.Logger

	RequestTimeout time.Duration // per request, 5 s by default
	HashWorkers    int           // concurrent argon2id computations, GOMAXPROCS by default
	MaxInFlight    int           // requests handled at once, 512 by default
	CacheSize      int           // account states kept in memory, 100,000 by default
	SnapshotEvery  int           // events between snapshots of an account, 25 by default

	// HashObserver, if set, is called before each argon2id or bcrypt
	// computation with the key the work is for (an account id, or "nir:"
	// and a NIR index key): for benchmarks and tests of the flood rules.
	HashObserver func(key string)

	// ResponseFloor is the least time login.password and
	// password.reset.request take to answer, so that their timing does not
	// tell whether a NIR has an account (issue 19; docs/enumeration.md):
	// 0 sets it at start to twice one argon2id hash with the policy's
	// parameters (measured then), between 50 ms and 1 s: above what either
	// path costs when the machine is not saturated, and low enough that a
	// handful of concurrent clients still reach the hashing pool's
	// throughput. Negative disables it (tests).
	ResponseFloor time.Duration
}

// Service is the commands service.
type Service struct {
	cfg      Config
	prefix   string
	policy   domain.Policy
	keys     *secrets.Keys
	index    eventstore.Index
	clock    clock.Clock
	log      *slog.Logger
	accounts *accounts

	hashSem  chan struct{}
	gate     *keyGate           // one password check at a time per account or NIR
	shadows  *lru[cachedShadow] // shadow states of NIRs without an account, as the account cache
	inflight chan struct{}
	wg       sync.WaitGroup
	dummyPHC string
	replies  *replyCache
	flight   singleflight.Group // identical requests (same key) in flight

	micro micro.Service
	subs  []*nats.Subscription
}

// New checks the configuration and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Keys == nil || cfg.Store == nil || cfg.Index == nil || cfg.Snapshots == nil || cfg.Shadows == nil {
		return nil, errors.New("commands: Keys, Store, Index, Snapshots and Shadows are required")
	}
	if cfg.Policy.Name == "" {
		cfg.Policy = domain.SeedPolicy()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "auth"
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
		if cfg.DevClock != nil {
			cfg.Clock = cfg.DevClock
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.HashWorkers == 0 {
		cfg.HashWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 512
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.SnapshotEvery == 0 {
		// A cold load reads at most this many events after the snapshot:
		// 25 keeps an old account within 10% of a new one (authctl bench).
		cfg.SnapshotEvery = 25
	}
	s := &Service{
		cfg: cfg, prefix: cfg.Prefix, policy: cfg.Policy, keys: cfg.Keys, index: cfg.Index,
		clock: cfg.Clock, log: cfg.Logger,
		hashSem:  make(chan struct{}, cfg.HashWorkers),
		gate:     newKeyGate(),
		shadows:  newLRU[cachedShadow](cfg.CacheSize),
		inflight: make(chan struct{}, cfg.MaxInFlight),
		replies:  newReplyCache(2*time.Minute, 10_000),
		accounts: &accounts{
			store: cfg.Store, snapshots: cfg.Snapshots, decider: domain.Decider{Policy: cfg.Policy},
			log: cfg.Logger, snapshotEvery: uint64(cfg.SnapshotEvery), cache: newLRU[cached](cfg.CacheSize),
			snapshotSem: make(chan struct{}, 8),
		},
	}
	// An unknown NIR pays for a real argon2id check against this hash, so it
	// answers in the time a wrong password does.
	t := time.Now()
	s.dummyPHC = secrets.HashPassword(secrets.NewToken(), cfg.Policy.Argon2)
	if s.cfg.ResponseFloor == 0 {
		s.cfg.ResponseFloor = min(max(4*time.Since(t), 100*time.Millisecond), time.Second)
	}
	return s, nil
}

// ResponseFloor is the least time login.password and password.reset.request
// take (Config.ResponseFloor, as set at start; 0 or less: none).
func (s *Service) ResponseFloor() time.Duration { return s.cfg.ResponseFloor }

// handler is one command: it gets the raw request and returns the reply.
type handler func(ctx context.Context, data []byte) Reply

// endpoints maps subjects (after "<prefix>.cmd.") to handlers.
func (s *Service) endpoints() map[string]handler {
	return map[string]handler{
		"login.password":          s.loginPassword,
		"login.otp.send":          s.otpSend,
		"login.otp.verify":        s.otpVerify,
		"session.logout":          s.logout,
		"session.check":           s.sessionCheck,
		"account.register":        s.register,
		"account.deactivate":      s.deactivate,
		"account.set_affiliation": s.setAffiliation,
		"account.unlock":          s.unlock,

		"password.change.start":       s.passwordChangeStart,
		"password.change.verify_code": s.passwordChangeVerify,
		"password.change.complete":    s.passwordChangeComplete,
		"password.reset.request":      s.passwordResetRequest,
		"password.reset.complete":     s.passwordResetComplete,
		"email.change":                s.emailChange,
		"email.confirm":               s.emailConfirm,

		"biometric.offer":           s.biometricOffer,
		"biometric.enroll":          s.biometricEnroll,
		"biometric.challenge":       s.biometricChallenge,
		"biometric.login":           s.biometricLogin,
		"account.revoke_biometrics": s.revokeBiometrics,
		"account.import":            s.importAccount,
	}
}

// Handle runs one request as the NATS endpoint would: for tests and tools.
func (s *Service) Handle(ctx context.Context, subject string, data []byte) []byte {
	h, ok := s.endpoints()[subject]
	if !ok {
		return mustJSON(errorReply(domain.InvalidRequest("subject", "n'est pas une commande connue")))
	}
	return s.run(ctx, subject, h, data)
}

func (s *Service) run(ctx context.Context, subject string, h handler, data []byte) []byte {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	key, idempotent := replyKey(subject, data)
	if !idempotent {
		b, _ := s.runOnce(ctx, subject, h, data)
		return b
	}
	// A request with a request_id is identified by its whole body (issue
	// 11, kind 1): a retry of it, here, gets the first reply; identical
	// requests in flight share one execution; and its event's message id
	// is the keyed hash of subject and body, so another body under the same
	// request_id is another request, decided and recorded as such.
	if b, ok := s.replies.get(key); ok {
		return b
	}
	ctx = withRequestKey(ctx, s.keys.RequestKey(subject, data))
	v, _, _ := s.flight.Do(string(key[:]), func() (any, error) {
		if b, ok := s.replies.get(key); ok {
			return b, nil
		}
		b, final := s.runOnce(ctx, subject, h, data)
		if final {
			s.replies.put(key, b)
		}
		return b, nil
	})
	return v.([]byte)
}

// runOnce runs the handler; final is false for an `unavailable` reply,
// which a retry may turn into a decision.
func (s *Service) runOnce(ctx context.Context, subject string, h handler, data []byte) (b []byte, final bool) {
	start := time.Now()
	rep := safely(ctx, h, data, s.log, subject)
	if !rep.OK && rep.Error.Code == domain.CodeUnavailable && ctx.Err() != nil {
		s.log.Warn("request timed out", "subject", subject, "timeout", s.cfg.RequestTimeout)
	}
	code := rep.Status
	if !rep.OK {
		code = rep.Error.Code
	}
	s.log.Debug("command", "subject", subject, "outcome", code, "duration", time.Since(start))
	return mustJSON(rep), rep.OK || rep.Error.Code != domain.CodeUnavailable
}

// safely turns a panic in a handler into an `unavailable` reply: a bad
// request must never crash the service.
func safely(ctx context.Context, h handler, data []byte, log *slog.Logger, subject string) (rep Reply) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panic", "subject", subject, "panic", fmt.Sprint(p))
			rep = errorReply(errors.New("panic"))
		}
	}()
	return h(ctx, data)
}

// Start registers the micro service and its endpoints on nc.
func (s *Service) Start(nc *nats.Conn) error {
	srv, err := micro.AddService(nc, micro.Config{
		Name:        "auth-commands",
		Version:     Version,
		Description: "ameli-style authentication: login, codes, accounts",
	})
	if err != nil {
		return fmt.Errorf("start micro service: %w", err)
	}
	s.micro = srv
	group := srv.AddGroup(s.prefix + ".cmd")
	for subject, h := range s.endpoints() {
		subject, h := subject, h
		name := endpointName(subject)
		err := group.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) {
			s.dispatch(subject, h, req)
		}), micro.WithEndpointSubject(subject))
		if err != nil {
			return fmt.Errorf("add endpoint %s: %w", subject, err)
		}
	}
	if s.cfg.DevClock != nil {
		sub, err := nc.Subscribe(s.prefix+".dev.clock.advance", s.devClockAdvance)
		if err != nil {
			return fmt.Errorf("subscribe dev clock: %w", err)
		}
		s.subs = append(s.subs, sub)
	} else {
		sub, err := nc.QueueSubscribe(s.prefix+".dev.clock.advance", "auth-commands", func(m *nats.Msg) {
			_ = m.Respond(mustJSON(errorReply(domain.InvalidRequest("subject",
				"n'est disponible qu'avec l'horloge de développement (AUTH_DEV_CLOCK=1)"))))
		})
		if err != nil {
			return fmt.Errorf("subscribe dev clock: %w", err)
		}
		s.subs = append(s.subs, sub)
	}
	// The server must know the subscriptions before Start returns, or the
	// first requests find no responder.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	return nil
}

// dispatch hands a request to a goroutine: a micro handler runs one request
// at a time per endpoint, and logins must hash on every core.
func (s *Service) dispatch(subject string, h handler, req micro.Request) {
	select {
	case s.inflight <- struct{}{}:
	case <-time.After(s.cfg.RequestTimeout):
		_ = req.Respond(mustJSON(errorReply(errors.New("overloaded"))))
		return
	}
	s.wg.Add(1)
	go func() {
		defer func() { <-s.inflight; s.wg.Done() }()
		_ = req.Respond(s.run(context.Background(), subject, h, req.Data()))
	}()
}

// Stop stops taking requests, finishes those in flight and waits for the
// background snapshot writes.
func (s *Service) Stop() error {
	var err error
	if s.micro != nil {
		err = s.micro.Stop()
	}
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.wg.Wait()
	s.accounts.snapshotWG.Wait()
	return err
}

// devClockAdvance answers <prefix>.dev.clock.advance. The projector and the
// notifier follow the same subject through the same clock.ApplyAdvance, so
// every component accepts or refuses a request alike.
func (s *Service) devClockAdvance(m *nats.Msg) {
	now, err := s.cfg.DevClock.ApplyAdvance(m.Data)
	if err != nil {
		ae := &clock.AdvanceError{Field: "seconds", Detail: "est refusé"}
		errors.As(err, &ae)
		s.log.Warn("dev clock advance refused", "field", ae.Field, "reason", ae.Detail, "now", now)
		_ = m.Respond(mustJSON(errorReply(domain.InvalidRequest(ae.Field, ae.Detail))))
		return
	}
	s.log.Warn("dev clock advanced", "now", now, "offset", s.cfg.DevClock.Offset().String())
	_ = m.Respond(mustJSON(Reply{OK: true, Status: "clock_advanced", Now: utc(now)}))
}

func endpointName(subject string) string {
	b := []byte(subject)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // replies are plain structs
	}
	return b
}

// errHashSkipped: the hash was no longer needed once a worker was free
// (the account got blocked meanwhile); nothing was computed.
var errHashSkipped = errors.New("password check skipped: no longer needed")

// verifyPassword checks a password against a stored hash on the bounded
// hashing pool. key names who the work is for (an account id, or "nir:" and
// an index key): the caller holds that key's gate (see keyGate), and the
// hash observer counts per key. stillNeeded, if set, is asked once a worker
// is free: false returns errHashSkipped without hashing (issue 11, kind 4:
// a block recorded while the request waited costs nothing more).
func (s *Service) verifyPassword(ctx context.Context, key string, stillNeeded func() bool, password, phc string) (ok, rehash bool, err error) {
	if err := secrets.CheckHash(phc, s.policy.HashLimits); errors.Is(err, secrets.ErrHashCost) {
		// A stored hash over the ceilings (imported before they existed,
		// or written by whoever could write the stream) is never computed:
		// the attempt fails as a wrong password would, and an operator is
		// told. The holder gets in again through a password reset.
		s.log.Error("stored password hash over the cost ceiling: not computed; the holder must reset the password",
			"key", redactKey(key), "err", err)
		return false, false, nil
	}
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return false, false, ctx.Err()
	}
	defer func() { <-s.hashSem }()
	if stillNeeded != nil && !stillNeeded() {
		return false, false, errHashSkipped
	}
	s.observeHash(key)
	return secrets.VerifyPassword(password, phc, s.policy.Argon2, s.policy.HashLimits)
}

// hashPassword makes the argon2id hash of a new password on the pool.
func (s *Service) hashPassword(ctx context.Context, key, password string) (string, error) {
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.hashSem }()
	s.observeHash(key)
	return secrets.HashPassword(password, s.policy.Argon2), nil
}

func (s *Service) observeHash(key string) {
	if s.cfg.HashObserver != nil {
		s.cfg.HashObserver(key)
	}
}

// redactKey keeps account ids (not personal data) and hides NIR index keys.
func redactKey(key string) string {
	if strings.HasPrefix(key, "nir:") {
		return "nir:…"
	}
	return key
}

func metadata(c *Common) events.Metadata {
	return events.Metadata{CausationID: c.RequestID, CorrelationID: c.RequestID, Channel: c.Channel, ClientIP: c.ClientIP, UserAgent: c.UserAgent}
}
