// Package clock gives components their time. In dev mode the clock can be
// moved forward (auth.dev.clock.advance) so a person can see a block end or a
// code expire without waiting; in production it is the system clock.
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

// Dev is the system clock plus an offset that only moves forward.
type Dev struct{ offset atomic.Int64 }

func (d *Dev) Now() time.Time { return time.Now().UTC().Add(time.Duration(d.offset.Load())) }

// Advance moves the clock forward by d (negative values are ignored: time
// going back would break every rule's window) and returns the new time.
func (d *Dev) Advance(by time.Duration) time.Time {
	if by > 0 {
		d.offset.Add(int64(by))
	}
	return d.Now()
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
