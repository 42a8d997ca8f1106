package render

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/flotilla-dev/flotilla/shared/bundle"
)

func TestCacheLRU(t *testing.T) {
	c := NewCache(2)
	b := func(n int) *bundle.Bundle { return &bundle.Bundle{Digest: fmt.Sprint(n)} }
	c.Put("a", b(1))
	c.Put("b", b(2))
	if got, ok := c.Get("a"); !ok || got.Digest != "1" { // a is now the most recent
		t.Fatalf("Get(a) = %v, %v", got, ok)
	}
	c.Put("c", b(3)) // evicts b
	if _, ok := c.Get("b"); ok {
		t.Errorf("b survived eviction")
	}
	c.Put("a", b(4)) // replaces in place
	if got, ok := c.Get("a"); !ok || got.Digest != "4" {
		t.Errorf("Get(a) = %v, %v; want the replacement", got, ok)
	}
	if got, ok := c.Get("c"); !ok || got.Digest != "3" {
		t.Errorf("Get(c) = %v, %v", got, ok)
	}
	if s := c.Stats(); s != (CacheStats{Hits: 3, Misses: 1, Entries: 2}) {
		t.Errorf("stats = %+v", s)
	}
	if NewCache(0).max != DefaultCacheEntries {
		t.Errorf("default size is not %d", DefaultCacheEntries)
	}
}

// TestCacheRenders keys renders as the hub does and shares one bundle between callers.
func TestCacheRenders(t *testing.T) {
	fsys := repoFS(t)
	r := New(Options{})
	c := NewCache(0)
	render := func(p string) *bundle.Bundle {
		key := CacheKey("https://git.example.com/deploy.git", "0123abcd", p)
		if b, ok := c.Get(key); ok {
			return b
		}
		objs, err := r.Render(context.Background(), fsys, p)
		if err != nil {
			t.Error(err)
			return nil
		}
		b, err := bundle.New(objs)
		if err != nil {
			t.Error(err)
			return nil
		}
		c.Put(key, b)
		return b
	}
	var wg sync.WaitGroup
	digests := make([]string, 8)
	for i := range digests {
		wg.Go(func() {
			if b := render("overlays/production"); b != nil {
				digests[i] = b.Digest
			}
		})
	}
	wg.Wait()
	for _, d := range digests {
		if d == "" || d != digests[0] {
			t.Fatalf("digests differ: %v", digests)
		}
	}
	if s := c.Stats(); s.Hits+s.Misses != 8 || s.Entries != 1 {
		t.Errorf("stats = %+v, want 8 lookups and 1 entry", s)
	}
	if staging := render("overlays/staging"); staging == nil || staging.Digest == digests[0] {
		t.Errorf("staging has the production digest")
	}
}
