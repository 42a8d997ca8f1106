package render

import (
	"container/list"
	"sync"

	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// DefaultCacheEntries bounds a Cache made with a size of 0.
const DefaultCacheEntries = 512

// CacheKey is the key of a render: the same repository tree and path render the same.
func CacheKey(repoURL, treeHash, path string) string {
	return repoURL + "@" + treeHash + ":" + path
}

// Cache keeps the most recently used rendered bundles, bounded by entry count. It is safe
// for concurrent use.
type Cache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // front: most recently used; values are *entry
	entries map[string]*list.Element
	hits    uint64
	misses  uint64
}

type entry struct {
	key string
	b   *bundle.Bundle
}

// CacheStats are a Cache's counters.
type CacheStats struct {
	Hits, Misses uint64
	Entries      int
}

// NewCache makes a cache of at most size entries (DefaultCacheEntries if size <= 0).
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheEntries
	}
	return &Cache{max: size, order: list.New(), entries: map[string]*list.Element{}}
}

// Get returns the bundle stored under key, counting a hit or a miss.
func (c *Cache) Get(key string) (*bundle.Bundle, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		c.misses++
		return nil, false
	}
	c.hits++
	c.order.MoveToFront(el)
	return el.Value.(*entry).b, true
}

// Put stores b under key, evicting the least recently used entry when full.
func (c *Cache) Put(key string, b *bundle.Bundle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value.(*entry).b = b
		c.order.MoveToFront(el)
		return
	}
	c.entries[key] = c.order.PushFront(&entry{key: key, b: b})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*entry).key)
	}
}

// Stats returns the counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Misses: c.misses, Entries: c.order.Len()}
}
