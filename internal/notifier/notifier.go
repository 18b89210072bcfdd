// Package notifier sends the service's emails: it follows the AUTH_EVENTS
// stream through its own durable pull consumer ("notifier") and mails the
// events that ask for one (a security code, a reset link, a notice…), once
// per event.
//
// Delivery is at least once and, but for one short window, at most once:
// each event is claimed in Postgres (notifier.sent, keyed by the event id)
// before the SMTP transaction and marked sent after it, so a redelivered
// or replayed event whose record says sent is acknowledged without mail.
// The window: a crash between the SMTP server's acceptance and the commit
// of "sent" (one UPDATE) sends that mail again, with the same Message-ID.
//
// Messages go through a watermill router, fed by a small subscriber over
// the durable consumer (subscriber.go says why not watermill-nats):
// Recoverer turns a panic into an error, Retry retries passing failures in
// process, then the message is naked with a growing delay; what cannot be
// handled (an undecodable event, a permanent SMTP refusal, or too many
// attempts) goes to the dead-letter stream AUTH_DLQ with the reason
// (PoisonQueueWithFilter). docs/notifier.md tells the whole story.
package notifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/mail"
	"github.com/ameli-auth/authsvc/internal/secrets"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// Sender delivers one mail; mail.SMTPSender is the real one. An error for
// which mail.IsPermanent is true is not retried.
type Sender interface {
	Send(ctx context.Context, m mail.Message) error
}

// Config is everything the notifier needs. Zero durations and counts take
// the defaults.
type Config struct {
	Prefix string // subject prefix; default contract.DefaultPrefix
	Stream string // default contract.EventsStream; only with one partition (the layout names the streams of several)
	// Partitions is AUTH_PARTITIONS (0 or 1: the one stream): the notifier
	// has its durable consumer on every partition's stream, and every
	// replica pulls from all of them (docs/scale.md).
	Partitions int
	Consumer   string // durable consumer name; default "notifier"
	DLQStream  string // default contract.DLQStream; dead letters go to <prefix>.dlq.<consumer>
	// JS creates the consumer, reads the streams' info and publishes dead
	// letters; it creates no stream: the events stream and the dead-letter
	// stream (EnsureDLQStream) are the commands service's. SubscriberConn is the watermill subscriber's own connection:
	// Stop drains and closes it, so it must not be shared.
	JS             jetstream.JetStream
	SubscriberConn *nats.Conn

	Store  *Store
	Keys   *secrets.Keys
	Sender Sender
	Clock  clock.Clock
	Logger *slog.Logger

	From      string // the From header, AUTH_SMTP_FROM
	PublicURL string // AUTH_PUBLIC_URL, the base of the reset link
	ResetPath string // the reset page under PublicURL; default "/password/reset"

	Workers       int           // messages handled at once; default 1 (keeps an account's mails in order)
	AckWait       time.Duration // default 60s; longer than a whole attempt (SMTP timeouts included)
	MaxAckPending int           // default 1000
	Prefetch      int           // messages pulled ahead per worker; default 8
	CloseTimeout  time.Duration // how long Stop waits for mails in flight; default 30s

	// Retries. A failed attempt is retried InProcessRetries times at once
	// (from RetryInterval, doubling), then the message is naked and comes
	// back after Backoff[delivery-1] (the last value repeats). A permanent
	// failure goes to the dead letters at delivery PermanentAttempts, any
	// other at delivery MaxAttempts.
	InProcessRetries  int           // default 2
	RetryInterval     time.Duration // default 200ms
	Backoff           []time.Duration
	MaxAttempts       int // default 20 (about 64 min of retries with the default Backoff)
	PermanentAttempts int // default 3

	// NoticeMaxAge: a notice (password changed, lockout, new device…) older
	// than this is not sent. Codes and links are not sent once expired.
	NoticeMaxAge time.Duration // default 24h

	// Mails, if set, is told each mail's outcomes by its template kind
	// (a mail.Kind, or "" for an event whose mail is not known): "sent"
	// (the SMTP server accepted it), "failed" (an attempt failed; it is
	// retried unless given up), "dead_lettered" (given up), "expired" (out
	// of date, not sent). For metrics (internal/ops); it must be fast, and
	// it is never told an address, an account or an event id.
	Mails func(kind, outcome string)
	// TracerProvider makes a consumer span per mailed event, child of the
	// trace context in the event's headers (the command's append), with the
	// SMTP send under it (internal/tracing). nil: the global provider.
	TracerProvider trace.TracerProvider
}

// DefaultBackoff is the wait before each new delivery of a failed message.
var DefaultBackoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}

func (c *Config) setDefaults() error {
	if c.Prefix == "" {
		c.Prefix = contract.DefaultPrefix
	}
	if c.Stream == "" {
		c.Stream = contract.EventsStream
	}
	if c.Partitions < 0 || c.Partitions > contract.MaxPartitions {
		return fmt.Errorf("notifier: %d partitions, want 1 to %d", c.Partitions, contract.MaxPartitions)
	}
	if c.Consumer == "" {
		c.Consumer = "notifier"
	}
	if c.DLQStream == "" {
		c.DLQStream = contract.DLQStream
	}
	if c.ResetPath == "" {
		c.ResetPath = "/password/reset"
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.AckWait <= 0 {
		c.AckWait = time.Minute
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1000
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 8
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 30 * time.Second
	}
	if c.InProcessRetries < 0 {
		c.InProcessRetries = 0
	} else if c.InProcessRetries == 0 {
		c.InProcessRetries = 2
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 200 * time.Millisecond
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 20
	}
	if c.PermanentAttempts <= 0 {
		c.PermanentAttempts = 3
	}
	if c.NoticeMaxAge <= 0 {
		c.NoticeMaxAge = 24 * time.Hour
	}
	if c.Mails == nil {
		c.Mails = func(string, string) {}
	}
	switch {
	case c.JS == nil:
		return errors.New("notifier: no JetStream")
	case c.SubscriberConn == nil:
		return errors.New("notifier: no connection for the subscriber")
	case c.Store == nil:
		return errors.New("notifier: no store")
	case c.Keys == nil:
		return errors.New("notifier: no keys")
	case c.Sender == nil:
		return errors.New("notifier: no sender")
	case c.From == "":
		return errors.New("notifier: no From address")
	case !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://"):
		return fmt.Errorf("notifier: the public URL %q is not an http(s) URL", c.PublicURL)
	}
	return nil
}

// Notifier is the mail-sending consumer.
type Notifier struct {
	cfg        Config
	log        *slog.Logger
	owner      string // this process, in claims
	dlqSubject string
	settings   settings

	router *message.Router
	subs   []*subscriber // one per partition stream
	done   chan struct{}

	tracer   trace.Tracer
	spanName string // of the consumer span: "process <stream>"

	// Mails the SMTP server accepted but whose record could not be
	// written yet: a redelivery to this process writes it instead of
	// sending again. Bounded: rememberUnrecorded.
	mu             sync.Mutex
	pendingRecords map[string]unrecorded
}

type unrecorded struct {
	messageID string
	at        time.Time
}

// New checks the configuration.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return &Notifier{
		cfg:            cfg,
		log:            cfg.Logger,
		owner:          fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b)),
		dlqSubject:     contract.Subjects(cfg.Prefix).DeadLetters(cfg.Consumer),
		settings:       settings{publicURL: cfg.PublicURL, resetPath: cfg.ResetPath, noticeMaxAge: cfg.NoticeMaxAge},
		pendingRecords: map[string]unrecorded{},
		tracer:         tracing.Provider(cfg.TracerProvider).Tracer(tracing.Scope + "/internal/notifier"),
		spanName:       "process " + cfg.Stream,
	}, nil
}

// Start checks that the dead-letter stream is there, creates or updates
// the durable consumer, and starts handling messages. It returns once the router runs.
func (n *Notifier) Start(ctx context.Context) error {
	if err := n.checkDLQ(ctx); err != nil {
		return err
	}
	// watermill logs every message at info level: that is debug here; and
	// each failed attempt as an error, which giveUp already reports at the
	// level it deserves (a retry is a warning, a dead letter an error).
	wlog := watermill.NewSlogLoggerWithLevelMapping(n.log.With("lib", "watermill"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug, slog.LevelError: slog.LevelWarn})
	js, err := jetstream.New(n.cfg.SubscriberConn)
	if err != nil {
		return fmt.Errorf("notifier: subscriber: %w", err)
	}
	var subs []*subscriber
	for _, st := range n.streams() {
		if _, err := n.ensureConsumer(ctx, st); err != nil {
			return err
		}
		// The consumer made above, looked up through the subscriber's own
		// connection, so its acks travel there.
		cons, err := js.Consumer(ctx, st.name, n.cfg.Consumer)
		if err != nil {
			return fmt.Errorf("notifier: subscriber: %w", err)
		}
		subs = append(subs, &subscriber{cons: cons, nc: n.cfg.SubscriberConn, prefetch: n.cfg.Prefetch, ackTimeout: n.cfg.AckWait,
			delay: nakDelay(n.cfg.Backoff), log: n.log, closing: make(chan struct{})})
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: n.cfg.CloseTimeout}, wlog)
	if err != nil {
		return err
	}
	poison, err := middleware.PoisonQueueWithFilter(
		dlqPublisher{js: n.cfg.JS, dlqStream: n.cfg.DLQStream, source: n.cfg.Stream, consumer: n.cfg.Consumer, timeout: 10 * time.Second},
		n.dlqSubject, isDeadLetter)
	if err != nil {
		return err
	}
	retry := middleware.Retry{
		MaxRetries:      n.cfg.InProcessRetries,
		InitialInterval: n.cfg.RetryInterval,
		MaxInterval:     4 * n.cfg.RetryInterval,
		Multiplier:      2,
		MaxElapsedTime:  n.cfg.AckWait / 4,
		ShouldRetry:     func(p middleware.RetryParams) bool { return retryable(p.Err) },
	}
	// Outermost first: dead letters see the final outcome; the panic
	// recoverer sits next to the handler so a panic is an ordinary error.
	router.AddMiddleware(poison, n.giveUp, retry.Middleware, middleware.Recoverer)
	// The workers of each partition stream: handler names are unique per
	// router, the topic is the stream (watermill's poison middleware puts
	// it in the dead letter's metadata).
	for p, sub := range subs {
		for i := range n.cfg.Workers {
			name := fmt.Sprintf("%s-%d", n.cfg.Consumer, i)
			if len(subs) > 1 {
				name = fmt.Sprintf("%s-p%d-%d", n.cfg.Consumer, p, i)
			}
			router.AddConsumerHandler(name, n.streams()[p].name, sub, n.handle)
		}
	}
	n.router, n.subs, n.done = router, subs, make(chan struct{})
	go func() {
		defer close(n.done)
		if err := router.Run(context.Background()); err != nil {
			n.log.Error("notifier router stopped", "err", err)
		}
	}()
	select {
	case <-router.Running():
	case <-n.done:
		return errors.New("notifier: the router stopped at start")
	case <-ctx.Done():
		_ = n.Stop(context.Background())
		return ctx.Err()
	}
	n.log.Info("notifier started", "stream", n.cfg.Stream, "partitions", len(subs), "consumer", n.cfg.Consumer, "workers", n.cfg.Workers,
		"dead_letters", n.cfg.DLQStream+" "+n.dlqSubject)
	return nil
}

// Stop stops pulling messages, hands back (naks) those pulled ahead but
// not started, lets the mails in flight finish and acknowledges them (up
// to CloseTimeout), and drains the subscriber's connection.
func (n *Notifier) Stop(ctx context.Context) error {
	if n.router == nil {
		return nil
	}
	errRouter := n.router.Close()
	var errSub error
	for _, sub := range n.subs {
		errSub = errors.Join(errSub, sub.Close())
	}
	select {
	case <-n.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	n.log.Info("notifier stopped")
	return errors.Join(errRouter, errSub)
}

// Errors of the handler, by what to do with them.

// permanentError: handling this message again cannot succeed.
type permanentError struct{ reason string }

func (e *permanentError) Error() string { return e.reason }

func permanent(format string, args ...any) error {
	return &permanentError{reason: fmt.Sprintf(format, args...)}
}

// errBusy: another worker holds the event's claim; wait for it.
var errBusy = errors.New("the event is claimed by another worker")

// deadLetterError: give up; PoisonQueue moves the message to AUTH_DLQ.
type deadLetterError struct{ reason string }

func (e *deadLetterError) Error() string { return e.reason }

func isDeadLetter(err error) bool {
	var d *deadLetterError
	return errors.As(err, &d)
}

func isPermanent(err error) bool {
	var p *permanentError
	var panicked middleware.RecoveredPanicError
	return errors.As(err, &p) || errors.As(err, &panicked)
}

// retryable: worth another try right away (not permanent, not a claim held
// elsewhere, not a shutdown).
func retryable(err error) bool {
	return !isPermanent(err) && !errors.Is(err, errBusy) && !errors.Is(err, context.Canceled)
}

// giveUp decides, after the in-process retries, whether this delivery was
// the last: a permanent failure at PermanentAttempts, any failure at
// MaxAttempts. The event's record then says failed, and the message goes
// to the dead letters with the reason.
func (n *Notifier) giveUp(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err == nil {
			return out, nil
		}
		attempt := deliveries(msg)
		eventID, accountID := msg.UUID, accountOf(msg)
		log := n.log.With("event_id", eventID, "account_id", accountID, "type", msg.Metadata.Get(eventstore.HeaderEventType), "attempt", attempt)
		if errors.Is(err, context.Canceled) {
			log.Info("handed back at shutdown")
			return out, err
		}
		perm := isPermanent(err)
		var panicked middleware.RecoveredPanicError
		if errors.As(err, &panicked) {
			log.Error("panic while handling an event", "panic", fmt.Sprint(panicked.V), "stack", panicked.Stacktrace)
		}
		if !(perm && attempt >= n.cfg.PermanentAttempts) && attempt < n.cfg.MaxAttempts {
			log.Warn("mail not sent, will retry", "permanent", perm, "err", summary(err))
			return out, err
		}
		reason := reasonOf(err, attempt, perm)
		log.Error("mail given up, to the dead letters", "reason", reason)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		kind := mail.Kind(msg.Metadata.Get(HeaderMailKind))
		if err := n.cfg.Store.MarkFailed(ctx, eventID, accountID, kind, reason); err != nil {
			log.Warn("could not record the failure", "err", err)
		}
		n.cfg.Mails(knownKind(kind), "dead_lettered")
		return out, &deadLetterError{reason: reason}
	}
}

// summary is an error's text without a panic's stack trace (logged once,
// apart), cut to a readable length.
func summary(err error) string {
	var panicked middleware.RecoveredPanicError
	msg := err.Error()
	if errors.As(err, &panicked) {
		msg = fmt.Sprintf("panic: %v", panicked.V)
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

func reasonOf(err error, attempt int, perm bool) string {
	msg := summary(err)
	if perm {
		return fmt.Sprintf("%s (delivery %d)", msg, attempt)
	}
	return fmt.Sprintf("gave up after %d deliveries: %s", attempt, msg)
}

// accountOf reads the account id from the subject <prefix>.events.<id>.
func accountOf(msg *message.Message) string {
	subject := msg.Metadata.Get(HeaderSourceSubject)
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return ""
}

// handle mails one event, if it asks for a mail. Returning nil acks it.
func (n *Notifier) handle(msg *message.Message) error {
	if err := msg.Context().Err(); err != nil {
		return err // shutting down before it began: hand it back
	}
	eventType := msg.Metadata.Get(eventstore.HeaderEventType)
	if eventType == "" {
		eventType = peekType(msg.Payload)
	}
	if eventType == "" {
		return permanent("undecodable message: no event type in its headers nor its body")
	}
	route, ok := mails[eventType]
	if !ok {
		return nil // not a mailed event
	}
	ctx, span := n.startSpan(msg, eventType)
	defer func() {
		if r := recover(); r != nil {
			endSpan(span, permanent("panic"))
			panic(r) // Recoverer makes it an error
		}
	}()
	err := n.mail(ctx, msg, eventType, route)
	endSpan(span, err)
	return err
}

// startSpan starts the consumer span of a mailed event: a child of the
// trace context its message carries (the append's, see internal/tracing),
// or a new trace's root. One span per delivery.
func (n *Notifier) startSpan(msg *message.Message, eventType string) (context.Context, trace.Span) {
	ctx := tracing.ExtractMap(msg.Context(), msg.Metadata)
	ctx, span := n.tracer.Start(ctx, n.spanName, consumerSpan)
	if span.IsRecording() {
		span.SetAttributes(tracing.MessagingNATS, semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(n.cfg.Stream), semconv.MessagingConsumerGroupName(n.cfg.Consumer),
			attrDelivery.Int(deliveries(msg)), tracing.AttrEventType.String(eventType))
	}
	return ctx, span
}

// endSpan records how the delivery ended; an error's text is not put on
// the span (it may name an address or an account), only whether it is
// permanent.
func endSpan(span trace.Span, err error) {
	if span.IsRecording() && err != nil {
		switch {
		case isPermanent(err):
			span.SetStatus(codes.Error, "permanent failure")
		case errors.Is(err, errBusy):
			span.SetAttributes(tracing.AttrOutcome.String("busy"))
		default:
			span.SetStatus(codes.Error, "temporary failure")
		}
	}
	span.End()
}

// Spans' options and attribute keys.
var (
	consumerSpan = trace.WithSpanKind(trace.SpanKindConsumer)
	clientSpan   = trace.WithSpanKind(trace.SpanKindClient)
	attrDelivery = attribute.Key("messaging.nats.delivery") // deliveries so far, 1 the first time
)

// outcome puts a step's result on the event's span.
func outcome(ctx context.Context, what string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(tracing.AttrOutcome.String(what))
	}
}

// mail is handle's work for an event of a mailed type, under its span in ctx.
func (n *Notifier) mail(spanCtx context.Context, msg *message.Message, eventType string, route mapper) error {
	if v, err := strconv.Atoi(msg.Metadata.Get(eventstore.HeaderEventVersion)); err == nil && v > events.CurrentVersion(eventType) {
		// Written by a newer commands service: wait (retries, for about an
		// hour) for this notifier to be upgraded rather than lose the mail.
		return fmt.Errorf("%s version %d is newer than this build reads (%d): waiting for an upgraded notifier",
			eventType, v, events.CurrentVersion(eventType))
	}
	env, err := events.Unmarshal(msg.Payload)
	if err != nil {
		return permanent("undecodable event: %v", err)
	}
	if err := events.VerifyStored(msg.Metadata.Get(HeaderSourceSubject), msg.Metadata.Get(eventstore.HeaderEventID), env); err != nil {
		// A copy or an API answer a reader of the stream had stored on an
		// account's subject: never mailed (events.ErrNotAppended).
		n.cfg.Logger.Error("notifier: skipped a message the commands service did not append",
			"seq", msg.Metadata.Get(HeaderSourceSeq), "err", err)
		outcome(spanCtx, "not_appended")
		return nil
	}
	out, ok, err := route(env, n.settings)
	if err != nil {
		return permanent("%v", err)
	}
	if !ok {
		outcome(spanCtx, "not_mailed")
		return nil
	}
	msg.Metadata.Set(HeaderMailKind, string(out.kind))
	if span := trace.SpanFromContext(spanCtx); span.IsRecording() {
		span.SetAttributes(tracing.AttrMailKind.String(string(out.kind)))
	}
	log := n.log.With("event_id", env.ID, "account_id", env.AccountID, "kind", out.kind)

	// From here, the work started is finished even if shutdown begins.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(spanCtx), n.cfg.AckWait)
	defer cancel()

	if done, err := n.recordPending(ctx, env.ID); done || err != nil {
		outcome(ctx, "recorded_late")
		return err
	}
	now := n.cfg.Clock.Now()
	if !out.staleAt.IsZero() && !now.Before(out.staleAt) {
		recorded, err := n.cfg.Store.MarkExpired(ctx, env.ID, env.AccountID, out.kind)
		if err != nil {
			return err
		}
		if recorded {
			log.Info("mail not sent: out of date when its turn came", "stale_at", out.staleAt,
				"late_by", now.Sub(out.staleAt).Round(time.Second))
			n.cfg.Mails(string(out.kind), "expired")
		}
		outcome(ctx, "expired")
		return nil
	}
	// Everything that can fail without SMTP fails before the claim.
	m, err := n.compose(env, out, now)
	if err != nil {
		return err
	}
	switch c, err := n.cfg.Store.Claim(ctx, env.ID, env.AccountID, out.kind, n.owner, n.cfg.AckWait); {
	case err != nil:
		return err
	case c == claimDone:
		log.Debug("already handled")
		outcome(ctx, "already_handled")
		return nil
	case c == claimBusy:
		return errBusy
	}
	defer func() {
		if r := recover(); r != nil {
			// Give the claim back, or the next attempts would wait for it
			// to run out; Recoverer makes the panic an error.
			n.release(ctx, log, env.ID, fmt.Errorf("panic: %v", r))
			panic(r)
		}
	}()
	if err := n.send(ctx, m, out.kind); err != nil {
		n.cfg.Mails(string(out.kind), "failed")
		n.release(ctx, log, env.ID, err)
		if mail.IsPermanent(err) {
			return permanent("%v", err)
		}
		return err
	}
	n.cfg.Mails(string(out.kind), "sent")
	if err := n.markSent(ctx, env.ID, m.MessageID, now); err != nil {
		log.Error("mail sent but not recorded yet", "err", err)
		return err
	}
	log.Info("mail sent", "latency", now.Sub(env.OccurredAt).Round(time.Millisecond))
	outcome(ctx, "sent")
	return nil
}

// send hands the mail to the Sender under an "smtp send" span.
func (n *Notifier) send(ctx context.Context, m mail.Message, kind mail.Kind) error {
	ctx, span := n.tracer.Start(ctx, "smtp send", clientSpan)
	defer span.End()
	err := n.cfg.Sender.Send(ctx, m)
	if span.IsRecording() {
		span.SetAttributes(tracing.AttrMailKind.String(string(kind)))
		switch {
		case err != nil && mail.IsPermanent(err):
			span.SetStatus(codes.Error, "refused by the SMTP server")
		case err != nil:
			span.SetStatus(codes.Error, "temporary failure")
		}
	}
	return err
}

// compose opens the sealed values and renders the mail.
func (n *Notifier) compose(env events.Envelope, out outgoing, now time.Time) (mail.Message, error) {
	open := func(sealed string) (string, error) { return n.cfg.Keys.Open(sealed, env.AccountID) }
	to, err := open(out.toSealed)
	if err != nil {
		return mail.Message{}, permanent("the sealed address does not open: %v", err)
	}
	data, err := out.data(open)
	if err != nil {
		return mail.Message{}, permanent("%v", err)
	}
	subject, text, html, err := mail.Render(out.kind, data)
	if err != nil {
		return mail.Message{}, permanent("%v", err)
	}
	return mail.Message{From: n.cfg.From, To: to, MessageID: mail.MessageID(env.ID, out.kind, n.cfg.From),
		Date: now, Subject: subject, Text: text, HTML: html}, nil
}

func (n *Notifier) release(ctx context.Context, log *slog.Logger, eventID string, cause error) {
	if err := n.cfg.Store.Release(ctx, eventID, n.owner, cause.Error()); err != nil {
		// The claim then runs out by itself after AckWait.
		log.Warn("could not release the claim", "err", err)
	}
}

// markSent records the mail as sent, trying for a while: until it is
// written, a crash would send the mail again. If it still fails, the
// process remembers, and a redelivery records it instead of sending.
func (n *Notifier) markSent(ctx context.Context, eventID, messageID string, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.AckWait/3)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		err := n.cfg.Store.MarkSent(ctx, eventID, messageID, at)
		if err == nil {
			return nil
		}
		select {
		case <-time.After(wait):
			wait = min(2*wait, 2*time.Second)
		case <-ctx.Done():
			n.rememberUnrecorded(eventID, unrecorded{messageID: messageID, at: at})
			return err
		}
	}
}

// Bounds of the mails remembered as sent but not recorded (markSent): a
// redelivery may go to another replica and never come back here, so an
// entry goes after a day (its claim ran out long before, and the other
// replica has dealt with the event), and at most maxUnrecorded are kept
// (past it, a redelivery here sends the mail again, as after a crash).
const (
	maxUnrecorded = 10_000
	unrecordedTTL = 24 * time.Hour
)

// rememberUnrecorded keeps a mail sent but not recorded, within the bounds.
func (n *Notifier) rememberUnrecorded(eventID string, u unrecorded) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pendingRecords) >= maxUnrecorded {
		for id, old := range n.pendingRecords {
			if n.cfg.Clock.Now().Sub(old.at) > unrecordedTTL {
				delete(n.pendingRecords, id)
			}
		}
	}
	if len(n.pendingRecords) >= maxUnrecorded {
		n.log.Warn("too many mails sent but not recorded: this one is not remembered, a redelivery would send it again", "max", maxUnrecorded)
		return
	}
	n.pendingRecords[eventID] = u
}

// recordPending writes the record of a mail sent earlier by this process
// and not recorded then. done: nothing more to do for this event.
func (n *Notifier) recordPending(ctx context.Context, eventID string) (done bool, err error) {
	n.mu.Lock()
	u, ok := n.pendingRecords[eventID]
	n.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := n.cfg.Store.MarkSent(ctx, eventID, u.messageID, u.at); err != nil {
		return true, err
	}
	n.mu.Lock()
	delete(n.pendingRecords, eventID)
	n.mu.Unlock()
	return true, nil
}

// knownKind is kind if it names a mail template, else "": the header it
// is read from comes with the message, and a metric's label must stay in
// the fixed set.
func knownKind(kind mail.Kind) string {
	if slices.Contains(mail.Kinds(), kind) {
		return string(kind)
	}
	return ""
}

// peekType reads the type of an event whose message lacks the header.
func peekType(body []byte) string {
	var w struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &w) != nil {
		return ""
	}
	return w.Type
}
