package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/eventstore/storetest"
	"github.com/ameli-auth/authsvc/internal/natsutil"
	"github.com/ameli-auth/authsvc/internal/tracing"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

type jsEnv struct {
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store *eventstore.JetStream
}

// newJetStream starts a server of its own, so every test and subtest gets
// empty buckets and an empty stream.
func newJetStream(tb testing.TB) *jsEnv {
	tb.Helper()
	srv := natsutil.RunTestServer(tb)
	nc := natsutil.Connect(tb, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return &jsEnv{srv: srv, nc: nc, js: js, store: store}
}

func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func failed(acc string, n int) events.Envelope {
	return events.Wrap(acc, events.PasswordFailed{Failures: n, At: t0}, t0, events.Metadata{})
}

func TestJetStreamContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots) {
		e := newJetStream(t)
		return e.store, e.store.Index(), e.store.Snapshots()
	})
}

func TestJetStreamShadowsContract(t *testing.T) {
	storetest.RunShadows(t, func(t *testing.T) eventstore.Shadows { return newJetStream(t).store.Shadows() })
}

// A full shadow bucket refuses writes with ErrFull (the commands then
// answer as decided without counting), not with an error that reads as an
// outage.
func TestJetStreamShadowsFull(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.OpenJetStream(ctxFor(t), js, eventstore.JetStreamConfig{ShadowMaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 200)
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("4 KiB bucket took 100 writes of 200 bytes")
		}
		_, err := store.Shadows().Put(ctxFor(t), fmt.Sprintf("k%d", i), value, 0)
		if errors.Is(err, eventstore.ErrFull) {
			return
		}
		if err != nil {
			t.Fatalf("write %d: %v, want nil or ErrFull", i, err)
		}
	}
}

func TestJetStreamStreamAndBuckets(t *testing.T) {
	e := newJetStream(t)
	ctx := ctxFor(t)
	st, err := e.js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != contract.Default.AllEvents() || cfg.Storage != jetstream.FileStorage ||
		!cfg.AllowDirect || cfg.Duplicates != 2*time.Minute || cfg.MaxAge != 0 || cfg.Discard != jetstream.DiscardOld ||
		cfg.MaxMsgs != -1 || cfg.MaxBytes != -1 || cfg.MaxMsgsPerSubject != -1 {
		t.Fatalf("stream config %+v", cfg)
	}
	for _, b := range []string{eventstore.IndexBucket, eventstore.SnapshotBucket} {
		kv, err := e.js.KeyValue(ctx, b)
		if err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
		status, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if status.History() != 1 || status.BackingStore() != "JetStream" {
			t.Fatalf("bucket %s: history %d, store %s", b, status.History(), status.BackingStore())
		}
		if si := status.(*jetstream.KeyValueBucketStatus).StreamInfo(); si.Config.Storage != jetstream.FileStorage {
			t.Fatalf("bucket %s: storage %v, want file", b, si.Config.Storage)
		}
	}
	// Opening again (a restart of the service) is fine.
	if _, err := eventstore.OpenJetStream(ctx, e.js, eventstore.JetStreamConfig{}); err != nil {
		t.Fatalf("second open: %v", err)
	}
	if got := e.store.Subject("01J0000000000000000000000A"); got != "auth.events.01J0000000000000000000000A" {
		t.Fatalf("Subject = %q", got)
	}
	if _, err := eventstore.OpenJetStream(ctx, e.js, eventstore.JetStreamConfig{Prefix: "bad.*", Stream: "X"}); err == nil {
		t.Fatalf("a wildcard prefix was accepted")
	}
}

// TestJetStreamAppendHeaders checks what goes on the wire, in particular
// that expected 0 is sent (nats.go keeps the expectation as a pointer, so
// 0 is not "unset"): without it a first append would not be guarded.
func TestJetStreamAppendHeaders(t *testing.T) {
	e := newJetStream(t)
	ctx := ctxFor(t)
	sub, err := e.nc.SubscribeSync(contract.Default.AllEvents())
	if err != nil {
		t.Fatal(err)
	}
	acc := events.NewID(time.Now())
	env := failed(acc, 1)
	res, err := e.store.Append(ctx, acc, 0, env, "req-1/0")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		jetstream.ExpectedLastSubjSeqHeader: "0",
		jetstream.MsgIDHeader:               "req-1/0",
		eventstore.HeaderEventType:          events.TypePasswordFailed,
		eventstore.HeaderEventVersion:       "1",
		eventstore.HeaderEventID:            env.ID,
	}
	for k, v := range want {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("published header %s = %q, want %q", k, got, v)
		}
	}
	// No trace in ctx: no traceparent (a random one was 70 bytes of every
	// event, for a trace nobody recorded).
	if tp, ok := msg.Header[eventstore.HeaderTraceparent]; ok {
		t.Errorf("traceparent %q on an append without a trace", tp)
	}
	// The stored message keeps the event headers for consumers.
	st, err := e.js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(ctx, res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{eventstore.HeaderEventType, eventstore.HeaderEventVersion, eventstore.HeaderEventID, jetstream.MsgIDHeader} {
		if raw.Header.Get(k) != want[k] {
			t.Errorf("stored header %s = %q, want %q", k, raw.Header.Get(k), want[k])
		}
	}
}

// An append made under a recording span carries that span's trace
// context, so the event's consumers continue the caller's trace
// (internal/tracing); a duplicate of it and a Load are unaffected by the
// header.
func TestJetStreamAppendCarriesTheCallersTrace(t *testing.T) {
	e := newJetStream(t)
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("t").Start(ctxFor(t), "append AUTH_EVENTS")
	defer span.End()
	sc := span.SpanContext()
	acc := events.NewID(time.Now())
	res, err := e.store.Append(ctx, acc, 0, failed(acc, 1), "req-1/0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(ctx, res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if got := raw.Header.Get(eventstore.HeaderTraceparent); got != want {
		t.Fatalf("stored traceparent %q, want the caller's %q", got, want)
	}
	// A retry under another trace is still the same request.
	other := trace.ContextWithSpanContext(ctxFor(t), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{9}, SpanID: trace.SpanID{9}, TraceFlags: trace.FlagsSampled}))
	dup, err := e.store.Append(other, acc, 0, failed(acc, 1), "req-1/0") // as sent the first time
	if err != nil || !dup.Duplicate || dup.Seq != res.Seq {
		t.Fatalf("retry under another trace: %+v, %v", dup, err)
	}
	recs, err := e.store.Load(ctx, acc, 0)
	if err != nil || len(recs) != 1 || recs[0].MsgID != "req-1/0" {
		t.Fatalf("load: %+v, %v", recs, err)
	}
}

// Tracing off: the span does not record but holds the requester's trace
// context (a traceparent, a tracestate). The event keeps no trace of its
// own: no trace header at all, and none of the requester's.
func TestJetStreamAppendKeepsNoTraceOfANonRecordingSpan(t *testing.T) {
	e := newJetStream(t)
	requester := "00-" + strings.Repeat("ab", 16) + "-" + strings.Repeat("cd", 8) + "-01"
	ctx := tracing.Extract(ctxFor(t), nats.Header{"traceparent": {requester}, "tracestate": {"k=" + strings.Repeat("x", 200)}})
	ctx, span := noop.NewTracerProvider().Tracer("t").Start(ctx, "append AUTH_EVENTS")
	defer span.End()
	if span.IsRecording() || !span.SpanContext().IsValid() {
		t.Fatalf("want a non-recording span holding the requester's context: %v", span.SpanContext())
	}
	acc := events.NewID(time.Now())
	res, err := e.store.Append(ctx, acc, 0, failed(acc, 1), "req-1/0")
	if err != nil {
		t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(ctx, res.Seq)
	if err != nil {
		t.Fatal(err)
	}
	// Without a recording span an event carries no trace at all (issue 16:
	// the random traceparent of old cost 70 bytes an event).
	if tp, ts := raw.Header.Get(eventstore.HeaderTraceparent), raw.Header.Get("tracestate"); tp != "" || ts != "" {
		t.Fatalf("stored traceparent %q, tracestate %q: want none, nothing of the requester's", tp, ts)
	}
}

// TestJetStreamConflictCode pins the server's refusal code the mapping
// relies on, and that it stays reachable behind ErrConflict.
func TestJetStreamConflictCode(t *testing.T) {
	e := newJetStream(t)
	ctx := ctxFor(t)
	acc := events.NewID(time.Now())
	if _, err := e.store.Append(ctx, acc, 0, failed(acc, 1), ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.store.Append(ctx, acc, 0, failed(acc, 2), "")
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("err = %v, want API error 10071 behind it", err)
	}
	t.Logf("conflict: %v", err)
}

// TestJetStreamRestart stops and restarts NATS: events, index and
// snapshots are on disk, and appends continue from the right sequence.
func TestJetStreamRestart(t *testing.T) {
	e := newJetStream(t)
	ctx := ctxFor(t)
	acc := events.NewID(time.Now())
	var seqs []uint64
	var last uint64
	for i := 1; i <= 3; i++ {
		res, err := e.store.Append(ctx, acc, last, failed(acc, i), fmt.Sprintf("req-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		last = res.Seq
		seqs = append(seqs, last)
	}
	if err := e.store.Index().Create(ctx, "abcdef", acc); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Snapshots().Put(ctx, acc, seqs[1], []byte("state")); err != nil {
		t.Fatal(err)
	}

	natsutil.RestartTestServer(t, e.srv)
	waitConnected(t, e.nc)

	if got, err := e.store.LastSeq(ctx, acc); err != nil || got != last {
		t.Fatalf("LastSeq after restart = %d, %v; want %d", got, err, last)
	}
	recs, err := e.store.Load(ctx, acc, 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Load after restart: %d records, %v; want 3", len(recs), err)
	}
	for i, r := range recs {
		if r.Seq != seqs[i] || r.Envelope.Data.(events.PasswordFailed).Failures != i+1 {
			t.Fatalf("record %d after restart: %+v", i, r)
		}
	}
	if _, err := e.store.Append(ctx, acc, seqs[1], failed(acc, 4), ""); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale append after restart: %v, want ErrConflict", err)
	}
	res, err := e.store.Append(ctx, acc, last, failed(acc, 4), "req-4")
	if err != nil || res.Duplicate || res.Seq <= last {
		t.Fatalf("append after restart: %+v, %v", res, err)
	}
	// Deduplication survives the restart too (within the window).
	if dup, err := e.store.Append(ctx, acc, res.Seq, failed(acc, 3), "req-3"); err != nil || !dup.Duplicate || dup.Seq != seqs[2] {
		t.Fatalf("retry of req-3 after restart: %+v, %v; want duplicate of %d", dup, err, seqs[2])
	}
	if got, err := e.store.Index().Get(ctx, "abcdef"); err != nil || got != acc {
		t.Fatalf("index after restart: %q, %v", got, err)
	}
	if seq, st, err := e.store.Snapshots().Get(ctx, acc); err != nil || seq != seqs[1] || string(st) != "state" {
		t.Fatalf("snapshot after restart: %d, %q, %v", seq, st, err)
	}
}

func waitConnected(t *testing.T, nc *nats.Conn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatalf("client did not reconnect: %v", nc.Status())
		}
		time.Sleep(10 * time.Millisecond) // polling, until the deadline above
	}
}

// fill stores n PasswordFailed events (Failures 1..n) for acc, with an event
// of another account after every tenth so the filter has work to do. It
// publishes asynchronously, straight to the stream: it sets the scene for
// Load, Append is tested elsewhere.
func fill(tb testing.TB, e *jsEnv, acc string, n int) {
	tb.Helper()
	other := events.NewID(time.Now()) + "X"
	for i := 1; i <= n; i++ {
		for _, m := range []struct {
			acc string
			env events.Envelope
		}{{acc, failed(acc, i)}, {other, failed(other, i)}} {
			if m.acc == other && i%10 != 0 {
				continue
			}
			data, err := events.Marshal(m.env)
			if err != nil {
				tb.Fatal(err)
			}
			// With its id header, as Append writes it: the readers skip a
			// message without one (events.ErrNotAppended).
			msg := nats.NewMsg(e.store.Subject(m.acc))
			msg.Header.Set(eventstore.HeaderEventID, m.env.ID)
			msg.Data = data
			if _, err := e.js.PublishMsgAsync(msg); err != nil {
				tb.Fatal(err)
			}
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		tb.Fatalf("async publish did not complete")
	}
}

func TestJetStreamLoad10k(t *testing.T) {
	e := newJetStream(t)
	ctx := ctxFor(t)
	acc := events.NewID(time.Now())
	const n = 10_000
	fill(t, e, acc, n)

	start := time.Now()
	recs, err := e.store.Load(ctx, acc, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Load of %d events: %s", len(recs), time.Since(start))
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Fatalf("record %d: sequence %d after %d", i, r.Seq, recs[i-1].Seq)
		}
		if f := r.Envelope.Data.(events.PasswordFailed).Failures; f != i+1 {
			t.Fatalf("record %d: Failures %d, want %d", i, f, i+1)
		}
	}
	tail, err := e.store.Load(ctx, acc, recs[n/2-1].Seq)
	if err != nil || len(tail) != n/2 || tail[0].Seq != recs[n/2].Seq {
		t.Fatalf("Load of the second half: %d records, %v", len(tail), err)
	}
	// Appends continue after a long history.
	if _, err := e.store.Append(ctx, acc, recs[n-1].Seq, failed(acc, n+1), ""); err != nil {
		t.Fatal(err)
	}
	// Loads leave no consumer behind.
	st, err := e.js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().State.Consumers; c != 0 {
		t.Fatalf("%d consumers left on the stream after Load", c)
	}
}

// TestJetStreamLoadCancelled: a Load with a cancelled context fails with
// context.Canceled and leaves no consumer (the cancellation in the middle of
// a read is TestScanCancelledMidwayCleansUp).
func TestJetStreamLoadCancelled(t *testing.T) {
	e := newJetStream(t)
	acc := events.NewID(time.Now())
	fill(t, e, acc, 2000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.store.Load(ctx, acc, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
	info, err := e.js.Stream(ctxFor(t), contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.CachedInfo().State.Consumers; c != 0 {
		t.Fatalf("%d consumers left after a cancelled Load", c)
	}
}

func BenchmarkLoad10k(b *testing.B) {
	e := newJetStream(b)
	ctx := context.Background()
	acc := events.NewID(time.Now())
	fill(b, e, acc, 10_000)
	b.ResetTimer()
	for b.Loop() {
		recs, err := e.store.Load(ctx, acc, 0)
		if err != nil || len(recs) != 10_000 {
			b.Fatalf("%d records, %v", len(recs), err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	e := newJetStream(b)
	ctx := context.Background()
	acc := events.NewID(time.Now())
	var last uint64
	i := 0
	for b.Loop() {
		i++
		res, err := e.store.Append(ctx, acc, last, failed(acc, i), fmt.Sprintf("req-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		last = res.Seq
	}
}

// The audit trail cannot be rewritten: AUTH_EVENTS denies message deletes
// and purges, to every user (the stream refuses, not a permission), and a
// stream made before (an older version of the service, which allowed both)
// gets both flags when the service opens it again. Once on, the server
// refuses to turn them off.
func TestEventsStreamDeniesDeleteAndPurge(t *testing.T) {
	srv := natsutil.RunTestServer(t)
	js, err := jetstream.New(natsutil.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	// The stream as an older version created it.
	old, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: contract.EventsStream, Subjects: []string{contract.Default.AllEvents()},
		Storage: jetstream.FileStorage, MaxMsgs: -1, MaxBytes: -1, MaxMsgsPerSubject: -1, Duplicates: 2 * time.Minute, AllowDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := old.CachedInfo().Config; c.DenyDelete || c.DenyPurge {
		t.Fatalf("the old stream already denies: %+v", c)
	}
	store, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; !c.DenyDelete || !c.DenyPurge || c.AllowRollup {
		t.Fatalf("after the update: deny delete %v, deny purge %v, allow rollup %v", c.DenyDelete, c.DenyPurge, c.AllowRollup)
	}
	acc := events.NewID(t0)
	res, err := store.Append(ctx, acc, 0, failed(acc, 1), "")
	if err != nil {
		t.Fatal(err)
	}

	// The server's codes (nats-server 2.15 JSStreamMsgDeleteFailedF,
	// JSStreamPurgeFailedF) and the reasons it gives.
	const msgDeleteFailed, purgeFailed = 10057, 10110
	// nats.go flattens the API error of a message delete into its text.
	wantDelete := fmt.Sprintf("err_code=%d description=message delete not permitted", msgDeleteFailed)
	if err := st.DeleteMsg(ctx, res.Seq); !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) || !strings.Contains(err.Error(), wantDelete) {
		t.Errorf("delete message: %v, want %s", err, wantDelete)
	}
	if err := st.SecureDeleteMsg(ctx, res.Seq); !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) || !strings.Contains(err.Error(), wantDelete) {
		t.Errorf("secure delete message: %v, want %s", err, wantDelete)
	}
	var apiErr *jetstream.APIError
	for _, opts := range [][]jetstream.StreamPurgeOpt{nil, {jetstream.WithPurgeSubject(store.Subject(acc))}, {jetstream.WithPurgeSequence(res.Seq + 1)}} {
		err = st.Purge(ctx, opts...)
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != purgeFailed || apiErr.Description != "stream purge not permitted" {
			t.Errorf("purge %v: %v, want stream purge not permitted", opts, err)
		}
	}
	// A roll-up header would purge the subject: refused too.
	roll := nats.NewMsg(store.Subject(acc))
	roll.Data = []byte("{}")
	roll.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if _, err := js.PublishMsg(ctx, roll); err == nil || !strings.Contains(err.Error(), "rollup not permitted") {
		t.Errorf("a roll-up publish: %v, want rollup not permitted", err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream after the attempts: %v msgs, err %v; want the 1 event", info.State.Msgs, err)
	}
	// The flags cannot be taken back, not even by an update.
	c := st.CachedInfo().Config
	c.DenyDelete, c.DenyPurge = false, false
	if _, err := js.UpdateStream(ctx, c); err == nil {
		t.Fatal("an update turned deny delete and deny purge off")
	}
	// Opening again changes nothing and keeps them.
	if _, err := eventstore.OpenJetStream(ctx, js, eventstore.JetStreamConfig{}); err != nil {
		t.Fatal(err)
	}
}
