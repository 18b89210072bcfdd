package commands

import (
	"container/list"
	"sync"
)

// lru is a bounded, least-recently-used map from keys to values: the
// account states and the shadow states kept in memory. Values are copied in
// and out; the states it holds are values whose slices are never written in
// place (see domain.appendBounded), so sharing them is safe. Its changes
// are told to Metrics under its name.
type lru[V any] struct {
	mu      sync.Mutex
	max     int
	ll      *list.List
	items   map[string]*list.Element
	name    string
	metrics Metrics
}

type lruItem[V any] struct {
	key string
	v   V
}

// newLRU keeps at most size values; size <= 0 keeps none. It tells
// metrics its bound now and its changes as they come, as the cache name.
func newLRU[V any](size int, name string, metrics Metrics) *lru[V] {
	metrics.CacheBound(name, max(size, 0))
	return &lru[V]{max: size, ll: list.New(), items: map[string]*list.Element{}, name: name, metrics: metrics}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.ll.MoveToFront(el)
		return el.Value.(*lruItem[V]).v, true
	}
	var zero V
	return zero, false
}

func (c *lru[V]) put(key string, v V) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*lruItem[V]).v = v
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&lruItem[V]{key: key, v: v})
	evicted := 0
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.items, last.Value.(*lruItem[V]).key)
		evicted++
	}
	c.metrics.Cached(c.name, 1-evicted, evicted)
}

// len is the number of values held.
func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
