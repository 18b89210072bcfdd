package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/spf13/cobra"

	"github.com/ameli-auth/authsvc/internal/app"
	"github.com/ameli-auth/authsvc/internal/config"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

type eventsOptions struct {
	account string
	since   string
	until   string
	types   []string
	follow  bool
	output  string
	format  string
	varDir  string
	stream  string
}

func newEventsCmd() *cobra.Command {
	var o eventsOptions
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Replay or follow the AUTH_EVENTS stream, for audits",
		Long: `Replay the events of the AUTH_EVENTS stream (every account, or one), from
the first one or from --since, up to the last one stored when the command
starts; with --follow, go on printing new events until Ctrl-C (or --until).

--account takes an account id (ULID) or a NIR (13 characters, or 15 with its
key, spaces allowed). A NIR is looked up in the AUTH_NIR_INDEX bucket, whose
keys are keyed hashes: that needs the service's secret key (AUTH_SECRET_KEY
or AUTH_SECRET_KEY_FILE, never a flag: a command line shows in ps; in dev
mode <var dir>/secret.key), and after a key rotation the previous keys too
(AUTH_SECRET_KEY_PREVIOUS or its _FILE; docs/keys.md).

--since and --until take an RFC 3339 time (2023-01-05T14:30:00+01:00), a
Paris date or time (2023-01-05, 2023-01-05T14:30), or a duration before now
(90m, 24h, 7d). They compare with the event's own time, occurred_at, the
time the table shows: an event is shown when since <= occurred_at < until.
Where the dev clock runs ahead (AUTH_DEV_CLOCK, kept in the AUTH_DEV_CLOCK
bucket), "now" is the dev clock's, and events stamped ahead of the time
they were stored are found all the same.

--type keeps the events of the given types (repeatable, or comma-separated);
a value ending in "." or "*" (login., login.*) keeps every type it prefixes.

With several partitions (AUTH_PARTITIONS, --partitions; unset, as the streams
on the server say), every partition's stream AUTH_EVENTS_<p> is read and the
replay merged by occurred_at, then partition, then sequence (each partition's
order, and so each account's, stands); SEQ reads <partition>:<sequence>.
--account reads its partition only. With --follow, new events are printed as
they arrive from any partition. --stream reads one stream alone.

Output: a table (times in Paris; DETAILS summarises the event's data and
never shows a sealed value nor a hash), or jsonl: each envelope exactly as
stored, one per line (it then holds sealed values and hashes, which only the
service's key opens), or cloudevents: one CloudEvents 1.0 JSON event per
line (type fr.ameli.auth.<event type>, subject the account id, data the
event's data, sealed values and hashes included; docs/authctl.md lists
every attribute). --format is the same choice as --output. A progress bar is drawn on standard error when it is a
terminal and the output is not.`,
		Example: `  authctl events --account "2 69 05 49 588 157" --since 24h
  authctl events --type login. --since 2023-01-05 --until 2023-01-06
  authctl events --follow --type login.password_failed --type login.otp_failed
  authctl events --output jsonl > audit.jsonl
  authctl events --format cloudevents --since 7d > audit.cloudevents.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.varDir, _ = cmd.Flags().GetString("var-dir")
			return runEvents(ctx, cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.account, "account", "", "only this account: an account id or a NIR")
	f.StringVar(&o.since, "since", "", "from this time (RFC 3339, Paris date/time, or duration before now: 24h, 7d)")
	f.StringVar(&o.until, "until", "", "before this time (same forms as --since)")
	f.StringSliceVar(&o.types, "type", nil, "event types to keep (repeatable; \"login.\" keeps every login.* type)")
	f.BoolVarP(&o.follow, "follow", "f", false, "after the replay, print new events until Ctrl-C")
	f.StringVarP(&o.output, "output", "o", "table", "table, jsonl or cloudevents")
	f.StringVar(&o.format, "format", "", "the same as --output: table, jsonl or cloudevents")
	// Never the key as the flag's default: --help would print it.
	f.StringVar(&o.stream, "stream", "", "read this stream alone (a copy of the events, say); default: the events streams, every partition's")
	return cmd
}

// filter says which events are shown.
type filter struct {
	since, until time.Time // zero: open
	types        func(string) bool
}

func (f filter) keep(h envelopeHead) bool {
	if !f.since.IsZero() && h.OccurredAt.Before(f.since) {
		return false
	}
	if !f.until.IsZero() && !h.OccurredAt.Before(f.until) {
		return false
	}
	return f.types == nil || f.types(h.Type)
}

// envelopeHead is the part of an envelope the filters read; it decodes even
// when the type is unknown to this build.
type envelopeHead struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	AccountID  string    `json:"account_id"`
	OccurredAt time.Time `json:"occurred_at"`
	Channel    string    `json:"channel"`
	ClientIP   string    `json:"client_ip"`
}

func runEvents(ctx context.Context, cmd *cobra.Command, o eventsOptions) error {
	if o.format != "" {
		if o.output != "table" && o.output != o.format {
			return usagef("--format %q and --output %q: give one of them", o.format, o.output)
		}
		o.output = o.format
	}
	if o.output != "table" && o.output != "jsonl" && o.output != "cloudevents" {
		return usagef("--output: %q is neither table, jsonl nor cloudevents", o.output)
	}
	// Checked before connecting, so a usage error says so even without a
	// server; read again below at the service's time.
	flt, err := eventsFilter(o, time.Now())
	if err != nil {
		return err
	}
	nc, prefix, err := connect(cmd, asAdmin)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// occurred_at is the service's time: with the dev clock on, the system
	// time plus the offset it had then, at most the kept one.
	ahead, err := app.KeptDevClockOffset(ctx, js, prefix)
	if err != nil {
		return fmt.Errorf("read the dev clock's offset: %w", err)
	}
	now := time.Now().Add(ahead)
	if flt, err = eventsFilter(o, now); err != nil {
		return err
	}
	follow := o.follow
	if follow && !flt.until.IsZero() {
		if !flt.until.After(now) {
			follow = false // nothing new can match
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, flt.until.Add(-ahead))
			defer cancel()
		}
	}
	sources, err := openSources(ctx, cmd, js, o, prefix, nc.ConnectedUrlRedacted())
	if err != nil {
		return err
	}

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	defer out.Flush()
	var pr printer = jsonlPrinter{w: out}
	switch o.output {
	case "table":
		pr = tablePrinter{w: out}
	case "cloudevents":
		pr = cloudEventsPrinter{w: out, prefix: prefix}
	}
	pr.header()

	var msgs uint64
	for _, src := range sources {
		msgs += src.msgs
	}
	if !follow && msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second,
	}
	if !flt.since.IsZero() {
		// The stream's storage times start the consumer close to --since;
		// occurred_at decides. An event stored at s was stamped at most
		// s + the dev clock's offset then (never more than the kept one):
		// start that much earlier, and a minute more for clock skew.
		start := flt.since.Add(-ahead - time.Minute)
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &start
	}
	rctx, stopReading := context.WithCancel(ctx)
	var readers sync.WaitGroup
	defer func() {
		stopReading()
		readers.Wait()
		// Ordered consumers are ephemeral; delete ours now rather than
		// leave them to the inactivity threshold.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, src := range sources {
			if src.cons == nil {
				continue
			}
			if ci := src.cons.CachedInfo(); ci != nil {
				_ = js.DeleteConsumer(dctx, src.stream, ci.Name)
			}
		}
	}()
	var pending uint64
	for _, src := range sources {
		c := cfg
		c.FilterSubjects = []string{src.subject}
		if src.cons, err = js.OrderedConsumer(ctx, src.stream, c); err != nil {
			return fmt.Errorf("consumer on %s: %w", src.stream, err)
		}
		if ci := src.cons.CachedInfo(); ci != nil {
			src.pending = ci.NumPending
		}
		pending += src.pending
	}
	if !follow && pending == 0 {
		return nil
	}
	for _, src := range sources {
		if err := src.start(rctx, &readers); err != nil {
			return err
		}
	}
	var bar *progress
	if _, stdoutTTY := terminal(cmd.OutOrStdout()); !stdoutTTY {
		bar = newProgress(cmd.ErrOrStderr(), "events", int64(pending))
	}
	defer func() { bar.Done() }() // the bar as it is then: nil once caught up

	show := func(m sourced) error {
		if m.skip != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "authctl: %s: %v\n", m.where(), m.skip)
			return nil
		}
		if !flt.keep(m.head) {
			return nil
		}
		return pr.row(m)
	}
	// The replay: every source up to its end at the start, merged.
	carried, err := replayMerged(ctx, sources, follow, func(m sourced) error {
		bar.Add(1)
		if err := show(m); err != nil {
			return err
		}
		if out.Buffered() > 32<<10 {
			return out.Flush()
		}
		return nil
	})
	if err != nil || ctx.Err() != nil || !follow {
		if ctx.Err() != nil {
			return nil // Ctrl-C, or --until reached
		}
		return err
	}
	bar.Done()
	bar = nil
	if err := out.Flush(); err != nil {
		return err
	}
	// Following: what came after the replay, as it arrives.
	slices.SortFunc(carried, sourced.compare)
	for _, m := range carried {
		if err := show(m); err != nil {
			return err
		}
	}
	all := fanIn(rctx, sources, &readers)
	for {
		if err := out.Flush(); err != nil {
			return err
		}
		var m sourced
		select {
		case <-ctx.Done():
			return nil // Ctrl-C, or --until reached while following
		case m = <-all:
		}
		if m.err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return m.err
		}
		if err := show(m); err != nil {
			return err
		}
		for len(all) > 0 && out.Buffered() <= 32<<10 {
			if m = <-all; m.err != nil {
				return m.err
			}
			if err := show(m); err != nil {
				return err
			}
		}
	}
}

// eventSource is one stream the replay reads: a partition's, or the one
// stream of --account's partition or of --stream.
type eventSource struct {
	partition int               // -1: the SEQ column shows the sequence alone
	stream    string            // its name
	subject   string            // the consumer's filter
	last      uint64            // the stream's last sequence at the start: the replay's end
	msgs      uint64            // messages in the stream at the start
	meta      map[string]string // the stream's metadata
	cons      jetstream.Consumer
	pending   uint64       // what the consumer had to deliver when made
	out       chan sourced // read ahead by the source's goroutine
}

// sourced is a message of a source, decoded as far as the filters read.
type sourced struct {
	src        *eventSource
	seq        uint64
	numPending uint64 // the consumer's messages after this one
	data       []byte
	head       envelopeHead
	skip       error // not part of the audit trail, or unreadable
	err        error // reading the stream failed: the source stops
}

func (m sourced) where() string {
	if m.src.partition < 0 {
		return fmt.Sprintf("seq %d", m.seq)
	}
	return fmt.Sprintf("%s seq %d", m.src.stream, m.seq)
}

// seqLabel is the SEQ column: the stream sequence, prefixed with the
// partition when there are several ("3:1042").
func (m sourced) seqLabel() string {
	if m.src.partition < 0 {
		return strconv.FormatUint(m.seq, 10)
	}
	return strconv.Itoa(m.src.partition) + ":" + strconv.FormatUint(m.seq, 10)
}

// compare orders the merged replay: by occurred_at, then partition, then
// stream sequence. Within a partition, the stream's own order stands
// whatever the times (replayMerged only ever compares the sources' next
// messages), so each account's events keep their order.
func (m sourced) compare(o sourced) int {
	if c := m.head.OccurredAt.Compare(o.head.OccurredAt); c != 0 {
		return c
	}
	if c := cmp.Compare(m.src.partition, o.src.partition); c != 0 {
		return c
	}
	return cmp.Compare(m.seq, o.seq)
}

// openSources finds the streams to read: --stream alone; else --account's
// partition only; else every partition of the layout (--partitions, or the
// server's).
func openSources(ctx context.Context, cmd *cobra.Command, js jetstream.JetStream, o eventsOptions, prefix, where string) ([]*eventSource, error) {
	var layout contract.Layout
	names := []string{o.stream}
	if o.stream == "" {
		var err error
		if layout, err = eventsLayout(ctx, cmd, js); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return nil, fmt.Errorf("no stream %s (nor %s_0, for several partitions) on %s: has the commands service run there?",
					contract.EventsStream, contract.EventsStream, where)
			}
			return nil, err
		}
		names = layout.Streams()
	}
	var srcs []*eventSource
	for p, name := range names {
		stream, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("no stream %s on %s: has the commands service run there?", name, where)
		}
		if err != nil {
			return nil, fmt.Errorf("open stream %s: %w", name, err)
		}
		info := stream.CachedInfo()
		src := &eventSource{partition: -1, stream: name, subject: contract.Subjects(prefix).AllEvents(),
			last: info.State.LastSeq, msgs: info.State.Msgs, meta: info.Config.Metadata}
		if o.stream == "" {
			if err := eventstore.CheckLayout(info.Config, layout, p); err != nil {
				return nil, err
			}
			src.subject = layout.StreamSubjects(p)
			if layout.Split() {
				src.partition = p
			}
		}
		srcs = append(srcs, src)
	}
	if o.account == "" {
		return srcs, nil
	}
	if o.stream != "" {
		// A NIR is looked up in the buckets of the server's layout, and the
		// account's events in --stream under the subject of the layout its
		// metadata says (a copy of a stream keeps it).
		layout, _ = eventsLayout(ctx, cmd, js)
	}
	id, err := resolveAccount(ctx, js, o, layout)
	if err != nil {
		return nil, err
	}
	if o.stream != "" {
		n, _ := strconv.Atoi(srcs[0].meta[eventstore.MetaPartitions])
		srcs[0].subject = contract.Layout{Prefix: prefix, Partitions: n}.Events(id)
		return srcs, nil
	}
	src := srcs[layout.PartitionOf(id)]
	src.subject = layout.Events(id)
	return []*eventSource{src}, nil
}

// start reads the source's consumer ahead into src.out until ctx ends or
// reading fails (the last message sent then carries the error).
func (src *eventSource) start(ctx context.Context, wg *sync.WaitGroup) error {
	it, err := src.cons.Messages(jetstream.PullMaxMessages(500))
	if err != nil {
		return fmt.Errorf("consume %s: %w", src.stream, err)
	}
	src.out = make(chan sourced, 256)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer it.Stop()
		for {
			m := src.next(ctx, it)
			select {
			case src.out <- m:
			case <-ctx.Done():
				return
			}
			if m.err != nil {
				return
			}
		}
	}()
	return nil
}

// next reads and decodes one message.
func (src *eventSource) next(ctx context.Context, it jetstream.MessagesContext) sourced {
	m := sourced{src: src}
	msg, err := it.Next(jetstream.NextContext(ctx))
	if err != nil {
		m.err = fmt.Errorf("read %s: %w", src.stream, err)
		return m
	}
	md, err := msg.Metadata()
	if err != nil {
		m.err = fmt.Errorf("read %s: %w", src.stream, err)
		return m
	}
	m.seq, m.numPending, m.data = md.Sequence.Stream, md.NumPending, msg.Data()
	eventID := msg.Headers().Get(eventstore.HeaderEventID)
	if err := json.Unmarshal(m.data, &m.head); err != nil && eventID != "" {
		m.skip = fmt.Errorf("unreadable envelope: %w", err)
	} else if err := events.VerifyStored(msg.Subject(), eventID, events.Envelope{ID: m.head.ID, AccountID: m.head.AccountID}); err != nil {
		// Not part of the audit trail: an API answer or a copy that a
		// reader of the stream had stored there (docs/operations.md).
		m.skip = fmt.Errorf("skipped: %w", err)
	}
	return m
}

// replayMerged is the replay: each source up to its last sequence at the
// start (or until its consumer has nothing more), merged by a k-way merge
// of the sources' next messages (sourced.compare). Messages stored after
// the start are dropped, or, when following, returned to be shown first.
func replayMerged(ctx context.Context, sources []*eventSource, follow bool, emit func(sourced) error) (carried []sourced, err error) {
	var active []*eventSource
	for _, src := range sources {
		if src.pending > 0 {
			active = append(active, src)
		}
	}
	heads := make(map[*eventSource]sourced, len(active))
	for len(active) > 0 {
		for i := 0; i < len(active); i++ {
			src := active[i]
			if _, ok := heads[src]; ok {
				continue
			}
			var m sourced
			select {
			case <-ctx.Done():
				return carried, nil
			case m = <-src.out:
			}
			if m.err != nil {
				return carried, m.err
			}
			if m.seq > src.last {
				// Stored after the start: not part of this replay.
				if follow {
					carried = append(carried, m)
				}
				active = slices.Delete(active, i, i+1)
				i--
				continue
			}
			heads[src] = m
		}
		if len(active) == 0 {
			break
		}
		next := active[0]
		for _, src := range active[1:] {
			if heads[src].compare(heads[next]) < 0 {
				next = src
			}
		}
		m := heads[next]
		delete(heads, next)
		if err := emit(m); err != nil {
			return carried, err
		}
		if m.seq >= next.last || m.numPending == 0 {
			active = slices.DeleteFunc(active, func(s *eventSource) bool { return s == next })
		}
	}
	return carried, nil
}

// fanIn forwards every source's messages, as they come, to one channel.
func fanIn(ctx context.Context, sources []*eventSource, wg *sync.WaitGroup) <-chan sourced {
	all := make(chan sourced, 256)
	for _, src := range sources {
		if src.out == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-src.out:
					select {
					case all <- m:
					case <-ctx.Done():
						return
					}
					if m.err != nil {
						return
					}
				}
			}
		}()
	}
	return all
}

// eventsFilter reads --since, --until and --type, durations counting back
// from now.
func eventsFilter(o eventsOptions, now time.Time) (filter, error) {
	var flt filter
	var err error
	if o.since != "" {
		if flt.since, err = parseWhen(o.since, now); err != nil {
			return flt, usagef("--since: %v", err)
		}
	}
	if o.until != "" {
		if flt.until, err = parseWhen(o.until, now); err != nil {
			return flt, usagef("--until: %v", err)
		}
	}
	if !flt.since.IsZero() && !flt.until.IsZero() && !flt.since.Before(flt.until) {
		return flt, usagef("--since (%s) must be before --until (%s)", flt.since.Format(time.RFC3339), flt.until.Format(time.RFC3339))
	}
	if flt.types, err = typeMatcher(o.types); err != nil {
		return flt, usagef("--type: %v", err)
	}
	return flt, nil
}

// resolveAccount reads --account: an account id, or a NIR looked up in the
// index.
func resolveAccount(ctx context.Context, js jetstream.JetStream, o eventsOptions, layout contract.Layout) (string, error) {
	v := strings.TrimSpace(o.account)
	if len(v) == 26 {
		if id, err := ulid.ParseStrict(strings.ToUpper(v)); err == nil {
			return id.String(), nil
		}
	}
	nir, err := domain.ParseNIR(v)
	if err != nil {
		return "", usagef("--account: %q is neither an account id (26-character ULID) nor a NIR (the NIR %v)", o.account, err)
	}
	secretKey, err := config.ReadSecret(config.EnvSecretKey)
	if err != nil {
		return "", err
	}
	previous, err := config.ReadSecret(config.EnvSecretKeyPrevious)
	if err != nil {
		return "", err
	}
	keys, err := loadKeys(secretKey, previous, o.varDir)
	if err != nil {
		return "", fmt.Errorf("--account by NIR: %w", err)
	}
	// An account registered before a key rotation is indexed under a
	// previous key until it is next looked up by the service (docs/keys.md).
	// Each key is in its own partition's bucket.
	for _, k := range keys.NIRIndexKeys(nir) {
		bucket := layout.IndexBucket(contract.Partition(k, layout.N()))
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			return "", fmt.Errorf("open bucket %s: %w", bucket, err)
		}
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("look up the NIR in %s: %w", bucket, err)
		}
		return string(e.Value()), nil
	}
	return "", errors.New("--account: no account for this NIR (or other secret keys than the service's)")
}

// parseWhen reads a time: RFC 3339, a Paris date or local time, or a
// duration before now (Go's 90m, 24h, and days: 7d).
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, domain.Paris); err == nil {
			return t, nil
		}
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err == nil && fmt.Sprint(n) == days {
			d = time.Duration(n) * 24 * time.Hour
		} else {
			return time.Time{}, fmt.Errorf("%q is neither a time nor a duration", s)
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return time.Time{}, fmt.Errorf("%q is neither a time (RFC 3339, 2023-01-05, 2023-01-05T14:30) nor a duration (90m, 24h, 7d)", s)
		}
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("%q: a duration counts back from now and must be positive", s)
	}
	return now.Add(-d), nil
}

// typeMatcher builds the --type filter; nil keeps every type.
func typeMatcher(specs []string) (func(string) bool, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	known := events.Types()
	var exact, prefixes []string
	for _, s := range specs {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			continue
		case strings.HasSuffix(s, "*"):
			prefixes = append(prefixes, strings.TrimSuffix(s, "*"))
		case strings.HasSuffix(s, "."):
			prefixes = append(prefixes, s)
		case slices.Contains(known, s):
			exact = append(exact, s)
		case slices.ContainsFunc(known, func(k string) bool { return strings.HasPrefix(k, s+".") }):
			prefixes = append(prefixes, s+".") // "login" reads as "login."
		default:
			return nil, fmt.Errorf("unknown event type %q (known: %s)", s, strings.Join(known, ", "))
		}
	}
	return func(t string) bool {
		if slices.Contains(exact, t) {
			return true
		}
		return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(t, p) })
	}, nil
}

// printer writes the events of a replay.
type printer interface {
	header()
	row(m sourced) error
}

// jsonlPrinter writes each envelope as stored.
type jsonlPrinter struct{ w io.Writer }

func (jsonlPrinter) header() {}

func (p jsonlPrinter) row(m sourced) error {
	if _, err := p.w.Write(m.data); err != nil {
		return err
	}
	_, err := p.w.Write([]byte{'\n'})
	return err
}

// tablePrinter writes aligned columns, one line per event, so rows can be
// printed as they come (--follow) without waiting for the widest value.
type tablePrinter struct{ w io.Writer }

const tableFormat = "%-7s %-19s  %-26s  %-29s  %-10s  %-15s  %s\n"

func (p tablePrinter) header() {
	fmt.Fprintf(p.w, tableFormat, "SEQ", "TIME", "ACCOUNT", "TYPE", "CHANNEL", "CLIENT_IP", "DETAILS")
}

func (p tablePrinter) row(m sourced) error {
	seq, head := m.seqLabel(), m.head
	details := ""
	if env, err := events.Unmarshal(m.data); err != nil {
		details = "(illisible par cette version : " + err.Error() + ")"
	} else {
		details = summarize(env)
	}
	line := fmt.Sprintf(tableFormat, seq, stampParis(head.OccurredAt), head.AccountID,
		head.Type, dash(head.Channel), dash(head.ClientIP), details)
	_, err := io.WriteString(p.w, strings.TrimRight(line, " \n")+"\n")
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
