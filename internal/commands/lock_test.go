package commands_test

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
)

// No argon2id work under an account's lock: the lock is a stripe shared by
// unrelated accounts, so a hash computed there would stall every account of
// the stripe for its whole duration. Each row holds one of the account's
// hashes inside the hash observer (deterministically: the observer waits on
// a channel) and asks, meanwhile, a decision on another account of the
// same stripe: it must be answered while the hash is still held.
func TestAPasswordHashDoesNotStallTheAccountsSharingItsLock(t *testing.T) {
	const strictPassword = "Motdepasse-2023-long"
	strict := domain.StrictPolicy()
	strict.Argon2 = cheapArgon2
	stronger := testPolicy()
	stronger.Argon2.Memory *= 2
	rows := []struct {
		name string
		// setup registers the account and returns the request to hold and
		// the policy of the instance that serves it.
		setup func(h *harness) (acc, subject string, body obj, policy domain.Policy)
		hold  int    // which hash of the request to hold, from 1
		want  string // the held request's status once released
	}{
		{name: "strict_profile_current_password_check", hold: 1, want: contract.StatusCodeSent,
			setup: func(h *harness) (string, string, obj, domain.Policy) {
				acc := h.Register(nir1, "valerie@yahoo.fr", strictPassword)
				session := h.Login(acc, nir1, strictPassword)
				return acc, contract.CmdPasswordChangeStart, obj{"session": session, "current_password": strictPassword}, strict
			}},
		{name: "login_rehash_to_the_current_parameters", hold: 2, want: contract.StatusOTPRequired,
			setup: func(h *harness) (string, string, obj, domain.Policy) {
				acc := h.Register(nir1, "valerie@yahoo.fr", password)
				return acc, contract.CmdLoginPassword, obj{"nir": nir1, "password": password}, stronger
			}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			var held atomic.Value // the account id whose hashes are counted
			held.Store("")
			var seen atomic.Int32
			entered, release := make(chan struct{}), make(chan struct{})
			released := false
			defer func() {
				if !released {
					close(release)
				}
			}()
			first := testPolicy()
			if r.name == rows[0].name {
				first = strict
			}
			h := newHarnessWith(t, 1, first, func(c *commands.Config) {
				c.HashObserver = func(key string) {
					if key == held.Load().(string) && seen.Add(1) == int32(r.hold) {
						close(entered)
						<-release
					}
				}
			})
			acc, subject, body, policy := r.setup(h)
			if policy.Name != first.Name || policy.Argon2 != first.Argon2 {
				_ = h.Svcs[0].Stop()
				h.AddInstance(policy)
			}
			other := accountOnTheStripeOf(t, acc)

			held.Store(acc)
			done := make(chan Reply, 1)
			go func() { done <- h.ReqAsync(subject, body) }()
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the request never reached its hash")
			}
			probe := make(chan Reply, 1)
			go func() { probe <- h.ReqAsync(contract.CmdAccountUnlock, obj{"account_id": other}) }()
			select {
			case rep := <-probe:
				wantError(t, rep, domain.CodeAccountNotFound)
			case <-time.After(5 * time.Second):
				t.Fatal("a decision on another account of the stripe waited for a password hash")
			}
			close(release)
			released = true
			if rep := <-done; !rep.OK || rep.Status != r.want {
				t.Fatalf("the held request: %+v %+v", rep, rep.Error)
			}
		})
	}
}

// accountOnTheStripeOf returns another account id that shares acc's lock.
func accountOnTheStripeOf(t *testing.T, acc string) string {
	t.Helper()
	for i := range 100_000 {
		id := events.NewID(t0.Add(time.Duration(i) * time.Millisecond))
		if id != acc && commands.Stripe(id) == commands.Stripe(acc) {
			return id
		}
	}
	t.Fatal("no account id found on the stripe")
	return ""
}

// A password checked outside the lock against a stored hash that another
// instance replaces before the decision is checked again on the new hash:
// the old password no longer logs in, and the recheck's outcome is what is
// recorded.
func TestAPasswordCheckedAgainstAReplacedHashIsCheckedAgain(t *testing.T) {
	var held atomic.Value
	held.Store("")
	entered, release := make(chan struct{}), make(chan struct{})
	var seen atomic.Int32
	h := newHarnessWith(t, 2, testPolicy(), func(c *commands.Config) {
		c.HashWorkers = 2 // the reset hashes while the login holds a worker
		c.HashObserver = func(key string) {
			if key == held.Load().(string) && seen.Add(1) == 1 {
				close(entered)
				<-release
			}
		}
	})
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	token := h.resetToken(acc, nir1)
	ctx := t.Context()
	// Both instances know the account as it is now.
	for _, svc := range h.Svcs {
		svc.Handle(ctx, contract.CmdAccountSetAffiliation, []byte(`{"account_id":"`+acc+`","affiliation":"active"}`))
	}

	held.Store(acc)
	done := make(chan []byte, 1)
	go func() {
		done <- h.Svcs[0].Handle(ctx, contract.CmdLoginPassword, []byte(`{"nir":"`+nir1+`","password":"`+password+`"}`))
	}()
	<-entered // checked against the old hash, outside the lock
	reset := h.Svcs[1].Handle(ctx, contract.CmdPasswordResetComplete, []byte(`{"token":"`+token+`","new_password":"Nouveau-mot-2025"}`))
	close(release)
	var rep Reply
	if err := json.Unmarshal(<-done, &rep); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(reset) || !contains(reset, contract.StatusPasswordReset) {
		t.Fatalf("reset: %s", reset)
	}
	wantError(t, rep, domain.CodeInvalidCredentials)
	if n := seen.Load(); n != 3 {
		t.Fatalf("%d hashes for the account, want 3 (the login's check of the old hash, the reset's new hash, the login's check of it)", n)
	}
	if n := count(h.History(acc), events.TypePasswordFailed); n != 1 {
		t.Fatalf("%d failures recorded, want 1", n)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), `"`+s+`"`) }
