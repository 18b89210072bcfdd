package commands_test

// Fault tests on a 3-node cluster (issue 14, item 3): the commands service
// under parallel load while the stream leader is killed, a node is cut off
// from the others, and the whole cluster restarts. After each, nothing
// acknowledged is lost, nothing is recorded twice, each account's history
// is in order, and the lockout is exact across a leader change.
//
// The default runs are short (make test); AUTH_LONG_TESTS=1 makes them
// longer and repeats the faults (make test-cluster-long, docs/durability.md).

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// longClusterTests: AUTH_LONG_TESTS=1 runs the heavier variants.
var longClusterTests = os.Getenv("AUTH_LONG_TESTS") == "1"

// faultRounds is how many times each fault is repeated in one test.
func faultRounds() int {
	if longClusterTests {
		return 3
	}
	return 1
}

// progressStep is how many more acknowledged commands each phase waits for.
func progressStep() int64 {
	if longClusterTests {
		return 200
	}
	return 15
}

// Instances 0 and 1 on nodes 0 and 1, the front-end on node 2.
const frontEndNode = 2

func newClusterHarness(t *testing.T, configure func(*commands.Config)) *harness {
	t.Helper()
	return &harness{commandstest.StartCluster(t, commandstest.Options{Instances: 2, Policy: testPolicy(), Configure: configure, FrontEnd: frontEndNode})}
}

// ledger is what the load's clients were told.
type ledger struct {
	mu    sync.Mutex
	acked map[string]string // request_id -> account id, for every reply that recorded
	acks  atomic.Int64
	sent  atomic.Int64
	unavl atomic.Int64 // `unavailable` replies (each retried with the same body)
	other map[string]int
}

type loadAccount struct{ id, nir string }

// clusterAccounts registers n accounts (NIRs from the test NIR generator).
func clusterAccounts(t *testing.T, h *harness, n int) []loadAccount {
	t.Helper()
	var out []loadAccount
	for i := range n {
		nir := testNIR(i)
		out = append(out, loadAccount{id: h.Register(nir, fmt.Sprintf("u%d@example.fr", i), password), nir: nir})
	}
	return out
}

// startLoad runs workers that log in with the right password (each success
// records a login.password_verified whose causation id is the request_id)
// on the accounts in turn, until the returned stop is called. A request
// answered `unavailable` is retried with the very same body, as the
// front-end does, so a retry of a request whose event did land meets the
// deduplication.
func startLoad(t *testing.T, h *harness, accounts []loadAccount, workers int) (*ledger, func()) {
	l := &ledger{acked: map[string]string{}, other: map[string]int{}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				acc := accounts[(w+n)%len(accounts)]
				reqID := fmt.Sprintf("w%d-%d", w, n)
				body := obj{"nir": acc.nir, "password": password, "request_id": reqID}
				for attempt := 0; ; attempt++ {
					l.sent.Add(1)
					rep := h.ReqAsync(contract.CmdLoginPassword, body)
					if rep.OK && rep.Status == contract.StatusOTPRequired {
						l.mu.Lock()
						l.acked[reqID] = acc.id
						l.mu.Unlock()
						l.acks.Add(1)
						break
					}
					code := codeOf(rep)
					if code != domain.CodeUnavailable {
						l.mu.Lock()
						l.other[code]++
						l.mu.Unlock()
						break
					}
					l.unavl.Add(1)
					select {
					case <-done:
						// Stopped while unsure: the request may or may not
						// have been recorded, and is not counted as acked.
						return
					case <-time.After(time.Duration(min(attempt+1, 10)) * 20 * time.Millisecond): // retry backoff, as a front-end's
					}
				}
			}
		})
	}
	return l, sync.OnceFunc(func() { close(done); wg.Wait() })
}

// waitProgress waits until the load has more acknowledged commands than
// now by progressStep: the cluster serves.
func waitProgress(t *testing.T, l *ledger, what string) {
	t.Helper()
	target := l.acks.Load() + progressStep()
	testwait.For(t, fmt.Sprintf("%d acknowledged commands (%s)", target, what), 60*time.Second, func() bool { return l.acks.Load() >= target })
}

// settled waits until every replica holds the whole stream, so reads (a
// direct get, a consumer on any replica) see every event.
func settled(t *testing.T, h *harness) {
	t.Helper()
	h.Cluster.WaitReady()
	h.Cluster.WaitStream(contract.EventsStream)
	st, err := h.JS.Stream(context.Background(), contract.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.Cluster.WaitApplied(contract.EventsStream, info.State.LastSeq)
}

// checkLedger: every acknowledged command has its event, exactly once;
// no event id or message id appears twice in the stream; each account's
// events are in increasing sequence.
func checkLedger(t *testing.T, h *harness, l *ledger, accounts []loadAccount) {
	t.Helper()
	settled(t, h)
	eventIDs := map[string]uint64{}
	msgIDs := map[string]uint64{}
	verified := map[string]int{} // causation id -> login.password_verified events
	total := 0
	for _, acc := range accounts {
		recs, err := h.Store.Load(context.Background(), acc.id, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			total++
			if i > 0 && r.Seq <= recs[i-1].Seq {
				t.Errorf("account %s: sequence %d after %d", acc.id, r.Seq, recs[i-1].Seq)
			}
			if prev, dup := eventIDs[r.Envelope.ID]; dup {
				t.Errorf("event %s stored twice: sequences %d and %d", r.Envelope.ID, prev, r.Seq)
			}
			eventIDs[r.Envelope.ID] = r.Seq
			if r.MsgID != "" {
				if prev, dup := msgIDs[r.MsgID]; dup {
					t.Errorf("message id %s stored twice: sequences %d and %d", r.MsgID, prev, r.Seq)
				}
				msgIDs[r.MsgID] = r.Seq
			}
			if r.Envelope.Type == events.TypePasswordVerified {
				verified[r.Envelope.CausationID]++
			}
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lost := 0
	for reqID, acc := range l.acked {
		if verified[reqID] != 1 {
			if lost++; lost <= 10 {
				t.Errorf("request %s on %s acknowledged, %d events recorded for it, want 1", reqID, acc, verified[reqID])
			}
		}
	}
	for reqID, n := range verified {
		if n > 1 {
			t.Errorf("request %s recorded %d times", reqID, n)
		}
	}
	if got := h.StreamCount(); got != uint64(total) {
		t.Errorf("stream holds %d events, the accounts' histories %d", got, total)
	}
	t.Logf("%d requests sent, %d acknowledged, %d unavailable (retried), other replies %v; %d events in the stream",
		l.sent.Load(), len(l.acked), l.unavl.Load(), l.other, total)
}

// leaderNotFrontEnd makes sure the stream leader is not the front-end's
// node, so killing it tests the failover of a commands instance and of the
// stream, not the front-end's reconnection (whose requests in flight then
// wait for their own timeout).
func leaderNotFrontEnd(t *testing.T, h *harness) int {
	t.Helper()
	for {
		leader := h.Cluster.StreamLeader(contract.EventsStream)
		if leader >= 0 && leader != frontEndNode {
			return leader
		}
		if leader == frontEndNode {
			if err := h.Cluster.Server(leader).JetStreamStepdownStream("$G", contract.EventsStream); err != nil {
				t.Fatal(err)
			}
		}
		testwait.For(t, "a stream leader off the front-end's node", 30*time.Second, func() bool {
			l := h.Cluster.StreamLeader(contract.EventsStream)
			return l >= 0 && l != frontEndNode
		})
	}
}

// underFaults runs the load on a fresh cluster, applies fault once per
// round (it waits for the load to go on as it needs), and checks the
// ledger at the end: the scaffolding the fault tests share.
func underFaults(t *testing.T, fault func(h *harness, l *ledger, round int)) {
	t.Helper()
	h := newClusterHarness(t, nil)
	accounts := clusterAccounts(t, h, 6)
	l, stop := startLoad(t, h, accounts, 8)
	defer stop()
	waitProgress(t, l, "before")
	for round := range faultRounds() {
		fault(h, l, round)
	}
	stop()
	checkLedger(t, h, l, accounts)
}

// Kill the stream leader under load, keep going on the others, restart it
// on its store and ports, keep going.
func TestClusterStreamLeaderKilled(t *testing.T) {
	t.Parallel() // each on a cluster of its own; most of the time is spent waiting for elections
	underFaults(t, func(h *harness, l *ledger, round int) {
		leader := leaderNotFrontEnd(t, h)
		start := time.Now()
		h.Cluster.Shutdown(leader)
		waitProgress(t, l, fmt.Sprintf("round %d, node %d down", round, leader))
		t.Logf("round %d: stream leader n%d killed, load going on after %s (new leader n%d)", round, leader, time.Since(start).Round(time.Millisecond), h.Cluster.StreamLeader(contract.EventsStream))
		h.Cluster.Start(leader)
		h.Cluster.WaitReady()
		waitProgress(t, l, fmt.Sprintf("round %d, node %d back", round, leader))
	})
}

// Cut the stream leader off from the other nodes (it keeps running and
// serving its clients), keep going on the majority, heal.
func TestClusterNodeIsolated(t *testing.T) {
	t.Parallel() // each on a cluster of its own; most of the time is spent waiting for elections
	underFaults(t, func(h *harness, l *ledger, round int) {
		node := leaderNotFrontEnd(t, h)
		start := time.Now()
		h.Cluster.Isolate(node)
		waitProgress(t, l, fmt.Sprintf("round %d, node %d isolated", round, node))
		t.Logf("round %d: stream leader n%d isolated, load going on after %s", round, node, time.Since(start).Round(time.Millisecond))
		h.Cluster.Heal(node)
		h.Cluster.WaitReady()
		waitProgress(t, l, fmt.Sprintf("round %d, node %d healed", round, node))
	})
}

// Stop every node and start them all again under load: the clients
// reconnect, the stream and its history come back from the stores.
func TestClusterRestartAll(t *testing.T) {
	t.Parallel() // each on a cluster of its own; most of the time is spent waiting for elections
	underFaults(t, func(h *harness, l *ledger, round int) {
		before := h.StreamCount()
		start := time.Now()
		h.Cluster.RestartAll()
		h.Cluster.WaitStream(contract.EventsStream)
		waitProgress(t, l, fmt.Sprintf("round %d, after the restart", round))
		t.Logf("round %d: cluster restarted, load going on after %s", round, time.Since(start).Round(time.Millisecond))
		if after := h.StreamCount(); after < before {
			t.Fatalf("round %d: %d events after the restart, %d before", round, after, before)
		}
	})
}

// The parallel lockout stays exact across a leader change: 40 wrong
// passwords at once on one account, spread over two instances on two
// nodes, the stream leader killed while they are being decided. Exactly
// 3 failures are recorded, counted 1, 2, 3, the 3rd blocking.
func TestClusterLockoutExactAcrossLeaderKill(t *testing.T) {
	t.Parallel() // each on a cluster of its own; most of the time is spent waiting for elections
	for round := range faultRounds() {
		t.Run(fmt.Sprintf("round_%d", round), testLockoutAcrossLeaderKill)
	}
}

func testLockoutAcrossLeaderKill(t *testing.T) {
	// The first wrong password is decided and recorded before the kill;
	// every later hash waits in the observer until the leader is down, so
	// the other decisions and their appends meet the new leader with what
	// they loaded from the old one.
	var hashes atomic.Int32
	release := make(chan struct{})
	var acc atomic.Value
	acc.Store("")
	h := newClusterHarness(t, func(c *commands.Config) {
		c.HashObserver = func(key string) {
			if key != acc.Load().(string) {
				return
			}
			if hashes.Add(1) > 1 {
				<-release
			}
		}
	})
	id := h.Register(nir1, "valerie@yahoo.fr", password)
	acc.Store(id)
	settled(t, h)
	leader := leaderNotFrontEnd(t, h)

	codes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			body := obj{"nir": nir1, "password": "faux-mot"}
			rep := h.ReqAsync(contract.CmdLoginPassword, body)
			for attempt := 0; attempt < 50 && codeOf(rep) == domain.CodeUnavailable; attempt++ {
				rep = h.ReqAsync(contract.CmdLoginPassword, body)
			}
			mu.Lock()
			codes[codeOf(rep)]++
			mu.Unlock()
		})
	}
	testwait.For(t, "the first failure recorded and a second hash waiting", 30*time.Second, func() bool {
		return hashes.Load() >= 2
	})
	h.Cluster.Shutdown(leader)
	close(release)
	wg.Wait()
	h.Cluster.Start(leader)
	settled(t, h)

	var failures []events.PasswordFailed
	for _, e := range h.History(id) {
		if f, ok := e.Data.(events.PasswordFailed); ok {
			failures = append(failures, f)
		}
	}
	t.Logf("stream leader n%d killed mid-flood; replies %v; %d hashes", leader, codes, hashes.Load())
	if len(failures) != 3 {
		t.Fatalf("%d failures recorded, want 3: %+v", len(failures), failures)
	}
	for i, f := range failures {
		if f.Failures != i+1 {
			t.Fatalf("failure %d counts %d, want %d (consecutive)", i+1, f.Failures, i+1)
		}
		if blocking := !f.BlockedUntil.IsZero(); blocking != (i == 2) {
			t.Fatalf("failure %d blocking = %v; only the 3rd blocks", i+1, blocking)
		}
	}
	if codes[domain.CodeInvalidCredentials] != 2 || codes[domain.CodeAccountLocked] != 38 {
		t.Fatalf("replies %v; want 2 invalid_credentials and 38 account_locked", codes)
	}
}

// testNIR returns a 13-character NIR distinct for each i.
func testNIR(i int) string { return fmt.Sprintf("1850175%06d", 100000+i) }
