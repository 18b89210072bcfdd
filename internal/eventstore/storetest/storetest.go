// Package storetest is the contract every eventstore implementation must
// meet. Each implementation's tests call Run with a constructor; newStore is
// called once per subtest and must return an empty, isolated store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// NewStoreFunc returns a fresh store and its index and snapshots.
type NewStoreFunc func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots)

// t0 has no monotonic reading and is in UTC, so decoded values compare equal.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// Run runs the contract suite on a store of one stream.
func Run(t *testing.T, newStore func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots)) {
	t.Helper()
	RunPartitioned(t, 1, newStore)
}

// RunPartitioned runs the contract suite on a store of n partitions
// (eventstore.Partitioned): sequences are a stream's, so the interleaving
// tests use accounts of one partition, and accounts of different
// partitions keep their own sequences.
func RunPartitioned(t *testing.T, n int, newStore func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore NewStoreFunc)
	}{
		{"AppendToNewAccount", testAppendToNewAccount},
		{"StaleExpectedConflicts", testStaleExpectedConflicts},
		{"ZeroExpectedOnExistingAccountConflicts", testZeroExpectedOnExistingAccount},
		{"InterleavedAccounts", func(t *testing.T, newStore NewStoreFunc) { testInterleavedAccounts(t, newStore, n) }},
		{"LoadAfter", testLoadAfter},
		{"LastSeq", testLastSeq},
		{"DuplicateMsgID", testDuplicateMsgID},
		{"ParallelAppendsNoLostUpdate", testParallelAppends},
		{"RejectsBadAccountID", testRejectsBadAccountID},
		{"RejectsEnvelopeOfOtherAccount", testRejectsEnvelopeOfOtherAccount},
		{"Index", testIndex},
		{"IndexParallelCreate", testIndexParallelCreate},
		{"Snapshots", testSnapshots},
	}
	if n > 1 {
		tests = append(tests, struct {
			name string
			fn   func(t *testing.T, newStore NewStoreFunc)
		}{"AccountsOfOtherPartitions", func(t *testing.T, newStore NewStoreFunc) { testOtherPartitions(t, newStore, n) }})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newAccount() string { return events.NewID(time.Now()) }

func failed(acc string, n int) events.Envelope {
	return events.Wrap(acc, events.PasswordFailed{Failures: n, At: t0}, t0, events.Metadata{})
}

func mustAppend(t *testing.T, ctx context.Context, s eventstore.Store, acc string, expected uint64, env events.Envelope, msgID string) uint64 {
	t.Helper()
	res, err := s.Append(ctx, acc, expected, env, msgID)
	if err != nil {
		t.Fatalf("append %s expected %d: %v", acc, expected, err)
	}
	if res.Duplicate {
		t.Fatalf("append %s expected %d: unexpected duplicate (seq %d)", acc, expected, res.Seq)
	}
	if res.Seq <= expected {
		t.Fatalf("append %s expected %d: got seq %d, want above expected", acc, expected, res.Seq)
	}
	return res.Seq
}

func mustLoad(t *testing.T, ctx context.Context, s eventstore.Store, acc string, after uint64) []eventstore.Record {
	t.Helper()
	recs, err := s.Load(ctx, acc, after)
	if err != nil {
		t.Fatalf("load %s after %d: %v", acc, after, err)
	}
	return recs
}

func mustLastSeq(t *testing.T, ctx context.Context, s eventstore.Store, acc string) uint64 {
	t.Helper()
	seq, err := s.LastSeq(ctx, acc)
	if err != nil {
		t.Fatalf("last seq %s: %v", acc, err)
	}
	return seq
}

func wantConflict(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("%s: got error %v, want ErrConflict", what, err)
	}
}

func testAppendToNewAccount(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	seq := mustAppend(t, ctx, s, acc, 0, failed(acc, 1), "")
	if got := mustLastSeq(t, ctx, s, acc); got != seq {
		t.Fatalf("LastSeq = %d, want %d", got, seq)
	}
	recs := mustLoad(t, ctx, s, acc, 0)
	if len(recs) != 1 || recs[0].Seq != seq {
		t.Fatalf("Load = %+v, want one record at seq %d", recs, seq)
	}
}

func testStaleExpectedConflicts(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	s1 := mustAppend(t, ctx, s, acc, 0, failed(acc, 1), "")
	s2 := mustAppend(t, ctx, s, acc, s1, failed(acc, 2), "")
	_, err := s.Append(ctx, acc, s1, failed(acc, 3), "")
	wantConflict(t, err, "append with stale expected")
	_, err = s.Append(ctx, acc, s2+100, failed(acc, 3), "")
	wantConflict(t, err, "append with expected beyond the last sequence")
	if n := len(mustLoad(t, ctx, s, acc, 0)); n != 2 {
		t.Fatalf("after conflicts the account has %d events, want 2", n)
	}
	// The caller's retry after reloading succeeds.
	mustAppend(t, ctx, s, acc, s2, failed(acc, 3), "")
}

func testZeroExpectedOnExistingAccount(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	mustAppend(t, ctx, s, acc, 0, failed(acc, 1), "")
	_, err := s.Append(ctx, acc, 0, failed(acc, 1), "")
	wantConflict(t, err, "expected 0 on an account with events")
	// A message id does not bypass the check.
	_, err = s.Append(ctx, acc, 0, failed(acc, 1), "other-request")
	wantConflict(t, err, "expected 0 with a new message id")
	if n := len(mustLoad(t, ctx, s, acc, 0)); n != 1 {
		t.Fatalf("account has %d events, want 1", n)
	}
}

// newAccountBeside returns a new account in a's partition among n.
func newAccountBeside(a string, n int) string {
	for {
		if b := newAccount(); contract.Partition(b, n) == contract.Partition(a, n) {
			return b
		}
	}
}

// newAccountApart returns a new account in another partition than a's
// among n > 1 (RunPartitioned runs it only then).
func newAccountApart(a string, n int) string {
	for {
		if b := newAccount(); contract.Partition(b, n) != contract.Partition(a, n) {
			return b
		}
	}
}

// testOtherPartitions: accounts of two partitions each start at their
// stream's sequences and do not see each other's events.
func testOtherPartitions(t *testing.T, newStore NewStoreFunc, n int) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	a := newAccount()
	b := newAccountApart(a, n)
	a1 := mustAppend(t, ctx, s, a, 0, failed(a, 1), "")
	b1 := mustAppend(t, ctx, s, b, 0, failed(b, 1), "")
	if a1 != 1 || b1 != 1 {
		t.Fatalf("first events of two partitions at %d and %d, want 1 and 1", a1, b1)
	}
	b2 := mustAppend(t, ctx, s, b, b1, failed(b, 2), "")
	a2 := mustAppend(t, ctx, s, a, a1, failed(a, 2), "")
	checkSeqs(t, mustLoad(t, ctx, s, a, 0), a, a1, a2)
	checkSeqs(t, mustLoad(t, ctx, s, b, 0), b, b1, b2)
}

func testInterleavedAccounts(t *testing.T, newStore NewStoreFunc, n int) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	a := newAccount()
	b := newAccountBeside(a, n)
	a1 := mustAppend(t, ctx, s, a, 0, failed(a, 1), "")
	b1 := mustAppend(t, ctx, s, b, 0, failed(b, 1), "")
	b2 := mustAppend(t, ctx, s, b, b1, failed(b, 2), "")
	// A's expected is its own last sequence, though B's events came after it.
	a2 := mustAppend(t, ctx, s, a, a1, failed(a, 2), "")
	b3 := mustAppend(t, ctx, s, b, b2, failed(b, 3), "")
	if !(a1 < b1 && b1 < b2 && b2 < a2 && a2 < b3) {
		t.Fatalf("sequences not global and increasing: a1=%d b1=%d b2=%d a2=%d b3=%d", a1, b1, b2, a2, b3)
	}
	// B's sequence is not A's expected.
	_, err := s.Append(ctx, a, b3, failed(a, 3), "")
	wantConflict(t, err, "A appended with B's last sequence")
	if got := mustLastSeq(t, ctx, s, a); got != a2 {
		t.Fatalf("A LastSeq = %d, want %d", got, a2)
	}
	if got := mustLastSeq(t, ctx, s, b); got != b3 {
		t.Fatalf("B LastSeq = %d, want %d", got, b3)
	}
	checkSeqs(t, mustLoad(t, ctx, s, a, 0), a, a1, a2)
	checkSeqs(t, mustLoad(t, ctx, s, b, 0), b, b1, b2, b3)
	checkSeqs(t, mustLoad(t, ctx, s, a, a1), a, a2)
	// After is a stream sequence: B's in-between sequence works as a cursor for A.
	checkSeqs(t, mustLoad(t, ctx, s, a, b1), a, a2)
}

func checkSeqs(t *testing.T, recs []eventstore.Record, acc string, want ...uint64) {
	t.Helper()
	got := make([]uint64, len(recs))
	for i, r := range recs {
		got[i] = r.Seq
		if r.Envelope.AccountID != acc {
			t.Fatalf("record %d is of account %s, want %s", r.Seq, r.Envelope.AccountID, acc)
		}
	}
	if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("sequences %v, want %v", got, want)
	}
}

func testLoadAfter(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	md := events.Metadata{CausationID: "cause-1", CorrelationID: "corr-1", Channel: "web", ClientIP: "192.0.2.7", UserAgent: "ua/1.0"}
	evs := []events.Event{
		events.PasswordFailed{Failures: 1, At: t0},
		events.PasswordFailed{Failures: 2, BlockedUntil: t0.Add(15 * time.Minute), NoticeTo: "sealed:abc", At: t0.Add(time.Second)},
		events.PasswordVerified{LoginID: "login-1", At: t0.Add(2 * time.Second)},
		events.OTPIssued{LoginID: "login-1", CodeHash: "h", CodeSealed: "cs", ToSealed: "ts", RequestsLastHour: 1, IssuedAt: t0.Add(3 * time.Second), ExpiresAt: t0.Add(13 * time.Minute)},
		events.LoginSucceeded{LoginID: "login-1", Method: events.MethodOTP, Channel: "web", SessionHash: "sh", SessionExpiresAt: t0.Add(time.Hour), At: t0.Add(4 * time.Second)},
	}
	var envs []events.Envelope
	var seqs []uint64
	var last uint64
	for i, e := range evs {
		env := events.Wrap(acc, e, t0.Add(time.Duration(i)*time.Second), md)
		last = mustAppend(t, ctx, s, acc, last, env, "")
		envs = append(envs, env)
		seqs = append(seqs, last)
	}
	for _, after := range []int{0, 2, 4} {
		var from uint64
		if after > 0 {
			from = seqs[after-1]
		}
		recs := mustLoad(t, ctx, s, acc, from)
		if len(recs) != len(evs)-after {
			t.Fatalf("Load after %d: %d records, want %d", from, len(recs), len(evs)-after)
		}
		for i, r := range recs {
			want := envs[after+i]
			if r.Seq != seqs[after+i] {
				t.Fatalf("Load after %d: record %d seq %d, want %d", from, i, r.Seq, seqs[after+i])
			}
			compareEnvelope(t, r.Envelope, want)
		}
	}
	if recs := mustLoad(t, ctx, s, acc, last); len(recs) != 0 {
		t.Fatalf("Load after the last sequence: %d records, want none", len(recs))
	}
	if recs := mustLoad(t, ctx, s, newAccount(), 0); len(recs) != 0 {
		t.Fatalf("Load of an unknown account: %d records, want none", len(recs))
	}
	// The decoded data is the Go value, not a pointer or a map.
	recs := mustLoad(t, ctx, s, acc, seqs[0])
	pf, ok := recs[0].Envelope.Data.(events.PasswordFailed)
	if !ok {
		t.Fatalf("data is %T, want events.PasswordFailed", recs[0].Envelope.Data)
	}
	if pf.Failures != 2 || !pf.BlockedUntil.Equal(t0.Add(15*time.Minute)) || pf.NoticeTo != "sealed:abc" || !pf.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("decoded PasswordFailed = %+v", pf)
	}
}

func compareEnvelope(t *testing.T, got, want events.Envelope) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Version != want.Version || got.AccountID != want.AccountID ||
		!got.OccurredAt.Equal(want.OccurredAt) || got.CausationID != want.CausationID || got.CorrelationID != want.CorrelationID ||
		got.Channel != want.Channel || got.ClientIP != want.ClientIP || got.UserAgent != want.UserAgent {
		t.Fatalf("envelope\n got  %+v\n want %+v", got, want)
	}
	if reflect.TypeOf(got.Data) != reflect.TypeOf(want.Data) {
		t.Fatalf("event %s data type %T, want %T", want.ID, got.Data, want.Data)
	}
	if !reflect.DeepEqual(got.Data, want.Data) {
		t.Fatalf("event %s data\n got  %+v\n want %+v", want.ID, got.Data, want.Data)
	}
}

func testLastSeq(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	if got := mustLastSeq(t, ctx, s, acc); got != 0 {
		t.Fatalf("LastSeq of a new account = %d, want 0", got)
	}
	var last uint64
	for i := 1; i <= 3; i++ {
		last = mustAppend(t, ctx, s, acc, last, failed(acc, i), "")
		if got := mustLastSeq(t, ctx, s, acc); got != last {
			t.Fatalf("LastSeq after %d appends = %d, want %d", i, got, last)
		}
	}
}

func testDuplicateMsgID(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	first := failed(acc, 1)
	s1 := mustAppend(t, ctx, s, acc, 0, first, "req-1/0")

	check := func(what string, expected uint64, wantSeq uint64, wantCount int) {
		t.Helper()
		res, err := s.Append(ctx, acc, expected, failed(acc, 1), "req-1/0")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !res.Duplicate || res.Seq != wantSeq {
			t.Fatalf("%s: got %+v, want duplicate of seq %d", what, res, wantSeq)
		}
		recs := mustLoad(t, ctx, s, acc, 0)
		if len(recs) != wantCount {
			t.Fatalf("%s: account has %d events, want %d", what, len(recs), wantCount)
		}
		if recs[0].Envelope.ID != first.ID {
			t.Fatalf("%s: first event is %s, want the original %s", what, recs[0].Envelope.ID, first.ID)
		}
	}
	// A retry after reloading: the expected sequence is current.
	check("retry with current expected", s1, s1, 1)
	// A retry of the very same request (say its ack was lost): same stale
	// expected sequence. The append did land, so it is a duplicate, not a
	// conflict.
	check("retry with the original expected", 0, s1, 1)

	s2 := mustAppend(t, ctx, s, acc, s1, failed(acc, 2), "req-2/0")
	check("retry after a later event, current expected", s2, s1, 2)
	check("retry after a later event, original expected", 0, s1, 2)
	if got := mustLastSeq(t, ctx, s, acc); got != s2 {
		t.Fatalf("LastSeq = %d, want %d", got, s2)
	}
	// Load gives each event's message id back: the commands service finds
	// a retried request's recorded fact by it.
	recs := mustLoad(t, ctx, s, acc, 0)
	if recs[0].MsgID != "req-1/0" || recs[1].MsgID != "req-2/0" {
		t.Fatalf("message ids loaded: %q, %q; want req-1/0, req-2/0", recs[0].MsgID, recs[1].MsgID)
	}
	mustAppend(t, ctx, s, acc, s2, failed(acc, 3), "")
	if recs := mustLoad(t, ctx, s, acc, s2); recs[0].MsgID != "" {
		t.Fatalf("an event appended without a message id loads with %q", recs[0].MsgID)
	}
	// A stale expected with a message id never stored is still a conflict.
	_, err := s.Append(ctx, acc, s1, failed(acc, 4), "req-3/0")
	wantConflict(t, err, "stale expected with a new message id")
}

func testParallelAppends(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	acc := newAccount()
	const workers = 20
	var conflicts sync.Map
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			// One request per worker: its message id is stable across retries,
			// as a request's idempotency key is.
			msgID := fmt.Sprintf("worker-%d", w)
			for attempt := 0; ; attempt++ {
				if attempt > 10*workers {
					errs <- fmt.Errorf("worker %d: no append after %d attempts", w, attempt)
					return
				}
				recs, err := s.Load(ctx, acc, 0)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				var expected uint64
				if len(recs) > 0 {
					expected = recs[len(recs)-1].Seq
				}
				// A counter: the next value depends on every earlier append,
				// so a lost update shows as a repeated value.
				res, err := s.Append(ctx, acc, expected, failed(acc, len(recs)+1), msgID)
				if errors.Is(err, eventstore.ErrConflict) {
					conflicts.Store(w, attempt+1)
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				if res.Duplicate {
					errs <- fmt.Errorf("worker %d: duplicate %+v though nothing was appended with %s", w, res, msgID)
				}
				return
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	recs := mustLoad(t, ctx, s, acc, 0)
	if len(recs) != workers {
		t.Fatalf("%d events, want %d", len(recs), workers)
	}
	for i, r := range recs {
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Fatalf("sequence %d after %d: not increasing", r.Seq, recs[i-1].Seq)
		}
		pf, ok := r.Envelope.Data.(events.PasswordFailed)
		if !ok || pf.Failures != i+1 {
			t.Fatalf("event %d: %+v, want PasswordFailed with Failures %d (lost update)", i, r.Envelope.Data, i+1)
		}
	}
	n := 0
	conflicts.Range(func(_, _ any) bool { n++; return true })
	if n == 0 {
		t.Logf("no worker met a conflict: the test did not exercise concurrency")
	}
}

func testRejectsBadAccountID(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, snaps := newStore(t)
	for _, bad := range []string{"", "a.b", "acc.>", "*", ">", "a b", "a\tb", "a\nb"} {
		env := failed(bad, 1)
		if _, err := s.Append(ctx, bad, 0, env, ""); err == nil || errors.Is(err, eventstore.ErrConflict) {
			t.Errorf("Append(%q): err %v, want an invalid account id error", bad, err)
		}
		if _, err := s.Load(ctx, bad, 0); err == nil {
			t.Errorf("Load(%q): no error", bad)
		}
		if _, err := s.LastSeq(ctx, bad); err == nil {
			t.Errorf("LastSeq(%q): no error", bad)
		}
		if err := snaps.Put(ctx, bad, 1, []byte("x")); err == nil {
			t.Errorf("Snapshots.Put(%q): no error", bad)
		}
	}
}

func testRejectsEnvelopeOfOtherAccount(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	s, _, _ := newStore(t)
	a, b := newAccount(), newAccount()
	if _, err := s.Append(ctx, a, 0, failed(b, 1), ""); err == nil {
		t.Fatalf("appending B's event to A: no error")
	}
	if n := len(mustLoad(t, ctx, s, a, 0)); n != 0 {
		t.Fatalf("A has %d events, want 0", n)
	}
}

func testIndex(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	_, idx, _ := newStore(t)
	key := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	acc := newAccount()
	if _, err := idx.Get(ctx, key); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if err := idx.Create(ctx, key, acc); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := idx.Get(ctx, key)
	if err != nil || got != acc {
		t.Fatalf("Get = %q, %v; want %q", got, err, acc)
	}
	if err := idx.Create(ctx, key, newAccount()); !errors.Is(err, eventstore.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if got, _ := idx.Get(ctx, key); got != acc {
		t.Fatalf("after a refused Create, Get = %q, want the first account %q", got, acc)
	}
}

func testIndexParallelCreate(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	_, idx, _ := newStore(t)
	key := "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
	const n = 20
	accs := make([]string, n)
	errs := make([]error, n)
	for i := range accs {
		accs[i] = newAccount() + fmt.Sprint(i) // distinct even within one millisecond
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = idx.Create(ctx, key, accs[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("creates %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, eventstore.ErrExists):
			t.Fatalf("create %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no create succeeded")
	}
	if got, err := idx.Get(ctx, key); err != nil || got != accs[winner] {
		t.Fatalf("Get = %q, %v; want the winner %q", got, err, accs[winner])
	}
}

func testSnapshots(t *testing.T, newStore NewStoreFunc) {
	ctx := testContext(t)
	_, _, snaps := newStore(t)
	acc := newAccount()
	if _, _, err := snaps.Get(ctx, acc); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get of a missing snapshot: %v, want ErrNotFound", err)
	}
	state := []byte(`{"failures":2}`)
	if err := snaps.Put(ctx, acc, 42, state); err != nil {
		t.Fatalf("Put: %v", err)
	}
	state[0] = 'X' // the store must have kept its own copy
	seq, got, err := snaps.Get(ctx, acc)
	if err != nil || seq != 42 || string(got) != `{"failures":2}` {
		t.Fatalf("Get = %d, %q, %v; want 42, the state", seq, got, err)
	}
	big := uint64(1)<<63 + 5 // all 8 bytes of the sequence are kept
	if err := snaps.Put(ctx, acc, big, []byte("v2")); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if seq, got, err := snaps.Get(ctx, acc); err != nil || seq != big || string(got) != "v2" {
		t.Fatalf("Get after overwrite = %d, %q, %v; want %d, v2", seq, got, err, big)
	}
	// A snapshot never goes back: an older one, written late, is dropped
	// (with a retention, the newer one may be the only record of an
	// expired attempt's effect).
	if err := snaps.Put(ctx, acc, 7, []byte("older")); err != nil {
		t.Fatalf("Put of an older snapshot: %v", err)
	}
	if seq, got, err := snaps.Get(ctx, acc); err != nil || seq != big || string(got) != "v2" {
		t.Fatalf("Get after an older Put = %d, %q, %v; want %d, v2", seq, got, err, big)
	}
	acc2 := newAccount()
	if err := snaps.Put(ctx, acc2, 7, nil); err != nil {
		t.Fatalf("Put of an empty state: %v", err)
	}
	if seq, got, err := snaps.Get(ctx, acc2); err != nil || seq != 7 || len(got) != 0 {
		t.Fatalf("Get of an empty state = %d, %q, %v; want 7, empty", seq, got, err)
	}
	// Another account's snapshot is separate.
	if _, _, err := snaps.Get(ctx, newAccount()); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("Get of another account: %v, want ErrNotFound", err)
	}
}
