package commands_test

import (
	"context"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// A snapshot written under another state version (another shape of
// domain.Account, or other Evolve rules) is never served: the account is
// rebuilt from its events. The snapshot here claims a block the stream never
// recorded; at an older version a cold instance ignores it and the right
// password goes through, and the same snapshot at the current version is
// believed (which shows the cold instance does read snapshots).
func TestASnapshotOfAnotherStateVersionIsIgnored(t *testing.T) {
	h := newHarness(t, 1, testPolicy())
	acc := h.Register(nir1, "valerie@yahoo.fr", password)

	forge := func(version int) {
		t.Helper()
		ctx := context.Background()
		state := domain.Account{ID: acc}
		for _, e := range h.History(acc) {
			state = domain.Evolve(state, e.Data)
		}
		state.BlockedUntil, state.BlockReason = h.Clock.Now().Add(time.Hour), domain.ReasonPasswordFailures
		b, err := commands.EncodeSnapshot(version, state)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := h.Store.LastSeq(ctx, acc)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Store.Snapshots().Put(ctx, acc, seq, b); err != nil {
			t.Fatal(err)
		}
	}
	// coldInstance replaces the running instances by a new one, whose cache
	// is empty: its first load reads the snapshot.
	coldInstance := func() {
		t.Helper()
		for _, svc := range h.Svcs {
			_ = svc.Stop()
		}
		h.Svcs = nil
		h.AddInstance(testPolicy())
	}
	login := obj{"nir": nir1, "password": password}

	forge(domain.StateVersion - 1)
	coldInstance()
	if rep := h.Req("login.password", login); !rep.OK || rep.Status != contract.StatusOTPRequired {
		t.Fatalf("with a snapshot of version %d: %+v %+v; want otp_required, the state rebuilt from the events", domain.StateVersion-1, rep, rep.Error)
	}

	forge(domain.StateVersion)
	coldInstance()
	wantError(t, h.Req("login.password", login), domain.CodeAccountLocked)
}
