package events

import (
	"errors"
	"testing"
)

func TestVerifyStored(t *testing.T) {
	env := Envelope{ID: "01J0000000000000000000000A", AccountID: "01J0000000000000000000000B"}
	for _, r := range []struct {
		name, subject, header string
		ok                    bool
	}{
		{"appended", "auth.events.01J0000000000000000000000B", env.ID, true},
		{"partitioned subject", "auth.events.3.01J0000000000000000000000B", env.ID, true},
		{"no header (a JetStream API answer)", "auth.events.01J0000000000000000000000B", "", false},
		{"another event's id", "auth.events.01J0000000000000000000000B", "01J0000000000000000000000C", false},
		{"another account's subject (a copy)", "auth.events.01J0000000000000000000000C", env.ID, false},
		{"the account id as a suffix of a longer token", "auth.events.X01J0000000000000000000000B", env.ID, false},
	} {
		err := VerifyStored(r.subject, r.header, env)
		if (err == nil) != r.ok || (err != nil && !errors.Is(err, ErrNotAppended)) {
			t.Errorf("%s: %v", r.name, err)
		}
	}
	if VerifyStored("auth.events.", env.ID, Envelope{ID: env.ID}) == nil {
		t.Error("an envelope without an account passed")
	}
}
