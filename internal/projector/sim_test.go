package projector

import "github.com/ameli-auth/authsvc/internal/eventsim"

// The simulated histories live in internal/eventsim, shared by the
// projector's tests and authctl bench so both replay the same mix.
type (
	sim        = eventsim.Sim
	simAccount = eventsim.Account
)

func newSim(seed uint64) *sim { return eventsim.New(seed) }
