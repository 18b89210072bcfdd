package commands_test

// Password spraying by source (issue 20; docs/rules.md, "Password
// spraying"): failures counted per client address and prefix across every
// account, refused before any hash once over the budget.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/schemacheck"
)

// hashTotal counts the argon2id computations (Config.HashObserver).
type hashTotal struct{ n atomic.Int64 }

func (c *hashTotal) observe(string) { c.n.Add(1) }

func sprayHarness(t *testing.T, instances int, p domain.Policy, configure func(*commands.Config)) (*harness, *hashTotal) {
	t.Helper()
	hashes := &hashTotal{}
	h := newHarnessWith(t, instances, p, func(c *commands.Config) {
		c.HashObserver = hashes.observe
		if configure != nil {
			configure(c)
		}
	})
	return h, hashes
}

// fraudEvents reads the AUTH_FRAUD stream, each message checked against its
// schema and its subject.
func fraudEvents(t *testing.T, h *harness) []events.FraudEvent {
	t.Helper()
	ctx := context.Background()
	st, err := h.JS.Stream(ctx, eventstore.FraudStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.FraudEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemacheck.ValidateFraudEvent(m.Data); err != nil {
			t.Errorf("fraud event %d: %v\n%s", seq, err, m.Data)
		}
		e, err := events.UnmarshalFraud(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if want := "auth." + e.Type; m.Subject != want {
			t.Errorf("fraud event on %s, want %s", m.Subject, want)
		}
		out = append(out, e)
	}
	return out
}

func login(h *harness, instance int, nir, pw, ip string) Reply {
	b := fmt.Appendf(nil, `{"nir":%q,"password":%q,"client_ip":%q}`, nir, pw, ip)
	var raw []byte
	if instance < 0 {
		raw = h.Raw("login.password", b)
	} else {
		raw = h.Handle(instance, "login.password", b)
	}
	return decodeReply(h.T, raw)
}

func outcome(r Reply) string {
	_, c := r.Outcome()
	return c
}

// A spray of 500 NIRs x 2 passwords from one address is refused right
// after the address's budget (100 failures a day, the seed's), with no
// hash past it; the fraud teams see one fraud.source_throttled; a real
// user behind that address gets the clear message, and logs in from
// elsewhere; a day later the address may try again, and the release is
// recorded then.
func TestSprayFromOneAddressIsThrottledAfterItsBudget(t *testing.T) {
	h, hashes := sprayHarness(t, 1, testPolicy(), nil)
	const attacker = "203.0.113.7"
	user := h.Register(testNIR(0), "valerie@yahoo.fr", password)
	registeredHashes := hashes.n.Load()

	outcomes := map[string]int{}
	firstRefused := 0
	for i := range 500 {
		for _, pw := range []string{"Azerty123!", "Soleil2023"} {
			o := outcome(login(h, -1, testNIR(1000+i), pw, attacker))
			outcomes[o]++
			if o == domain.CodeTooManyAttempts && firstRefused == 0 {
				firstRefused = outcomes[domain.CodeInvalidCredentials] + 1
			}
		}
	}
	spent := hashes.n.Load() - registeredHashes
	t.Logf("spray of 1000 attempts from one address: %v; first refused: attempt %d; hashes spent %d", outcomes, firstRefused, spent)
	if outcomes[domain.CodeInvalidCredentials] != 100 || outcomes[domain.CodeTooManyAttempts] != 900 || firstRefused != 101 {
		t.Fatalf("outcomes %v, first refused at %d: want 100 wrong passwords, then 900 refusals from the 101st", outcomes, firstRefused)
	}
	if spent != 100 {
		t.Errorf("%d hashes for the spray, want 100: a refused attempt must cost none", spent)
	}

	// The real user behind the address: refused with the clear message,
	// right password and all, and no hash spent.
	rep := login(h, -1, testNIR(0), password, attacker)
	wantError(t, rep, domain.CodeTooManyAttempts)
	if msg := rep.Error.Message; msg != (&domain.Error{Code: domain.CodeTooManyAttempts}).Message() || rep.Error.BlockedUntil != nil {
		t.Errorf("message %q, blocked_until %v", msg, rep.Error.BlockedUntil)
	}
	if got := hashes.n.Load() - registeredHashes; got != 100 {
		t.Errorf("the throttled user's attempt spent a hash (%d)", got-100)
	}
	// From another network the same user logs in: the account is not blocked.
	if rep := login(h, -1, testNIR(0), password, "198.51.100.20"); !rep.OK {
		t.Fatalf("from another address: %+v", rep.Error)
	}
	if n := count(h.History(user), events.TypePasswordFailed); n != 0 {
		t.Errorf("%d password failures on the real user's account", n)
	}

	evs := fraudEvents(t, h)
	if len(evs) != 1 || evs[0].Type != events.TypeSourceThrottled {
		t.Fatalf("fraud events %+v, want one source_throttled", evs)
	}
	d := evs[0].Data
	if d.Source != attacker+"/32" || d.Kind != events.SourceKindIP || d.Failures != 100 || d.Budget != 100 ||
		!d.WindowStart.Equal(t0) || d.WindowSeconds != 86400 || !d.Until.Equal(t0.Add(24*time.Hour)) {
		t.Errorf("throttled event %+v", d)
	}

	// A second before the window ends: still refused; at its end: counted again.
	h.Clock.Advance(24*time.Hour - time.Second)
	wantError(t, login(h, -1, testNIR(1), "Azerty123!", attacker), domain.CodeTooManyAttempts)
	h.Clock.Advance(time.Second)
	wantError(t, login(h, -1, testNIR(1), "Azerty123!", attacker), domain.CodeInvalidCredentials)
	evs = fraudEvents(t, h)
	if len(evs) != 2 || evs[1].Type != events.TypeSourceReleased || evs[1].Data.Reason != events.ReleaseWindowPassed ||
		evs[1].Data.Source != attacker+"/32" || evs[1].Data.Failures != 100 || !evs[1].OccurredAt.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("after the window: fraud events %+v, want the release recorded by the first attempt after it", evs)
	}
}

// The same 1000 attempts spread over 500 addresses (in 500 networks) are
// all checked: no budget is reached, nothing is refused, no fraud event.
func TestSpraySpreadOverAddressesIsNotThrottled(t *testing.T) {
	h, hashes := sprayHarness(t, 1, testPolicy(), nil)
	refused := 0
	for i := range 500 {
		ip := fmt.Sprintf("10.%d.%d.7", i/256, i%256)
		for _, pw := range []string{"Azerty123!", "Soleil2023"} {
			if o := outcome(login(h, -1, testNIR(1000+i), pw, ip)); o != domain.CodeInvalidCredentials {
				refused++
			}
		}
	}
	t.Logf("spray of 1000 attempts over 500 addresses: %d refused, %d hashes", refused, hashes.n.Load())
	if refused != 0 || hashes.n.Load() != 1000 {
		t.Fatalf("%d refused, %d hashes: want 0 and 1000", refused, hashes.n.Load())
	}
	if evs := fraudEvents(t, h); len(evs) != 0 {
		t.Errorf("fraud events %+v", evs)
	}
}

// Right passwords are given back: a NAT with many users who log in
// never reaches the budget (no false positive); failures still do, and
// then the right password is refused as well (else the spray would still
// learn which guess was right).
func TestRightPasswordsAreNotCountedButAreRefusedOnceThrottled(t *testing.T) {
	p := testPolicy()
	p.SourceIP = domain.SourceBudget{Failures: 3, Window: time.Hour}
	h, _ := sprayHarness(t, 1, p, nil)
	const nat = "192.0.2.44"
	h.Register(nir1, "valerie@yahoo.fr", password)
	for i := range 10 {
		if rep := login(h, -1, nir1, password, nat); !rep.OK {
			t.Fatalf("login %d from the NAT: %+v", i, rep.Error)
		}
	}
	for i := range 3 {
		wantError(t, login(h, -1, testNIR(50+i), "faux", nat), domain.CodeInvalidCredentials)
	}
	wantError(t, login(h, -1, nir1, password, nat), domain.CodeTooManyAttempts)
}

// A prefix has its own budget: attempts from many addresses of one /24
// are refused once the /24's is spent, each address far under its own;
// IPv4-mapped IPv6 is the IPv4 address.
func TestPrefixBudgetAndMappedAddresses(t *testing.T) {
	p := testPolicy()
	p.SourcePrefix = domain.SourceBudget{Failures: 4, Window: time.Hour}
	h, hashes := sprayHarness(t, 1, p, nil)
	for i, ip := range []string{"203.0.113.1", "::ffff:203.0.113.2", "203.0.113.3", "203.0.113.4"} {
		wantError(t, login(h, -1, testNIR(i), "faux", ip), domain.CodeInvalidCredentials)
	}
	wantError(t, login(h, -1, testNIR(9), "faux", "203.0.113.200"), domain.CodeTooManyAttempts)
	wantError(t, login(h, -1, testNIR(9), "faux", "::ffff:203.0.113.201"), domain.CodeTooManyAttempts)
	wantError(t, login(h, -1, testNIR(9), "faux", "203.0.114.1"), domain.CodeInvalidCredentials) // the next /24
	if hashes.n.Load() != 5 {
		t.Errorf("%d hashes, want 5", hashes.n.Load())
	}
	evs := fraudEvents(t, h)
	if len(evs) != 1 || evs[0].Data.Kind != events.SourceKindPrefix || evs[0].Data.Source != "203.0.113.0/24" || evs[0].Data.Failures != 4 {
		t.Fatalf("fraud events %+v, want the /24 throttled", evs)
	}
}

// An allow-listed network (AUTH_SOURCE_ALLOWLIST) is never counted nor
// throttled; an address outside it is.
func TestAllowListedSourceIsNeverThrottled(t *testing.T) {
	p := testPolicy()
	p.SourceIP = domain.SourceBudget{Failures: 2, Window: time.Hour}
	h, hashes := sprayHarness(t, 1, p, func(c *commands.Config) {
		c.SourceAllowlist = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/48")}
	})
	for i := range 20 {
		for j, ip := range []string{"192.0.2.10", "2001:db8:0:1::5", "::ffff:192.0.2.11"} {
			wantError(t, login(h, -1, testNIR(3*i+j), "faux", ip), domain.CodeInvalidCredentials)
		}
	}
	if hashes.n.Load() != 60 {
		t.Errorf("%d hashes, want 60", hashes.n.Load())
	}
	wantError(t, login(h, -1, testNIR(100), "faux", "198.51.100.1"), domain.CodeInvalidCredentials)
	wantError(t, login(h, -1, testNIR(101), "faux", "198.51.100.1"), domain.CodeInvalidCredentials)
	wantError(t, login(h, -1, testNIR(102), "faux", "198.51.100.1"), domain.CodeTooManyAttempts)
	if evs := fraudEvents(t, h); len(evs) != 1 || evs[0].Data.Source != "198.51.100.1/32" {
		t.Errorf("fraud events %+v", evs)
	}
}

// Two instances sharing one bucket respect one budget: 120 parallel
// attempts from one address, half on each instance, check exactly the
// budget's 20 passwords (the count is taken before the hash, with
// compare-and-set), refuse the 100 others, and tell the throttle once.
func TestParallelAttemptsOnTwoInstancesRespectOneBudget(t *testing.T) {
	p := testPolicy()
	p.SourceIP = domain.SourceBudget{Failures: 20, Window: time.Hour}
	h, hashes := sprayHarness(t, 2, p, nil)
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	for i := range 120 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := fmt.Appendf(nil, `{"nir":%q,"password":"faux","client_ip":"203.0.113.9"}`, testNIR(i))
			o := outcome(decodeReplyAsync(h.Handle(i%2, "login.password", b)))
			mu.Lock()
			outcomes[o]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if outcomes[domain.CodeInvalidCredentials] != 20 || outcomes[domain.CodeTooManyAttempts] != 100 || hashes.n.Load() != 20 {
		t.Fatalf("outcomes %v, %d hashes: want 20 checked, 100 refused, 20 hashes", outcomes, hashes.n.Load())
	}
	if evs := fraudEvents(t, h); len(evs) != 1 || evs[0].Type != events.TypeSourceThrottled {
		t.Fatalf("fraud events %+v, want one throttle", evs)
	}
}

// The source is the address normalised: zone dropped, IPv4-mapped IPv6
// read as IPv4; its network is its /24 or /64.
func TestSourceNormalisation(t *testing.T) {
	for in, want := range map[string][2]string{
		"203.0.113.7":             {"203.0.113.7/32", "203.0.113.0/24"},
		"::ffff:203.0.113.7":      {"203.0.113.7/32", "203.0.113.0/24"},
		"2001:db8:1:2:3:4:5:6":    {"2001:db8:1:2:3:4:5:6/128", "2001:db8:1:2::/64"},
		"fe80::1%eth0":            {"fe80::1/128", "fe80::/64"},
		"::ffff:c000:0201":        {"192.0.2.1/32", "192.0.2.0/24"},
		"2001:0db8:0000::0001":    {"2001:db8::1/128", "2001:db8::/64"},
		"0000:0000::ffff:1.2.3.4": {"1.2.3.4/32", "1.2.3.0/24"},
	} {
		a, ok := commands.NormalizeSource(in)
		if !ok {
			t.Errorf("%s: not read", in)
			continue
		}
		ip, network := commands.SourcePrefixes(a)
		if ip.String() != want[0] || network.String() != want[1] {
			t.Errorf("%s: %s and %s, want %s and %s", in, ip, network, want[0], want[1])
		}
	}
	if _, ok := commands.NormalizeSource("203.0.113"); ok {
		t.Error("a truncated address was read")
	}
}

// The store forgets a source after its TTL, which must outlast every
// window a policy may set.
func TestSourceStoreOutlivesTheLongestWindow(t *testing.T) {
	if eventstore.DefaultSourceTTL <= domain.MaxSourceWindow {
		t.Fatalf("source TTL %s, longest window %s", eventstore.DefaultSourceTTL, domain.MaxSourceWindow)
	}
}

func decodeReply(t testing.TB, raw []byte) Reply {
	t.Helper()
	var rep Reply
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("reply %s: %v", raw, err)
	}
	return rep
}

// decodeReplyAsync is decodeReply off the test's goroutine: an unreadable
// reply reads as unavailable.
func decodeReplyAsync(raw []byte) Reply {
	var rep Reply
	if json.Unmarshal(raw, &rep) != nil {
		return Reply{Error: &contract.ErrorBody{Code: domain.CodeUnavailable}}
	}
	return rep
}
