package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/projections"
)

// A batch is streamed: each event is decoded, reduced and folded as it
// arrives (account changes merged per account, login attempts encoded
// straight into their COPY payload), and the message itself is dropped
// but for the last one, which the ack needs. So what a batch holds is
// bounded by its distinct accounts and its attempts' bytes, never by the
// whole replay, and the limits below cut it (docs/projector.md#memory).
const (
	// DefaultBatchBytes bounds the memory one batch holds (its estimate,
	// batch.bytes); two batches are alive at a time (one written, one
	// folded). Our choice: large enough that a replay of the simulated mix
	// meets its events limit first (100,000 events over 20,000 accounts:
	// about 20 MiB of attempts' payload and 22 MiB of accounts), small
	// enough that two batches stay far below ProjectorMemoryLimit.
	DefaultBatchBytes = 48 << 20

	// fetchMaxBytes bounds what the consumer buffers ahead of the fold
	// (JetStream pull requests with max_bytes, a new one when half is
	// consumed): a few MiB whatever the batch. It must exceed the largest
	// message (the server's max_payload, 1 MiB by default): it is raised
	// to twice the connection's when that is larger. Bounding the pulls by
	// count instead (PullMaxMessagesWithBytesLimit) sizes the client's
	// channel to exactly that count, and the server's heartbeats and
	// status messages on top of a full channel made nats.go drop messages
	// (a "slow consumer") when the fold waited for a busy writer.
	fetchMaxBytes = 4 << 20

	// A batch with events goes to a writer that waits for it when its last
	// event was the last the stream had (the consumer's pending count), or
	// once it is maxLinger old: so a replay, or a backlog, makes full
	// batches while the writer is busy and lets it wait at most maxLinger,
	// and the events of a quiet stream are written at once. lingerWait is
	// how often the fold looks again while the stream sends nothing.
	lingerWait = 2 * time.Millisecond
	maxLinger  = time.Second
)

// Memory estimates of what a batch holds, in bytes (batch.bytes): an
// account's folded change (its row and map entry, and its share of the
// staging COPY payload built at the cut) and a device statement. Attempts
// count their exact COPY bytes.
var (
	accountChangeBytes = int(unsafe.Sizeof(projections.AccountChange{})) + 64 + 400
	deviceStmtBytes    = int(unsafe.Sizeof(projections.TrustDevice{})) + 64
)

// batchLimits bound one batch.
type batchLimits struct {
	events int // events folded, at most (Config.BatchSize)
	bytes  int // batch.bytes, at most (Config.BatchBytes), unless one event alone is larger
}

// batch is a run of consecutive events of the stream, folded, ready to be
// written in one transaction that moves the checkpoint from base to last.
type batch struct {
	base   uint64 // the checkpoint it follows: the transaction applies it only there
	first  uint64 // the first event folded
	last   uint64 // the checkpoint after it (base when no event was folded)
	lastAt time.Time
	events int // events folded
	// msgs counts the messages consumed: folded, or redeliveries at or
	// below base skipped; ack is the last of them, acked (AckAll) once the
	// batch is committed.
	msgs int
	ack  jetstream.Msg

	fold          projections.Folder // account changes, device statements, counts
	attempts      copyData           // login attempts' COPY payload
	attemptRows   int
	oldestAttempt uint64 // sequence of the first attempt folded (0: none)
	bytes         int    // estimated memory held: attempts' payload, accounts, devices

	// The cut: gap says delivery skipped events the stream still holds
	// (restart delivery at last+1); err is what stopped the fold after the
	// events folded (a read error, or with unreadable an event this build
	// cannot decode, which is not consumed).
	gap        bool
	unreadable bool
	err        error

	ready  *ready    // the queries, built at the cut
	opened time.Time // when its first event was folded
	more   bool      // the stream had more events after the last one folded
}

func (b *batch) reset(base uint64) {
	fold, attempts := b.fold, b.attempts.b
	fold.Reset()
	*b = batch{base: base, last: base, fold: fold}
	b.attempts.b = attempts[:0]
}

// fits tells whether an event of cost bytes may join the batch: a batch
// takes at least one event, however large.
func (b *batch) fits(l batchLimits, cost int) bool {
	return b.events == 0 || b.events < l.events && b.bytes+cost <= l.bytes
}

// due tells whether the batch, not full, may go to a writer that waits:
// the stream had nothing more, or the batch is maxLinger old.
func (b *batch) due() bool { return !b.more || time.Since(b.opened) >= maxLinger }

// full tells whether the batch reached a limit.
func (b *batch) full(l batchLimits) bool { return b.events >= l.events || b.bytes >= l.bytes }

// cost is what folding r would add to b.bytes; the attempt, if any, is
// encoded into scratch, which add then appends.
func (b *batch) cost(x *executor, r *record, scratch *copyData) int {
	n := 0
	scratch.b = scratch.b[:0]
	for _, s := range r.stmts {
		switch s := s.(type) {
		case projections.InsertAttempt:
			x.encodeAttempt(scratch, &s.Attempt)
		case projections.CreateAccount, projections.UpdateAccount, projections.LiftBlock:
			// Only a new account costs; an upper bound is enough.
			n += accountChangeBytes
		case projections.TrustDevice, projections.ForgetDevices, projections.EnrollBiometric, projections.RevokeBiometrics:
			n += deviceStmtBytes
		}
	}
	return n + len(scratch.b)
}

// add folds r, whose attempt (if any) cost encoded into scratch.
func (b *batch) add(r *record, scratch *copyData) {
	for _, s := range r.stmts {
		switch s := s.(type) {
		case projections.InsertAttempt:
			if b.attemptRows == 0 {
				b.attempts.start()
				b.oldestAttempt = r.seq
			}
			b.attempts.b = append(b.attempts.b, scratch.b...)
			b.attemptRows++
			b.fold.CountAttempt(s.Attempt) // the fraud read model's counters (issue 20)
		case projections.TrustDevice, projections.ForgetDevices, projections.EnrollBiometric, projections.RevokeBiometrics:
			b.fold.Add(s)
			b.bytes += deviceStmtBytes
		default:
			if b.fold.Add(s) {
				b.bytes += accountChangeBytes
			}
		}
	}
	b.bytes += len(scratch.b)
	if b.events == 0 {
		b.first = r.seq
	}
	b.events++
	b.last, b.lastAt = r.seq, r.at
}

// finish builds the batch's queries.
func (b *batch) finish(x *executor) {
	if b.events == 0 {
		return
	}
	b.ready = x.prepare(b.fold.Plan())
	if b.attemptRows > 0 {
		b.ready.attempts = b.attempts.bytes()
	}
}

// batchStats are a batcher's counters: the most one batch held. Tests
// check them against the limits.
type batchStats struct {
	batches              int
	maxEvents, maxBytes  int
	maxAccounts, maxMsgs int
}

// msgSource delivers a consumer's messages in order, one at a time,
// decoded.
type msgSource interface {
	// next returns the next message, or nil if none came within wait.
	next(wait time.Duration) (*pending, error)
	stop()
}

// Reading ahead of the fold: the consumer is read in chunks of up to
// decodeChunk messages, decoded by GOMAXPROCS goroutines (decoding is most
// of the fold's time, and the fold sets the pace of a replay), at most
// decodeAhead chunks ahead.
const (
	decodeChunk = 256
	decodeAhead = 8
)

// decoder reads a consumer with pull requests bounded in bytes
// (fetchMaxBytes) and decodes its messages in parallel, handing them over
// in order: what it holds ahead of the fold is a few MiB (the pulls, and
// decodeAhead x decodeChunk decoded messages), however large the batch.
type decoder struct {
	it      jetstream.MessagesContext
	log     *slog.Logger
	idle    time.Duration
	ordered chan *chunk // in delivery order
	work    chan *chunk // to the decoding goroutines
	done    chan struct{}
	once    sync.Once
	cur     *chunk
	i       int
}

// chunk is a run of messages, decoded once done is closed. err, if set,
// ended the reading after them.
type chunk struct {
	msgs []jetstream.Msg
	pend []pending
	err  error
	done chan struct{}
}

func newDecoder(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, idle time.Duration, log *slog.Logger) (*decoder, error) {
	limit := fetchMaxBytes
	if nc := js.Conn(); nc != nil {
		limit = max(limit, 2*int(nc.MaxPayload()))
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(limit))
	if err != nil {
		return nil, fmt.Errorf("read consumer: %w", err)
	}
	d := &decoder{it: it, log: log, idle: idle, ordered: make(chan *chunk, decodeAhead), work: make(chan *chunk, decodeAhead),
		done: make(chan struct{})}
	context.AfterFunc(ctx, d.stop)
	go d.read()
	for range runtime.GOMAXPROCS(0) {
		go d.decode()
	}
	return d, nil
}

func (d *decoder) stop() {
	d.once.Do(func() {
		close(d.done)
		d.it.Stop()
	})
}

// read reads the consumer into chunks: a chunk goes to decoding when full,
// or when no message came for lingerWait.
func (d *decoder) read() {
	defer close(d.work)
	defer close(d.ordered)
	c := &chunk{done: make(chan struct{})}
	flush := func() bool {
		// A chunk goes to decoding first: every chunk handed over gets
		// decoded. The hand-over blocks while decodeAhead chunks wait:
		// the bound.
		select {
		case d.work <- c:
		case <-d.done:
			return false
		}
		select {
		case d.ordered <- c:
		case <-d.done:
			return false
		}
		c = &chunk{done: make(chan struct{})}
		return true
	}
	for {
		wait := lingerWait
		if len(c.msgs) == 0 {
			wait = d.idle
		}
		m, err := d.it.Next(jetstream.NextMaxWait(wait))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			if len(c.msgs) > 0 && !flush() {
				return
			}
		case err != nil:
			c.err = err
			flush()
			return
		default:
			c.msgs = append(c.msgs, m)
			if len(c.msgs) == decodeChunk && !flush() {
				return
			}
		}
	}
}

// decode decodes the chunks it is given.
func (d *decoder) decode() {
	for c := range d.work {
		c.pend = make([]pending, len(c.msgs))
		for i, m := range c.msgs {
			c.pend[i] = decodeMsg(m, d.log)
		}
		c.msgs = nil
		close(c.done)
	}
}

// decodeMsg reads a stream message into a pending record.
func decodeMsg(m jetstream.Msg, log *slog.Logger) pending {
	md, err := m.Metadata()
	if err != nil {
		return pending{msg: m, readErr: fmt.Errorf("message metadata: %w", err)}
	}
	p := pending{msg: m, seq: md.Sequence.Stream, more: md.NumPending > 0}
	p.rec, p.err = decode(p.seq, m.Subject(), m.Headers().Get(eventstore.HeaderEventID), m.Data())
	if errors.Is(p.err, events.ErrNotAppended) {
		// A message the commands service did not append (a JetStream API
		// answer, or a copy, that a reader of the stream had stored on an
		// account's subject): it changes nothing, the checkpoint passes it.
		log.Error("projector: skipped a message the commands service did not append", "seq", p.seq, "err", p.err)
		p.rec, p.err = record{seq: p.seq, at: md.Timestamp}, nil
	}
	return p
}

func (d *decoder) next(wait time.Duration) (*pending, error) {
	for {
		if c := d.cur; c != nil {
			if d.i < len(c.pend) {
				p := &c.pend[d.i]
				d.i++
				if p.readErr != nil {
					return nil, p.readErr
				}
				return p, nil
			}
			if c.err != nil {
				return nil, c.err
			}
		}
		timer := time.NewTimer(wait)
		select {
		case c, ok := <-d.ordered:
			timer.Stop()
			if !ok {
				return nil, jetstream.ErrMsgIteratorClosed
			}
			<-c.done
			d.cur, d.i = c, 0
		case <-timer.C:
			return nil, nil
		}
	}
}

// batcher folds a consumer's messages into batches and hands them to the
// writer (take), one batch folded while the previous one is written: two
// batches are alive at a time, and their memory is reused.
type batcher struct {
	x      *executor
	src    msgSource
	holes  holesFunc
	log    *slog.Logger
	limits batchLimits
	idle   time.Duration // wait for the first event of a batch

	out  chan *batch   // batches for the writer, closed when run ends
	want chan struct{} // a token per take: the writer waits for a batch
	free chan *batch   // batches the writer is done with

	next    uint64   // the sequence the stream should deliver next
	carry   *pending // a message that did not fit the last batch
	scratch copyData
	stats   batchStats // read once run has returned
}

// pending is a message read and decoded.
type pending struct {
	msg     jetstream.Msg
	seq     uint64
	more    bool // the stream had more for the consumer after it
	rec     record
	err     error // cannot be decoded
	readErr error // its metadata cannot be read
}

func newBatcher(x *executor, src msgSource, holes holesFunc, log *slog.Logger, limits batchLimits, idle time.Duration, checkpoint uint64) *batcher {
	return &batcher{x: x, src: src, holes: holes, log: log, limits: limits, idle: idle, next: checkpoint + 1,
		out: make(chan *batch), want: make(chan struct{}, 1), free: make(chan *batch, 2)}
}

// take waits for the next batch; false once run has ended.
func (bt *batcher) take() (*batch, bool) {
	select {
	case bt.want <- struct{}{}:
	default: // a token is there already
	}
	b, ok := <-bt.out
	return b, ok
}

// recycle gives a written batch back for reuse.
func (bt *batcher) recycle(b *batch) {
	select {
	case bt.free <- b:
	default:
	}
}

// drain waits for run to end (its context cancelled) and discards what it
// sent meanwhile.
func (bt *batcher) drain() {
	for range bt.out {
	}
}

// run folds batches and hands them over until ctx ends or a batch ends in
// a gap or an error (handed over, then run stops), and closes out. A batch
// goes when it is full; or, with some events, when the writer waits for it
// and the batch is due (so a busy writer gets full batches and an idle one
// what there is); an empty batch when the stream was quiet for idle (the
// writer checks its session meanwhile).
func (bt *batcher) run(ctx context.Context) {
	defer close(bt.out)
	defer bt.src.stop()
	for ctx.Err() == nil {
		var b *batch
		select {
		case b = <-bt.free:
		default:
			b = &batch{}
		}
		b.reset(bt.next - 1)
		if !bt.fill(ctx, b) || b.gap || b.err != nil {
			return
		}
	}
}

// writerWaits tells whether the writer waits for a batch (and takes its
// token: the batch must then be sent).
func (bt *batcher) writerWaits() bool {
	select {
	case <-bt.want:
		return true
	default:
		return false
	}
}

// send hands b over, once the writer waits for it unless it was told so
// already (waiting); false if ctx ended first.
func (bt *batcher) send(ctx context.Context, b *batch, waiting bool) bool {
	if !waiting {
		select {
		case <-bt.want:
		case <-ctx.Done():
			return false
		}
	}
	b.finish(bt.x)
	bt.count(b)
	select {
	case bt.out <- b:
		return true
	case <-ctx.Done():
		return false
	}
}

// fill folds messages into b and hands it over; it reports whether run
// may go on.
func (bt *batcher) fill(ctx context.Context, b *batch) bool {
	for {
		p, err := bt.read(b)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			b.err = fmt.Errorf("fetch: %w", err)
			return bt.send(ctx, b, false)
		}
		if p == nil {
			// Nothing within the wait.
			if b.events == 0 {
				// Quiet: an empty batch (or redeliveries to ack).
				return bt.send(ctx, b, false)
			}
			if b.due() && bt.writerWaits() {
				return bt.send(ctx, b, true)
			}
			continue
		}
		if p.seq < bt.next {
			// A redelivery of an event already folded or applied.
			b.msgs++
			b.ack = p.msg
			continue
		}
		if p.seq > bt.next {
			empty, err := bt.holes(ctx, bt.next, p.seq-1)
			if err != nil {
				b.err = fmt.Errorf("check stream sequences %d-%d: %w", bt.next, p.seq-1, err)
				return bt.send(ctx, b, false)
			}
			if !empty {
				// Delivery does not follow the stream: what was folded
				// is good, the rest is read again from last+1.
				b.gap = true
				return bt.send(ctx, b, false)
			}
		}
		if p.err != nil {
			b.err, b.unreadable = p.err, true
			return bt.send(ctx, b, false)
		}
		cost := b.cost(bt.x, &p.rec, &bt.scratch)
		if !b.fits(bt.limits, cost) {
			bt.carry = p
			return bt.send(ctx, b, false)
		}
		if b.events == 0 {
			b.opened = time.Now()
		}
		b.add(&p.rec, &bt.scratch)
		b.msgs++
		b.ack, b.more = p.msg, p.more
		bt.next = p.seq + 1
		if b.full(bt.limits) {
			return bt.send(ctx, b, false)
		}
		if b.due() && bt.writerWaits() {
			return bt.send(ctx, b, true)
		}
	}
}

// read returns the next message, decoded: the one carried over from the
// last batch, or one from the source; nil if none came within the wait.
func (bt *batcher) read(b *batch) (*pending, error) {
	if p := bt.carry; p != nil {
		bt.carry = nil
		return p, nil
	}
	wait := lingerWait
	if b.msgs == 0 {
		wait = bt.idle
	}
	return bt.src.next(wait)
}

func (bt *batcher) count(b *batch) {
	s := &bt.stats
	s.batches++
	s.maxEvents = max(s.maxEvents, b.events)
	s.maxBytes = max(s.maxBytes, b.bytes)
	s.maxAccounts = max(s.maxAccounts, b.fold.Accounts())
	s.maxMsgs = max(s.maxMsgs, b.msgs)
}
