package eventstore_test

import (
	"testing"

	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/eventstore/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (eventstore.Store, eventstore.Index, eventstore.Snapshots) {
		m := eventstore.NewMemory()
		return m, m.Index(), m.Snapshots()
	})
}

func TestMemoryShadowsContract(t *testing.T) {
	storetest.RunShadows(t, func(*testing.T) eventstore.Shadows { return eventstore.NewMemoryShadows() })
}
