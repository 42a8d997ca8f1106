package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Rollout is the durable record of an app's latest progressive rollout
// (hub/internal/rollout): Data is the rollout's own encoding, Seq counts its changes. Replicas
// keep the record of the higher Seq (MergeRollout).
type Rollout struct {
	App  string          `json:"app"`
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data"`
}

// PutRollout stores the record of an app's rollout made on this replica.
func (s *Store) PutRollout(r Rollout) error {
	if err := checkName("app", r.App); err != nil {
		return fmt.Errorf("put rollout: %w", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bucketRollouts), []byte(r.App), r) })
	if err != nil {
		return fmt.Errorf("put rollout of %s: %w", r.App, err)
	}
	return nil
}

// MergeRollout folds a record from another replica into the store, keeping the one of the
// higher Seq (at the same Seq, the greater Data, so that the merge commutes). It reports
// whether the store changed.
func (s *Store) MergeRollout(in Rollout) (changed bool, err error) {
	if err := checkName("app", in.App); err != nil {
		return false, fmt.Errorf("merge rollout: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRollouts)
		var cur Rollout
		if err := getJSON(b, []byte(in.App), &cur); err == nil &&
			(cur.Seq > in.Seq || cur.Seq == in.Seq && string(cur.Data) >= string(in.Data)) {
			return nil
		}
		changed = true
		return putJSON(b, []byte(in.App), in)
	})
	if err != nil {
		return false, fmt.Errorf("merge rollout of %s: %w", in.App, err)
	}
	return changed, nil
}

// ListRollouts returns every app's rollout record, sorted by app.
func (s *Store) ListRollouts() ([]Rollout, error) {
	var out []Rollout
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRollouts).ForEach(func(k, v []byte) error {
			var r Rollout
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("rollout of %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}
