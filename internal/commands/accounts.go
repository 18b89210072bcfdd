package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

// maxAttempts bounds the reload-and-decide-again loop on append conflicts.
// Each lost race means another request's fact was recorded; a few dozen
// rounds cover any realistic burst on one account.
const maxAttempts = 50

// snapshotVersion is the domain's state version: a snapshot written under
// another shape of domain.Account or other Evolve rules is ignored and the
// account replayed (domain.StateVersion, kept honest by its golden test).
const snapshotVersion = domain.StateVersion

// accounts loads account states (cache, then snapshot, then the stream) and
// runs the decide-append loop with optimistic concurrency.
type accounts struct {
	store     eventstore.Store
	snapshots eventstore.Snapshots
	decider   domain.Decider
	log       *slog.Logger

	snapshotEvery uint64
	coverAttempts bool // a snapshot covers each login attempt (Config.AttemptsRetention)
	cache         *lru[cached]
	locks         [lockStripes]sync.Mutex // per-account serialisation inside one instance, striped
	snapshotSem   chan struct{}
	snapshotWG    sync.WaitGroup
	metrics       Metrics

	tracer trace.Tracer // the service's: a span per append
}

type cached struct {
	state     domain.Account
	seq       uint64 // stream sequence of the last event folded in
	sinceSnap uint64 // the account's events folded in since its last snapshot
	// uncovered: a login attempt (events.IsAttempt) was folded in after
	// the last snapshot this instance knows: with a retention, one must
	// cover it before it expires. The other events never expire, so a
	// tail of them needs no snapshot.
	uncovered bool
	recent    []recorded
}

// recorded is a request recorded on the account: the message id (account
// and idempotency key) of the event it appended, and where.
type recorded struct {
	MsgID string    `json:"msg_id"`
	Seq   uint64    `json:"seq"`
	At    time.Time `json:"at"`
}

// Requests remembered per account: as long as JetStream's deduplication
// window, and a few of them, enough for any client's retries.
const (
	keepRecentRequests = 16
	recentRequestsTTL  = 2 * time.Minute
)

// remember notes that the request msgID was recorded at seq.
func (c *cached) remember(msgID string, seq uint64, at time.Time) {
	if msgID == "" {
		return
	}
	out := make([]recorded, 0, min(len(c.recent)+1, keepRecentRequests))
	if over := len(c.recent) + 1 - keepRecentRequests; over > 0 {
		out = append(out, c.recent[over:]...)
	} else {
		out = append(out, c.recent...)
	}
	c.recent = append(out, recorded{MsgID: msgID, Seq: seq, At: at})
}

// recordedAt tells where the request msgID was recorded, if it was lately.
func (c *cached) recordedAt(msgID string, now time.Time) (uint64, bool) {
	for _, r := range c.recent {
		if r.MsgID == msgID && now.Before(r.At.Add(recentRequestsTTL)) {
			return r.Seq, true
		}
	}
	return 0, false
}

// requestKeyCtx carries the request's idempotency key from the service's
// entry point to the append (see Service.run).
type requestKeyCtx struct{}

func withRequestKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, requestKeyCtx{}, key)
}

func requestKey(ctx context.Context) string {
	k, _ := ctx.Value(requestKeyCtx{}).(string)
	return k
}

// lockStripes is the number of account locks: accounts share them by the
// hash of their id, so memory stays fixed whatever the number of accounts;
// the price is that what is done under one account's lock holds up the
// others of its stripe: nothing slow (no password hash: see
// Service.decideChecked) runs under it.
const lockStripes = 256

// stripe is the index of the lock accountID shares.
func stripe(accountID string) int {
	h := fnv.New32a()
	h.Write([]byte(accountID))
	return int(h.Sum32() % lockStripes)
}

// lock serialises the decisions on one account inside this instance (the
// append's expected sequence does across instances); it returns the unlock.
func (r *accounts) lock(accountID string) func() {
	m := &r.locks[stripe(accountID)]
	m.Lock()
	return m.Unlock
}

// load returns the account's state as far as this instance knows it. A
// cached state may be behind another instance's appends: an append decided
// on it is rejected by the expected sequence, and a decision that appends
// nothing is confirmed with fresh().
func (r *accounts) load(ctx context.Context, accountID string) (cached, error) {
	if c, ok := r.cache.get(accountID); ok {
		return c, nil
	}
	c, err := r.loadStored(ctx, accountID)
	if err != nil {
		return cached{}, err
	}
	r.cache.put(accountID, c)
	return c, nil
}

// loadStored reads the account from its snapshot and the events after it.
func (r *accounts) loadStored(ctx context.Context, accountID string) (cached, error) {
	c := cached{state: domain.Account{ID: accountID}}
	seq, snap, err := r.snapshots.Get(ctx, accountID)
	switch {
	case err == nil:
		if s, ok := decodeSnapshot(accountID, snap); ok {
			c.state, c.seq, c.recent = s.State, seq, s.Recent
		}
	case !errors.Is(err, eventstore.ErrNotFound):
		r.log.Warn("snapshot unreadable, replaying the account", "account_id", accountID, "err", err)
	}
	c, err = r.catchUp(ctx, c)
	if err != nil {
		return cached{}, err
	}
	if r.coverAttempts && c.uncovered {
		// Attempts after the snapshot, whose snapshot was lost (a crash
		// between append and snapshot, a failed write): cover them now,
		// before they can expire. A tail without an attempt (an imported
		// account's registration alone) is not snapshotted: it never
		// expires, and a snapshot key per account read costs the server
		// memory for good (docs/scale.md) and this load two round trips.
		r.snapshotNow(&c)
	}
	return c, nil
}

func (r *accounts) catchUp(ctx context.Context, c cached) (cached, error) {
	recs, err := r.store.Load(ctx, c.state.ID, c.seq)
	if err != nil {
		return c, fmt.Errorf("load account %s: %w", c.state.ID, err)
	}
	for _, rec := range recs {
		if rec.NotAppended {
			// Not ours: skipped, but the next append expects its place.
			r.log.Error("events stream: a message the commands service did not append is on an account's subject; skipped",
				"seq", rec.Seq, "err", events.ErrNotAppended)
			c.seq = rec.Seq
			continue
		}
		c.state = domain.Evolve(c.state, rec.Envelope.Data)
		c.seq = rec.Seq
		c.sinceSnap++
		c.uncovered = c.uncovered || events.IsAttempt(rec.Envelope.Data)
		c.remember(rec.MsgID, rec.Seq, rec.Envelope.OccurredAt)
	}
	return c, nil
}

type snapshot struct {
	Version int            `json:"v"`
	State   domain.Account `json:"state"`
	Recent  []recorded     `json:"recent,omitempty"`
}

// maxSnapshotBytes bounds a snapshot read back from the store: the
// store's messages are at most NATS's max_payload (1 MiB by default), so a
// larger one was not written by this service.
const maxSnapshotBytes = 1 << 20

// decodeSnapshot reads an account's snapshot as the store holds it. ok is
// false for one that is oversized, unreadable, of another state version
// or of another account, or that keeps too many requests: the account is
// then replayed from its stream, which is the truth.
func decodeSnapshot(accountID string, b []byte) (snapshot, bool) {
	var s snapshot
	if len(b) > maxSnapshotBytes || json.Unmarshal(b, &s) != nil || s.Version != snapshotVersion ||
		s.State.ID != accountID || len(s.Recent) > keepRecentRequests {
		return snapshot{}, false
	}
	return s, true
}

// outcome is what a command did.
type outcome struct {
	state    domain.Account // after the recorded fact, if any
	recorded []events.Event
	refusal  error // the domain's refusal told to the user, if any
	// duplicate: this very request (same idempotency key: same subject and
	// body) had already been recorded. recorded and refusal then come from
	// the fact it recorded, not from a new decision; replies that carry a
	// fresh secret (a session, a device token, a challenge) cannot be
	// rebuilt from it.
	duplicate bool
}

// replay is the outcome of a request already recorded at seq: its fact and
// the refusal the fact told, read back from the stream.
func (r *accounts) replay(ctx context.Context, c cached, seq uint64) (outcome, error) {
	recs, err := r.store.Load(ctx, c.state.ID, seq-1)
	if err != nil {
		return outcome{}, fmt.Errorf("read recorded request of %s at %d: %w", c.state.ID, seq, err)
	}
	if len(recs) == 0 || recs[0].Seq != seq || recs[0].NotAppended {
		return outcome{}, fmt.Errorf("read recorded request of %s: no event at %d", c.state.ID, seq)
	}
	e := recs[0].Envelope.Data
	return outcome{state: c.state, recorded: []events.Event{e}, refusal: r.decider.Refusal(c.state, e), duplicate: true}, nil
}

// execute decides a command on the account and records its fact. build is
// called again after each conflict, with the reloaded state, so inputs that
// depend on the state (a password check against the stored hash) follow it.
func (r *accounts) execute(ctx context.Context, accountID string, now time.Time, md events.Metadata,
	build func(domain.Account) (domain.Command, error)) (outcome, error) {
	unlock := r.lock(accountID)
	defer unlock()
	c, err := r.load(ctx, accountID)
	if err != nil {
		return outcome{}, err
	}
	// The message id is the request's idempotency key (a keyed hash of its
	// subject and whole body), scoped by account: the same request_id with
	// another body is another request, and is decided and recorded as such.
	msgID := ""
	if k := requestKey(ctx); k != "" {
		msgID = accountID + ":" + k
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if seq, done := c.recordedAt(msgID, now); done {
			// A retry of a request this account recorded (seen in the
			// state as loaded, or as caught up after a conflict): answer
			// what was recorded, whatever the state has become since.
			return r.replay(ctx, c, seq)
		}
		cmd, err := build(c.state)
		if err != nil {
			return outcome{}, err
		}
		evs, refusal := r.decider.Decide(c.state, cmd, now)
		if len(evs) == 0 {
			// Nothing to append, so no expected sequence checks the state:
			// confirm it is current before telling the user.
			var last uint64
			if c, last, err = r.checkTail(ctx, c); err != nil {
				return outcome{}, err
			}
			if last != c.seq {
				if c, err = r.catchUp(ctx, c); err != nil {
					return outcome{}, err
				}
				r.cache.put(accountID, c)
				r.metrics.Retry(RetryStale)
				continue
			}
			if errors.Is(refusal, &domain.Error{Code: domain.CodeAccountLocked}) {
				// Not recorded (a flood must not grow the stream), but seen.
				r.log.Info("attempt refused during a block", "account_id", accountID, "channel", md.Channel, "client_ip", md.ClientIP)
			}
			return outcome{state: c.state, refusal: refusal}, nil
		}
		if len(evs) != 1 {
			return outcome{}, fmt.Errorf("decide on %s: %d events in one decision", accountID, len(evs))
		}
		env := events.Wrap(accountID, evs[0], now, md)
		res, err := r.append(ctx, accountID, c.seq, env, msgID)
		if errors.Is(err, eventstore.ErrConflict) {
			r.metrics.Conflict(StoreAccount)
			seen := c.seq
			if c, err = r.catchUp(ctx, c); err != nil {
				return outcome{}, err
			}
			if c.seq == seen {
				// Nothing new after what we saw: the subject's newest
				// events may have expired, its last sequence below ours.
				if c, _, err = r.checkTail(ctx, c); err != nil {
					return outcome{}, err
				}
			}
			r.cache.put(accountID, c)
			r.metrics.Retry(RetryConflict)
			continue
		}
		if err != nil {
			return outcome{}, fmt.Errorf("append %s to account %s: %w", env.Type, accountID, err)
		}
		if res.Duplicate {
			// Recorded by an earlier try of this request (on another
			// instance, or before the cache knew): nothing was appended. The
			// reply is the recorded fact's, never this new decision's.
			c, err = r.catchUp(ctx, c)
			if err != nil {
				return outcome{}, err
			}
			r.cache.put(accountID, c)
			return r.replay(ctx, c, res.Seq)
		}
		r.metrics.Recorded(evs[0], false)
		c.state = domain.Evolve(c.state, evs[0])
		c.seq = res.Seq
		c.sinceSnap++
		c.remember(msgID, res.Seq, now)
		if r.coverAttempts && events.IsAttempt(evs[0]) {
			c.uncovered = true
			r.snapshotNow(&c)
		} else {
			r.maybeSnapshot(&c)
		}
		r.cache.put(accountID, c)
		return outcome{state: c.state, recorded: evs, refusal: refusal}, nil
	}
	return outcome{}, fmt.Errorf("account %s: still conflicting after %d attempts", accountID, maxAttempts)
}

// create records the first fact of an account whose id this instance has
// just generated and claimed in the NIR index (claimIndexed returned it):
// no event, snapshot or cached state of that id can exist yet, so the
// decision is made on the empty account and appended with expected
// sequence 0, without the cold load execute would pay (a snapshot get and
// a stream read, two round trips). The expected sequence still guards it:
// if another registration of the same NIR met the index entry and appended
// first, or this very request was recorded already, execute decides again
// on the account as the stream holds it.
//
// keep puts the new state in the cache: a registration, whose holder logs
// in next. An import does not, so that a bulk import leaves the accounts in
// use in the cache rather than millions of accounts nobody asked for.
func (r *accounts) create(ctx context.Context, accountID string, now time.Time, md events.Metadata, cmd domain.Command, keep bool) (outcome, error) {
	again := func() (outcome, error) {
		return r.execute(ctx, accountID, now, md, func(domain.Account) (domain.Command, error) { return cmd, nil })
	}
	msgID := ""
	if k := requestKey(ctx); k != "" {
		msgID = accountID + ":" + k
	}
	c := cached{state: domain.Account{ID: accountID}}
	evs, refusal := r.decider.Decide(c.state, cmd, now)
	if len(evs) != 1 {
		return again() // not a creation: the usual path says what it is
	}
	env := events.Wrap(accountID, evs[0], now, md)
	res, err := r.append(ctx, accountID, 0, env, msgID)
	switch {
	case errors.Is(err, eventstore.ErrConflict):
		r.metrics.Conflict(StoreAccount)
		r.metrics.Retry(RetryConflict)
		return again()
	case err != nil:
		return outcome{}, fmt.Errorf("append %s to account %s: %w", env.Type, accountID, err)
	case res.Duplicate:
		return again() // recorded by an earlier try: execute answers from it
	}
	r.metrics.Recorded(evs[0], false)
	c.state = domain.Evolve(c.state, evs[0])
	c.seq = res.Seq
	c.sinceSnap = 1
	c.remember(msgID, res.Seq, now)
	if keep {
		unlock := r.lock(accountID)
		if old, ok := r.cache.get(accountID); !ok || old.seq < c.seq {
			r.cache.put(accountID, c)
		}
		unlock()
	}
	return outcome{state: c.state, recorded: evs, refusal: refusal}, nil
}

// append appends under its own span, whose trace context the store writes
// into the event's headers (eventstore.JetStream.Append), so the event's
// consumers continue the trace. The span names the stream and the event's
// type, never the account (its subject holds the account id).
func (r *accounts) append(ctx context.Context, accountID string, expected uint64, env events.Envelope, msgID string) (eventstore.AppendResult, error) {
	ctx, span := r.tracer.Start(ctx, appendSpanName, producerSpan)
	defer span.End()
	res, err := r.store.Append(ctx, accountID, expected, env, msgID)
	if span.IsRecording() {
		result := "appended"
		switch {
		case errors.Is(err, eventstore.ErrConflict):
			result = "conflict"
		case err != nil:
			result = "failed"
			span.SetStatus(codes.Error, "append failed")
		case res.Duplicate:
			result = "duplicate"
		}
		span.SetAttributes(tracing.MessagingNATS, semconv.MessagingOperationTypeSend, appendOperation,
			semconv.MessagingDestinationName(contract.EventsStream), tracing.AttrEventType.String(env.Type),
			tracing.AttrOutcome.String(result))
	}
	return res, err
}

// The append's span.
var (
	appendSpanName  = "append " + contract.EventsStream
	producerSpan    = trace.WithSpanKind(trace.SpanKindProducer)
	appendOperation = semconv.MessagingOperationName("append")
)

// refusal decides cmd on the account's current state (checked against the
// stream) without recording anything, and returns the refusal it gets if it
// would record nothing. Commands call it before paying for a hash of a new
// password that the decision would refuse anyway (a spent reset link, a
// session without a verified code, a NIR that has an account): a flood of
// such requests costs no hash (issue 11, kind 4). A retry of a request
// already recorded is never refused here: execute answers it from its fact.
func (r *accounts) refusal(ctx context.Context, accountID string, now time.Time, cmd domain.Command) (*domain.Error, error) {
	c, err := r.current(ctx, accountID)
	if err != nil {
		return nil, err
	}
	if k := requestKey(ctx); k != "" {
		if _, done := c.recordedAt(accountID+":"+k, now); done {
			return nil, nil
		}
	}
	evs, refused := r.decider.Decide(c.state, cmd, now)
	if len(evs) > 0 || refused == nil {
		return nil, nil
	}
	var de *domain.Error
	if !errors.As(refused, &de) {
		return nil, fmt.Errorf("decide on %s: %w", accountID, refused)
	}
	return de, nil
}

// current returns the account's state as the stream holds it now: the
// cached state, caught up if the account's last sequence moved (one direct
// get). Commands read it before paying for a hash, so that another
// instance's recorded block or failure is seen first: a flood over several
// instances then spends about the hashes one instance would (issue 11,
// kind 4).
func (r *accounts) current(ctx context.Context, accountID string) (cached, error) {
	unlock := r.lock(accountID)
	defer unlock()
	c, err := r.load(ctx, accountID)
	if err != nil {
		return cached{}, err
	}
	last, err := r.store.LastSeq(ctx, accountID)
	if err != nil {
		return cached{}, fmt.Errorf("check account %s: %w", accountID, err)
	}
	if last != c.seq {
		if c, err = r.catchUp(ctx, c); err != nil {
			return cached{}, err
		}
		r.cache.put(accountID, c)
	}
	return c, nil
}

// expiredTail is the account after its events above last expired (login
// attempts past their retention): its stored state (the snapshot, which
// covers every attempt before it expires, and the events after it), or
// c when c is newer (this instance's own appends), appended to from last
// on. A cached state is not trusted as it is: another instance's
// attempts may have come and gone since it was read.
// checkTail reads the account's last stream sequence. Below the state's
// (its newest events expired: login attempts past their retention; the
// state, which folded them in, is current), the state moves to it through
// expiredTail, so that afterwards last != c.seq means only that the stream
// holds events the state has not seen.
func (r *accounts) checkTail(ctx context.Context, c cached) (cached, uint64, error) {
	last, err := r.store.LastSeq(ctx, c.state.ID)
	if err != nil {
		return c, 0, fmt.Errorf("check account %s: %w", c.state.ID, err)
	}
	if last < c.seq {
		if c, err = r.expiredTail(ctx, c, last); err != nil {
			return c, 0, err
		}
	}
	return c, last, nil
}

func (r *accounts) expiredTail(ctx context.Context, c cached, last uint64) (cached, error) {
	stored, err := r.loadStored(ctx, c.state.ID)
	if err != nil {
		return c, err
	}
	if stored.seq >= c.seq {
		c = stored
	}
	r.log.Info("the account's newest events expired; appending after the last kept", "account_id", c.state.ID, "seq", c.seq, "last_kept", last)
	c.seq = min(c.seq, last)
	r.cache.put(c.state.ID, c)
	return c, nil
}

// snapshotNow writes the state's snapshot before it returns: with a
// retention, the only record of an attempt's effect once it expires. A
// failure is logged and left for the next event or cold load to cover.
func (r *accounts) snapshotNow(c *cached) {
	b, err := json.Marshal(snapshot{Version: snapshotVersion, State: c.state, Recent: c.recent})
	if err != nil {
		r.log.Error("snapshot encode", "account_id", c.state.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.snapshots.Put(ctx, c.state.ID, c.seq, b); err != nil {
		r.log.Warn("snapshot write", "account_id", c.state.ID, "err", err)
		return
	}
	c.sinceSnap, c.uncovered = 0, false
}

// maybeSnapshot writes the state in the background every snapshotEvery
// events, so a cold load reads at most that many events. A lost snapshot
// costs only a longer replay: the stream stays the truth.
func (r *accounts) maybeSnapshot(c *cached) {
	if r.snapshotEvery == 0 || c.sinceSnap < r.snapshotEvery {
		return
	}
	select {
	case r.snapshotSem <- struct{}{}:
	default:
		return // snapshots are best effort; try again at the next event
	}
	c.sinceSnap = 0
	b, err := json.Marshal(snapshot{Version: snapshotVersion, State: c.state, Recent: c.recent})
	if err != nil {
		<-r.snapshotSem
		r.log.Error("snapshot encode", "account_id", c.state.ID, "err", err)
		return
	}
	id, seq := c.state.ID, c.seq
	r.snapshotWG.Add(1)
	go func() {
		defer func() { <-r.snapshotSem; r.snapshotWG.Done() }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.snapshots.Put(ctx, id, seq, b); err != nil {
			r.log.Warn("snapshot write", "account_id", id, "err", err)
		}
	}()
}
