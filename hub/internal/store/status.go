package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// StatusRecord is the latest status snapshot of one app on one cluster. Data is opaque to the
// store (JSON the caller owns).
type StatusRecord struct {
	Cluster, App string
	Data         []byte
}

// PutStatus stores the status snapshot of app on cluster, replacing the previous one.
func (s *Store) PutStatus(cluster, app string, data []byte) error {
	key, err := statusKey(cluster, app)
	if err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	err = s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStatus).Put(key, bytes.Clone(data))
	})
	if err != nil {
		return fmt.Errorf("put status of %s on %s: %w", app, cluster, err)
	}
	return nil
}

// ListStatus returns every status snapshot, sorted by cluster, then app.
func (s *Store) ListStatus() ([]StatusRecord, error) {
	var out []StatusRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStatus).ForEach(func(k, v []byte) error {
			cluster, app, ok := bytes.Cut(k, []byte{sep})
			if !ok {
				return fmt.Errorf("malformed status key %q", k)
			}
			out = append(out, StatusRecord{Cluster: string(cluster), App: string(app), Data: bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list status: %w", err)
	}
	return out, nil
}

// DeleteStatus removes the status snapshot of app on cluster; a missing one is not an error.
func (s *Store) DeleteStatus(cluster, app string) error {
	key, err := statusKey(cluster, app)
	if err != nil {
		return fmt.Errorf("delete status: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStatus).Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete status of %s on %s: %w", app, cluster, err)
	}
	return nil
}

func statusKey(cluster, app string) ([]byte, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if err := checkName("app", app); err != nil {
		return nil, err
	}
	return compositeKey(false, cluster, app), nil
}
