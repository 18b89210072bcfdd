package commands

import (
	"encoding/json"

	"github.com/ameli-auth/authsvc/internal/domain"
)

// What the external tests (package commands_test, which use the shared
// harness of commandstest) need to see inside the service.

// Stripe is the index of the lock an account id shares (accounts.lock).
func Stripe(accountID string) int { return stripe(accountID) }

// GateSize is the number of keys in use in the service's password gate.
func GateSize(s *Service) int { return s.gate.size() }

// WaitSnapshots waits for the snapshot writes in flight.
func WaitSnapshots(s *Service) { s.accounts.snapshotWG.Wait() }

// DropCachedStates forgets the account states kept in memory, as a
// restarted instance would: the next command loads the snapshot and the
// stream's tail.
func DropCachedStates(s *Service) {
	s.accounts.cache = newLRU[cached](s.cfg.CacheSize, CacheAccounts, noMetrics{})
}

// EncodeSnapshot is a snapshot of state as the service writes it, under
// another state version if asked (for tests of old snapshots).
func EncodeSnapshot(version int, state domain.Account) ([]byte, error) {
	return json.Marshal(snapshot{Version: version, State: state})
}

// Delayed is the number of replies held back for their response floor.
func Delayed(s *Service) int64 { return s.delayed.Load() }
