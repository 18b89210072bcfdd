package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/ameli-auth/authsvc/internal/eventstore"
)

// RunShadows runs the Shadows contract: absent keys, create once, compare
// and set on the revision, and no lost update under parallel writers.
func RunShadows(t *testing.T, newShadows func(t *testing.T) eventstore.Shadows) {
	t.Run("CreateAndUpdate", func(t *testing.T) {
		ctx := testContext(t)
		s := newShadows(t)
		if _, _, err := s.Get(ctx, "k1"); !errors.Is(err, eventstore.ErrNotFound) {
			t.Fatalf("absent key: %v, want ErrNotFound", err)
		}
		r1, err := s.Put(ctx, "k1", []byte("one"), 0)
		if err != nil || r1 == 0 {
			t.Fatalf("create: rev %d, %v", r1, err)
		}
		if _, err := s.Put(ctx, "k1", []byte("again"), 0); !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("second create: %v, want ErrConflict", err)
		}
		r2, err := s.Put(ctx, "k1", []byte("two"), r1)
		if err != nil || r2 <= r1 {
			t.Fatalf("update: rev %d after %d, %v", r2, r1, err)
		}
		if _, err := s.Put(ctx, "k1", []byte("stale"), r1); !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("stale update: %v, want ErrConflict", err)
		}
		v, rev, err := s.Get(ctx, "k1")
		if err != nil || string(v) != "two" || rev != r2 {
			t.Fatalf("get: %q rev %d %v; want two rev %d", v, rev, err, r2)
		}
	})
	t.Run("ParallelIncrementsLoseNothing", func(t *testing.T) {
		ctx := testContext(t)
		s := newShadows(t)
		const workers, each = 8, 10
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := 0; done < each; {
					v, rev, err := s.Get(ctx, "n")
					if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
						t.Error(err)
						return
					}
					if _, err := s.Put(ctx, "n", append(v, 'x'), rev); err == nil {
						done++
					} else if !errors.Is(err, eventstore.ErrConflict) {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if v, _, _ := s.Get(ctx, "n"); len(v) != workers*each {
			t.Fatalf("%d increments kept, want %d", len(v), workers*each)
		}
	})
}
