package charts

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// diskCache keeps chart archives under dir/sha256/<hex digest>, at most max bytes of them:
// past that the least recently used go. It also remembers, under dir/refs, which digest an
// exact version of a chart resolved to, so that the version can be served while its
// repository is down, also after a restart. The cache is the replica's own.
type diskCache struct {
	dir string
	max int64

	mu    sync.Mutex
	blobs map[string]*blob // by hex digest
	size  int64            // of every blob
	clock uint64           // counts uses, for the LRU order
	refs  map[string]string
}

type blob struct {
	size int64
	used uint64 // clock at the last use
}

// openCache reads what dir already holds, oldest first by modification time; it writes
// nothing (dir is made on the first put).
func openCache(dir string, max int64) (*diskCache, error) {
	c := &diskCache{dir: dir, max: max, blobs: map[string]*blob{}, refs: map[string]string{}}
	entries, err := os.ReadDir(c.blobDir())
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chart cache %s: %w", dir, err)
	}
	type found struct {
		hex  string
		size int64
		mod  time.Time
	}
	var all []found
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !isHexDigest(e.Name()) {
			continue // a temporary file of an interrupted put, or not ours
		}
		all = append(all, found{e.Name(), info.Size(), info.ModTime()})
	}
	slices.SortFunc(all, func(a, b found) int { return a.mod.Compare(b.mod) })
	for _, f := range all {
		c.clock++
		c.blobs[f.hex] = &blob{size: f.size, used: c.clock}
		c.size += f.size
	}
	return c, nil
}

func (c *diskCache) blobDir() string { return filepath.Join(c.dir, "sha256") }

func (c *diskCache) blobPath(hexDigest string) string { return filepath.Join(c.blobDir(), hexDigest) }

func isHexDigest(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// hexOf is the hex part of a "sha256:<hex>" digest; "" for anything else.
func hexOf(digest string) string {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !isHexDigest(h) {
		return ""
	}
	return h
}

// get returns the archive of digest ("sha256:<hex>"), or nil when the cache does not hold
// it. An archive whose content no longer matches its digest is dropped.
func (c *diskCache) get(digest string) []byte {
	h := hexOf(digest)
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.blobs[h]
	if !ok {
		return nil
	}
	data, err := os.ReadFile(c.blobPath(h))
	if err != nil || digestOf(data) != digest {
		c.dropLocked(h)
		return nil
	}
	c.clock++
	b.used = c.clock
	now := time.Now()
	_ = os.Chtimes(c.blobPath(h), now, now) // the LRU order after a restart; best effort
	return data
}

// put stores data under its digest and evicts the least recently used others until the
// cache is within its bound.
func (c *diskCache) put(digest string, data []byte) error {
	h := hexOf(digest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.blobs[h]; ok {
		c.clock++
		b.used = c.clock
		return nil
	}
	if err := os.MkdirAll(c.blobDir(), 0o700); err != nil {
		return fmt.Errorf("chart cache %s: %w", c.dir, err)
	}
	if err := writeFileAtomic(c.blobPath(h), data); err != nil {
		return fmt.Errorf("chart cache %s: %w", c.dir, err)
	}
	c.clock++
	c.blobs[h] = &blob{size: int64(len(data)), used: c.clock}
	c.size += int64(len(data))
	for c.size > c.max {
		victim := ""
		for k, b := range c.blobs {
			if k != h && (victim == "" || b.used < c.blobs[victim].used) {
				victim = k
			}
		}
		if victim == "" {
			break
		}
		c.dropLocked(victim)
	}
	return nil
}

func (c *diskCache) dropLocked(h string) {
	if b, ok := c.blobs[h]; ok {
		c.size -= b.size
		delete(c.blobs, h)
	}
	_ = os.Remove(c.blobPath(h))
}

// usage returns the bytes and the number of archives held.
func (c *diskCache) usage() (int64, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, len(c.blobs)
}

// refPath is where the digest of an exact version of a chart is remembered.
func (c *diskCache) refPath(ref Ref) string {
	sum := sha256.Sum256([]byte(ref.RepoURL + "\x00" + ref.Chart + "\x00" + ref.Version))
	return filepath.Join(c.dir, "refs", hex.EncodeToString(sum[:]))
}

// remember notes the digest ref resolved to when ref names an exact version. It is best
// effort: a failure only loses the fallback while the repository is down.
func (c *diskCache) remember(ref Ref, version, digest string) {
	if !isExact(ref.Version) {
		return
	}
	p := c.refPath(ref)
	line := version + " " + digest
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs[p] == line {
		return
	}
	if os.MkdirAll(filepath.Dir(p), 0o700) == nil && writeFileAtomic(p, []byte(line)) == nil {
		c.refs[p] = line
	}
}

// recall returns the artifact an exact ref resolved to last, if the cache still holds it.
func (c *diskCache) recall(ref Ref) *Artifact {
	line, err := os.ReadFile(c.refPath(ref))
	if err != nil {
		return nil
	}
	version, digest, ok := strings.Cut(string(line), " ")
	if !ok {
		return nil
	}
	data := c.get(digest)
	if data == nil {
		return nil
	}
	return &Artifact{Ref: ref, Version: version, Digest: digest, Archive: data}
}

// writeFileAtomic writes data to a temporary file beside path and renames it into place, so
// a reader sees the whole file or none.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// digestOf is "sha256:<hex>" of data.
func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
