package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
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

Output: a table (times in Paris; DETAILS summarises the event's data and
never shows a sealed value nor a hash), or jsonl: each envelope exactly as
stored, one per line (it then holds sealed values and hashes, which only the
service's key opens). A progress bar is drawn on standard error when it is a
terminal and the output is not.`,
		Example: `  authctl events --account "2 69 05 49 588 157" --since 24h
  authctl events --type login. --since 2023-01-05 --until 2023-01-06
  authctl events --follow --type login.password_failed --type login.otp_failed
  authctl events --output jsonl > audit.jsonl`,
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
	f.StringVarP(&o.output, "output", "o", "table", "table or jsonl")
	// Never the key as the flag's default: --help would print it.
	f.StringVar(&o.stream, "stream", contract.EventsStream, "the events stream")
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
	if o.output != "table" && o.output != "jsonl" {
		return usagef("--output: %q is neither table nor jsonl", o.output)
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
	stream, err := js.Stream(ctx, o.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no stream %s on %s: has the commands service run there?", o.stream, nc.ConnectedUrlRedacted())
	}
	if err != nil {
		return fmt.Errorf("open stream %s: %w", o.stream, err)
	}
	subject := contract.Subjects(prefix).AllEvents()
	if o.account != "" {
		id, err := resolveAccount(ctx, js, o)
		if err != nil {
			return err
		}
		subject = contract.Subjects(prefix).Events(id)
	}

	out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
	defer out.Flush()
	var pr printer = jsonlPrinter{w: out}
	if o.output == "table" {
		pr = tablePrinter{w: out}
	}
	pr.header()

	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", o.stream, err)
	}
	last := info.State.LastSeq // the replay's end
	if !follow && info.State.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
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
	cons, err := js.OrderedConsumer(ctx, o.stream, cfg)
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", o.stream, err)
	}
	defer func() {
		// Ordered consumers are ephemeral; delete ours now rather than
		// leave it to the inactivity threshold.
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = js.DeleteConsumer(dctx, o.stream, ci.Name)
			cancel()
		}
	}()
	var pending uint64
	if ci := cons.CachedInfo(); ci != nil {
		pending = ci.NumPending
	}
	if !follow && pending == 0 {
		return nil
	}
	var bar *progress
	if _, stdoutTTY := terminal(cmd.OutOrStdout()); !stdoutTTY {
		bar = newProgress(cmd.ErrOrStderr(), "events", int64(pending))
	}
	defer func() { bar.Done() }() // the bar as it is then: nil once caught up

	it, err := cons.Messages(jetstream.PullMaxMessages(500))
	if err != nil {
		return fmt.Errorf("consume %s: %w", o.stream, err)
	}
	defer it.Stop()
	caughtUp := pending == 0
	for {
		if ctx.Err() != nil {
			return nil // Ctrl-C, or --until reached while following
		}
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", o.stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", o.stream, err)
		}
		seq := md.Sequence.Stream
		if !follow && seq > last {
			return nil // stored after the start: not part of this replay
		}
		bar.Add(1)
		var head envelopeHead
		if err := json.Unmarshal(msg.Data(), &head); err != nil && msg.Headers().Get(eventstore.HeaderEventID) != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "authctl: seq %d: unreadable envelope: %v\n", seq, err)
		} else if err := events.VerifyStored(msg.Subject(), msg.Headers().Get(eventstore.HeaderEventID),
			events.Envelope{ID: head.ID, AccountID: head.AccountID}); err != nil {
			// Not part of the audit trail: an API answer or a copy that a
			// reader of the stream had stored there (docs/operations.md).
			fmt.Fprintf(cmd.ErrOrStderr(), "authctl: seq %d: skipped: %v\n", seq, err)
		} else if flt.keep(head) {
			if err := pr.row(seq, msg.Data(), head); err != nil {
				return err
			}
		}
		if md.NumPending == 0 {
			if !follow {
				return nil
			}
			if !caughtUp {
				caughtUp = true
				bar.Done()
				bar = nil
			}
		}
		if !follow && seq >= last {
			return nil
		}
		if md.NumPending == 0 || out.Buffered() > 32<<10 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
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
func resolveAccount(ctx context.Context, js jetstream.JetStream, o eventsOptions) (string, error) {
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
	kv, err := js.KeyValue(ctx, eventstore.IndexBucket)
	if err != nil {
		return "", fmt.Errorf("open bucket %s: %w", eventstore.IndexBucket, err)
	}
	// An account registered before a key rotation is indexed under a
	// previous key until it is next looked up by the service (docs/keys.md).
	for _, k := range keys.NIRIndexKeys(nir) {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("look up the NIR in %s: %w", eventstore.IndexBucket, err)
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
	row(seq uint64, raw []byte, head envelopeHead) error
}

// jsonlPrinter writes each envelope as stored.
type jsonlPrinter struct{ w io.Writer }

func (jsonlPrinter) header() {}

func (p jsonlPrinter) row(_ uint64, raw []byte, _ envelopeHead) error {
	if _, err := p.w.Write(raw); err != nil {
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

func (p tablePrinter) row(seq uint64, raw []byte, head envelopeHead) error {
	details := ""
	if env, err := events.Unmarshal(raw); err != nil {
		details = "(illisible par cette version : " + err.Error() + ")"
	} else {
		details = summarize(env)
	}
	line := fmt.Sprintf(tableFormat, fmt.Sprint(seq), stampParis(head.OccurredAt), head.AccountID,
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
