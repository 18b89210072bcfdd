package commands

// Password spraying by source (issue 20; docs/rules.md, "Password
// spraying"): every login.password from a client address is counted, before
// its hash, against two budgets of the policy (domain.SourceBudget), the
// address's and its network prefix's (/24 for IPv4, /64 for IPv6), across
// every account. The count is a reservation: it is kept when the attempt
// fails (a wrong password, on an account or a NIR without one, or a
// blocked account) and given back when the password was right or the
// request ended without a decision. A source whose budget is spent is
// refused with `too_many_attempts` before any hash, whatever the account
// and whatever the password, until its window ends. Counting before the
// hash, with compare-and-set on a shared bucket (eventstore.Sources), is
// what makes every instance together spend at most the budget's hashes.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// counter is one budget a source is counted against: its address or its
// prefix.
type counter struct {
	kind   string       // events.SourceKindIP or events.SourceKindPrefix
	prefix netip.Prefix // the address as /32 or /128, or its network
	key    string       // the store's key: a keyed hash of kind and prefix
	budget domain.SourceBudget
}

// NormalizeSource reads a client address as the source it is counted
// under: IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address, a zone
// (fe80::1%eth0) is dropped. ok is false for a string that is no address.
func NormalizeSource(clientIP string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(clientIP)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// SourcePrefixes is the address as a one-address prefix and its network:
// /24 for IPv4, /64 for IPv6 (our choice: a NAT pool or a small office
// shares a /24; an IPv6 customer is given a /64 at least, so every address
// in it may be one attacker's).
func SourcePrefixes(a netip.Addr) (ip, network netip.Prefix) {
	bits := 64
	if a.Is4() {
		bits = 24
	}
	ip = netip.PrefixFrom(a, a.BitLen())
	network, _ = a.Prefix(bits)
	return ip, network
}

// counters are the budgets a request's client_ip is counted against; none
// for a request without one (a tool of the back-office; the front-ends
// always send it) or from an allow-listed address (Config.SourceAllowlist).
func (s *Service) counters(clientIP string) []counter {
	if clientIP == "" {
		return nil
	}
	a, ok := NormalizeSource(clientIP)
	if !ok {
		return nil // decode refused it already
	}
	for _, p := range s.cfg.SourceAllowlist {
		if p.Contains(a) {
			return nil
		}
	}
	ip, network := SourcePrefixes(a)
	var out []counter
	if s.policy.SourceIP.Failures > 0 {
		out = append(out, s.counter(events.SourceKindIP, ip, s.policy.SourceIP))
	}
	if s.policy.SourcePrefix.Failures > 0 {
		out = append(out, s.counter(events.SourceKindPrefix, network, s.policy.SourcePrefix))
	}
	return out
}

func (s *Service) counter(kind string, p netip.Prefix, b domain.SourceBudget) counter {
	return counter{kind: kind, prefix: p, key: s.keys.TokenHash("source:"+kind, p.String()), budget: b}
}

// sourceState is what the store keeps per source: the count and whether
// the throttle of this window was announced (fraud.source_throttled), so
// that one event tells it and one tells its end.
type sourceState struct {
	domain.SourceCount
	Announced bool `json:"announced,omitempty"`
}

const maxSourceBytes = 1 << 10

// sourceValueBytes is the size of every source entry's value: padded to
// it, an entry never grows. A full bucket (eventstore.ErrFull) refuses an
// update that grows an entry, and the attempt that spends a budget grows
// it (more digits, "announced"): unpadded, a full bucket never throttled a
// source it held, and an attacker who fills it gets no throttle at all.
const sourceValueBytes = 160

// encodeSource is st's JSON padded with spaces (still JSON, and what older
// instances read) to sourceValueBytes.
func encodeSource(st sourceState) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	if len(b) < sourceValueBytes {
		b = append(b, bytes.Repeat([]byte{' '}, sourceValueBytes-len(b))...)
	}
	return b, nil
}

func (s *Service) loadSource(ctx context.Context, key string) (sourceState, uint64, error) {
	b, rev, err := s.cfg.Sources.Get(ctx, key)
	if errors.Is(err, eventstore.ErrNotFound) {
		return sourceState{}, 0, nil
	}
	if err != nil {
		return sourceState{}, 0, err
	}
	var st sourceState
	if len(b) > maxSourceBytes || json.Unmarshal(b, &st) != nil || st.Failures < 0 {
		return sourceState{}, rev, nil // unreadable: start afresh over it
	}
	return st, rev, nil
}

// reserved is an attempt counted against a counter, to keep or give back.
type reserved struct {
	c  counter
	at time.Time
}

// errSourceThrottled is the refusal of a throttled source.
var errSourceThrottled = &domain.Error{Code: domain.CodeTooManyAttempts}

// reserveSource counts an attempt from clientIP at now against each of its
// budgets, or refuses it (too_many_attempts) if one is spent; a refused
// attempt is not counted and gives back what it had reserved. A store at
// its size bound lets the attempt through uncounted (logged); another
// store failure is an error (the request answers unavailable).
func (s *Service) reserveSource(ctx context.Context, clientIP string, now time.Time) ([]reserved, error) {
	cs := s.counters(clientIP)
	// A throttled source is refused before anything is written: counting
	// its address first and giving it back when its network refused left
	// one entry per fresh address, so a throttled network's 2^64 (IPv6)
	// addresses filled the bucket with refused attempts, which cost no
	// hash. A throttle that starts meanwhile is still seen by countSource.
	for _, c := range cs {
		st, _, err := s.loadSource(ctx, c.key)
		if err != nil {
			return nil, fmt.Errorf("source read: %w", err)
		}
		if throttled, _ := c.budget.Throttled(st.SourceCount, now); throttled {
			s.cfg.Metrics.Source(SourceRefused, c.kind)
			return nil, errSourceThrottled
		}
	}
	var held []reserved
	for _, c := range cs {
		ok, err := s.countSource(ctx, c, now)
		if err == nil && !ok {
			err = errSourceThrottled
		}
		if err != nil {
			s.releaseReserved(ctx, held, now)
			return nil, err
		}
		held = append(held, reserved{c: c, at: now})
	}
	return held, nil
}

// countSource counts one attempt on c with compare-and-set; false if c is
// throttled.
func (s *Service) countSource(ctx context.Context, c counter, now time.Time) (bool, error) {
	for range maxAttempts {
		st, rev, err := s.loadSource(ctx, c.key)
		if err != nil {
			return false, fmt.Errorf("source read: %w", err)
		}
		if throttled, _ := c.budget.Throttled(st.SourceCount, now); throttled {
			s.cfg.Metrics.Source(SourceRefused, c.kind)
			return false, nil
		}
		// A throttle announced in a window that has ended is over: the
		// attempt that finds it so tells its end (lazily, docs/rules.md).
		released := st.Announced && c.budget.At(st.SourceCount, now).WindowStart.IsZero()
		old := st
		next := sourceState{Announced: st.Announced && !released}
		var reached bool
		next.SourceCount, reached = c.budget.Count(st.SourceCount, now)
		if reached {
			next.Announced = true
		}
		b, err := encodeSource(next)
		if err != nil {
			return false, fmt.Errorf("source encode: %w", err)
		}
		_, err = s.cfg.Sources.Put(ctx, c.key, b, rev)
		switch {
		case errors.Is(err, eventstore.ErrConflict):
			s.cfg.Metrics.Conflict(StoreSource)
			continue
		case errors.Is(err, eventstore.ErrFull):
			s.log.Warn("source store full: a password attempt let through without being counted", "kind", c.kind, "err", err)
			return true, nil
		case err != nil:
			return false, fmt.Errorf("source write: %w", err)
		}
		if released {
			s.fraudEvent(ctx, events.TypeSourceReleased, c, old.SourceCount, now, events.ReleaseWindowPassed, "")
		}
		if reached {
			s.fraudEvent(ctx, events.TypeSourceThrottled, c, next.SourceCount, now, "", "")
		}
		return true, nil
	}
	return false, fmt.Errorf("source: still conflicting after %d attempts", maxAttempts)
}

// settleSource keeps the attempts reserved when the login failed (the
// reply's code is invalid_credentials or account_locked: a wrong password
// or a blocked account, on a registered NIR or an unknown one alike), and
// gives them back otherwise (a right password, or no decision).
func (s *Service) settleSource(ctx context.Context, held []reserved, rep contract.Reply, now time.Time) {
	if len(held) == 0 {
		return
	}
	ok, code := rep.Outcome()
	if !ok && (code == domain.CodeInvalidCredentials || code == domain.CodeAccountLocked) {
		return
	}
	s.releaseReserved(ctx, held, now)
}

// releaseReserved gives back attempts counted at their time, best effort:
// a failure leaves one attempt too many counted (logged).
func (s *Service) releaseReserved(ctx context.Context, held []reserved, now time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, r := range held {
		if err := s.uncountSource(ctx, r, now); err != nil {
			s.log.Warn("source: an attempt could not be given back", "kind", r.c.kind, "err", err)
		}
	}
}

func (s *Service) uncountSource(ctx context.Context, r reserved, now time.Time) error {
	for range maxAttempts {
		st, rev, err := s.loadSource(ctx, r.c.key)
		if err != nil || rev == 0 {
			return err
		}
		next := st
		next.SourceCount = r.c.budget.Uncount(st.SourceCount, r.at, now)
		if next.SourceCount == st.SourceCount {
			return nil
		}
		b, err := encodeSource(next)
		if err != nil {
			return err
		}
		_, err = s.cfg.Sources.Put(ctx, r.c.key, b, rev)
		if errors.Is(err, eventstore.ErrConflict) {
			s.cfg.Metrics.Conflict(StoreSource)
			continue
		}
		return err
	}
	return fmt.Errorf("source: still conflicting after %d attempts", maxAttempts)
}

// fraudEvent records a fraud event about c, best effort: the decision it
// follows stands whether or not it is written (logged, and counted by
// Metrics.Source).
func (s *Service) fraudEvent(ctx context.Context, typ string, c counter, n domain.SourceCount, now time.Time, reason, requestID string) {
	e := events.FraudEvent{ID: events.NewID(now), Type: typ, Version: 1, OccurredAt: now.UTC(), Data: events.SourceFacts{
		Source: c.prefix.String(), Kind: c.kind, Failures: n.Failures, Budget: c.budget.Failures,
		WindowStart: n.WindowStart.UTC(), WindowSeconds: int64(c.budget.Window / time.Second), Until: c.budget.Until(n).UTC(),
		Reason: reason, RequestID: requestID,
	}}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.cfg.Fraud.Record(ctx, e); err != nil {
		s.log.Warn("fraud event not recorded", "type", typ, "kind", c.kind, "err", err)
		s.cfg.Metrics.Source(SourceEventLost, c.kind)
		return
	}
	switch typ {
	case events.TypeSourceThrottled:
		s.log.Warn("source throttled", "kind", c.kind, "source", c.prefix.String(), "failures", n.Failures, "until", e.Data.Until)
		s.cfg.Metrics.Source(SourceThrottled, c.kind)
	case events.TypeSourceReleased:
		s.log.Info("source released", "kind", c.kind, "source", c.prefix.String(), "reason", reason)
		s.cfg.Metrics.Source(SourceReleased, c.kind)
	}
}
