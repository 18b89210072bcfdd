package projections

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestSourcePrefix(t *testing.T) {
	for _, c := range []struct {
		ip, want string // want "" = not counted by source
	}{
		{"192.0.2.10", "192.0.2.0/24"},
		{"192.0.2.255", "192.0.2.0/24"},
		{"192.0.3.0", "192.0.3.0/24"},
		{"::ffff:192.0.2.10", "192.0.2.0/24"}, // IPv4-mapped: the IPv4 /24
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"fe80::1%eth0", "fe80::/64"}, // zone dropped
		{"", ""},
		{"not an address", ""},
		{"192.0.2.10:443", ""}, // the BFF passes an address, never host:port
		{"192.0.2.0/24", ""},
	} {
		p, ok := SourcePrefix(c.ip)
		got := ""
		if ok {
			got = p.String()
		}
		if got != c.want {
			t.Errorf("SourcePrefix(%q) = %q, want %q", c.ip, got, c.want)
		}
	}
}

// A spray from one /24 over many accounts shows as one source row per
// hour and outcome; the same attempts spread over many networks do not
// pile up on any.
func TestFraudCountsShowASprayBySource(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 59, 0, 0, time.UTC)
	var spray, spread FraudCounts
	for i := range 1000 {
		a := Attempt{At: t0.Add(time.Duration(i) * 100 * time.Millisecond), Channel: "web", UserAgent: "curl/8.0",
			Step: StepPassword, Outcome: OutcomeFailed, ClientIP: "198.51.100." + itoa(i%250)}
		spray.Add(a)
		a.ClientIP = "10." + itoa(i/250) + "." + itoa(i%250) + ".1"
		spread.Add(a)
	}
	// 1000 attempts from 09:59:00 every 100 ms: 600 in the 09h hour, 400 in the 10h.
	want := map[SourceKey]int64{
		{Hour: Hour(t0), Prefix: mustPrefix("198.51.100.0/24"), Step: StepPassword, Outcome: OutcomeFailed}:                600,
		{Hour: Hour(t0.Add(time.Hour)), Prefix: mustPrefix("198.51.100.0/24"), Step: StepPassword, Outcome: OutcomeFailed}: 400,
	}
	if len(spray.BySource) != 2 || spray.BySource[keys(want)[0]] != want[keys(want)[0]] || spray.BySource[keys(want)[1]] != want[keys(want)[1]] {
		t.Errorf("spray by source: %v", spray.BySource)
	}
	maxSpread := int64(0)
	for _, n := range spread.BySource {
		maxSpread = max(maxSpread, n)
	}
	if maxSpread > 4 || len(spread.BySource) < 250 {
		t.Errorf("spread over %d sources, at most %d on one", len(spread.BySource), maxSpread)
	}
	// The device and hour counters see the same 1000, one user agent kept.
	var dev, hr int64
	for _, n := range spray.ByDevice {
		dev += n
	}
	for _, n := range spray.ByHour {
		hr += n
	}
	if dev != 1000 || hr != 1000 || len(spray.UserAgents) != 1 || spray.UserAgents[UserAgentHash("curl/8.0")].FirstSeenAt != t0 {
		t.Errorf("device %d, hour %d, user agents %v", dev, hr, spray.UserAgents)
	}
	if k := spray.SourceKeys(); len(k) != 2 || !k[0].Hour.Before(k[1].Hour) {
		t.Errorf("source keys not sorted: %v", k)
	}
}

func TestAttemptWithoutAddressOrUserAgentCountsByHourOnly(t *testing.T) {
	var f FraudCounts
	f.Add(Attempt{At: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Channel: "backoffice", Step: StepPassword, Outcome: OutcomeSucceeded})
	if len(f.ByHour) != 1 || len(f.BySource) != 0 || len(f.ByDevice) != 0 || len(f.UserAgents) != 0 || f.Empty() {
		t.Fatalf("%+v", f)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func keys(m map[SourceKey]int64) []SourceKey {
	var f FraudCounts
	f.BySource = m
	return f.SourceKeys()
}
