package commands_test

import (
	"testing"

	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/contract"
	"github.com/ameli-auth/authsvc/internal/domain"
)

// harness is the shared commands harness (commandstest), with this
// package's helpers as methods.
type harness struct{ *commandstest.Harness }

// Reply is a reply as the tests read it.
type Reply = contract.AnyReply

type obj = commandstest.Obj

var (
	t0          = commandstest.T0
	cheapArgon2 = commandstest.CheapArgon2
	testPolicy  = commandstest.Policy
	count       = commandstest.Count
	wantError   = commandstest.WantError
)

func newHarness(t testing.TB, instances int, policy domain.Policy) *harness {
	t.Helper()
	return newHarnessWith(t, instances, policy, nil)
}

// newHarnessWith is newHarness with each instance's configuration changed
// by configure.
func newHarnessWith(t testing.TB, instances int, policy domain.Policy, configure func(*commands.Config)) *harness {
	t.Helper()
	return &harness{commandstest.Start(t, commandstest.Options{Instances: instances, Policy: policy, Configure: configure})}
}
