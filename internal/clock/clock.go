// Package clock gives components their time. In dev mode, or in a test
// deployment that opts in (AUTH_DEV_CLOCK=1), the clock can be moved
// forward (<prefix>.dev.clock.advance) so a person or a test can see a block
// end or a code expire without waiting; otherwise it is the system clock.
package clock

import (
	"sync/atomic"
	"time"
)

// Clock tells the time.
type Clock interface{ Now() time.Time }

// System is the machine's clock, in UTC.
type System struct{}

func (System) Now() time.Time { return time.Now().UTC() }

// Millis is a clock to the millisecond: the commands service's, so the
// times its events record have three decimals, not nine (issue 16: the
// six digits more were 7 bytes of every event on disk, S2-compressed, and
// said nothing a rule or an auditor uses; Postgres keeps microseconds).
type Millis struct{ Clock Clock }

func (m Millis) Now() time.Time { return m.Clock.Now().Truncate(time.Millisecond) }

// The dev clock's bounds. A request comes from outside the process, so no
// value may push the offset past what time.Duration holds (about 292
// years): 10 years covers the longest rule (6 months) many times over, and
// 100 years in all leaves any sum of accepted requests far from overflow.
const (
	MaxAdvance = 10 * 365 * 24 * time.Hour  // one request at most
	MaxOffset  = 100 * 365 * 24 * time.Hour // the clock ahead of the system clock at most
)

// Dev is the system clock plus an offset that only moves forward, within
// MaxOffset.
type Dev struct {
	offset    atomic.Int64
	onAdvance atomic.Pointer[func(offset time.Duration)]
}

// OnAdvance sets f to be called with the new offset after each accepted
// Advance, before Advance returns: the commands service keeps the offset
// with it, so a component (re)started later starts from it.
func (d *Dev) OnAdvance(f func(offset time.Duration)) { d.onAdvance.Store(&f) }

// Raise moves the clock forward to the offset `to`, as kept or followed:
// never back (a smaller offset changes nothing), and never past MaxOffset.
// It says whether the clock moved.
func (d *Dev) Raise(to time.Duration) bool {
	to = min(to, MaxOffset)
	for {
		cur := d.offset.Load()
		if time.Duration(cur) >= to {
			return false
		}
		if d.offset.CompareAndSwap(cur, int64(to)) {
			return true
		}
	}
}

func (d *Dev) Now() time.Time { return time.Now().UTC().Add(d.Offset()) }

// Offset is how far the clock is ahead of the system clock.
func (d *Dev) Offset() time.Duration { return time.Duration(d.offset.Load()) }

// Advance moves the clock forward by `by` and returns the new time. It
// refuses, leaving the clock where it was, a step that is not positive
// (time going back would break every rule's window), larger than
// MaxAdvance, or that would put the clock more than MaxOffset ahead: it
// never wraps.
func (d *Dev) Advance(by time.Duration) (time.Time, error) {
	switch {
	case by <= 0:
		return d.Now(), errNotPositive
	case by > MaxAdvance:
		return d.Now(), errTooLarge
	}
	for {
		cur := d.offset.Load()
		if time.Duration(cur) > MaxOffset-by { // cur+by > MaxOffset, without computing cur+by
			return d.Now(), errOffset
		}
		if d.offset.CompareAndSwap(cur, cur+int64(by)) {
			if f := d.onAdvance.Load(); f != nil {
				(*f)(time.Duration(cur + int64(by)))
			}
			return d.Now(), nil
		}
	}
}

// Fixed is a clock that stands still until moved: for tests.
type Fixed struct{ t atomic.Int64 }

// NewFixed returns a clock standing at t.
func NewFixed(t time.Time) *Fixed {
	f := &Fixed{}
	f.t.Store(t.UnixNano())
	return f
}

func (f *Fixed) Now() time.Time { return time.Unix(0, f.t.Load()).UTC() }

// Advance moves the clock by d.
func (f *Fixed) Advance(d time.Duration) time.Time {
	return time.Unix(0, f.t.Add(int64(d))).UTC()
}
