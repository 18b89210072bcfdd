package commands_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ameli-auth/authsvc/internal/clock"
	"github.com/ameli-auth/authsvc/internal/commands"
	"github.com/ameli-auth/authsvc/internal/commands/commandstest"
	"github.com/ameli-auth/authsvc/internal/events"
	"github.com/ameli-auth/authsvc/internal/eventstore"
	"github.com/ameli-auth/authsvc/internal/secrets"
)

// cacheMetrics records what the service tells its metrics of its caches.
type cacheMetrics struct {
	mu      sync.Mutex
	bound   map[string]int
	entries map[string]int
	evicted map[string]int
}

func newCacheMetrics() *cacheMetrics {
	return &cacheMetrics{bound: map[string]int{}, entries: map[string]int{}, evicted: map[string]int{}}
}

func (m *cacheMetrics) Recorded(events.Event, bool)   {}
func (m *cacheMetrics) Conflict(string)               {}
func (m *cacheMetrics) Retry(string)                  {}
func (m *cacheMetrics) Covered(string, time.Duration) {}
func (m *cacheMetrics) Source(string, string)         {}
func (m *cacheMetrics) HashWaited(time.Duration)      {}
func (m *cacheMetrics) Hashing(int)                   {}

func (m *cacheMetrics) CacheBound(cache string, max int) {
	m.mu.Lock()
	m.bound[cache] = max
	m.mu.Unlock()
}

func (m *cacheMetrics) Cached(cache string, added, evicted int) {
	m.mu.Lock()
	m.entries[cache] += added
	m.evicted[cache] += evicted
	m.mu.Unlock()
}

func (m *cacheMetrics) get(cache string) (bound, entries, evicted int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bound[cache], m.entries[cache], m.evicted[cache]
}

// forgetfulShadows is a Shadows that keeps nothing: what the test weighs
// is the service's own memory, not its stores'.
type forgetfulShadows struct{}

func (forgetfulShadows) Get(context.Context, string) ([]byte, uint64, error) {
	return nil, 0, eventstore.ErrNotFound
}
func (forgetfulShadows) Put(_ context.Context, _ string, _ []byte, rev uint64) (uint64, error) {
	return rev + 1, nil
}

// heapAfterGC is the live heap, in bytes.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Every cache of the commands service is bounded (issue 16): met with many
// more accounts and NIRs than its bound (back-office acts on accounts,
// reset requests for NIRs without an account), the account and shadow
// caches hold at most their bound and say so to the metrics, and the
// service's heap does not grow with what it met: no cache of NIRs or
// accounts grows without bound (the index lookups keep none).
func TestCachesAreBoundedAndTheHeapIsFlat(t *testing.T) {
	const bound = 50
	keys, err := secrets.NewKeys(commandstest.MasterKey)
	if err != nil {
		t.Fatal(err)
	}
	m := newCacheMetrics()
	mem := eventstore.NewMemory()
	svc, err := commands.New(commands.Config{Policy: testPolicy(), Keys: keys, Store: mem, Index: mem.Index(), Snapshots: mem.Snapshots(),
		Shadows: forgetfulShadows{}, Sources: eventstore.NewMemorySources(), Fraud: &eventstore.MemoryFraud{}, Clock: clock.NewFixed(t0), ResponseFloor: -1, CacheSize: bound, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	meet := func(from, n int) {
		ctx := context.Background()
		for i := from; i < from+n; i++ {
			svc.Handle(ctx, "account.unlock", fmt.Appendf(nil, `{"account_id":"01H%023d","channel":"backoffice"}`, i))
			svc.Handle(ctx, "password.reset.request", fmt.Appendf(nil, `{"nir":"1%012d"}`, 100_000_000_000+i))
		}
	}
	meet(0, 500)
	before := heapAfterGC()
	const more = 5000
	meet(500, more)
	after := heapAfterGC()
	runtime.KeepAlive(svc) // its caches are what is weighed

	for _, cache := range []string{commands.CacheAccounts, commands.CacheShadows} {
		b, entries, evicted := m.get(cache)
		if b != bound || entries != bound || evicted != 500+more-bound {
			t.Errorf("%s: bound %d, entries %d, evicted %d; want %d, %d, %d", cache, b, entries, evicted, bound, bound, 500+more-bound)
		}
	}
	if b, _, _ := m.get(commands.CacheReplies); b <= 0 {
		t.Errorf("the reply cache told no bound")
	}
	// An account state or a shadow kept for each of them would be several
	// hundred bytes each.
	growth := int64(after) - int64(before)
	t.Logf("heap %d -> %d bytes after %d more accounts and NIRs: %+d bytes, %.1f per account and NIR", before, after, more, growth, float64(growth)/more)
	if growth > 64*more {
		t.Fatalf("the heap grew by %d bytes for %d more accounts and NIRs met", growth, more)
	}
}
