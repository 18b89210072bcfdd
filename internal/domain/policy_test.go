package domain

import "testing"

// Every profile's quotas can be counted in the state (Policy.Validate), and
// a quota past the state's bound is caught.
func TestEveryProfileFitsTheStateBounds(t *testing.T) {
	for _, name := range []string{"seed", "strict"} {
		p, _ := PolicyByName(name)
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	p := SeedPolicy()
	p.OTPQuota = MaxRecentRequests + 1
	if p.Validate() == nil {
		t.Error("a code quota the state cannot count was accepted")
	}
}
