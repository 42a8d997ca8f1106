package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Retention bounds the history and audit records kept. A zero field sets no bound.
type Retention struct {
	// HistoryPerApp is how many history records are kept per app and cluster (the newest).
	HistoryPerApp int
	// HistoryMaxAge drops history records older than this.
	HistoryMaxAge time.Duration
	// AuditMax is how many audit records are kept (the newest).
	AuditMax int
	// AuditMaxAge drops audit records older than this.
	AuditMaxAge time.Duration
}

// SetRetention sets the bounds AddHistory and Prune keep to.
func (s *Store) SetRetention(r Retention) {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	s.retention = r
}

func (s *Store) currentRetention() Retention {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	return s.retention
}

// trimHistory deletes the oldest records with prefix (one app on one cluster) beyond keep.
// Called inside AddHistory's transaction, so no app×cluster ever holds more than keep.
func trimHistory(b *bolt.Bucket, prefix []byte, keep int) error {
	if keep <= 0 {
		return nil
	}
	c := b.Cursor()
	n := 0
	var stale [][]byte
	for k, _ := lastWithPrefix(c, prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if n++; n > keep {
			stale = append(stale, bytes.Clone(k))
		}
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Prune applies the retention's age bounds to history and audit records and its count bound
// to audit records; it returns how many records it deleted. The hub runs it periodically.
func (s *Store) Prune(now time.Time) (int, error) {
	r := s.currentRetention()
	deleted := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		if r.HistoryMaxAge > 0 {
			cutoff := now.Add(-r.HistoryMaxAge)
			b := tx.Bucket(bucketHistory)
			var stale [][]byte
			err := b.ForEach(func(k, v []byte) error {
				var rec struct {
					Time time.Time `json:"time"`
				}
				if err := json.Unmarshal(v, &rec); err == nil && rec.Time.Before(cutoff) {
					stale = append(stale, bytes.Clone(k))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, k := range stale {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			deleted += len(stale)
		}
		b := tx.Bucket(bucketAudit)
		c := b.Cursor()
		total := b.Stats().KeyN
		var stale [][]byte
		// Audit keys start with their time: oldest first.
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			old := r.AuditMaxAge > 0 && len(k) >= 8 && timeOf(k).Before(now.Add(-r.AuditMaxAge))
			over := r.AuditMax > 0 && total-len(stale) > r.AuditMax
			if !old && !over {
				break
			}
			stale = append(stale, bytes.Clone(k))
		}
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		deleted += len(stale)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune history and audit records: %w", err)
	}
	return deleted, nil
}

// timeOf reads the time at the start of a timeSeq key.
func timeOf(k []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))) }

// HistoryString tells what history is kept, for `flotilla history`.
func (r Retention) HistoryString() string {
	var parts []string
	if r.HistoryPerApp > 0 {
		parts = append(parts, fmt.Sprintf("the newest %d entries per app and cluster", r.HistoryPerApp))
	}
	if r.HistoryMaxAge > 0 {
		parts = append(parts, "none older than "+days(r.HistoryMaxAge))
	}
	if len(parts) == 0 {
		return "every entry"
	}
	return strings.Join(parts, ", ")
}

// days writes a duration of whole days as such ("90d"), others as time.Duration does.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
