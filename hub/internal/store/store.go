// Package store is the hub's durable state: the cluster registry, join tokens, status
// snapshots, audit records and sync history, in one bbolt file in the data directory.
//
// Values are JSON. Keys are built so that every listing is a prefix scan in key order:
//
//	clusters  <cluster>
//	tokens    <token id>
//	status    <cluster> 0x00 <app>
//	audit     <time ns, 8 bytes big-endian> <sequence, 8 bytes>
//	history   <app> 0x00 <cluster> 0x00 <time ns, 8 bytes big-endian> <sequence, 8 bytes>
//
// A Store is safe for concurrent use.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the name of the database file in the hub's data directory.
const FileName = "flotilla.db"

// openTimeout bounds the wait for the file lock, which another hub process may hold.
const openTimeout = 10 * time.Second

var (
	bucketClusters = []byte("clusters")
	bucketTokens   = []byte("tokens")
	bucketStatus   = []byte("status")
	bucketAudit    = []byte("audit")
	bucketHistory  = []byte("history")
	bucketPins     = []byte("pins")
	bucketRollouts = []byte("rollouts")
	allBuckets     = [][]byte{bucketClusters, bucketTokens, bucketStatus, bucketAudit, bucketHistory, bucketPins, bucketRollouts}
)

// sep separates the parts of a composite key; names never contain it.
const sep = 0x00

// Store is the hub's embedded database.
type Store struct {
	db *bolt.DB

	retMu     sync.Mutex
	retention Retention
}

// Open opens or creates the database at path, creating its directory if needed.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// checkName rejects names that would break the key layout.
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if strings.IndexByte(name, sep) >= 0 {
		return fmt.Errorf("%s name %q contains a NUL byte", kind, name)
	}
	return nil
}

// compositeKey joins parts with sep; with a trailing sep when prefix is set.
func compositeKey(prefix bool, parts ...string) []byte {
	var b bytes.Buffer
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(sep)
		}
		b.WriteString(p)
	}
	if prefix {
		b.WriteByte(sep)
	}
	return b.Bytes()
}

// timeSeq is the 16-byte ordered suffix of audit and history keys: the time in nanoseconds
// since the Unix epoch (times before it count as the epoch), then a per-bucket sequence that
// keeps records of the same nanosecond apart and in insertion order.
func timeSeq(t time.Time, seq uint64) []byte {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k[:8], uint64(ns))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

// prefixEnd returns the smallest key greater than every key with prefix, or nil if there is
// none.
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// lastWithPrefix moves c to the last key with prefix.
func lastWithPrefix(c *bolt.Cursor, prefix []byte) (k, v []byte) {
	if end := prefixEnd(prefix); end != nil {
		if k, _ = c.Seek(end); k != nil {
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
	} else {
		k, v = c.Last()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil, nil
	}
	return k, v
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode record: %w", err)
	}
	return b.Put(key, data)
}

// errNotFound is internal: getJSON's signal for a missing key.
var errNotFound = errors.New("not found")

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return errNotFound
	}
	return json.Unmarshal(data, v)
}
