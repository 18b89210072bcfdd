// Package repartition changes the number of partitions of the events
// (AUTH_PARTITIONS) of a stopped deployment: `authctl partitions migrate`
// (docs/scale.md, "Changing N"). The two layouts' names and subjects
// collide (AUTH_EVENTS_0 is partition 0 of N = 2 and of N = 3; AUTH_EVENTS
// takes every subject of the others), so it runs in steps, each recorded
// in the KV bucket AUTH_MIGRATE, so that a run stopped anywhere (a crash,
// Ctrl-C) is resumed by running it again:
//
//  1. check: the commands service does not answer, the old layout is on
//     the server, the new layout's streams hold nothing of their own;
//  2. aside: each old events stream and NIR index bucket is mirrored by the
//     server into AUTH_MIGRATE_EVENTS_<i>, AUTH_MIGRATE_NIR_INDEX_<i> (a
//     mirror keeps the subjects, sequences, headers and timestamps); once
//     the mirrors hold all, the old streams' last sequences are read again
//     and must not have moved;
//  3. drop: the old streams and per-partition buckets are deleted;
//  4. create: the new layout's streams and buckets (eventstore.OpenPartitioned);
//  5. events: every event of each old stream, in that stream's order, is
//     published to its account's new partition with its old message id,
//     its headers and data as they were;
//  6. index: every NIR index entry (key -> account id) into the key's new
//     partition;
//  7. verify and clean: the new streams hold exactly what was copied; the
//     mirrors and AUTH_MIGRATE are deleted.
//
// Snapshots are not copied: their sequences are the old streams'; the
// commands service rebuilds each state from the events.
package repartition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// Names of what the migration keeps while it runs.
const (
	StateBucket     = "AUTH_MIGRATE"
	asideEvents     = "AUTH_MIGRATE_EVENTS_"
	asideIndex      = "AUTH_MIGRATE_NIR_INDEX_"
	commandsService = "auth-commands" // the commands service's micro name
)

// Defaults of Options.
const (
	defaultCheckpointEvery = 1000
	defaultWindow          = 256
)

// ErrRefused: the migration cannot run as things are (the service still
// answers, the old streams moved, the new ones hold foreign events...).
// Nothing was changed by the run that returns it, except where it says.
var ErrRefused = errors.New("repartition: refused")

// Options of a migration. From and To are required.
type Options struct {
	Prefix   string // subject prefix; "" is contract.DefaultPrefix
	From, To int    // partitions of the old and of the new layout, 1 to contract.MaxPartitions, different
	// Replicas and Placement of the new layout's streams and buckets
	// (AUTH_STREAM_REPLICAS, AUTH_PARTITION_PLACEMENT); the mirrors and
	// the state bucket have Replicas, and no placement.
	Replicas  int
	Placement contract.Placement
	// CheckpointEvery is how many events are copied between two records
	// of the progress (default 1000); Window how many publishes wait for
	// their ack at most (default 256). A resumed run checks, for the
	// events after the last record (CheckpointEvery + Window at most),
	// whether each is already in its new stream.
	CheckpointEvery, Window int
	// Progress, if set, is called after each event copied or found, with
	// the counts so far (the whole run's, resumed runs included) and the
	// number of events in the mirrors.
	Progress func(done, total int)
	// Log, if set, receives one line per step.
	Log func(format string, args ...any)
	// MirrorTimeout bounds the wait for the mirrors to hold every message
	// (default 10 minutes).
	MirrorTimeout time.Duration
}

// Report is what a migration did.
type Report struct {
	Copied     int // events published into the new layout by this run
	Present    int // events a resumed run found already copied (not published again)
	Duplicates int // publishes the server acknowledged as duplicates (message id seen in its window)
	NotEvents  int // messages of the old streams that are not events (skipped, as every reader does)
	Expired    int // login attempts whose retention had passed (skipped)
	IndexKeys  int // NIR index entries copied or found
	Total      int // events in the new layout at the end
	Resumed    bool
}

// state is the record in AUTH_MIGRATE under the key "plan".
type state struct {
	From, To int
	Prefix   string
	Phase    string            // aside, drop, create, events, index, verify
	OldLast  map[string]uint64 // old stream -> its last sequence at the check
	OldMsgs  map[string]uint64 // old stream -> its messages at the check
	Started  time.Time
}

// progress is the record of one mirror's copy under "events.<i>".
type progress struct {
	Seq       uint64 // every message of the mirror up to Seq is copied (or skipped)
	Copied    int    // events in the new layout from this mirror
	NotEvents int
	Expired   int
}

const (
	phaseAside  = "aside"
	phaseDrop   = "drop"
	phaseCreate = "create"
	phaseEvents = "events"
	phaseIndex  = "index"
	phaseVerify = "verify"
)

type run struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	o        Options
	old, new contract.Layout
	kv       jetstream.KeyValue
	st       state
	rep      Report
	store    *eventstore.Partitioned
}

// Run migrates, or resumes a migration stopped before its end; one run at
// a time (two at once would both copy). It refuses
// (ErrRefused) while a commands service answers, when the server holds
// another layout than From (and no migration from it is under way), when
// a stream of the new layout holds messages of its own, or when the old
// streams grow during the copy aside.
func Run(ctx context.Context, nc *nats.Conn, o Options) (Report, error) {
	if o.Prefix == "" {
		o.Prefix = contract.DefaultPrefix
	}
	if o.From < 1 || o.To < 1 || o.From > contract.MaxPartitions || o.To > contract.MaxPartitions || o.From == o.To {
		return Report{}, fmt.Errorf("repartition: from %d to %d partitions: want two different numbers from 1 to %d", o.From, o.To, contract.MaxPartitions)
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = defaultCheckpointEvery
	}
	if o.Window <= 0 {
		o.Window = defaultWindow
	}
	if o.MirrorTimeout <= 0 {
		o.MirrorTimeout = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Report{}, err
	}
	r := &run{nc: nc, js: js, o: o, old: contract.Layout{Prefix: o.Prefix, Partitions: o.From}, new: contract.Layout{Prefix: o.Prefix, Partitions: o.To}}
	if err := r.checkStopped(ctx); err != nil {
		return Report{}, err
	}
	if err := r.loadOrPlan(ctx); err != nil {
		return r.rep, err
	}
	steps := []struct {
		phase string
		do    func(context.Context) error
		next  string
	}{
		{phaseAside, r.aside, phaseDrop},
		{phaseDrop, r.drop, phaseCreate},
		{phaseCreate, r.create, phaseEvents},
		{phaseEvents, r.copyEvents, phaseIndex},
		{phaseIndex, r.copyIndex, phaseVerify},
		{phaseVerify, r.verify, ""},
	}
	started := false
	for _, s := range steps {
		if s.phase == r.st.Phase {
			started = true
		}
		if !started {
			continue
		}
		if (s.phase == phaseEvents || s.phase == phaseIndex) && r.store == nil {
			// Resumed at this step: the new layout's store, as made.
			if err := r.create(ctx); err != nil {
				return r.rep, err
			}
		}
		o.Log("step %s", s.phase)
		if err := s.do(ctx); err != nil {
			return r.rep, fmt.Errorf("repartition, step %s: %w", s.phase, err)
		}
		if s.next != "" {
			r.st.Phase = s.next
			if err := r.save(ctx); err != nil {
				return r.rep, err
			}
		}
	}
	if !started {
		return r.rep, fmt.Errorf("repartition: %s plan at an unknown step %q", StateBucket, r.st.Phase)
	}
	return r.rep, r.clean(ctx)
}

// checkStopped refuses while any commands service answers the micro
// service ping ($SRV.PING.auth-commands).
func (r *run) checkStopped(ctx context.Context) error {
	inbox := r.nc.NewRespInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := r.nc.PublishRequest("$SRV.PING."+commandsService, inbox, nil); err != nil {
		return err
	}
	if err := r.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if _, err := sub.NextMsg(500 * time.Millisecond); err == nil {
		return fmt.Errorf("%w: a commands service (%s) still answers on this NATS: stop every instance first", ErrRefused, commandsService)
	} else if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, nats.ErrNoResponders) {
		return err
	}
	return nil
}

// loadOrPlan reads the record of a migration under way, or checks the
// server and records a new one.
func (r *run) loadOrPlan(ctx context.Context) error {
	kv, err := r.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: StateBucket, History: 1, Storage: jetstream.FileStorage,
		Replicas: r.o.Replicas, Description: "authctl partitions migrate: its plan and progress, while it runs."})
	if err != nil {
		return fmt.Errorf("repartition: state bucket %s: %w", StateBucket, err)
	}
	r.kv = kv
	e, err := kv.Get(ctx, "plan")
	switch {
	case err == nil:
		if err := json.Unmarshal(e.Value(), &r.st); err != nil {
			return fmt.Errorf("repartition: %s plan: %w", StateBucket, err)
		}
		if r.st.From != r.o.From || r.st.To != r.o.To || r.st.Prefix != r.o.Prefix {
			return fmt.Errorf("%w: a migration from %d to %d partitions (prefix %s) is under way (%s): run it again with those numbers",
				ErrRefused, r.st.From, r.st.To, r.st.Prefix, StateBucket)
		}
		r.rep.Resumed = true
		r.o.Log("resuming the migration from %d to %d partitions at step %s (started %s)", r.st.From, r.st.To, r.st.Phase, r.st.Started.Format(time.RFC3339))
		return nil
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return fmt.Errorf("repartition: %s plan: %w", StateBucket, err)
	}
	if err := r.check(ctx); err != nil {
		return err
	}
	r.st.Phase, r.st.Started = phaseAside, time.Now().UTC()
	return r.save(ctx)
}

// check records the old layout's last sequences, and refuses what a
// migration must not start on.
func (r *run) check(ctx context.Context) error {
	r.st = state{From: r.o.From, To: r.o.To, Prefix: r.o.Prefix, OldLast: map[string]uint64{}, OldMsgs: map[string]uint64{}}
	oldNames := map[string]bool{}
	for p := range r.old.N() {
		name := r.old.Stream(p)
		oldNames[name], oldNames[kvStream(r.old.IndexBucket(p))], oldNames[kvStream(r.old.SnapshotBucket(p))] = true, true, true
		st, err := r.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("%w: the old layout's stream %s: %w", ErrRefused, name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			return err
		}
		if err := eventstore.CheckLayout(info.Config, r.old, p); err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		r.st.OldLast[name], r.st.OldMsgs[name] = info.State.LastSeq, info.State.Msgs
		if _, err := r.js.Stream(ctx, kvStream(r.old.IndexBucket(p))); err != nil {
			return fmt.Errorf("%w: the old layout's NIR index %s: %w", ErrRefused, r.old.IndexBucket(p), err)
		}
	}
	// The new layout's names: each absent, an old one, or empty (a
	// commands service started with the new number before the migration).
	for p := range r.new.N() {
		for _, name := range []string{r.new.Stream(p), kvStream(r.new.IndexBucket(p)), kvStream(r.new.SnapshotBucket(p))} {
			if oldNames[name] {
				continue
			}
			st, err := r.js.Stream(ctx, name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			info, err := st.Info(ctx)
			if err != nil {
				return err
			}
			if info.State.LastSeq != 0 {
				return fmt.Errorf("%w: %s, of the new layout, already has messages (%d now, up to sequence %d): they are not from this migration",
					ErrRefused, name, info.State.Msgs, info.State.LastSeq)
			}
		}
	}
	for p := range r.old.N() {
		for _, name := range []string{asideEvents + strconv.Itoa(p), asideIndex + strconv.Itoa(p)} {
			if _, err := r.js.Stream(ctx, name); err == nil {
				return fmt.Errorf("%w: %s exists without a migration under way (%s has no plan): delete it (nats stream rm %s) and run again", ErrRefused, name, StateBucket, name)
			}
		}
	}
	return nil
}

func (r *run) save(ctx context.Context) error {
	b, err := json.Marshal(r.st)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, "plan", b); err != nil {
		return fmt.Errorf("repartition: record the plan: %w", err)
	}
	return nil
}

func kvStream(bucket string) string { return "KV_" + bucket }

// aside mirrors every old events stream and NIR index bucket, waits until
// the mirrors hold what the old streams held at the check, then checks
// that the old streams did not move meanwhile.
func (r *run) aside(ctx context.Context) error {
	for p := range r.old.N() {
		for _, pair := range [][2]string{{asideEvents + strconv.Itoa(p), r.old.Stream(p)}, {asideIndex + strconv.Itoa(p), kvStream(r.old.IndexBucket(p))}} {
			cfg := jetstream.StreamConfig{
				Name:        pair[0],
				Description: "authctl partitions migrate: a copy of " + pair[1] + " while the partitions change.",
				Mirror:      &jetstream.StreamSource{Name: pair[1]},
				Storage:     jetstream.FileStorage,
				Replicas:    r.o.Replicas,
				Compression: jetstream.S2Compression,
				// The login attempts carry their retention (Nats-TTL).
				AllowMsgTTL: true,
				Metadata:    map[string]string{"authsvc.migrate.source": pair[1]},
			}
			if _, err := r.js.CreateOrUpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("mirror %s into %s: %w", pair[1], pair[0], err)
			}
		}
	}
	deadline := time.Now().Add(r.o.MirrorTimeout)
	for p := range r.old.N() {
		for _, pair := range [][2]string{{asideEvents + strconv.Itoa(p), r.old.Stream(p)}, {asideIndex + strconv.Itoa(p), kvStream(r.old.IndexBucket(p))}} {
			if err := r.waitMirror(ctx, pair[0], pair[1], deadline); err != nil {
				return err
			}
		}
	}
	if testHookMirrored != nil {
		testHookMirrored()
	}
	for p := range r.old.N() {
		name := r.old.Stream(p)
		info, err := r.streamInfo(ctx, name)
		if err != nil {
			return err
		}
		if info.State.LastSeq != r.st.OldLast[name] {
			// Start again from the check once the appends have stopped:
			// the mirrors are only copies, the old streams are whole.
			r.dropMirrors(ctx)
			_ = r.kv.Delete(ctx, "plan")
			return fmt.Errorf("%w: %s went from sequence %d to %d during the copy: something still appends (a commands service on another NATS account, an import); stop it and run again",
				ErrRefused, name, r.st.OldLast[name], info.State.LastSeq)
		}
	}
	return nil
}

// dropMirrors deletes the mirrors, as far as it can.
func (r *run) dropMirrors(ctx context.Context) {
	for p := range r.old.N() {
		for _, name := range []string{asideEvents + strconv.Itoa(p), asideIndex + strconv.Itoa(p)} {
			_ = r.js.DeleteStream(ctx, name)
		}
	}
}

// testHookMirrored, set by the tests, runs once the mirrors hold the old
// streams, before their last sequences are read again.
var testHookMirrored func()

// waitMirror waits until the mirror holds the source's messages: the same
// last sequence and count.
func (r *run) waitMirror(ctx context.Context, mirror, source string, deadline time.Time) error {
	for {
		m, err := r.streamInfo(ctx, mirror)
		if err != nil {
			return err
		}
		s, err := r.streamInfo(ctx, source)
		if err != nil {
			return err
		}
		if m.State.LastSeq == s.State.LastSeq && m.State.Msgs == s.State.Msgs {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mirror %s of %s: %d messages up to %d after %s, the source %d up to %d",
				mirror, source, m.State.Msgs, m.State.LastSeq, r.o.MirrorTimeout, s.State.Msgs, s.State.LastSeq)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling the server's copy
		}
	}
}

func (r *run) streamInfo(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	st, err := r.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return info, nil
}

// drop deletes the old layout's streams and per-partition buckets; the
// mirrors hold them now.
func (r *run) drop(ctx context.Context) error {
	for p := range r.old.N() {
		for _, name := range []string{r.old.Stream(p), kvStream(r.old.IndexBucket(p)), kvStream(r.old.SnapshotBucket(p))} {
			if err := r.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("delete %s: %w", name, err)
			}
			r.o.Log("deleted %s", name)
		}
	}
	return nil
}

// create makes (or opens) the new layout's streams and buckets.
func (r *run) create(ctx context.Context) error {
	store, err := eventstore.OpenPartitioned(ctx, r.js, eventstore.JetStreamConfig{Prefix: r.o.Prefix, Partitions: r.o.To,
		Replicas: r.o.Replicas, Placement: r.o.Placement})
	if err != nil {
		return err
	}
	r.store = store
	return nil
}

func (r *run) loadProgress(ctx context.Context, p int) (progress, bool, error) {
	var pr progress
	e, err := r.kv.Get(ctx, "events."+strconv.Itoa(p))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return pr, false, nil
	}
	if err != nil {
		return pr, false, err
	}
	return pr, true, json.Unmarshal(e.Value(), &pr)
}

func (r *run) saveProgress(ctx context.Context, p int, pr progress) error {
	b, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	_, err = r.kv.Put(ctx, "events."+strconv.Itoa(p), b)
	return err
}

// copyEvents copies every mirror in turn.
func (r *run) copyEvents(ctx context.Context) error {
	total, done := 0, 0
	prs := make([]progress, r.old.N())
	resumed := make([]bool, r.old.N())
	for p := range r.old.N() {
		info, err := r.streamInfo(ctx, asideEvents+strconv.Itoa(p))
		if err != nil {
			return err
		}
		total += int(info.State.Msgs)
		if prs[p], resumed[p], err = r.loadProgress(ctx, p); err != nil {
			return err
		}
		done += prs[p].Copied + prs[p].NotEvents + prs[p].Expired
	}
	for p := range r.old.N() {
		if err := r.copyMirror(ctx, p, prs[p], resumed[p] || r.rep.Resumed, &done, total); err != nil {
			return err
		}
	}
	return nil
}

// pending is a publish waiting for its ack.
type pending struct {
	seq uint64
	ack jetstream.PubAckFuture
}

// copyMirror copies mirror p's messages after pr.Seq, in order. When
// resumed, the events within CheckpointEvery + Window of pr.Seq are first
// looked for in their account's new stream (the run before may have
// published them after its last record).
func (r *run) copyMirror(ctx context.Context, p int, pr progress, resumed bool, done *int, total int) error {
	name := asideEvents + strconv.Itoa(p)
	info, err := r.streamInfo(ctx, name)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if pr.Seq >= last {
		return nil
	}
	checkUpTo := uint64(0)
	if resumed {
		// The run before published at most CheckpointEvery + Window + 1
		// messages past its last record.
		checkUpTo = pr.Seq + uint64(r.o.CheckpointEvery+r.o.Window+1)
	}
	present := map[string]map[string]bool{} // account -> event ids in its new stream (resumed runs only)
	cons, err := r.js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: pr.Seq + 1,
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if ci := cons.CachedInfo(); ci != nil && ci.NumPending == 0 {
		// What is left expired in the mirror (login attempts).
		pr.Seq = last
		return r.saveProgress(ctx, p, pr)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer it.Stop()
	var queue []pending
	sinceSave := 0
	// settle waits for the oldest publishes until at most keep wait, and
	// records the progress every CheckpointEvery messages.
	settle := func(keep int) error {
		for len(queue) > keep {
			head := queue[0]
			if head.ack != nil {
				select {
				case ack := <-head.ack.Ok():
					if ack.Duplicate {
						r.rep.Duplicates++
					} else {
						r.rep.Copied++
					}
					pr.Copied++
					*done++
					if r.o.Progress != nil {
						r.o.Progress(*done, total)
					}
				case err := <-head.ack.Err():
					return fmt.Errorf("publish %s seq %d: %w (run again to resume)", name, head.seq, err)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			pr.Seq = head.seq
			queue = queue[1:]
			sinceSave++
			if sinceSave >= r.o.CheckpointEvery {
				if err := r.saveProgress(ctx, p, pr); err != nil {
					return err
				}
				sinceSave = 0
			}
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		seq := md.Sequence.Stream
		out, skip, err := r.translate(msg, md.Timestamp)
		switch {
		case err != nil:
			return fmt.Errorf("%s seq %d: %w", name, seq, err)
		case skip == skipNotEvent:
			pr.NotEvents++
			r.rep.NotEvents++
			*done++
			queue = append(queue, pending{seq: seq})
		case skip == skipExpired:
			pr.Expired++
			r.rep.Expired++
			*done++
			queue = append(queue, pending{seq: seq})
		case seq <= checkUpTo && r.isPresent(ctx, present, out):
			pr.Copied++
			r.rep.Present++
			*done++
			if r.o.Progress != nil {
				r.o.Progress(*done, total)
			}
			queue = append(queue, pending{seq: seq})
		default:
			ack, err := r.js.PublishMsgAsync(out.msg, jetstream.WithMsgID(out.msgID))
			if err != nil {
				return fmt.Errorf("publish %s seq %d: %w (run again to resume)", name, seq, err)
			}
			queue = append(queue, pending{seq: seq, ack: ack})
		}
		if err := settle(r.o.Window); err != nil {
			return err
		}
		// The mirror's last message may have expired meanwhile (a login
		// attempt): nothing pending is the end too.
		if seq >= last || md.NumPending == 0 {
			break
		}
	}
	if err := settle(0); err != nil {
		return err
	}
	r.o.Log("copied %s up to %d", name, pr.Seq)
	return r.saveProgress(ctx, p, pr)
}

// isPresent tells whether the event is already in its account's new
// stream (read once per account).
func (r *run) isPresent(ctx context.Context, present map[string]map[string]bool, out translated) bool {
	ids, ok := present[out.account]
	if !ok {
		ids = map[string]bool{}
		recs, err := r.store.Load(ctx, out.account, 0)
		if err == nil {
			for _, rec := range recs {
				if !rec.NotAppended {
					ids[rec.Envelope.ID] = true
				}
			}
		}
		// An error leaves the set empty: the publish goes out, and the
		// server's message-id window is the last guard.
		present[out.account] = ids
	}
	return ids[out.eventID]
}

type skipReason int

const (
	skipNone skipReason = iota
	skipNotEvent
	skipExpired
)

type translated struct {
	msg              *nats.Msg
	msgID            string
	account, eventID string
}

// translate is the old message as it goes into the new layout: its
// account's new subject, its data and headers as they were but the
// server's (Nats-*), its old message id (else its event id), and what is
// left of its retention (Nats-TTL, counted from its stored time).
func (r *run) translate(msg jetstream.Msg, stored time.Time) (translated, skipReason, error) {
	id := msg.Headers().Get(eventstore.HeaderEventID)
	if id == "" {
		return translated{}, skipNotEvent, nil
	}
	env, err := events.Unmarshal(msg.Data())
	if err != nil || events.VerifyStored(msg.Subject(), id, env) != nil {
		return translated{}, skipNotEvent, nil
	}
	acc, ok := r.old.AccountOf(msg.Subject())
	if !ok || acc != env.AccountID {
		return translated{}, skipNotEvent, nil
	}
	out := nats.NewMsg(r.new.Events(acc))
	out.Data = msg.Data()
	for k, vs := range msg.Headers() {
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		for _, v := range vs {
			out.Header.Add(k, v)
		}
	}
	if ttl := msg.Headers().Get(jetstream.MsgTTLHeader); ttl != "" {
		d, err := parseTTL(ttl)
		if err != nil {
			return translated{}, skipNone, err
		}
		if d > 0 {
			left := time.Until(stored.Add(d))
			if left < time.Second {
				return translated{}, skipExpired, nil
			}
			out.Header.Set(jetstream.MsgTTLHeader, left.Truncate(time.Second).String())
		}
	}
	msgID := msg.Headers().Get(jetstream.MsgIDHeader)
	if msgID == "" {
		msgID = id
	}
	return translated{msg: out, msgID: msgID, account: acc, eventID: id}, skipNone, nil
}

// parseTTL reads a Nats-TTL value: a Go duration, or seconds; "never" or
// a negative value is no expiry (0).
func parseTTL(s string) (time.Duration, error) {
	if s == "never" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return max(d, 0), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Nats-TTL %q: neither a duration nor seconds", s)
	}
	return max(time.Duration(n)*time.Second, 0), nil
}

// copyIndex copies every entry of the old NIR index buckets into the new
// ones; an entry already there with the same account is fine (a resumed
// run), with another it is an error.
func (r *run) copyIndex(ctx context.Context) error {
	idx := r.store.Index()
	for p := range r.old.N() {
		name := asideIndex + strconv.Itoa(p)
		info, err := r.streamInfo(ctx, name)
		if err != nil {
			return err
		}
		if info.State.Msgs == 0 {
			continue
		}
		prefix := "$KV." + r.old.IndexBucket(p) + "."
		cons, err := r.js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{prefix + ">"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		})
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		it, err := cons.Messages()
		if err != nil {
			return err
		}
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				it.Stop()
				return fmt.Errorf("read %s: %w", name, err)
			}
			md, err := msg.Metadata()
			if err != nil {
				it.Stop()
				return err
			}
			if op := msg.Headers().Get("KV-Operation"); op == "" {
				key, account := strings.TrimPrefix(msg.Subject(), prefix), string(msg.Data())
				if err := idx.Create(ctx, key, account); errors.Is(err, eventstore.ErrExists) {
					have, gerr := idx.Get(ctx, key)
					if gerr != nil {
						it.Stop()
						return gerr
					}
					if have != account {
						it.Stop()
						// The key is a keyed hash of a NIR: not printed.
						return fmt.Errorf("%w: a NIR index key of %s is already in the new layout for account %s, not %s", ErrRefused, name, have, account)
					}
				} else if err != nil {
					it.Stop()
					return err
				}
				r.rep.IndexKeys++
			}
			if md.NumPending == 0 {
				break
			}
		}
		it.Stop()
	}
	return nil
}

// verify checks that the new layout's streams hold exactly the events
// copied: nothing twice, nothing appended by anyone else.
func (r *run) verify(ctx context.Context) error {
	want := 0
	for p := range r.old.N() {
		pr, _, err := r.loadProgress(ctx, p)
		if err != nil {
			return err
		}
		want += pr.Copied
	}
	var have uint64
	for p := range r.new.N() {
		info, err := r.streamInfo(ctx, r.new.Stream(p))
		if err != nil {
			return err
		}
		// Sequences, not messages: a login attempt may expire meanwhile.
		have += info.State.LastSeq
	}
	if int(have) != want {
		return fmt.Errorf("%w: the new streams hold %d events, the copy counted %d: something else appended, or an event went twice; the mirrors %s* are kept", ErrRefused, have, want, asideEvents)
	}
	r.rep.Total = want
	return nil
}

// clean deletes the mirrors and the state bucket once verified.
func (r *run) clean(ctx context.Context) error {
	for p := range r.old.N() {
		for _, name := range []string{asideEvents + strconv.Itoa(p), asideIndex + strconv.Itoa(p)} {
			if err := r.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("repartition: delete %s: %w", name, err)
			}
		}
	}
	if err := r.js.DeleteKeyValue(ctx, StateBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("repartition: delete %s: %w", StateBucket, err)
	}
	r.o.Log("done: %d events in %d partitions", r.rep.Total, r.o.To)
	return nil
}
