package domain

import "time"

// Password spraying by source (issue 20): the per-account rules (3 wrong
// passwords block 15 minutes) never see an attacker who tries one or two
// passwords on each of thousands of NIRs. The commands service also counts
// failed password attempts per client address and per network prefix,
// across every account, and refuses further attempts from a source over
// its budget before any hash, with `too_many_attempts`.
//
// The rule is a window opened by a source's first counted attempt: at most
// Failures attempts are counted in it; once they are, the source is
// throttled until the window ends, then the next attempt opens a new
// window. Over any span of Window a source thus gets at most 2×Failures
// password checks (the end of one window and the start of the next), and
// its state is two numbers, which a shared store can update with one
// compare-and-set (our choice over a log of attempt times: a prefix's
// budget of 1,000 would need 1,000 times per key).

// MaxSourceWindow is the longest source window a policy may set: the
// shared store forgets a source some time after its last write
// (eventstore.DefaultSourceTTL, longer than this).
const MaxSourceWindow = 48 * time.Hour

// SourceBudget is a budget of failed password attempts in a window.
// Failures 0 disables the rule (no throttling).
type SourceBudget struct {
	Failures int           `json:"failures"`
	Window   time.Duration `json:"window"`
}

// SourceCount is a source's state: the attempts counted in its window and
// when the window opened (zero: none open).
type SourceCount struct {
	Failures    int       `json:"failures"`
	WindowStart time.Time `json:"window_start"`
}

// Until is the end of c's window (zero for none).
func (b SourceBudget) Until(c SourceCount) time.Time {
	if c.WindowStart.IsZero() {
		return time.Time{}
	}
	return c.WindowStart.Add(b.Window)
}

// At is c as it stands at now: a window that has ended is closed (the zero
// count), so the next attempt opens a new one.
func (b SourceBudget) At(c SourceCount, now time.Time) SourceCount {
	if c.WindowStart.IsZero() || !now.Before(b.Until(c)) {
		return SourceCount{}
	}
	return c
}

// Throttled tells whether an attempt at now from a source in state c is
// refused before any work, and until when (the window's end). A disabled
// budget never throttles.
func (b SourceBudget) Throttled(c SourceCount, now time.Time) (bool, time.Time) {
	if b.Failures <= 0 {
		return false, time.Time{}
	}
	c = b.At(c, now)
	if c.Failures >= b.Failures {
		return true, b.Until(c)
	}
	return false, time.Time{}
}

// Count counts one attempt at now: the window at now, opened at now if
// none is, gets one more. reached is true when this attempt spends the
// budget's last one (from then on Throttled says true until the window
// ends). The caller counts only attempts Throttled let through.
func (b SourceBudget) Count(c SourceCount, now time.Time) (next SourceCount, reached bool) {
	c = b.At(c, now)
	if c.WindowStart.IsZero() {
		c.WindowStart = now
	}
	c.Failures++
	return c, b.Failures > 0 && c.Failures == b.Failures
}

// Uncount gives back one attempt counted at countedAt (an attempt whose
// password was right, or which ended without a decision): only if c is
// still the window it was counted in.
func (b SourceBudget) Uncount(c SourceCount, countedAt, now time.Time) SourceCount {
	c = b.At(c, now)
	if c.WindowStart.IsZero() || countedAt.Before(c.WindowStart) || c.Failures == 0 {
		return c
	}
	c.Failures--
	return c
}
