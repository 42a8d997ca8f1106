package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditRecord is one operator action.
type AuditRecord struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// HistoryRecord is one sync of a revision of an app on a cluster.
type HistoryRecord struct {
	Time     time.Time `json:"time"`
	Cluster  string    `json:"cluster"`
	App      string    `json:"app"`
	Revision string    `json:"revision"`
	Author   string    `json:"author,omitempty"`
	Message  string    `json:"message,omitempty"`
	Result   string    `json:"result,omitempty"`
	Health   string    `json:"health,omitempty"`
	// ChartVersion and ValuesDigest are set for an app rendered from a Helm chart.
	ChartVersion string `json:"chartVersion,omitempty"`
	ValuesDigest string `json:"valuesDigest,omitempty"`
}

// Audit appends an audit record; a zero Time means now.
func (s *Store) Audit(r AuditRecord) error {
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		return putJSON(b, timeSeq(r.Time, seq), r)
	})
	if err != nil {
		return fmt.Errorf("write audit record %s by %s: %w", r.Action, r.Actor, err)
	}
	return nil
}

// ListAudit returns up to limit audit records (all if limit <= 0), newest first.
func (s *Store) ListAudit(limit int) ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var r AuditRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode audit record %x: %w", k, err)
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list audit records: %w", err)
	}
	return out, nil
}

// AddHistory appends a history record; a zero Time means now. The oldest records of the app
// on the cluster beyond the retention's HistoryPerApp are deleted with it.
func (s *Store) AddHistory(r HistoryRecord) error {
	if err := checkName("app", r.App); err != nil {
		return fmt.Errorf("add history record: %w", err)
	}
	if err := checkName("cluster", r.Cluster); err != nil {
		return fmt.Errorf("add history record: %w", err)
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	keep := s.currentRetention().HistoryPerApp
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		prefix := compositeKey(true, r.App, r.Cluster)
		if err := putJSON(b, append(bytes.Clone(prefix), timeSeq(r.Time, seq)...), r); err != nil {
			return err
		}
		return trimHistory(b, prefix, keep)
	})
	if err != nil {
		return fmt.Errorf("add history record of %s on %s: %w", r.App, r.Cluster, err)
	}
	return nil
}

// ListHistory returns up to limit history records (all if limit <= 0) of app on cluster, or
// on every cluster when cluster is empty, newest first.
func (s *Store) ListHistory(app, cluster string, limit int) ([]HistoryRecord, error) {
	if err := checkName("app", app); err != nil {
		return nil, fmt.Errorf("list history: %w", err)
	}
	if cluster != "" {
		if err := checkName("cluster", cluster); err != nil {
			return nil, fmt.Errorf("list history of %s: %w", app, err)
		}
	}
	var out []HistoryRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		prefixes := [][]byte{compositeKey(true, app, cluster)}
		if cluster == "" {
			prefixes = clusterPrefixes(b.Cursor(), compositeKey(true, app))
		}
		// Each cluster's range is in time order: take the newest limit of each, then merge.
		for _, p := range prefixes {
			c := b.Cursor()
			n := 0
			for k, v := lastWithPrefix(c, p); k != nil && bytes.HasPrefix(k, p) && (limit <= 0 || n < limit); k, v = c.Prev() {
				var r HistoryRecord
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decode history record %q: %w", k, err)
				}
				out = append(out, r)
				n++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list history of %s: %w", app, err)
	}
	if cluster == "" {
		slices.SortStableFunc(out, func(a, b HistoryRecord) int { return b.Time.Compare(a.Time) })
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// clusterPrefixes returns the key prefix <app> 0x00 <cluster> 0x00 of every cluster that has
// history for the app whose prefix is appPrefix, skipping over each cluster's records.
func clusterPrefixes(c *bolt.Cursor, appPrefix []byte) [][]byte {
	var out [][]byte
	k, _ := c.Seek(appPrefix)
	for k != nil && bytes.HasPrefix(k, appPrefix) {
		rest := k[len(appPrefix):]
		i := bytes.IndexByte(rest, sep)
		if i < 0 {
			break // not a history key; nothing writes these
		}
		p := bytes.Clone(k[:len(appPrefix)+i+1])
		out = append(out, p)
		k, _ = c.Seek(prefixEnd(p))
	}
	return out
}
