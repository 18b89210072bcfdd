package commands_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// An unknown NIR behaves like a registered one over time (issue 19): the
// same replies, byte for byte, for the 1st to 4th wrong password, after
// the block ends, and for reset requests, so nothing tells whether the NIR
// has an account. One harness per side; the clock moves alike on both.
func TestUnknownNIRLocksLikeARegisteredOne(t *testing.T) {
	sides := map[string]*harness{}
	for _, side := range []string{"registered", "unknown"} {
		h := newHarness(t, 2, testPolicy())
		if side == "registered" {
			h.Register(nir1, "valerie@yahoo.fr", password)
		}
		sides[side] = h
	}
	steps := []struct {
		name    string
		advance time.Duration
		subject string
		body    string
		want    string
	}{
		{"1st_wrong_password", 0, "login.password", `{"nir":"` + nir1 + `","password":"faux-1"}`, domain.CodeInvalidCredentials},
		{"2nd_wrong_password", time.Minute, "login.password", `{"nir":"` + nir1 + `","password":"faux-2"}`, domain.CodeInvalidCredentials},
		{"3rd_wrong_password_blocks", time.Minute, "login.password", `{"nir":"` + nir1 + `","password":"faux-3"}`, domain.CodeAccountLocked},
		{"4th_during_the_block", time.Minute, "login.password", `{"nir":"` + nir1 + `","password":"faux-4"}`, domain.CodeAccountLocked},
		{"the_right_password_during_the_block", time.Minute, "login.password", `{"nir":"` + nir1 + `","password":"` + password + `"}`, domain.CodeAccountLocked},
		{"a_second_before_the_block_ends", 13*time.Minute - time.Second, "login.password", `{"nir":"` + nir1 + `","password":"faux-5"}`, domain.CodeAccountLocked},
		{"after_the_block_ends", time.Second, "login.password", `{"nir":"` + nir1 + `","password":"faux-6"}`, domain.CodeInvalidCredentials},
		{"reset_request_1", 0, "password.reset.request", `{"nir":"` + nir1 + `"}`, "reset_requested"},
		{"reset_request_2", 0, "password.reset.request", `{"nir":"` + nir1 + `"}`, "reset_requested"},
		{"reset_request_3", 0, "password.reset.request", `{"nir":"` + nir1 + `"}`, "reset_requested"},
		{"reset_request_4_over_the_hourly_limit", 0, "password.reset.request", `{"nir":"` + nir1 + `"}`, "reset_requested"},
		{"wrong_password_with_a_spelling_of_spaces", time.Minute, "login.password", `{"nir":"` + spaced(nir1) + `","password":"faux-7"}`, domain.CodeInvalidCredentials},
		{"3rd_after_the_block_blocks_again", time.Minute, "login.password", `{"nir":"` + nir1 + `","password":"faux-8"}`, domain.CodeAccountLocked},
		{"after_that_block_a_1st_failure_with_a_request_id", 16 * time.Minute, "login.password@0", `{"nir":"` + nir1 + `","password":"faux-9","request_id":"r-1"}`, domain.CodeInvalidCredentials},
		// The same request again, on the other instance: a retry, answered
		// from what it recorded and not counted twice, on both sides.
		{"its_retry_on_the_other_instance", 0, "login.password@1", `{"nir":"` + nir1 + `","password":"faux-9","request_id":"r-1"}`, domain.CodeInvalidCredentials},
		{"then_a_2nd_failure_is_the_2nd", 0, "login.password", `{"nir":"` + nir1 + `","password":"faux-10"}`, domain.CodeInvalidCredentials},
		{"and_the_3rd_blocks", 0, "login.password", `{"nir":"` + nir1 + `","password":"faux-11"}`, domain.CodeAccountLocked},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var replies [2][]byte
			for i, side := range []string{"registered", "unknown"} {
				h := sides[side]
				h.Clock.Advance(st.advance)
				if subject, n, ok := strings.Cut(st.subject, "@"); ok {
					// Straight to one instance: the retry goes to the one
					// that did not answer the first try (no reply cached).
					replies[i] = h.Svcs[map[string]int{"0": 0, "1": 1}[n]].Handle(context.Background(), subject, []byte(st.body))
					continue
				}
				replies[i] = h.Raw(st.subject, []byte(st.body))
			}
			if !bytes.Equal(replies[0], replies[1]) {
				t.Fatalf("replies differ:\n registered %s\n unknown    %s", replies[0], replies[1])
			}
			if !bytes.Contains(replies[0], []byte(`"`+st.want+`"`)) {
				t.Fatalf("want %s, got %s", st.want, replies[0])
			}
		})
	}
	// The unknown side recorded nothing in the stream.
	if n := sides["unknown"].StreamCount(); n != 0 {
		t.Fatalf("an unknown NIR appended %d events", n)
	}
}

func spaced(nir string) string { return nir[:1] + " " + nir[1:3] + " " + nir[3:5] + " " + nir[5:] }

// The shadow lockout holds under parallel attempts over two instances, as
// the account's does: 3 failures, then blocked.
func TestUnknownNIRLockoutInParallel(t *testing.T) {
	h := newHarness(t, 2, testPolicy())
	codes := parallel(t, 40, func(int) Reply { return h.Req("login.password", obj{"nir": nir2, "password": "faux-mot"}) })
	if codes[domain.CodeInvalidCredentials] != 2 || codes[domain.CodeAccountLocked] != 38 {
		t.Fatalf("replies: %v; want 2 invalid_credentials and 38 account_locked", codes)
	}
	// The shadow store holds the NIR's keyed hash only, never the NIR.
	key := h.Keys.NIRIndexKey(nir2)
	b, _, err := h.Store.Shadows().Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), nir2) || strings.Contains(key, nir2) {
		t.Fatal("the shadow store holds the NIR in clear")
	}
	if !strings.Contains(string(b), `"block_reason":"password_failures"`) {
		t.Fatalf("shadow state %s", b)
	}
}

// A shadow store that refuses writes (full, or down) changes no reply: the
// attempt is answered as decided and only the count is lost.
func TestShadowStoreFullKeepsTheReplyAndAnOutageSaysUnavailable(t *testing.T) {
	// A store at its size bound: the attempt is answered as decided (only
	// the count is lost, and logged).
	full := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) { c.Shadows = failingShadows{eventstore.ErrFull} })
	wantError(t, full.Req("login.password", obj{"nir": nir2, "password": "faux"}), domain.CodeInvalidCredentials)
	if r := full.Req("password.reset.request", obj{"nir": nir2}); !r.OK || r.Status != contract.StatusResetRequested {
		t.Fatalf("reset request with a full store: %+v", r.Error)
	}
	// A store that fails otherwise: unavailable, as a registered account
	// whose append fails.
	down := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) { c.Shadows = failingShadows{context.DeadlineExceeded} })
	wantError(t, down.Req("login.password", obj{"nir": nir2, "password": "faux"}), domain.CodeUnavailable)
	wantError(t, down.Req("password.reset.request", obj{"nir": nir2}), domain.CodeUnavailable)
}

// failingShadows finds nothing and refuses every write with err.
type failingShadows struct{ err error }

func (failingShadows) Get(context.Context, string) ([]byte, uint64, error) {
	return nil, 0, eventstore.ErrNotFound
}
func (f failingShadows) Put(context.Context, string, []byte, uint64) (uint64, error) {
	return 0, fmt.Errorf("failing shadows: %w", f.err)
}

// ResponseFloor: both paths take at least the floor, whatever they do.
func TestResponseFloor(t *testing.T) {
	const floor = 150 * time.Millisecond
	h := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) { c.ResponseFloor = floor })
	h.Register(nir1, "valerie@yahoo.fr", password)
	for _, r := range []struct {
		subject string
		body    obj
	}{
		{"login.password", obj{"nir": nir1, "password": "faux"}},
		{"login.password", obj{"nir": nir2, "password": "faux"}},
		{"password.reset.request", obj{"nir": nir1}},
		{"password.reset.request", obj{"nir": nir2}},
	} {
		start := time.Now()
		h.Req(r.subject, r.body)
		if took := time.Since(start); took < floor {
			t.Fatalf("%s on %v answered in %s, under the %s floor", r.subject, r.body["nir"], took, floor)
		}
	}
}

// Replies held back by the response floor wait on timers, not in the
// in-flight slots: cheap requests under the floor (here, on a blocked
// account) do not keep other commands waiting. With 4 slots and 8 held
// replies, a logout is answered while they are still held.
func TestResponseFloorTakesNoInFlightSlot(t *testing.T) {
	const floor = 1500 * time.Millisecond
	h := newHarnessWith(t, 1, testPolicy(), func(c *commands.Config) { c.ResponseFloor = floor; c.MaxInFlight = 4 })
	acc := h.Register(nir1, "valerie@yahoo.fr", password)
	session := h.Login(acc, nir1, password)
	done := make(chan contract.AnyReply, 8)
	for i := range 8 {
		go func() { done <- h.ReqAsync("login.password", obj{"nir": nir2, "password": fmt.Sprintf("faux-%d", i)}) }()
	}
	svc := h.Svcs[0]
	deadline := time.Now().Add(floor / 2)
	for commands.Delayed(svc) < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d replies held back, want 8", commands.Delayed(svc))
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
	if r := h.Req("session.logout", obj{"session": session}); !r.OK {
		t.Fatalf("logout: %+v", r.Error)
	}
	if n := commands.Delayed(svc); n == 0 {
		t.Fatal("the logout was answered only after the held replies: it waited for a slot")
	}
	for range 8 {
		<-done
	}
}

// A throttled source (issue 20) is told the same for a registered NIR and
// an unknown one, wrong or right password alike, byte for byte: the
// refusal is about the network, never the account, and comes before the
// account is looked up.
func TestThrottledSourceRepliesTheSameForRegisteredAndUnknownNIRs(t *testing.T) {
	p := testPolicy()
	p.SourceIP = domain.SourceBudget{Failures: 2, Window: time.Hour}
	h := newHarness(t, 1, p)
	h.Register(nir1, "valerie@yahoo.fr", password)
	const ip = "203.0.113.50"
	for _, nir := range []string{"1850175100001", "1850175100002"} {
		wantError(t, h.Req("login.password", obj{"nir": nir, "password": "faux", "client_ip": ip}), domain.CodeInvalidCredentials)
	}
	var replies [][]byte
	for _, body := range []string{
		`{"nir":"` + nir1 + `","password":"` + password + `","client_ip":"` + ip + `"}`,
		`{"nir":"` + nir1 + `","password":"faux","client_ip":"` + ip + `"}`,
		`{"nir":"1850175100003","password":"` + password + `","client_ip":"` + ip + `"}`,
		`{"nir":"1850175100003","password":"faux","client_ip":"` + ip + `"}`,
	} {
		replies = append(replies, h.Raw("login.password", []byte(body)))
	}
	for i, r := range replies {
		if !bytes.Equal(r, replies[0]) {
			t.Errorf("reply %d differs:\n %s\n %s", i, r, replies[0])
		}
	}
	if !bytes.Contains(replies[0], []byte(`"`+domain.CodeTooManyAttempts+`"`)) {
		t.Fatalf("want %s, got %s", domain.CodeTooManyAttempts, replies[0])
	}
}
