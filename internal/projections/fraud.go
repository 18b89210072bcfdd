package projections

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// The fraud read model (issue 20; docs/projector.md, "Fraud read model"):
// counters of login attempts by source prefix, by device and by hour, and
// the credential changes that, with the lockouts in login_attempts, show
// the usual takeover pattern. The counters are a pure function of the
// login_attempts rows (FraudCounts.Add of each), so a batch adds its
// attempts' counts to the tables in the same transaction as the rows and
// the checkpoint, and a rebuild adds the counts of the rows it carries
// over from expired attempts the same way: what the tables hold never
// depends on how the stream was cut into batches or partitions.

// Source prefix lengths: a /24 is what one IPv4 customer or NAT pool is
// usually given, a /64 the one subnet of an IPv6 customer (RFC 6177 and
// RIPE-690), so rotating addresses inside it changes nothing. Our choice,
// the same prefixes the commands service's throttling by source counts.
const (
	SourcePrefixIPv4 = 24
	SourcePrefixIPv6 = 64
)

// SourcePrefix is the network an attempt came from: the /24 of an IPv4
// address (an IPv4-mapped IPv6 address is taken as IPv4), the /64 of an
// IPv6 one, its zone dropped. ok is false for an empty or unparsable
// client_ip (a command sent without one, from the back office say): such
// attempts are counted by hour and device, not by source.
func SourcePrefix(clientIP string) (p netip.Prefix, ok bool) {
	if clientIP == "" {
		return netip.Prefix{}, false
	}
	a, err := netip.ParseAddr(clientIP)
	if err != nil {
		return netip.Prefix{}, false
	}
	a = a.Unmap().WithZone("")
	bits := SourcePrefixIPv6
	if a.Is4() {
		bits = SourcePrefixIPv4
	}
	p, err = a.Prefix(bits)
	return p, err == nil
}

// UserAgentHash names a user agent in the device counters: a digest of
// the string, so the counters' keys have a fixed width and the text itself
// is stored once, in fraud_user_agents. Empty for an empty user agent.
func UserAgentHash(userAgent string) string {
	if userAgent == "" {
		return ""
	}
	return digest("ua:", userAgent)
}

// Hour is the UTC hour an attempt counts in.
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// SourceKey, DeviceKey and HourKey are the keys of the three counters.
type SourceKey struct {
	Hour          time.Time
	Prefix        netip.Prefix
	Step, Outcome string
}

// DeviceKey counts by user agent (UserAgentHash): every web and app
// attempt carries one, while device ids exist only on biometric steps and
// trusted-device logins, never on the password failures a spray makes.
type DeviceKey struct {
	Hour          time.Time
	UAHash        string
	Step, Outcome string
}

// HourKey counts every attempt, by channel ("" when the request named none).
type HourKey struct {
	Hour          time.Time
	Channel       string
	Step, Outcome string
}

// UserAgentSeen is one row of fraud_user_agents.
type UserAgentSeen struct {
	UserAgent   string
	FirstSeenAt time.Time
}

// FraudCounts is what a set of attempts adds to the fraud counters. The
// zero value is empty and ready to use.
type FraudCounts struct {
	BySource   map[SourceKey]int64
	ByDevice   map[DeviceKey]int64
	ByHour     map[HourKey]int64
	UserAgents map[string]UserAgentSeen // by UserAgentHash
}

// Add counts one attempt (a row of login_attempts).
func (f *FraudCounts) Add(a Attempt) {
	if f.ByHour == nil {
		f.BySource, f.ByDevice, f.ByHour = map[SourceKey]int64{}, map[DeviceKey]int64{}, map[HourKey]int64{}
		f.UserAgents = map[string]UserAgentSeen{}
	}
	h := Hour(a.At)
	f.ByHour[HourKey{Hour: h, Channel: a.Channel, Step: a.Step, Outcome: a.Outcome}]++
	if p, ok := SourcePrefix(a.ClientIP); ok {
		f.BySource[SourceKey{Hour: h, Prefix: p, Step: a.Step, Outcome: a.Outcome}]++
	}
	if ua := UserAgentHash(a.UserAgent); ua != "" {
		f.ByDevice[DeviceKey{Hour: h, UAHash: ua, Step: a.Step, Outcome: a.Outcome}]++
		if seen, ok := f.UserAgents[ua]; !ok || a.At.Before(seen.FirstSeenAt) {
			f.UserAgents[ua] = UserAgentSeen{UserAgent: a.UserAgent, FirstSeenAt: a.At}
		}
	}
}

// Empty tells whether nothing was counted.
func (f *FraudCounts) Empty() bool { return len(f.ByHour) == 0 }

// Reset empties the counts and keeps their maps for the next batch.
func (f *FraudCounts) Reset() {
	clear(f.BySource)
	clear(f.ByDevice)
	clear(f.ByHour)
	clear(f.UserAgents)
}

// Sorted keys: statements that upsert the same counter rows from two
// partitions' projectors lock them in one order, so they queue instead of
// deadlocking.

// SourceKeys returns the source keys, sorted.
func (f *FraudCounts) SourceKeys() []SourceKey {
	return sortedKeys(f.BySource, func(a, b SourceKey) int {
		return cmp.Or(a.Prefix.Addr().Compare(b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()),
			a.Hour.Compare(b.Hour), cmp.Compare(a.Step, b.Step), cmp.Compare(a.Outcome, b.Outcome))
	})
}

// DeviceKeys returns the device keys, sorted.
func (f *FraudCounts) DeviceKeys() []DeviceKey {
	return sortedKeys(f.ByDevice, func(a, b DeviceKey) int {
		return cmp.Or(cmp.Compare(a.UAHash, b.UAHash), a.Hour.Compare(b.Hour), cmp.Compare(a.Step, b.Step), cmp.Compare(a.Outcome, b.Outcome))
	})
}

// HourKeys returns the hour keys, sorted.
func (f *FraudCounts) HourKeys() []HourKey {
	return sortedKeys(f.ByHour, func(a, b HourKey) int {
		return cmp.Or(a.Hour.Compare(b.Hour), cmp.Compare(a.Channel, b.Channel), cmp.Compare(a.Step, b.Step), cmp.Compare(a.Outcome, b.Outcome))
	})
}

// UserAgentHashes returns the user agents' hashes, sorted.
func (f *FraudCounts) UserAgentHashes() []string {
	return sortedKeys(f.UserAgents, cmp.Compare[string])
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) int) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, less)
	return out
}

// Kinds of credential changes the takeover pattern reads.
const (
	ChangePasswordReset = "password_reset"
	ChangeEmail         = "email_change"
)

// RecordCredentialChange appends a row to auth.credential_changes: a
// completed password reset or email change. With the lockouts of
// auth.login_attempts they make the view auth.fraud_takeover_pattern.
// These events never expire from the stream (events.IsAttempt), so a
// rebuild replays every one.
type RecordCredentialChange struct {
	AccountID string
	Seq       uint64
	Kind      string // ChangePasswordReset or ChangeEmail
	At        time.Time
}

func (RecordCredentialChange) isStatement() {}
