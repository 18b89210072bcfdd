// Package commands is the commands service: it decodes front-ends' requests
// strictly, decides them on the account's state with the domain's decider,
// appends the resulting fact with optimistic concurrency and replies. It
// serves them as a nats.go micro service, so instances share the load through
// its queue group and `nats micro ls|info|stats` work.
//
// One file per use case (login_password.go, login_otp.go, session.go,
// register.go, import.go, backoffice.go, password_change.go,
// password_reset.go, email_change.go, biometric_*.go): each decodes its
// request, checks its own preconditions and replies with its contract type.
// What they share: accounts.go (load, decide, append, replay), steps.go
// (a decision on an account or a session, the admission of a new
// password), hashing.go (the bounded argon2id pool), wire.go (strict
// decoding), shadow.go (NIRs without an account).
package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// Version is the service version shown by `nats micro info`.
const Version = "0.1.0"

// Config wires the service. Store, Index, Snapshots, Shadows, Sources,
// Fraud and Keys are required.
type Config struct {
	Prefix    string // subject prefix, contract.DefaultPrefix ("auth") by default
	Policy    domain.Policy
	Keys      *secrets.Keys
	Store     eventstore.Store
	Index     eventstore.Index
	Snapshots eventstore.Snapshots
	Shadows   eventstore.Shadows  // login state of NIRs without an account (issue 19)
	Sources   eventstore.Sources  // failed password attempts per client source (issue 20, sources.go)
	Fraud     eventstore.FraudLog // where fraud.source_throttled and fraud.source_released go
	// SourceAllowlist (AUTH_SOURCE_ALLOWLIST) are the networks never
	// counted nor throttled by source: known proxies and NATs whose one
	// address stands for many people.
	SourceAllowlist []netip.Prefix
	Clock           clock.Clock // system clock by default
	// DevClock, when set, serves <prefix>.dev.clock.advance on this clock.
	DevClock *clock.Dev
	Logger   *slog.Logger

	RequestTimeout time.Duration // per request, 5 s by default
	HashWorkers    int           // concurrent argon2id computations, GOMAXPROCS by default
	MaxInFlight    int           // requests handled at once, 512 by default
	CacheSize      int           // account states kept in memory, 100,000 by default
	SnapshotEvery  int           // events between snapshots of an account, 25 by default
	// AttemptsRetention is the store's AttemptsTTL (AUTH_ATTEMPTS_RETENTION):
	// how long a login attempt stays in the stream. When set, and the
	// store expires attempts (eventstore.AttemptsFollower), the service's
	// coverer (cover.go) writes the account's snapshot about a minute
	// after each attempt, off the request path, so that a snapshot covers
	// every attempt before it expires (issue 16, docs/retention.md); it
	// must be at least the policy's AttemptsMemory. 0: attempts stay for
	// good, snapshots only every SnapshotEvery events.
	AttemptsRetention time.Duration
	// CoverDelay is how long after its append the coverer covers a login
	// attempt with a snapshot (cover.go); 0: a minute, or a quarter of
	// the attempt's TTL if that is shorter. Benchmarks that measure the
	// snapshots set it short.
	CoverDelay time.Duration

	// HashObserver, if set, is called before each argon2id or bcrypt
	// computation with the key the work is for (an account id, or "nir:"
	// and a NIR index key): for benchmarks and tests of the flood rules.
	HashObserver func(key string)

	// Observe, if set, is called after each command is decided with its
	// subject (without the prefix: one of the service's commands), its
	// outcome (the reply's status, or its error code) and the time taken
	// before any response floor: for metrics (internal/ops). It must be
	// fast, and the outcome and subject are the only facts it gets.
	Observe func(subject, outcome string, d time.Duration)

	// Metrics, if set, is told the facts recorded, the lost races and the
	// hashing pool's waits (metrics.go; internal/ops implements it).
	Metrics Metrics
	// TracerProvider makes the service's spans (internal/tracing): one
	// server span per command, child of the trace context the request
	// message carries, with the password hashes and the append under it;
	// the append writes the trace context into the event's headers. nil:
	// the global provider, which exports nothing unless tracing.Setup
	// installed an exporter.
	TracerProvider trace.TracerProvider

	// ResponseFloor is the least time login.password and
	// password.reset.request take to answer, so that their timing does not
	// tell whether a NIR has an account (issue 19; docs/enumeration.md):
	// 0 sets it at start to 4 times one argon2id hash with the policy's
	// parameters (measured then), between 100 ms and 1 s: above what either
	// path costs when the machine is not saturated, and low enough that a
	// handful of concurrent clients still reach the hashing pool's
	// throughput (the reply waits on a timer, not in an in-flight slot).
	// Negative disables it (tests).
	ResponseFloor time.Duration
}

// Service is the commands service.
type Service struct {
	cfg      Config
	subjects contract.Subjects
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
	workers  *workers // run the requests (workers.go)
	wg       sync.WaitGroup
	delayed  atomic.Int64   // replies waiting for their response floor, off the in-flight slots
	delayWG  sync.WaitGroup // those replies, sent before Stop returns
	dummyPHC string
	replies  *replyCache
	flight   singleflight.Group // identical requests (same key) in flight

	importJobs    chan importJob // rows of account.import_batch, to the import workers
	importWorkers sync.Once      // starts them at the first batch
	importStop    sync.Once      // Stop ends them (once: Stop may be called again)
	importWG      sync.WaitGroup // and Stop waits for them

	micro micro.Service
	nc    *nats.Conn // the connection Start was given; Stop flushes it
	subs  []*nats.Subscription

	coverStop context.CancelFunc // ends the coverer (cover.go), if one runs
	coverWG   sync.WaitGroup

	tracer    trace.Tracer
	spanNames map[string]string // command name -> its server span's name
}

// New checks the configuration and builds the service.
func New(cfg Config) (*Service, error) {
	if cfg.Keys == nil || cfg.Store == nil || cfg.Index == nil || cfg.Snapshots == nil || cfg.Shadows == nil || cfg.Sources == nil || cfg.Fraud == nil {
		return nil, errors.New("commands: Keys, Store, Index, Snapshots, Shadows, Sources and Fraud are required")
	}
	if cfg.Policy.Name == "" {
		cfg.Policy = domain.SeedPolicy()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = contract.DefaultPrefix
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
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if r, m := cfg.AttemptsRetention, cfg.Policy.AttemptsMemory(); r != 0 && r < m {
		return nil, fmt.Errorf("commands: attempts retention %s is shorter than the longest time policy %s looks back at an attempt (%s)", r, cfg.Policy.Name, m)
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
		cfg: cfg, subjects: contract.Subjects(cfg.Prefix), policy: cfg.Policy, keys: cfg.Keys, index: cfg.Index,
		clock: clock.Millis{Clock: cfg.Clock}, log: cfg.Logger,
		hashSem:    make(chan struct{}, cfg.HashWorkers),
		gate:       newKeyGate(),
		shadows:    newLRU[cachedShadow](cfg.CacheSize, CacheShadows, cfg.Metrics),
		inflight:   make(chan struct{}, cfg.MaxInFlight),
		workers:    newWorkers(),
		replies:    newReplyCache(cfg.Clock, 2*time.Minute, maxReplies, maxReplyBytes, cfg.Metrics),
		importJobs: make(chan importJob),
		accounts: &accounts{
			store: cfg.Store, snapshots: cfg.Snapshots, decider: domain.Decider{Policy: cfg.Policy},
			log: cfg.Logger, snapshotEvery: uint64(cfg.SnapshotEvery), cache: newLRU[cached](cfg.CacheSize, CacheAccounts, cfg.Metrics),
			snapshotSem: make(chan struct{}, 8), metrics: cfg.Metrics,
		},
	}
	s.tracer = tracing.Provider(cfg.TracerProvider).Tracer(tracing.Scope + "/internal/commands")
	s.accounts.tracer = s.tracer
	s.spanNames = map[string]string{}
	for name := range s.endpoints() {
		s.spanNames[name] = "process " + s.subjects.Command(name)
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
type handler func(ctx context.Context, data []byte) contract.Reply

// endpoints maps command names (contract.Commands, the subjects after
// "<prefix>.cmd.") to handlers.
func (s *Service) endpoints() map[string]handler {
	return map[string]handler{
		contract.CmdLoginPassword:  s.loginPassword,
		contract.CmdLoginOTPSend:   s.otpSend,
		contract.CmdLoginOTPVerify: s.otpVerify,
		contract.CmdSessionLogout:  s.logout,
		contract.CmdSessionCheck:   s.sessionCheck,

		contract.CmdAccountRegister:         s.register,
		contract.CmdAccountImport:           s.importAccount,
		contract.CmdAccountImportBatch:      s.importBatch,
		contract.CmdAccountDeactivate:       s.deactivate,
		contract.CmdAccountSetAffiliation:   s.setAffiliation,
		contract.CmdAccountUnlock:           s.unlock,
		contract.CmdAccountRevokeBiometrics: s.revokeBiometrics,

		contract.CmdPasswordChangeStart:      s.passwordChangeStart,
		contract.CmdPasswordChangeVerifyCode: s.passwordChangeVerify,
		contract.CmdPasswordChangeComplete:   s.passwordChangeComplete,
		contract.CmdPasswordResetRequest:     s.passwordResetRequest,
		contract.CmdPasswordResetComplete:    s.passwordResetComplete,
		contract.CmdEmailChange:              s.emailChange,
		contract.CmdEmailConfirm:             s.emailConfirm,

		contract.CmdBiometricOffer:     s.biometricOffer,
		contract.CmdBiometricEnroll:    s.biometricEnroll,
		contract.CmdBiometricChallenge: s.biometricChallenge,
		contract.CmdBiometricLogin:     s.biometricLogin,

		contract.CmdOIDCAuthorize: s.oidcAuthorize,
		contract.CmdOIDCToken:     s.oidcToken,
		contract.CmdOIDCUserinfo:  s.oidcUserinfo,
	}
}

// Handle runs one request as the NATS endpoint would: for tests and tools.
func (s *Service) Handle(ctx context.Context, subject string, data []byte) []byte {
	h, ok := s.endpoints()[subject]
	if !ok {
		return mustJSON(errorReply(domain.InvalidRequest("subject", "n'est pas une commande connue")))
	}
	b, notBefore := s.run(ctx, subject, h, data)
	waitUntil(ctx, notBefore)
	return b
}

// maxDelayed bounds the replies held back for their response floor
// outside the in-flight slots (a timer and the reply's bytes each); past
// it, a reply waits in its slot.
const maxDelayed = 1 << 16

// run runs one request and returns its reply and the time before which it
// must not be sent (the response floor, issue 19; zero for none).
//
// Its span, a child of the trace context in ctx (the request's, see
// dispatch), ends when the reply is ready, before any response floor.
func (s *Service) run(ctx context.Context, subject string, h handler, data []byte) ([]byte, time.Time) {
	ctx, span := s.tracer.Start(ctx, s.spanNames[subject], serverSpan)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(tracing.MessagingNATS, semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(s.subjects.Command(subject)), tracing.AttrCommand.String(subject))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	if !hasRequestID(subject, data) {
		r := s.runOnce(ctx, subject, h, data)
		traceOutcome(span, r)
		return r.body, r.notBefore
	}
	// A request with a request_id is identified by its whole body (issue
	// 11, kind 1): a retry of it, here, gets the first reply; identical
	// requests in flight share one execution; and its event's message id
	// is the keyed hash of subject and body, so another body under the same
	// request_id is another request, decided and recorded as such.
	key := s.keys.RequestKey(subject, data)
	if b, ok := s.replies.get(key); ok {
		traceOutcome(span, ranRequest{cached: true})
		return b, time.Time{}
	}
	ctx = withRequestKey(ctx, key)
	// Identical requests in flight share the execution and its floor: the
	// reply leaves no sooner than the floor after the first of them began.
	v, _, shared := s.flight.Do(key, func() (any, error) {
		if b, ok := s.replies.get(key); ok {
			return ranRequest{body: b, cached: true}, nil
		}
		r := s.runOnce(ctx, subject, h, data)
		if r.final {
			s.replies.put(key, r.body)
		}
		return r, nil
	})
	r := v.(ranRequest)
	if shared && span.IsRecording() {
		// The spans of the execution are under the first request's span.
		span.SetAttributes(attrShared)
	}
	traceOutcome(span, r)
	return r.body, r.notBefore
}

// ranRequest is a request's reply; final is false for an `unavailable`
// reply, which a retry may turn into a decision; notBefore is the floor;
// outcome is the reply's status or error code ("" for a reply from the
// cache).
type ranRequest struct {
	body      []byte
	final     bool
	notBefore time.Time
	outcome   string
	cached    bool
}

// Span options and attributes of the commands' spans.
var (
	serverSpan      = trace.WithSpanKind(trace.SpanKindServer)
	attrReplyCached = attribute.Bool("auth.reply.cached", true) // the reply of an earlier try, from the reply cache
	attrShared      = attribute.Bool("auth.reply.shared", true) // an identical request in flight ran it
)

// traceOutcome puts the reply's outcome on the command's span; an
// `unavailable` reply (an internal failure or a timeout) makes it an
// error, a refusal of the rules does not.
func traceOutcome(span trace.Span, r ranRequest) {
	if !span.IsRecording() {
		return
	}
	if r.cached {
		span.SetAttributes(attrReplyCached)
		return
	}
	span.SetAttributes(tracing.AttrOutcome.String(r.outcome))
	if r.outcome == domain.CodeUnavailable {
		span.SetStatus(codes.Error, domain.CodeUnavailable)
	}
}

func (s *Service) runOnce(ctx context.Context, subject string, h handler, data []byte) ranRequest {
	start := time.Now()
	var notBefore time.Time
	rep := safely(context.WithValue(ctx, floorCtx{}, &notBefore), h, data, s.log, subject)
	ok, outcome := rep.Outcome()
	if !ok && outcome == domain.CodeUnavailable && ctx.Err() != nil {
		s.log.Warn("request timed out", "subject", subject, "timeout", s.cfg.RequestTimeout)
	}
	d := time.Since(start)
	s.log.Debug("command", "subject", subject, "outcome", outcome, "duration", d)
	if s.cfg.Observe != nil {
		s.cfg.Observe(subject, outcome, d)
	}
	// A reply part of which may be sent again (an import batch with rows
	// answered unavailable) is not final, as an unavailable one is not.
	partial, _ := rep.(interface{ Partial() bool })
	final := (ok || outcome != domain.CodeUnavailable) && (partial == nil || !partial.Partial())
	return ranRequest{body: mustJSON(rep), final: final, notBefore: notBefore, outcome: outcome}
}

// waitUntil waits until t, or until ctx ends.
func waitUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// safely turns a panic in a handler into an `unavailable` reply: a bad
// request must never crash the service.
func safely(ctx context.Context, h handler, data []byte, log *slog.Logger, subject string) (rep contract.Reply) {
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
	s.nc = nc
	group := srv.AddGroup(s.subjects.CommandGroup())
	for subject, h := range s.endpoints() {
		subject, h := subject, h
		name := endpointName(subject)
		err := group.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) {
			if !s.replyAllowed(subject, req.Reply()) {
				return
			}
			s.dispatch(subject, h, req)
		}), micro.WithEndpointSubject(subject))
		if err != nil {
			return fmt.Errorf("add endpoint %s: %w", subject, err)
		}
	}
	if s.cfg.DevClock != nil {
		sub, err := nc.Subscribe(s.subjects.DevClockAdvance(), s.devClockAdvance)
		if err != nil {
			return fmt.Errorf("subscribe dev clock: %w", err)
		}
		s.subs = append(s.subs, sub)
	} else {
		sub, err := nc.QueueSubscribe(s.subjects.DevClockAdvance(), "auth-commands", func(m *nats.Msg) {
			if !s.replyAllowed(contract.CmdDevClockAdvance, m.Reply) {
				return
			}
			_ = m.Respond(mustJSON(errorReply(domain.InvalidRequest("subject",
				"n'est disponible qu'avec l'horloge de développement (AUTH_DEV_CLOCK=1)"))))
		})
		if err != nil {
			return fmt.Errorf("subscribe dev clock: %w", err)
		}
		s.subs = append(s.subs, sub)
	}
	s.startCoverer()
	// The server must know the subscriptions before Start returns, or the
	// first requests find no responder.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	return nil
}

// replyAllowed drops, with a warning, a request whose reply subject is not
// an inbox (contract.IsInbox): it is neither run nor answered. NATS lets a
// requester name any reply subject, and this service's NATS user may
// publish to <prefix>.events.> (deploy/nats/users.conf): a front-end
// naming an event subject as its reply subject would have the reply
// appended to the audit trail, where nothing can delete it. The reply
// subject is logged cut to 64 bytes: an inbox holds no secret, and what
// else is there is the attacker's.
func (s *Service) replyAllowed(subject, reply string) bool {
	if contract.IsInbox(reply) {
		return true
	}
	shown := reply
	if len(shown) > 64 {
		shown = strings.ToValidUTF8(shown[:64], "") + "…"
	}
	s.log.Warn("request dropped: its reply subject is not an inbox (_INBOX.…)", "command", subject, "reply", shown)
	return false
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
	s.workers.run(func() {
		defer s.wg.Done()
		// The request's trace context (internal/tracing): the front-end's.
		ctx := tracing.Extract(context.Background(), nats.Header(req.Headers()))
		b, notBefore := s.run(ctx, subject, h, req.Data())
		wait := time.Until(notBefore)
		if wait <= 0 {
			_ = req.Respond(b)
			<-s.inflight
			return
		}
		// A reply held back by the response floor waits on a timer, not
		// in an in-flight slot: cheap requests (on a blocked account) under
		// the floor must not fill the slots that every command needs.
		if s.delayed.Add(1) > maxDelayed {
			s.delayed.Add(-1)
			waitUntil(context.Background(), notBefore)
			_ = req.Respond(b)
			<-s.inflight
			return
		}
		<-s.inflight
		s.delayWG.Add(1)
		time.AfterFunc(wait, func() {
			_ = req.Respond(b)
			s.delayed.Add(-1)
			s.delayWG.Done()
		})
	})
}

// Stop stops taking requests, finishes those in flight and waits for the
// background snapshot writes. When it returns, the server has processed the
// unsubscriptions: a request or a $SRV.PING sent afterwards, from any
// connection, no longer reaches this instance (micro's Stop only drains, which
// leaves the UNSUB in the client's buffer; authctl partitions migrate relies
// on the ping staying silent).
func (s *Service) Stop() error {
	var err error
	if s.micro != nil {
		err = s.micro.Stop()
	}
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	if s.nc != nil && s.nc.IsConnected() {
		// Best effort: a connection that is down routes nothing to us, and
		// the removed subscriptions are not resent on reconnect.
		_ = s.nc.FlushTimeout(5 * time.Second)
	}
	s.wg.Wait()
	if s.coverStop != nil {
		s.coverStop()
		s.coverWG.Wait()
	}
	s.importStop.Do(func() { close(s.importJobs) }) // no batch is left to hand rows out
	s.importWG.Wait()
	s.delayWG.Wait()
	s.accounts.snapshotWG.Wait()
	return err
}

// devClockAdvance answers <prefix>.dev.clock.advance. The projector and the
// notifier follow the same subject through the same clock.ApplyAdvance, so
// every component accepts or refuses a request alike.
func (s *Service) devClockAdvance(m *nats.Msg) {
	if !s.replyAllowed(contract.CmdDevClockAdvance, m.Reply) {
		return
	}
	now, err := s.cfg.DevClock.ApplyAdvance(m.Data)
	if err != nil {
		ae := &clock.AdvanceError{Field: "seconds", Detail: "est refusé"}
		errors.As(err, &ae)
		s.log.Warn("dev clock advance refused", "field", ae.Field, "reason", ae.Detail, "now", now)
		_ = m.Respond(mustJSON(errorReply(domain.InvalidRequest(ae.Field, ae.Detail))))
		return
	}
	s.log.Warn("dev clock advanced", "now", now, "offset", s.cfg.DevClock.Offset().String())
	_ = m.Respond(mustJSON(contract.ClockReply{Done: contract.OK(contract.StatusClockAdvanced), Now: contract.Timestamp(now)}))
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

func metadata(c *Common) events.Metadata {
	return events.Metadata{CausationID: c.RequestID, CorrelationID: c.RequestID, Channel: c.Channel, ClientIP: c.ClientIP, UserAgent: c.UserAgent}
}
