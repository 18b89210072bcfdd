package passwordrule

import (
	"testing"

	"github.com/ameli-auth/authsvc/internal/domain"
)

func TestRule(t *testing.T) {
	seed, strict := domain.SeedPolicy(), domain.StrictPolicy()
	for _, c := range []struct {
		policy   domain.Policy
		password string
		inputs   []string
		ok       bool
	}{
		{seed, "court", nil, false},                                // too short
		{seed, "password123", nil, false},                          // common
		{seed, "azertyuiop", nil, false},                           // keyboard row
		{seed, "Ameli2023", nil, false},                            // the service's word and a year
		{seed, "valerie1969", []string{"valerie@yahoo.fr"}, false}, // the holder's own data
		{seed, "Motdepasse-2023", nil, true},
		{seed, "cheval agrafe batterie", nil, true},
		{strict, "Motdepasse1", nil, false}, // strict asks 12 characters
		{strict, "cheval agrafe batterie correcte", nil, true},
		{seed, string(make([]byte, 200)), nil, false}, // too long
	} {
		err := Check(c.policy, c.password, c.inputs...)
		if (err == nil) != c.ok {
			t.Errorf("%s %q: got %v, want ok=%v", c.policy.Name, c.password, err, c.ok)
		}
		if err != nil && err.Code != domain.CodeWeakPassword {
			t.Errorf("%q: code %s", c.password, err.Code)
		}
	}
}
