package commands_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/testwait"
)

// coverMetrics counts what the coverers tell their metrics (Covered).
type coverMetrics struct {
	cacheMetrics
	mu  sync.Mutex
	how map[string]int
}

func newCoverMetrics() *coverMetrics {
	return &coverMetrics{cacheMetrics: *newCacheMetrics(), how: map[string]int{}}
}

func (m *coverMetrics) Covered(how string, _ time.Duration) {
	m.mu.Lock()
	m.how[how]++
	m.mu.Unlock()
}

func (m *coverMetrics) count(how string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.how[how]
}

// coverHarness runs instances whose store expires login attempts after
// ttl (so the coverers wait ttl/4 before covering one: commands'
// coverDelay), all telling m.
func coverHarness(t *testing.T, instances, partitions int, ttl time.Duration, m *coverMetrics) *harness {
	return &harness{commandstest.Start(t, commandstest.Options{Instances: instances, Partitions: partitions, AttemptsTTL: ttl, Configure: func(c *commands.Config) {
		c.AttemptsRetention = 8760 * time.Hour
		c.Metrics = m
	}})}
}

// covered tells whether the account's snapshot covers its last event.
func (h *harness) covered(acc string) bool {
	ctx := context.Background()
	var store interface {
		eventstore.Store
		Snapshots() eventstore.Snapshots
	} = h.Store
	if h.Parts != nil {
		store = h.Parts
	}
	last, err := store.LastSeq(ctx, acc)
	if err != nil {
		return false
	}
	seq, _, err := store.Snapshots().Get(ctx, acc)
	return err == nil && seq >= last
}

// A login's three attempts (password, code sent, code checked) come within
// the coverer's delay: one snapshot covers them, written off the request
// path; the other two find it there.
func TestALoginIsCoveredByOneSnapshot(t *testing.T) {
	m := newCoverMetrics()
	h := coverHarness(t, 1, 1, 8*time.Second, m)
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	h.Login(acc, nir1, password)
	if h.covered(acc) {
		t.Fatal("the login's attempts were covered at once: the snapshot is written in the request path again")
	}
	testwait.For(t, "the login's attempts to be covered", 20*time.Second, func() bool {
		return m.count(commands.CoveredSnapshot)+m.count(commands.CoveredAlready) == 3
	})
	if !h.covered(acc) {
		t.Fatal("the snapshot does not cover the login's last attempt")
	}
	if got := m.count(commands.CoveredSnapshot); got != 1 {
		t.Fatalf("%d snapshots written for one login, want 1", got)
	}
	if got := m.count(commands.CoveredGone); got != 0 {
		t.Fatalf("%d attempts expired uncovered", got)
	}
}

// An instance stopped before it covered its attempts hands them back: the
// next instance covers them, long before they expire.
func TestAStoppedInstanceLeavesItsAttemptsToAnother(t *testing.T) {
	m := newCoverMetrics()
	h := coverHarness(t, 1, 1, 20*time.Second, m)
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	h.StartLogin(nir1, password)
	if err := h.Svcs[0].Stop(); err != nil {
		t.Fatal(err)
	}
	if h.covered(acc) {
		t.Fatal("covered before the coverer's delay")
	}
	h.AddInstance(testPolicy())
	testwait.For(t, "the next instance to cover the attempts", 15*time.Second, func() bool { return h.covered(acc) })
	if got := m.count(commands.CoveredGone); got != 0 {
		t.Fatalf("%d attempts expired uncovered", got)
	}
}

// Two instances share the coverers' consumers, one per partition (3
// here): logins in parallel on 30 accounts over both are all covered, each attempt handled once, with at
// most one snapshot per account and instance.
func TestParallelLoginsOverTwoInstancesAreAllCovered(t *testing.T) {
	m := newCoverMetrics()
	h := coverHarness(t, 2, 3, 8*time.Second, m)
	const n = 30
	accs := make([]string, n)
	for i := range n {
		accs[i] = h.Register(testNIR(i), fmt.Sprintf("u%d@exemple.fr", i), password)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := h.ReqAsync("login.password", obj{"nir": testNIR(i), "password": password})
			if !rep.OK {
				t.Errorf("login.password %d: %+v", i, rep.Error)
				return
			}
			if send := h.ReqAsync("login.otp.send", obj{"login_id": rep.LoginID}); !send.OK {
				t.Errorf("login.otp.send %d: %+v", i, send.Error)
			}
		}()
	}
	wg.Wait()
	const attempts = 2 * n
	testwait.For(t, "every attempt to be handled", 20*time.Second, func() bool {
		return m.count(commands.CoveredSnapshot)+m.count(commands.CoveredAlready) >= attempts
	})
	for i, acc := range accs {
		if !h.covered(acc) {
			t.Errorf("account %d: its attempts are not covered", i)
		}
	}
	if got := m.count(commands.CoveredSnapshot) + m.count(commands.CoveredAlready); got != attempts {
		t.Errorf("%d attempts handled, want each of the %d once", got, attempts)
	}
	if got := m.count(commands.CoveredSnapshot); got > 2*n {
		t.Errorf("%d snapshots written for %d accounts", got, n)
	}
}
