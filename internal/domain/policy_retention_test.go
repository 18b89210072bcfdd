package domain

import (
	"testing"
	"time"
)

// Both profiles look back at an attempt at most as long as a trusted
// device lasts: 6 months, counted as 31-day months.
func TestAttemptsMemoryIsTheTrustedDevicesMonths(t *testing.T) {
	for _, p := range []Policy{SeedPolicy(), StrictPolicy()} {
		if got, want := p.AttemptsMemory(), 6*31*24*time.Hour; got != want {
			t.Errorf("%s: %s, want %s", p.Name, got, want)
		}
	}
	p := SeedPolicy()
	p.TrustedDeviceMonths, p.PasswordFailureMemory = 0, 40*24*time.Hour
	if got := p.AttemptsMemory(); got != 40*24*time.Hour {
		t.Errorf("without trusted devices: %s, want the failures' 40 days", got)
	}
}
