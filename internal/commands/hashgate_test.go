package commands

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyGateOneAtATimePerKey(t *testing.T) {
	g := newKeyGate()
	var in, max atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := g.acquire(context.Background(), "k")
			if err != nil {
				t.Error(err)
				return
			}
			n := in.Add(1)
			for {
				m := max.Load()
				if n <= m || max.CompareAndSwap(m, n) {
					break
				}
			}
			runtime.Gosched() // let others in, if the gate would
			in.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if max.Load() != 1 {
		t.Fatalf("%d holders of one key at once", max.Load())
	}
	// A held key makes the next acquire wait: with the key held, a waiter
	// whose context ends gets the context's error, never the gate.
	held, _ := g.acquire(context.Background(), "h")
	waiting, cancelWaiting := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := g.acquire(waiting, "h")
		got <- err
	}()
	cancelWaiting()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquired a held key: %v", err)
	}
	held()
	// Another key is not held up by a held one; a waiter gives up with its
	// context and leaves nothing behind.
	release, _ := g.acquire(context.Background(), "a")
	other, err := g.acquire(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	other()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.acquire(ctx, "a"); err == nil {
		t.Fatal("acquired a held key with a cancelled context")
	}
	release()
	if n := g.size(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}
