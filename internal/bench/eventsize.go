package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// EventSizeOptions shape an event-size measurement (EventSizes). Zero
// values take the defaults, sized so that each phase fills at least one
// whole 8 MiB block of the file store (the unit the server compresses).
type EventSizeOptions struct {
	// Accounts are imported first (account.import, as `authctl account
	// import` sends it: channel backoffice, a request id, each account
	// its own NIR, address and argon2id hash); default 20,000.
	Accounts int
	// Logins are whole web logins (login.password, login.otp.send,
	// login.otp.verify, each with a web request id, a client address
	// and a browser's user agent), over the accounts in turn; default
	// 10,000.
	Logins int
	// Concurrency is the number of clients sending; default 32.
	Concurrency int
	// Uncompressed keeps the stream's blocks uncompressed (the measure
	// before S2: eventstore.JetStreamConfig.Uncompressed).
	Uncompressed bool
	// AttemptsRetention is AUTH_ATTEMPTS_RETENTION (the stream's TTL of
	// the login attempts, and a snapshot after each one); 0: none, as
	// before issue 16. The benchmark runs the default, 8760h.
	AttemptsRetention time.Duration
	// Progress receives one line per step; nil discards them.
	Progress func(format string, args ...any)
}

// TypeSize is what one event type costs in the stream, per event.
type TypeSize struct {
	Type  string
	Count int
	// Subject, Headers and Body are the mean bytes of each part of the
	// stored message (Headers as NATS encodes them: "NATS/1.0\r\n", one
	// "Name: value\r\n" each, a blank line).
	Subject, Headers, Body float64
	// Record is the mean bytes of the message's record in the file store:
	// a 22-byte header (length, sequence, time, subject length), the
	// subject, the headers' 4-byte length and the headers, the body and an
	// 8-byte hash (nats-server fileStoreMsgSize): what the stream's
	// State.Bytes adds up.
	Record float64
	// Disk is Record times the compression ratio of the sealed blocks of
	// the phase the type was written in (registrations or logins): its
	// mean bytes on disk. 0 when that phase sealed no block.
	Disk float64
}

// EventSizeReport is an event-size measurement.
type EventSizeReport struct {
	Types            []TypeSize // by type name
	Accounts, Logins int
	LoginEvents      int    // events the logins appended
	Compression      string // the stream's, as the server reports it
	// Registration is the mean record of one account's import (its
	// account.registered event); RegistrationDisk its bytes on disk.
	Registration, RegistrationDisk float64
	// LoginEvent is the mean record of one event appended by a login;
	// LoginEventDisk its bytes on disk; PerLogin the events of one login.
	LoginEvent, LoginEventDisk, PerLogin float64
	// RegistrationRatio and LoginRatio are bytes on disk over original
	// bytes of the stream's sealed blocks holding only that phase's
	// events (1 without compression; 0 when the phase sealed no block:
	// the server compresses a block only once it is full).
	RegistrationRatio, LoginRatio float64
	SealedBlocks                  [2]int // sealed blocks each ratio is measured on
	// StreamBytes is the stream's State.Bytes (the records' sum);
	// StreamDisk the size of its block files now, the last one (never
	// compressed while it is written) included.
	StreamBytes uint64
	StreamDisk  int64
	// Index and Snapshots are the KV buckets' State.Bytes: the NIR index
	// (one key per account) and the snapshots (a cache).
	Index, Snapshots         uint64
	IndexKeys, SnapshotsKeys uint64
}

// eventSizeUA is a common browser's user agent (Chrome on Windows), the
// length the web front-end passes on with every request.
const eventSizeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

// EventSizes imports o.Accounts accounts and runs o.Logins web logins
// through a real commands service (its real store, on an embedded
// nats-server with a file store in a temporary directory), then reads
// every message of the stream back and reports the bytes of each event
// type, per account and per login event, as records and on disk. The
// logins use argon2id parameters cheap enough for a quick run (the
// stored hash, a PHC string, is 4 characters shorter than with the
// seed's).
func EventSizes(ctx context.Context, o EventSizeOptions) (EventSizeReport, error) {
	if o.Accounts <= 0 {
		o.Accounts = 20_000
	}
	if o.Logins < 0 {
		o.Logins = 0
	} else if o.Logins == 0 {
		o.Logins = 10_000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	r := &runner{opts: Options{Progress: io.Discard}, res: &Result{}, uncompressed: o.Uncompressed, attemptsTTL: o.AttemptsRetention}
	defer r.close()
	if err := r.setup(ctx); err != nil {
		return EventSizeReport{}, err
	}
	policy := domain.SeedPolicy()
	policy.Argon2 = cheapArgon2
	_, stop, err := r.startCommandsWith(policy, func(c *commands.Config) {
		c.AttemptsRetention = o.AttemptsRetention
		c.CoverDelay = time.Millisecond // the snapshots are measured at the end, not a minute later
	})
	if err != nil {
		return EventSizeReport{}, err
	}
	defer stop()
	c, err := r.newClient(4)
	if err != nil {
		return EventSizeReport{}, err
	}
	cr, err := r.startCodeReader()
	if err != nil {
		return EventSizeReport{}, err
	}
	defer cr.stop()

	t := time.Now()
	accs := make([]account, o.Accounts)
	validated := true
	err = parallel(ctx, o.Accounts, o.Concurrency, func(ctx context.Context, i int) error {
		nir := r.nextNIR()
		rep, err := c.expect(ctx, contract.CmdAccountImport, body{RequestID: "authctl-" + randomHex(12), Channel: "backoffice", NIR: nir,
			Email: fmt.Sprintf("prenom.nom%d@exemple.fr", i), PasswordHash: secrets.HashPassword(benchPassword, cheapArgon2),
			EmailValidated: &validated, Affiliation: "active"}, contract.StatusRegistered)
		if err != nil {
			return err
		}
		accs[i] = account{id: rep.AccountID, nir: nir}
		return nil
	})
	if err != nil {
		return EventSizeReport{}, fmt.Errorf("import: %w", err)
	}
	progress("event sizes: %d accounts imported in %s", o.Accounts, time.Since(t).Round(time.Millisecond))
	dir, err := r.streamDir()
	if err != nil {
		return EventSizeReport{}, err
	}
	regBlocks, err := blocks(dir)
	if err != nil {
		return EventSizeReport{}, err
	}
	firstLoginSeq := r.lastSeq(ctx) + 1

	t = time.Now()
	web := func(ctx context.Context, subject, status string, b body) (contract.AnyReply, error) {
		b.RequestID, b.Channel, b.ClientIP, b.UserAgent = "web-"+randomHex(16), "web", "203.0.113.42", eventSizeUA
		return c.expect(ctx, subject, b, status)
	}
	// One worker per account at a time (i and i+Concurrency never share an
	// account while Accounts >= Concurrency): a login's code is the latest.
	err = parallel(ctx, o.Logins, min(o.Concurrency, o.Accounts), func(ctx context.Context, i int) error {
		a := accs[i%o.Accounts]
		ch := cr.channel(a.id)
		drain(ch)
		rep, err := web(ctx, contract.CmdLoginPassword, contract.StatusOTPRequired, body{NIR: a.nir, Password: benchPassword})
		if err != nil {
			return err
		}
		if _, err := web(ctx, contract.CmdLoginOTPSend, contract.StatusOTPSent, body{LoginID: rep.LoginID}); err != nil {
			return err
		}
		code, err := waitCode(ctx, ch)
		if err != nil {
			return err
		}
		_, err = web(ctx, contract.CmdLoginOTPVerify, contract.StatusAuthenticated, body{LoginID: rep.LoginID, Code: code})
		return err
	})
	if err != nil {
		return EventSizeReport{}, fmt.Errorf("logins: %w", err)
	}
	progress("event sizes: %d logins in %s", o.Logins, time.Since(t).Round(time.Millisecond))
	if o.AttemptsRetention > 0 {
		// The coverer writes one snapshot per account that logged in, off
		// the request path: wait for them.
		if err := r.waitSnapshots(ctx, uint64(min(o.Logins, o.Accounts))); err != nil {
			return EventSizeReport{}, err
		}
	}

	rep, err := r.measure(ctx, dir, firstLoginSeq)
	if err != nil {
		return EventSizeReport{}, err
	}
	rep.Accounts, rep.Logins = o.Accounts, o.Logins
	if err := rep.ratios(ctx, dir, regBlocks); err != nil {
		return EventSizeReport{}, err
	}
	return rep, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *runner) lastSeq(ctx context.Context) uint64 {
	st, err := r.js.Stream(ctx, r.store.StreamName())
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.LastSeq
}

// streamDir is the directory of the events stream's message blocks in the
// embedded server's store.
func (r *runner) streamDir() (string, error) {
	if r.srv == nil {
		return "", errors.New("event sizes: needs the embedded nats-server")
	}
	var found string
	want := filepath.Join("streams", r.store.StreamName(), "msgs")
	err := filepath.WalkDir(filepath.Join(r.tmp, "nats"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasSuffix(p, want) {
			found = p
			return filepath.SkipAll
		}
		return err
	})
	if err == nil && found == "" {
		err = fmt.Errorf("no %s under %s", want, r.tmp)
	}
	return found, err
}

// block is one message block file of the stream.
type block struct {
	index    int
	disk     int64  // file size
	original uint64 // bytes before compression (disk for an uncompressed block)
	packed   bool   // compressed
}

// blocks lists the stream's block files by index.
func blocks(dir string) ([]block, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.blk"))
	if err != nil {
		return nil, err
	}
	var out []block
	for _, n := range names {
		idx, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(n), ".blk"))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		blk := block{index: idx, disk: int64(len(b)), original: uint64(len(b))}
		var ci server.CompressionInfo
		if hl, err := ci.UnmarshalMetadata(b); err == nil && hl > 0 {
			blk.original, blk.packed = ci.OriginalSize, true
		}
		out = append(out, blk)
	}
	slices.SortFunc(out, func(a, b block) int { return a.index - b.index })
	return out, nil
}

// measure reads every message of the stream and sums its parts by type.
func (r *runner) measure(ctx context.Context, dir string, firstLoginSeq uint64) (EventSizeReport, error) {
	st, err := r.js.Stream(ctx, r.store.StreamName())
	if err != nil {
		return EventSizeReport{}, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return EventSizeReport{}, err
	}
	rep := EventSizeReport{StreamBytes: info.State.Bytes, Compression: info.Config.Compression.String()}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return rep, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return rep, err
	}
	defer it.Stop()
	type sums struct {
		n                    int
		subj, hdr, body, rec float64
	}
	by := map[string]*sums{}
	var total uint64
	var regRec, loginRec float64
	var regs int
	for seen := uint64(0); seen < info.State.Msgs; seen++ {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := it.Next(jetstream.NextContext(mctx))
		cancel()
		if err != nil {
			return rep, fmt.Errorf("event sizes: message %d of %d: %w", seen+1, info.State.Msgs, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return rep, err
		}
		h := headerBytes(m.Headers())
		rec := 22 + len(m.Subject()) + len(m.Data()) + 8
		if h > 0 {
			rec += 4 + h
		}
		total += uint64(rec)
		typ := m.Headers().Get(eventstore.HeaderEventType)
		s := by[typ]
		if s == nil {
			s = &sums{}
			by[typ] = s
		}
		s.n++
		s.subj += float64(len(m.Subject()))
		s.hdr += float64(h)
		s.body += float64(len(m.Data()))
		s.rec += float64(rec)
		if md.Sequence.Stream >= firstLoginSeq {
			loginRec += float64(rec)
			rep.LoginEvents++
		} else if typ == "account.registered" {
			regRec += float64(rec)
			regs++
		}
	}
	if total != info.State.Bytes {
		return rep, fmt.Errorf("event sizes: records add up to %d bytes, the stream says %d: the record formula is wrong", total, info.State.Bytes)
	}
	for typ, s := range by {
		n := float64(s.n)
		rep.Types = append(rep.Types, TypeSize{Type: typ, Count: s.n, Subject: s.subj / n, Headers: s.hdr / n, Body: s.body / n, Record: s.rec / n})
	}
	slices.SortFunc(rep.Types, func(a, b TypeSize) int { return strings.Compare(a.Type, b.Type) })
	if regs > 0 {
		rep.Registration = regRec / float64(regs)
	}
	if rep.LoginEvents > 0 {
		rep.LoginEvent = loginRec / float64(rep.LoginEvents)
	}
	for _, b := range []struct {
		name       string
		bytes, key *uint64
	}{{eventstore.IndexBucket, &rep.Index, &rep.IndexKeys}, {eventstore.SnapshotBucket, &rep.Snapshots, &rep.SnapshotsKeys}} {
		kst, err := r.js.Stream(ctx, "KV_"+b.name)
		if err != nil {
			return rep, err
		}
		ki, err := kst.Info(ctx)
		if err != nil {
			return rep, err
		}
		*b.bytes, *b.key = ki.State.Bytes, ki.State.Msgs
	}
	return rep, nil
}

// ratios measures the compression of the sealed blocks of each phase:
// registrations are in the blocks before the last one of the import
// (regBlocks), logins in the blocks after it, the last block (still
// written, never compressed) excepted.
func (rep *EventSizeReport) ratios(ctx context.Context, dir string, regBlocks []block) error {
	if len(regBlocks) == 0 {
		return errors.New("event sizes: no block after the import")
	}
	boundary := regBlocks[len(regBlocks)-1].index
	var all []block
	// A full block is compressed by a goroutine of the server after the
	// next one starts: give it a moment to finish.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if all, err = blocks(dir); err != nil {
			return err
		}
		done := rep.Compression != "s2"
		if !done {
			done = true
			for _, b := range all[:len(all)-1] {
				done = done && b.packed
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	var disk, orig [2]float64
	for i, b := range all {
		rep.StreamDisk += b.disk
		phase := -1
		switch {
		case i == len(all)-1 || b.index == boundary:
		case b.index < boundary:
			phase = 0
		default:
			phase = 1
		}
		if phase >= 0 {
			disk[phase] += float64(b.disk)
			orig[phase] += float64(b.original)
			rep.SealedBlocks[phase]++
		}
	}
	ratio := func(i int) float64 {
		if orig[i] == 0 {
			return 0
		}
		return disk[i] / orig[i]
	}
	rep.RegistrationRatio, rep.LoginRatio = ratio(0), ratio(1)
	rep.RegistrationDisk = rep.Registration * rep.RegistrationRatio
	rep.LoginEventDisk = rep.LoginEvent * rep.LoginRatio
	if rep.Logins > 0 {
		rep.PerLogin = float64(rep.LoginEvents) / float64(rep.Logins)
	}
	for i := range rep.Types {
		tp := &rep.Types[i]
		if tp.Type == "account.registered" {
			tp.Disk = tp.Record * rep.RegistrationRatio
		} else {
			tp.Disk = tp.Record * rep.LoginRatio
		}
	}
	return nil
}

// headerBytes is the length of h as NATS encodes it on the wire and the
// file store keeps it.
func headerBytes(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	return n
}

// Table is the report as a Markdown table and a summary.
func (rep EventSizeReport) Table() string {
	var b strings.Builder
	f := func(v float64) string {
		if v == 0 || math.IsNaN(v) {
			return "n/a"
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	fmt.Fprintf(&b, "| event type | count | subject | headers | body | record | on disk (%s) |\n|---|---|---|---|---|---|---|\n", rep.Compression)
	for _, t := range rep.Types {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", t.Type, t.Count, f(t.Subject), f(t.Headers), f(t.Body), f(t.Record), f(t.Disk))
	}
	fmt.Fprintf(&b, "\nper registered account: %s bytes record, %s on disk (ratio %.3f over %d sealed blocks)\n",
		f(rep.Registration), f(rep.RegistrationDisk), rep.RegistrationRatio, rep.SealedBlocks[0])
	fmt.Fprintf(&b, "per login event: %s bytes record, %s on disk (ratio %.3f over %d sealed blocks); %.2f events per login\n",
		f(rep.LoginEvent), f(rep.LoginEventDisk), rep.LoginRatio, rep.SealedBlocks[1], rep.PerLogin)
	fmt.Fprintf(&b, "stream: %d bytes of records, %d bytes of block files now (the last block uncompressed)\n", rep.StreamBytes, rep.StreamDisk)
	fmt.Fprintf(&b, "KV: NIR index %d keys, %d bytes (%s per account); snapshots %d keys, %d bytes (%s per snapshot; the live one per key, older revisions removed)\n",
		rep.IndexKeys, rep.Index, f(float64(rep.Index)/float64(max(1, rep.Accounts))), rep.SnapshotsKeys, rep.Snapshots,
		f(float64(rep.Snapshots)/float64(max(1, rep.SnapshotsKeys))))
	return b.String()
}

// waitSnapshots polls the snapshots bucket until it holds want keys (the
// coverer's, written after the logins), for at most a minute.
func (r *runner) waitSnapshots(ctx context.Context, want uint64) error {
	deadline := time.Now().Add(time.Minute)
	for {
		kst, err := r.js.Stream(ctx, "KV_"+eventstore.SnapshotBucket)
		if err != nil {
			return err
		}
		ki, err := kst.Info(ctx)
		if err != nil {
			return err
		}
		if ki.State.Msgs >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("snapshots: %d keys after a minute, want %d (one per account that logged in)", ki.State.Msgs, want)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}
