package commands

import (
	"context"
	"sync"
)

// keyGate lets one request at a time through per key (an account, or a NIR
// without an account), in arrival order as the runtime wakes them. It is the
// fairness of the hashing pool (issue 11, kind 4): whatever a flood sends to
// one account, that account holds at most one of the HashWorkers, so the
// others keep serving every other account; and since the gate is held from
// the password check through the recorded decision, each request sees the
// failures and the block its predecessors recorded, so a flood spends
// exactly the hashes that reach the block (3 in the seed's profile), then
// none until the block ends. Its memory is one entry per key in use.
type keyGate struct {
	mu    sync.Mutex
	gates map[string]*gate
}

type gate struct {
	ch    chan struct{} // capacity 1: a token means "held"
	users int           // requests holding or waiting; the entry goes at 0
}

func newKeyGate() *keyGate { return &keyGate{gates: map[string]*gate{}} }

// acquire waits for key's turn, or for ctx. release must be called once.
func (g *keyGate) acquire(ctx context.Context, key string) (release func(), err error) {
	g.mu.Lock()
	e := g.gates[key]
	if e == nil {
		e = &gate{ch: make(chan struct{}, 1)}
		g.gates[key] = e
	}
	e.users++
	g.mu.Unlock()

	leave := func() {
		g.mu.Lock()
		if e.users--; e.users == 0 {
			delete(g.gates, key)
		}
		g.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}

// size is the number of keys in use (for tests: entries never outlive use).
func (g *keyGate) size() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.gates)
}
