package commands_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// hashCounter counts password hashes per key (account id, or "nir:…").
type hashCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *hashCounter) observe(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

func (c *hashCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

func (c *hashCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

// A flood of wrong passwords on one account spends the hashes that reach
// the block and no more (issue 11, kind 4): exactly 3 on one instance; on
// two, each instance may have one more in flight when the other records
// the block.
func TestFloodOnOneAccountSpendsOnlyTheHashesThatReachTheBlock(t *testing.T) {
	for _, instances := range []int{1, 2} {
		t.Run(map[int]string{1: "one_instance", 2: "two_instances"}[instances], func(t *testing.T) {
			var hashes hashCounter
			h := newHarnessWith(t, instances, testPolicy(), func(c *commands.Config) { c.HashObserver = hashes.observe })
			acc := h.Register(nir1, "valerie@yahoo.fr", password)
			before := hashes.get(acc)
			codes := parallel(t, 200, func(int) Reply {
				return h.Req("login.password", obj{"nir": nir1, "password": "faux-mot"})
			})
			if codes[domain.CodeInvalidCredentials] != 2 || codes[domain.CodeAccountLocked] != 198 {
				t.Fatalf("replies %v; want 2 invalid_credentials, 198 account_locked", codes)
			}
			spent := hashes.get(acc) - before
			limit := 3
			if instances == 2 {
				limit = 5
			}
			if spent < 3 || spent > limit {
				t.Fatalf("%d hashes spent on the flooded account; want 3 to %d", spent, limit)
			}
			for _, svc := range h.Svcs {
				if n := commands.GateSize(svc); n != 0 {
					t.Fatalf("%d gate entries left after the flood", n)
				}
			}
		})
	}
}

// Fairness: a flood on one NIR (here one without an account, whose first
// hash is held open so that no failure is recorded and nothing blocks)
// holds at most one hashing worker, so another account's login gets the
// other one while the flood goes on. The flood's hashes are held
// inside the observer until the other login has hashed: without the
// per-key gate, two flood hashes would hold both workers and the other
// login would wait behind the whole flood.
func TestFloodOnOneNIRLeavesWorkersToOthers(t *testing.T) {
	release := make(chan struct{})
	otherHashed := make(chan struct{})
	floodHashing := make(chan struct{})
	var once, floodOnce sync.Once
	var inFlood, maxInFlood atomic.Int32
	var floodKey, acc atomic.Value // set once the harness exists
	floodKey.Store("")
	acc.Store("")
	h := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) {
		c.HashWorkers = 2
		c.HashObserver = func(key string) {
			switch key {
			case floodKey.Load().(string):
				n := inFlood.Add(1)
				floodOnce.Do(func() { close(floodHashing) })
				for {
					m := maxInFlood.Load()
					if n <= m || maxInFlood.CompareAndSwap(m, n) {
						break
					}
				}
				<-release
				inFlood.Add(-1)
			case acc.Load().(string):
				once.Do(func() { close(otherHashed) })
			}
		}
	})
	acc.Store(h.Register(nir1, "valerie@yahoo.fr", password))
	floodKey.Store("nir:" + h.Keys.NIRIndexKey(nir2))

	var flood sync.WaitGroup
	for range 20 {
		flood.Add(1)
		go func() {
			defer flood.Done()
			h.Req("login.password", obj{"nir": nir2, "password": "faux-mot"})
		}()
	}
	// The flood is hashing (one of its requests is inside the observer).
	select {
	case <-floodHashing:
	case <-time.After(10 * time.Second):
		t.Fatal("the flood never reached a hashing worker")
	}
	done := make(chan Reply, 1)
	go func() { done <- h.Req("login.password", obj{"nir": nir1, "password": password}) }()
	select {
	case <-otherHashed:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("another account's login waited behind a flood on one NIR")
	}
	close(release)
	if rep := <-done; !rep.OK || rep.Status != contract.StatusOTPRequired {
		t.Fatalf("the other login: %+v", rep.Error)
	}
	flood.Wait()
	if m := maxInFlood.Load(); m != 1 {
		t.Fatalf("the flood on one NIR held %d hashing workers at once, want 1", m)
	}
}

// Requests that the decision would refuse anyway are refused before any
// hash of a new password: a flood of them costs nothing.
func TestRefusedRequestsSpendNoHash(t *testing.T) {
	var hashes hashCounter
	h := newHarnessWith(t, 2, testPolicy(), func(c *commands.Config) { c.HashObserver = hashes.observe })
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	session := h.Login(acc, nir1, password)
	h.Req("password.reset.request", obj{"nir": nir1})
	base := hashes.total()
	rows := []struct {
		name    string
		subject string
		body    obj
		want    string
	}{
		{"reset_with_a_forged_token", "password.reset.complete", obj{"token": acc + ".forged", "new_password": "Nouveau-mot-2025"}, domain.CodeResetTokenInvalid},
		{"change_without_a_verified_code", "password.change.complete", obj{"session": session, "new_password": "Nouveau-mot-2025"}, domain.CodeCodeInvalid},
		{"registration_of_a_registered_nir", "account.register", obj{"nir": nir1, "email": "x@example.fr", "password": "Nouveau-mot-2025", "email_validated": true, "affiliation": "active"}, domain.CodeAccountExists},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			codes := parallel(t, 30, func(int) Reply { return h.Req(r.subject, r.body) })
			if codes[r.want] != 30 {
				t.Fatalf("replies %v; want 30 %s", codes, r.want)
			}
			if n := hashes.total() - base; n != 0 {
				t.Fatalf("%d hashes spent on requests refused anyway", n)
			}
		})
	}
}

// Costs read from stored data are bounded (issue 11, kind 3): an import
// over the ceilings is refused naming password_hash; a stored hash over
// them (written before the ceilings, or by whoever could write the stream)
// is never computed and fails like a wrong password.
func TestHashCostCeilings(t *testing.T) {
	var hashes hashCounter
	h := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) { c.HashObserver = hashes.observe })
	huge := "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	for _, phc := range []string{huge,
		"$argon2id$v=19$m=1024,t=11,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$argon2id$v=19$m=1024,t=1,p=5$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		"$2b$15$" + strings.Repeat("a", 53),
	} {
		rep := h.Req("account.import", obj{"nir": nir2, "email": "paul@example.fr", "password_hash": phc, "email_validated": true, "affiliation": "active"})
		wantError(t, rep, domain.CodeInvalidRequest)
		if rep.Error.Field != "password_hash" || !strings.Contains(rep.Error.Message, "coût") {
			t.Fatalf("import of %s: %+v", phc[:20], rep.Error)
		}
	}

	// A stored hash over the ceilings, written straight to the stream.
	ctx := context.Background()
	acc := events.NewID(t0)
	if err := h.Store.Index().Create(ctx, h.Keys.NIRIndexKey(nir1), acc); err != nil {
		t.Fatal(err)
	}
	reg := events.AccountRegistered{NIRHash: h.Keys.NIRIndexKey(nir1), EmailSealed: h.Keys.Seal("v@yahoo.fr", acc), MaskedEmail: "v***@y***.fr",
		EmailValidated: true, PasswordHash: huge, Affiliation: domain.AffiliationActive, At: t0}
	if _, err := h.Store.Append(ctx, acc, 0, events.Wrap(acc, reg, t0, events.Metadata{}), ""); err != nil {
		t.Fatal(err)
	}
	wantError(t, h.Req("login.password", obj{"nir": nir1, "password": "anything"}), domain.CodeInvalidCredentials)
	if n := hashes.get(acc); n != 0 {
		t.Fatalf("%d hashes computed for a stored hash over the ceiling", n)
	}
	if n := count(h.History(acc), events.TypePasswordFailed); n != 1 {
		t.Fatalf("%d failures recorded; the attempt counts as a wrong password", n)
	}
}
